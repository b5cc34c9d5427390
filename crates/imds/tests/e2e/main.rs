//! End-to-end tests: the built `imds` binary, real SQLite files, real sockets.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod cli;
mod credentials;
mod daemon;
mod delete;
mod durability;
mod events;
mod mmds;
mod readiness;
mod service;
mod support;
