//! The imds daemon: the in-memory view, the guest plane and the admin API.
//!
//! Data flow: the [`replica`] loop follows the store's change feed into the [`view`]; the
//! [`guest`] plane answers VMs from the current view snapshot through the dialects of
//! `imds-dialects`; the [`admin`] plane writes to the store and waits until the view has the
//! write. [`server::start`] wires them to the listeners of [`listener`].
//!
//! Invariant: nothing on the guest path awaits the store or takes a lock.

// `deny`, not `forbid`: `memory` calls glibc's malloc_trim, the one unsafe block, allowed there.
#![deny(unsafe_code)]

pub mod admin;
pub mod client;
pub mod creds;
pub mod guest;
pub mod health;
pub mod listener;
pub mod memory;
pub mod replica;
pub mod server;
pub mod sign;
pub mod view;

#[cfg(feature = "test-util")]
pub mod test_util;
