//! `imds mmds put|patch|get|config`: an instance's Firecracker MMDS through the admin API, the
//! counterpart of Firecracker's `PUT|PATCH|GET /mmds` and `PUT /mmds/config`. The admin API is
//! found as for `imds instance`.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use http::Method;
use imds_server::client::{Client, Response};

use super::instance::{client, encode, print_json, read_json, unreachable_hint, Failure, Target};

/// `imds mmds ...`
#[derive(Debug, Subcommand)]
pub enum MmdsCommand {
    /// Replace the instance's MMDS document with a JSON file (any JSON value).
    Put {
        /// The instance id.
        id: String,
        /// The JSON file, or - for standard input.
        file: String,
        #[command(flatten)]
        target: Target,
    },
    /// Merge-patch the MMDS document (RFC 7396: members replace, null deletes).
    Patch {
        /// The instance id.
        id: String,
        /// The JSON patch file, or - for standard input.
        file: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the MMDS document as JSON ({} before the first put).
    Get {
        /// The instance id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Configure the MMDS version and format; the instance's guest paths are MMDS's from then on.
    Config {
        /// The instance id.
        id: String,
        /// V1: session tokens optional; V2: required.
        #[arg(long, value_enum, default_value_t = Version::V1)]
        version: Version,
        /// Always answer in IMDS text format, whatever the guest's Accept header.
        #[arg(long)]
        imds_compat: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// The MMDS protocol version.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Version {
    /// Session tokens optional (deprecated by Firecracker).
    #[value(name = "V1", alias = "v1")]
    V1,
    /// Session tokens required.
    #[value(name = "V2", alias = "v2")]
    V2,
}

/// Runs one command: exit 0 on success, 1 when the server refused, 2 on local mistakes.
pub async fn run(command: MmdsCommand) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { message, code }) => {
            eprintln!("imds: {message}");
            ExitCode::from(code)
        }
    }
}

async fn execute(command: MmdsCommand) -> Result<(), Failure> {
    match command {
        MmdsCommand::Put { id, file, target } => {
            let doc = read_json(&file)?;
            call(&client(&target), Method::PUT, &path_for(&id), doc.to_string()).await?;
            eprintln!("replaced the MMDS document of instance {id}");
        }
        MmdsCommand::Patch { id, file, target } => {
            let patch = read_json(&file)?;
            call(&client(&target), Method::PATCH, &path_for(&id), patch.to_string()).await?;
            eprintln!("patched the MMDS document of instance {id}");
        }
        MmdsCommand::Get { id, target } => {
            let response = call(&client(&target), Method::GET, &path_for(&id), String::new()).await?;
            print_json(&response.json());
        }
        MmdsCommand::Config { id, version, imds_compat, target } => {
            let version = match version {
                Version::V1 => "V1",
                Version::V2 => "V2",
            };
            let body = serde_json::json!({"version": version, "imds_compat": imds_compat}).to_string();
            call(&client(&target), Method::PUT, &format!("{}/config", path_for(&id)), body).await?;
            eprintln!("configured MMDS {version} (imds_compat {imds_compat}) for instance {id}");
        }
    }
    Ok(())
}

fn path_for(id: &str) -> String {
    format!("/v1/instances/{}/mmds", encode(id))
}

async fn call(client: &Client, method: Method, path: &str, body: String) -> Result<Response, Failure> {
    let headers = [("content-type", "application/json")];
    let response = client.send(method, path, &headers, body).await.map_err(|error| unreachable_hint(client, error))?;
    if response.status.is_success() {
        return Ok(response);
    }
    let body = response.json();
    let message = match body.get("fault_message").or_else(|| body.pointer("/error/message")) {
        Some(serde_json::Value::String(message)) => message.clone(),
        _ => response.text(),
    };
    let mut text =
        format!("{} {}: {message}", response.status.as_u16(), response.status.canonical_reason().unwrap_or(""));
    if response.status == http::StatusCode::NOT_FOUND {
        text.push_str("\n  hint: `imds instance ls` lists the instances that exist");
    }
    Err(Failure { message: text, code: 1 })
}
