//! `imds`: the daemon (`imds serve`) and the admin API's command-line client.

#![forbid(unsafe_code)]
// A binary has no public API: `pub` here only marks what its modules share with each other.
#![allow(unreachable_pub)]
// All output goes through `cli::out` (a closed pipe must not panic).
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod config;
mod dev;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            cli::out::stderr(format_args!("imds: cannot start the async runtime: {error}\n"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(args))
}
