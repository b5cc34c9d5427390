//! Subcommands: `serve` runs the daemon; `instance`, `mmds`, `role` and `signing` drive the admin
//! API; `verify` checks signed identity documents and tokens.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod import;
pub mod instance;
pub mod mmds;
pub mod net;
pub mod role;
pub mod serve;
pub mod signing;
pub mod verify;

/// imds: an instance metadata service for VM platforms.
#[derive(Debug, Parser)]
#[command(name = "imds", version, about, long_about = None)]
pub struct Args {
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
}

/// Runs the chosen subcommand.
pub async fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve(serve) => serve::run(serve).await,
        Command::Instance(command) => instance::run(command).await,
        Command::Mmds(command) => mmds::run(command).await,
        Command::Role(command) => role::run(command).await,
        Command::Signing(command) => signing::run(command).await,
        Command::Net(command) => net::run(command).await,
        Command::Verify(args) => verify::run(args).await,
    }
}
