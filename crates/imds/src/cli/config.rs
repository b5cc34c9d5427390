//! `imds config check FILE`: validates a configuration file as `imds serve` would (with the
//! `IMDS_*` environment applied over it) and prints every problem at once.

use std::path::PathBuf;

use clap::Subcommand;

use super::common::{emit, Failure, Format, Global, EXIT_USAGE};
use super::out::outln;
use super::serve::{self, ServeArgs};

/// `imds config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check FILE as `imds serve --config FILE` would read it (IMDS_* variables applied) and print
    /// every problem; exit 0 when it is valid, 2 when not.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

/// Runs one command.
pub fn run(command: ConfigCommand, global: &Global) -> Result<(), Failure> {
    let ConfigCommand::Check { file } = command;
    let args = ServeArgs { config: Some(file.clone()), ..ServeArgs::default() };
    let problems = match serve::load(&args, &|key| std::env::var(key).ok()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    };
    let format = global.format(Format::Table);
    if format == Format::Table {
        if problems.is_empty() {
            outln!("{}: valid", file.display());
        } else {
            outln!("{}: {} problem{}", file.display(), problems.len(), if problems.len() == 1 { "" } else { "s" });
            for problem in &problems {
                outln!("  - {problem}");
            }
        }
    } else {
        let report = serde_json::json!({
            "file": file.display().to_string(),
            "valid": problems.is_empty(),
            "problems": problems,
        });
        emit(&report, format, None);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure { message: format!("{} is not a valid configuration", file.display()), code: EXIT_USAGE })
    }
}
