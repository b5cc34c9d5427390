//! `imds instance put|get|patch|move|rm|ls|smbios|import`: the admin API from the shell.
//!
//! The server is found with `--admin` (an `http://host:port` URL or a Unix socket path), else
//! `IMDS_ADMIN`, else `/run/imds/admin.sock` when it exists, else `http://127.0.0.1:8998`
//! (where `imds serve --dev` listens). The bearer token comes from `IMDS_ADMIN_TOKEN`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use http::{Method, StatusCode};
use imds_server::client::{Client, ClientError, Endpoint, Response};

/// Where to reach the admin API.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// Admin API: http://HOST:PORT or a Unix socket path (env IMDS_ADMIN).
    #[arg(long, global = true, value_name = "URL|PATH", env = "IMDS_ADMIN")]
    admin: Option<String>,
}

/// `imds instance ...`
#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create or replace an instance from a JSON document (its "id" names it).
    Put {
        /// The JSON file, or - for standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE|-")]
        file: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print an instance as JSON.
    Get {
        /// The instance id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Merge-patch an instance (RFC 7396: members replace, null deletes).
    Patch {
        /// The instance id.
        id: String,
        /// The JSON patch file, or - for standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE|-")]
        file: String,
        #[command(flatten)]
        target: Target,
    },
    /// Place an instance on another serving node (one store transaction: the old node stops
    /// serving it at the revision the new one starts).
    Move {
        /// The instance id.
        id: String,
        /// The node that serves it from now on.
        node: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete an instance.
    #[command(alias = "delete")]
    Rm {
        /// The instance id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// List instances.
    #[command(alias = "list")]
    Ls {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        target: Target,
    },
    /// Print the SMBIOS values a VMM must present so the image's cloud-init picks a dialect.
    Smbios {
        /// The instance id.
        id: String,
        /// The dialect (ec2, gce, azure, openstack, digitalocean, hetzner, nocloud); default:
        /// the record's platform.dialect.
        #[arg(long)]
        dialect: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = SmbiosOutput::Qemu)]
        output: SmbiosOutput,
        #[command(flatten)]
        target: Target,
    },
    /// Create or replace many instances from NDJSON (one instance document per line; a JSON
    /// array file works too), sent in requests of `--batch` instances. Each request is checked
    /// whole before it writes anything; earlier requests stay written if a later one fails.
    Import {
        /// The NDJSON (or JSON array) file, or - for standard input.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// Instances per request.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_IMPORT_BATCH,
              value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Create only: fail (writing nothing of that request) if an instance already exists.
        #[arg(long)]
        create_only: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Instances per import request unless `--batch` says otherwise.
const DEFAULT_IMPORT_BATCH: u32 = 10_000;

/// How `smbios` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SmbiosOutput {
    /// QEMU `-smbios` arguments on one line, quoted for a POSIX shell.
    Qemu,
    /// The admin API's JSON answer.
    Json,
}

/// How `ls` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// A JSON array of instances.
    Json,
}

/// Runs one command: exit 0 on success, 1 when the server refused, 2 on local mistakes.
pub async fn run(command: InstanceCommand) -> ExitCode {
    finish(execute(command).await)
}

/// Exit 0 on success; otherwise prints the failure and exits with its code.
pub(crate) fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { message, code }) => {
            eprintln!("imds: {message}");
            ExitCode::from(code)
        }
    }
}

pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn local(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 2 }
    }
}

async fn execute(command: InstanceCommand) -> Result<(), Failure> {
    match command {
        InstanceCommand::Put { file, target } => {
            let doc = read_json(&file)?;
            let id = doc.get("id").and_then(|id| id.as_str()).ok_or_else(|| {
                Failure::local(format!("{file}: the document needs an \"id\" string naming the instance"))
            })?;
            let client = client(&target);
            let response =
                call(&client, Method::PUT, &path_for(id), &[("content-type", "application/json")], doc.to_string())
                    .await?;
            let verb = if response.status == StatusCode::CREATED { "created" } else { "replaced" };
            eprintln!("{verb} instance {id} (etag {})", response.header("etag").unwrap_or("?"));
            print_json(&response.json());
        }
        InstanceCommand::Get { id, target } => {
            let response = call(&client(&target), Method::GET, &path_for(&id), &[], String::new()).await?;
            print_json(&response.json());
        }
        InstanceCommand::Patch { id, file, target } => {
            let response = merge_patch(&target, &id, &read_json(&file)?).await?;
            eprintln!("patched instance {id} (etag {})", response.header("etag").unwrap_or("?"));
            print_json(&response.json());
        }
        InstanceCommand::Move { id, node, target } => {
            let response = merge_patch(&target, &id, &serde_json::json!({ "node": node })).await?;
            eprintln!("moved instance {id} to node {node} (etag {})", response.header("etag").unwrap_or("?"));
        }
        InstanceCommand::Rm { id, target } => {
            call(&client(&target), Method::DELETE, &path_for(&id), &[], String::new()).await?;
            eprintln!("deleted instance {id}");
        }
        InstanceCommand::Ls { output, target } => {
            let client = client(&target);
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(after) => format!("/v1/instances?limit=1000&after={}", encode(after)),
                    None => "/v1/instances?limit=1000".to_owned(),
                };
                let page = call(&client, Method::GET, &path, &[], String::new()).await?.json();
                if let Some(items) = page.get("instances").and_then(|v| v.as_array()) {
                    all.extend(items.iter().cloned());
                }
                match page.get("next_after").and_then(|v| v.as_str()) {
                    Some(next) => after = Some(next.to_owned()),
                    None => break,
                }
            }
            match output {
                Output::Json => print_json(&serde_json::Value::Array(all)),
                Output::Table => print_table(&all),
            }
        }
        InstanceCommand::Import { file, batch, create_only, target } => {
            let batch = usize::try_from(batch).unwrap_or(usize::MAX);
            super::import::run(&client(&target), &file, batch, create_only).await?;
        }
        InstanceCommand::Smbios { id, dialect, output, target } => {
            let mut path = format!("{}/smbios", path_for(&id));
            if let Some(dialect) = &dialect {
                path.push_str(&format!("?dialect={}", encode(dialect)));
            }
            let hint = call(&client(&target), Method::GET, &path, &[], String::new()).await?.json();
            match output {
                SmbiosOutput::Json => print_json(&hint),
                SmbiosOutput::Qemu => {
                    let args: Vec<&str> = hint["qemu"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                        .unwrap_or_default();
                    println!("{}", args.iter().map(|arg| shell_quote(arg)).collect::<Vec<_>>().join(" "));
                }
            }
        }
    }
    Ok(())
}

/// `arg` as one POSIX shell word: unchanged when it holds only safe characters, else in single
/// quotes (`;` in a NoCloud serial would otherwise end the command).
fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || ",._+:@%/=-".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn path_for(id: &str) -> String {
    format!("/v1/instances/{}", encode(id))
}

/// `PATCH /v1/instances/{id}` with an RFC 7396 merge patch.
async fn merge_patch(target: &Target, id: &str, patch: &serde_json::Value) -> Result<Response, Failure> {
    call(
        &client(target),
        Method::PATCH,
        &path_for(id),
        &[("content-type", "application/merge-patch+json")],
        patch.to_string(),
    )
    .await
}

/// Percent-encodes what is not safe in a path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn client(target: &Target) -> Client {
    let endpoint = match target.admin.as_deref() {
        Some(text) => parse_endpoint(text),
        None if Path::new("/run/imds/admin.sock").exists() => Endpoint::Unix(PathBuf::from("/run/imds/admin.sock")),
        None => Endpoint::Tcp(([127, 0, 0, 1], 8998).into()),
    };
    let token = std::env::var("IMDS_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    Client::new(endpoint).with_token(token)
}

fn parse_endpoint(text: &str) -> Endpoint {
    let rest = text.strip_prefix("http://").unwrap_or(text);
    let rest = rest.trim_end_matches('/');
    match rest.parse() {
        Ok(addr) => Endpoint::Tcp(addr),
        Err(_) => match std::net::ToSocketAddrs::to_socket_addrs(rest).ok().and_then(|mut addrs| addrs.next()) {
            Some(addr) if text.starts_with("http://") => Endpoint::Tcp(addr),
            _ => Endpoint::Unix(PathBuf::from(text.strip_prefix("unix:").unwrap_or(text))),
        },
    }
}

pub(crate) fn read_json(file: &str) -> Result<serde_json::Value, Failure> {
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|error| Failure::local(format!("cannot read {file}: {error}")))?;
    serde_json::from_str(&text).map_err(|error| Failure::local(format!("{file} is not valid JSON: {error}")))
}

pub(crate) async fn call(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Result<Response, Failure> {
    let response = client.send(method, path, headers, body).await.map_err(|error| unreachable_hint(client, error))?;
    if response.status.is_success() {
        return Ok(response);
    }
    Err(Failure { message: refusal(&response), code: 1 })
}

pub(super) fn unreachable_hint(client: &Client, error: ClientError) -> Failure {
    let place = match client.endpoint() {
        Endpoint::Tcp(addr) => format!("http://{addr}"),
        Endpoint::Unix(path) => path.display().to_string(),
    };
    Failure {
        message: format!(
            "{error}\n  is imds running? Start one with `imds serve --dev`, or point --admin / IMDS_ADMIN at the admin API (now {place})"
        ),
        code: 1,
    }
}

/// The server's error, with what to do about it.
fn refusal(response: &Response) -> String {
    let mut text = describe(response);
    let hint = match response.status {
        StatusCode::UNAUTHORIZED => Some("set IMDS_ADMIN_TOKEN to the server's admin token"),
        StatusCode::NOT_FOUND => Some("`imds instance ls` lists the instances that exist"),
        StatusCode::CONFLICT => Some("remove the address from the other instance first, or pick another"),
        StatusCode::PRECONDITION_FAILED => Some("the instance changed meanwhile: get it again and retry"),
        _ => None,
    };
    if let Some(hint) = hint {
        text.push_str(&format!("\n  hint: {hint}"));
    }
    text
}

/// The server's error: status, message and each field at fault.
pub(super) fn describe(response: &Response) -> String {
    let body = response.json();
    let error = body.get("error");
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| response.text());
    let mut text =
        format!("{} {}: {message}", response.status.as_u16(), response.status.canonical_reason().unwrap_or(""));
    if let Some(details) = error.and_then(|e| e.get("details")).and_then(|d| d.as_array()) {
        for detail in details {
            let field = detail.get("field").and_then(|f| f.as_str()).unwrap_or("");
            let message = detail.get("message").and_then(|m| m.as_str()).unwrap_or("");
            text.push_str(&format!("\n  - {}: {message}", if field.is_empty() { "(record)" } else { field }));
        }
    }
    text
}

pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

fn print_table(instances: &[serde_json::Value]) {
    let column = |instance: &serde_json::Value, key: &str| -> String {
        match instance.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(",")
            }
            _ => "-".to_owned(),
        }
    };
    let headers = ["ID", "HOSTNAME", "IPV4", "IPV6", "MAC", "ZONE"];
    let keys = ["id", "hostname", "ipv4", "ipv6", "mac", "zone"];
    let rows: Vec<Vec<String>> = instances.iter().map(|i| keys.iter().map(|k| column(i, k)).collect()).collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| rows.iter().map(|r| r[c].len()).chain([headers[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(headers.to_vec()));
    for row in &rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}
