//! Subcommands: `serve` runs the daemon; `instance`, `event`, `mmds`, `role` and `signing` drive
//! the admin API; `verify` checks signed identity documents and tokens; `net` sets up the host datapath;
//! `config check`, `completions` and `man` help operators.
//!
//! Shared by every admin-API subcommand: [`common`] (the global options, exit codes, requests,
//! `-o` formats) and [`out`](mod@out) (all output; a closed pipe ends the process quietly).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub mod out;

pub mod common;
pub mod config;
pub mod event;
pub mod import;
pub mod instance;
pub mod mmds;
pub mod net;
pub mod role;
pub mod serve;
pub mod signing;
pub mod verify;

use common::finish;
use out::out;

/// `imds --version`: the package version and the commit it was built from (`git`, or
/// `IMDS_GIT_COMMIT` at build time, else "unknown" for a tarball without either).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("IMDS_GIT_COMMIT"), ")");

/// imds: an instance metadata service for VM platforms.
///
/// Exit status: 0 ok, 1 error, 2 usage (bad flags, input or configuration), 3 not found,
/// 4 conflict (an address held by another instance, a failed --if-match or create-only),
/// 141 when stdout was closed by its reader.
#[derive(Debug, Parser)]
#[command(name = "imds", version = VERSION, about, long_about)]
pub struct Args {
    #[command(flatten)]
    global: common::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per process: the size of `serve`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the metadata service.
    Serve(serve::ServeArgs),
    /// Create, read, patch, delete and list instances through the admin API.
    #[command(subcommand)]
    Instance(instance::InstanceCommand),
    /// Schedule, list and cancel runtime events (spot interruptions, maintenance, ...).
    #[command(subcommand)]
    Event(event::EventCommand),
    /// Put, patch, read and configure an instance's Firecracker MMDS document.
    #[command(subcommand)]
    Mmds(mmds::MmdsCommand),
    /// Manage roles and their credential sources (static, sts, process).
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Manage the identity signing keys; print certificates and the JWKS.
    #[command(subcommand)]
    Signing(signing::SigningCommand),
    /// Set up, remove or inspect the host datapath: metadata addresses and nftables tables.
    #[command(subcommand)]
    Net(net::NetCommand),
    /// Check an identity document's signature, a PKCS#7 signature or an identity token.
    Verify(verify::VerifyArgs),
    /// Check a configuration file without starting anything.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script: `imds completions bash > /etc/bash_completion.d/imds`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the imds(1) man page (roff), or write a page per subcommand into a directory.
    Man {
        /// Write imds.1, imds-instance.1, imds-instance-put.1, … into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// The command-line interface's definition (for completions and man pages).
pub fn command() -> clap::Command {
    Args::command()
}

/// Runs the chosen subcommand.
pub async fn run(args: Args) -> ExitCode {
    let global = &args.global;
    match args.command {
        Command::Serve(serve) => serve::run(serve).await,
        Command::Instance(command) => finish(instance::run(command, global).await),
        Command::Event(command) => finish(event::run(command, global).await),
        Command::Mmds(command) => finish(mmds::run(command, global).await),
        Command::Role(command) => finish(role::run(command, global).await),
        Command::Signing(command) => finish(signing::run(command, global).await),
        Command::Net(command) => net::run(command, global).await,
        Command::Verify(args) => finish(verify::run(args, global).await),
        Command::Config(command) => finish(config::run(command, global)),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "imds", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            ExitCode::SUCCESS
        }
        Command::Man { dir } => finish(man(dir.as_deref())),
    }
}

fn man(dir: Option<&std::path::Path>) -> Result<(), common::Failure> {
    let failed = |error: std::io::Error| common::Failure::error(format!("cannot write the man page: {error}"));
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(failed)?;
            clap_mangen::generate_to(command(), dir).map_err(failed)
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command()).render(&mut page).map_err(failed)?;
            out!("{}", String::from_utf8_lossy(&page));
            Ok(())
        }
    }
}
