//! `imds role put|get|ls|rm|base-credentials|refresh`: roles and their credential sources
//! through the admin API. Secrets are read from files or standard input, never from the
//! command line (where `ps` would show them).

use clap::Subcommand;
use http::{Method, StatusCode};
use serde_json::Value;

use super::common::{call, emit, encode, read_json, Columns, Failure, Format, Global};
use super::out::errln;

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
    },
    /// Print a role (without secrets) and the state of its credentials.
    Get {
        /// The role name.
        name: String,
    },
    /// List roles and whether each has valid credentials.
    #[command(alias = "list")]
    Ls,
    /// Delete a role.
    #[command(alias = "delete")]
    Rm {
        /// The role name.
        name: String,
    },
    /// Set the base credentials an sts role assumes with (write-only):
    /// {"access_key_id", "secret_access_key", "session_token"?}.
    BaseCredentials {
        /// The role name.
        name: String,
        /// The JSON file, or - for standard input.
        #[arg(short = 'f', long = "file", value_name = "FILE|-", default_value = "-")]
        file: String,
    },
    /// Fetch new credentials for a role now.
    Refresh {
        /// The role name.
        name: String,
    },
}

/// The columns of `role ls` and `role get -o table`.
const ROLE_COLUMNS: Columns<'static> = Columns {
    headings: &["NAME", "SOURCE", "VALID", "EXPIRATION", "ERROR"],
    pointers: &["/name", "/source/type", "/status/valid", "/status/expiration", "/status/error"],
};

fn path_for(name: &str) -> String {
    format!("/v1/roles/{}", encode(name))
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// Runs one command.
pub async fn run(command: RoleCommand, global: &Global) -> Result<(), Failure> {
    let client = global.client()?;
    match command {
        RoleCommand::Put { name, file } => {
            let doc = read_json(&file)?;
            let response = call(&client, Method::PUT, &path_for(&name), &[JSON], doc.to_string()).await?;
            let verb = if response.status == StatusCode::CREATED { "created" } else { "replaced" };
            errln!("{verb} role {name}");
            print_role(&response.json(), global.format(Format::Json));
        }
        RoleCommand::Get { name } => {
            let response = call(&client, Method::GET, &path_for(&name), &[], String::new()).await?;
            print_role(&response.json(), global.format(Format::Json));
        }
        RoleCommand::Ls => {
            let list = call(&client, Method::GET, "/v1/roles", &[], String::new()).await?.json();
            let rows = list["roles"].as_array().map_or(&[][..], Vec::as_slice);
            emit(&list, global.format(Format::Table), Some((rows, ROLE_COLUMNS)));
        }
        RoleCommand::Rm { name } => {
            call(&client, Method::DELETE, &path_for(&name), &[], String::new()).await?;
            errln!("deleted role {name}");
        }
        RoleCommand::BaseCredentials { name, file } => {
            let doc = read_json(&file)?;
            let path = format!("{}/base-credentials", path_for(&name));
            call(&client, Method::PUT, &path, &[JSON], doc.to_string()).await?;
            errln!("base credentials of role {name} set");
        }
        RoleCommand::Refresh { name } => {
            call(&client, Method::POST, &format!("{}/refresh", path_for(&name)), &[], String::new()).await?;
            errln!("refreshing role {name}");
        }
    }
    Ok(())
}

fn print_role(role: &Value, format: Format) {
    emit(role, format, Some((std::slice::from_ref(role), ROLE_COLUMNS)));
}
