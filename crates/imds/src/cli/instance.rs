//! `imds instance put|get|patch|move|rm|ls|smbios|import`: the admin API from the shell.

use http::{Method, StatusCode};
use imds_server::client::Response;
use serde_json::Value;

use super::common::{call, emit, encode, read_json, Columns, Failure, Format, Global, Input};
use super::out::{errln, outln};
use clap::Subcommand;

/// `imds instance ...`
#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create or replace an instance from a JSON document (its "id" names it); prints the record.
    Put {
        #[command(flatten)]
        input: Input,
        /// Only if the stored record's ETag is this (as `get` prints it on stderr).
        #[arg(long, value_name = "ETAG", conflicts_with = "create_only")]
        if_match: Option<String>,
        /// Create only: fail (exit 4) if the instance exists.
        #[arg(long)]
        create_only: bool,
    },
    /// Print an instance (default: JSON; its ETag on stderr).
    Get {
        /// The instance id.
        id: String,
    },
    /// Merge-patch an instance (RFC 7396: members replace, null deletes); prints the record.
    Patch {
        /// The instance id.
        id: String,
        #[command(flatten)]
        input: Input,
        /// Only if the stored record's ETag is this.
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
    },
    /// Place an instance on another serving node (one store transaction: the old node stops
    /// serving it at the revision the new one starts).
    Move {
        /// The instance id.
        id: String,
        /// The node that serves it from now on.
        node: String,
    },
    /// Delete an instance.
    #[command(alias = "delete")]
    Rm {
        /// The instance id.
        id: String,
    },
    /// List instances (default: a table).
    #[command(alias = "list")]
    Ls,
    /// Print the SMBIOS values a VMM must present so the image's cloud-init picks a dialect
    /// (default: QEMU `-smbios` arguments, quoted for a POSIX shell).
    Smbios {
        /// The instance id.
        id: String,
        /// The dialect (ec2, gce, azure, openstack, digitalocean, hetzner, nocloud); default:
        /// the record's platform.dialect.
        #[arg(long)]
        dialect: Option<String>,
    },
    /// Create or replace many instances from NDJSON (one instance document per line; a JSON
    /// array file works too), sent in requests of `--batch` instances. Each request is checked
    /// whole before it writes anything; earlier requests stay written if a later one fails.
    Import {
        /// The NDJSON (or JSON array) file, or - for standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE|-", required_unless_present = "path")]
        file: Option<String>,
        /// The same as -f (kept for scripts written before -f).
        #[arg(value_name = "FILE|-", hide = true, conflicts_with = "file")]
        path: Option<String>,
        /// Instances per request.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_IMPORT_BATCH,
              value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// Create only: fail (writing nothing of that request) if an instance already exists.
        #[arg(long)]
        create_only: bool,
    },
}

/// Instances per import request unless `--batch` says otherwise.
const DEFAULT_IMPORT_BATCH: u32 = 10_000;

/// The columns of `instance ls` and `instance get -o table`.
pub const INSTANCE_COLUMNS: Columns<'static> = Columns {
    headings: &["ID", "HOSTNAME", "IPV4", "IPV6", "MAC", "ZONE"],
    pointers: &["/id", "/hostname", "/ipv4", "/ipv6", "/mac", "/zone"],
};

/// Runs one command.
pub async fn run(command: InstanceCommand, global: &Global) -> Result<(), Failure> {
    let client = global.client()?;
    match command {
        InstanceCommand::Put { input, if_match, create_only } => {
            let doc = read_json(&input.file)?;
            let id = doc.get("id").and_then(|id| id.as_str()).ok_or_else(|| {
                Failure::usage(format!("{}: the document needs an \"id\" string naming the instance", input.file))
            })?;
            let condition = condition(if_match.as_deref(), create_only);
            let mut headers = vec![("content-type", "application/json")];
            headers.extend(condition.as_ref().map(|(name, value)| (*name, value.as_str())));
            let response = call(&client, Method::PUT, &path_for(id), &headers, doc.to_string()).await?;
            let verb = if response.status == StatusCode::CREATED { "created" } else { "replaced" };
            errln!("{verb} instance {id} (etag {})", etag(&response));
            print_record(&response.json(), global.format(Format::Json));
        }
        InstanceCommand::Get { id } => {
            let response = call(&client, Method::GET, &path_for(&id), &[], String::new()).await?;
            errln!("etag {}", etag(&response));
            print_record(&response.json(), global.format(Format::Json));
        }
        InstanceCommand::Patch { id, input, if_match } => {
            let patch = read_json(&input.file)?;
            let response = merge_patch(global, &id, &patch, if_match.as_deref()).await?;
            errln!("patched instance {id} (etag {})", etag(&response));
            print_record(&response.json(), global.format(Format::Json));
        }
        InstanceCommand::Move { id, node } => {
            let response = merge_patch(global, &id, &serde_json::json!({ "node": node }), None).await?;
            errln!("moved instance {id} to node {node} (etag {})", etag(&response));
        }
        InstanceCommand::Rm { id } => {
            call(&client, Method::DELETE, &path_for(&id), &[], String::new()).await?;
            errln!("deleted instance {id}");
        }
        InstanceCommand::Ls => {
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
            let list = Value::Array(all);
            emit(
                &list,
                global.format(Format::Table),
                Some((list.as_array().map_or(&[], Vec::as_slice), INSTANCE_COLUMNS)),
            );
        }
        InstanceCommand::Import { file, path, batch, create_only } => {
            let batch = usize::try_from(batch).unwrap_or(usize::MAX);
            let file = file.or(path).unwrap_or_else(|| "-".to_owned());
            super::import::run(&client, &file, batch, create_only).await?;
        }
        InstanceCommand::Smbios { id, dialect } => {
            let mut path = format!("{}/smbios", path_for(&id));
            if let Some(dialect) = &dialect {
                path.push_str(&format!("?dialect={}", encode(dialect)));
            }
            let hint = call(&client, Method::GET, &path, &[], String::new()).await?.json();
            match global.format(Format::Table) {
                Format::Table => {
                    let args: Vec<&str> = hint["qemu"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                        .unwrap_or_default();
                    outln!("{}", args.iter().map(|arg| shell_quote(arg)).collect::<Vec<_>>().join(" "));
                }
                other => emit(&hint, other, None),
            }
        }
    }
    Ok(())
}

/// An instance record: JSON, YAML, or one row of `ls`'s table.
fn print_record(record: &Value, format: Format) {
    emit(record, format, Some((std::slice::from_ref(record), INSTANCE_COLUMNS)));
}

/// The `ETag` the server sent, as it sent it.
fn etag(response: &Response) -> &str {
    response.header("etag").unwrap_or("?")
}

/// `If-Match: "<etag>"` (quotes added when missing) or `If-None-Match: *`.
fn condition(if_match: Option<&str>, create_only: bool) -> Option<(&'static str, String)> {
    match if_match {
        Some(etag) if etag == "*" || etag.starts_with('"') || etag.starts_with("W/") => {
            Some(("if-match", etag.to_owned()))
        }
        Some(etag) => Some(("if-match", format!("\"{etag}\""))),
        None if create_only => Some(("if-none-match", "*".to_owned())),
        None => None,
    }
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
async fn merge_patch(global: &Global, id: &str, patch: &Value, if_match: Option<&str>) -> Result<Response, Failure> {
    let condition = condition(if_match, false);
    let mut headers = vec![("content-type", "application/merge-patch+json")];
    headers.extend(condition.as_ref().map(|(name, value)| (*name, value.as_str())));
    call(&global.client()?, Method::PATCH, &path_for(id), &headers, patch.to_string()).await
}
