//! End-to-end tests: the built `imds` binary, real SQLite files, real sockets.

mod cli;
mod daemon;
mod durability;
mod support;
