//! `imds role put|get|ls|rm|base-credentials|refresh`: roles and their credential sources
//! through the admin API. Secrets are read from files or standard input, never from the
//! command line (where `ps` would show them).

use std::process::ExitCode;

use clap::Subcommand;
use http::{Method, StatusCode};

use super::instance::{call, client, encode, finish, print_json, read_json, Failure, Target};

/// `imds role ...`
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or replace a role from a JSON document: {"source": {"type": "static"|"sts"|"process", ...}}.
    Put {
        /// The role name (what instances name in `iam_role`).
        name: String,
        /// The JSON file, or - for standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE|-")]
        file: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print a role (without secrets) and the state of its credentials.
    Get {
        /// The role name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List roles and whether each has valid credentials.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a role.
    #[command(alias = "delete")]
    Rm {
        /// The role name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set the base credentials an sts role assumes with (write-only):
    /// {"access_key_id", "secret_access_key", "session_token"?}.
    BaseCredentials {
        /// The role name.
        name: String,
        /// The JSON file, or - for standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE|-", default_value = "-")]
        file: String,
        #[command(flatten)]
        target: Target,
    },
    /// Fetch new credentials for a role now.
    Refresh {
        /// The role name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs one command: exit 0 on success, 1 when the server refused, 2 on local mistakes.
pub async fn run(command: RoleCommand) -> ExitCode {
    finish(execute(command).await)
}

fn path_for(name: &str) -> String {
    format!("/v1/roles/{}", encode(name))
}

const JSON: (&str, &str) = ("content-type", "application/json");

async fn execute(command: RoleCommand) -> Result<(), Failure> {
    match command {
        RoleCommand::Put { name, file, target } => {
            let doc = read_json(&file)?;
            let response = call(&client(&target), Method::PUT, &path_for(&name), &[JSON], doc.to_string()).await?;
            let verb = if response.status == StatusCode::CREATED { "created" } else { "replaced" };
            eprintln!("{verb} role {name}");
            print_json(&response.json());
        }
        RoleCommand::Get { name, target } => {
            let response = call(&client(&target), Method::GET, &path_for(&name), &[], String::new()).await?;
            print_json(&response.json());
        }
        RoleCommand::Ls { target } => {
            let response = call(&client(&target), Method::GET, "/v1/roles", &[], String::new()).await?;
            let list = response.json();
            println!("{:<32}  {:<8}  {:<6}  EXPIRATION / ERROR", "NAME", "SOURCE", "VALID");
            for role in list["roles"].as_array().into_iter().flatten() {
                let status = &role["status"];
                let detail = status["error"].as_str().or(status["expiration"].as_str()).unwrap_or("-");
                println!(
                    "{:<32}  {:<8}  {:<6}  {detail}",
                    role["name"].as_str().unwrap_or("?"),
                    role["source"]["type"].as_str().unwrap_or("?"),
                    status["valid"].as_bool().unwrap_or(false),
                );
            }
        }
        RoleCommand::Rm { name, target } => {
            call(&client(&target), Method::DELETE, &path_for(&name), &[], String::new()).await?;
            eprintln!("deleted role {name}");
        }
        RoleCommand::BaseCredentials { name, file, target } => {
            let doc = read_json(&file)?;
            let path = format!("{}/base-credentials", path_for(&name));
            call(&client(&target), Method::PUT, &path, &[JSON], doc.to_string()).await?;
            eprintln!("base credentials of role {name} set");
        }
        RoleCommand::Refresh { name, target } => {
            call(&client(&target), Method::POST, &format!("{}/refresh", path_for(&name)), &[], String::new()).await?;
            eprintln!("refreshing role {name}");
        }
    }
    Ok(())
}
