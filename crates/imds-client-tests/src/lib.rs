//! Real cloud SDK clients run against imds, unmodified, over real sockets.
//!
//! This crate has no code of its own: its tests depend on the SDKs (the AWS SDK for Rust's
//! `aws-config` today), which are heavy to build, so no other crate has to.

#![forbid(unsafe_code)]
