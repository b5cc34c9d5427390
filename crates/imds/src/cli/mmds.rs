//! `imds mmds put|patch|get|config`: an instance's Firecracker MMDS through the admin API, the
//! counterpart of Firecracker's `PUT|PATCH|GET /mmds` and `PUT /mmds/config`.

use clap::{Args, Subcommand, ValueEnum};
use http::Method;

use super::common::{call, emit, encode, read_json, Failure, Format, Global};
use super::out::errln;

/// `imds mmds ...`
#[derive(Debug, Subcommand)]
pub enum MmdsCommand {
    /// Replace the instance's MMDS document with a JSON file (any JSON value).
    Put {
        /// The instance id.
        id: String,
        #[command(flatten)]
        input: FileInput,
    },
    /// Merge-patch the MMDS document (RFC 7396: members replace, null deletes).
    Patch {
        /// The instance id.
        id: String,
        #[command(flatten)]
        input: FileInput,
    },
    /// Print the MMDS document (default: JSON; {} before the first put).
    Get {
        /// The instance id.
        id: String,
    },
    /// Configure the MMDS version and format; the instance's guest paths are MMDS's from then on.
    Config {
        /// The instance id.
        id: String,
        /// V1: session tokens optional; V2: required. Always given: configuring switches the
        /// instance's guest paths to MMDS.
        #[arg(long, value_enum)]
        version: Version,
        /// Always answer in IMDS text format, whatever the guest's Accept header.
        #[arg(long)]
        imds_compat: bool,
    },
}

/// `-f FILE|-`, or the file as a trailing argument (the form before -f).
#[derive(Debug, Args)]
pub struct FileInput {
    /// The JSON file, or - for standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE|-", required_unless_present = "path")]
    file: Option<String>,
    /// The same as -f.
    #[arg(value_name = "FILE|-", hide = true, conflicts_with = "file")]
    path: Option<String>,
}

impl FileInput {
    fn name(&self) -> &str {
        self.file.as_deref().or(self.path.as_deref()).unwrap_or("-")
    }
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

const JSON: (&str, &str) = ("content-type", "application/json");

/// Runs one command.
pub async fn run(command: MmdsCommand, global: &Global) -> Result<(), Failure> {
    let client = global.client()?;
    match command {
        MmdsCommand::Put { id, input } => {
            let doc = read_json(input.name())?;
            call(&client, Method::PUT, &path_for(&id), &[JSON], doc.to_string()).await?;
            errln!("replaced the MMDS document of instance {id}");
        }
        MmdsCommand::Patch { id, input } => {
            let patch = read_json(input.name())?;
            call(&client, Method::PATCH, &path_for(&id), &[JSON], patch.to_string()).await?;
            errln!("patched the MMDS document of instance {id}");
        }
        MmdsCommand::Get { id } => {
            let response = call(&client, Method::GET, &path_for(&id), &[], String::new()).await?;
            emit(&response.json(), global.format(Format::Json), None);
        }
        MmdsCommand::Config { id, version, imds_compat } => {
            let version = match version {
                Version::V1 => "V1",
                Version::V2 => "V2",
            };
            let body = serde_json::json!({"version": version, "imds_compat": imds_compat}).to_string();
            call(&client, Method::PUT, &format!("{}/config", path_for(&id)), &[JSON], body).await?;
            errln!("configured MMDS {version} (imds_compat {imds_compat}) for instance {id}");
        }
    }
    Ok(())
}

fn path_for(id: &str) -> String {
    format!("/v1/instances/{}/mmds", encode(id))
}
