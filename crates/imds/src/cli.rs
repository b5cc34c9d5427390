//! Subcommands: `serve` runs the daemon; `instance` and `mmds` drive the admin API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod instance;
pub mod mmds;
pub mod serve;

/// imds: an instance metadata service for VM platforms.
#[derive(Debug, Parser)]
#[command(name = "imds", version, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the metadata service.
    Serve(serve::ServeArgs),
    /// Create, read, patch, delete and list instances through the admin API.
    #[command(subcommand)]
    Instance(instance::InstanceCommand),
    /// Put, patch, read and configure an instance's Firecracker MMDS document.
    #[command(subcommand)]
    Mmds(mmds::MmdsCommand),
}

/// Runs the chosen subcommand.
pub async fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve(serve) => serve::run(serve).await,
        Command::Instance(command) => instance::run(command).await,
        Command::Mmds(command) => mmds::run(command).await,
    }
}
