//! Subcommands: `serve` runs the daemon; `instance` drives the admin API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod instance;
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
}

/// Runs the chosen subcommand.
pub async fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve(serve) => serve::run(serve).await,
        Command::Instance(command) => instance::run(command).await,
    }
}
