//! Every byte the binary writes to stdout or stderr goes through here (`outln!`, `out!`,
//! `errln!`; `clippy::print_stdout` and `print_stderr` forbid the std macros in this crate).
//!
//! Rust ignores `SIGPIPE`, so `println!` panics once the reader has gone (`imds instance ls |
//! head -1`). Here a closed stdout ends the process quietly with status 141, what a shell
//! reports for a program killed by `SIGPIPE` (as `ls | head -1` does); a closed stderr is
//! ignored. [`stdout_lenient`] is for the daemon, which must keep serving when its stdout is gone.

use std::io::Write;

/// The exit status after stdout was closed by its reader: 128 + `SIGPIPE`.
pub const CLOSED_PIPE: i32 = 141;

/// Writes `args` to stdout; exits with [`CLOSED_PIPE`] if the reader has gone.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_fmt(args).and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(CLOSED_PIPE);
        }
        let _ = writeln!(std::io::stderr(), "imds: cannot write to stdout: {error}");
        std::process::exit(1);
    }
}

/// Writes `args` to stderr, ignoring a closed or failing stderr.
pub fn stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Writes `args` to stdout, ignoring a closed stdout (the daemon's address lines).
pub fn stdout_lenient(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// `println!` to stdout through [`stdout`].
macro_rules! outln {
    () => { $crate::cli::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` to stdout through [`stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!($($arg)*)) };
}

/// `eprintln!` through [`stderr`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `println!` through [`stdout_lenient`].
macro_rules! announce {
    () => { $crate::cli::out::stdout_lenient(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::stdout_lenient(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {announce, errln, out, outln};
