//! The imds daemon: the in-memory view, the guest plane and the admin API.
//!
//! Data flow: the [`replica`] loop follows the store's change feed into the [`view`]; the
//! [`guest`] plane answers VMs from the current view snapshot through the dialects of
//! `imds-dialects`; the [`admin`] plane writes to the store and waits until the view has the
//! write. [`server::start`] wires them to the listeners of [`listener`].
//!
//! Invariant: a guest read never awaits the store; it loads one view snapshot and takes only
//! short locks (a record version's render cache, a long poll's change-signal map). A guest write
//! awaits the store.

// `deny`, not `forbid`: `memory` calls glibc's malloc_trim, the one unsafe block, allowed there.
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod client;
pub mod creds;
pub mod events;
pub mod fleet;
pub mod guest;
pub mod health;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod records;
pub mod replica;
pub mod server;
pub mod sign;
pub mod throttle;
pub mod view;

#[cfg(feature = "test-util")]
pub mod test_util;
