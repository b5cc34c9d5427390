//! Role credentials for imds: where they come from, how they are cached and rotated.
//!
//! - [`Role`] (stored in the server's `roles` collection): a [`Source`] — `static` (a fixed key
//!   triple), `sts` (AssumeRole with write-only [`BaseCredentials`], module [`sts`]) or
//!   `process` (`credential_process` JSON from a command, module [`process`]).
//! - [`Manager`] (module [`refresh`]): one cache and refresh task per role; the guest path reads
//!   a role's [`RoleState`] with one atomic load. Rotation [`ROTATE_BEFORE`] ahead of expiry;
//!   credentials with less than [`MIN_REMAINING`] left are never served; a failed refresh
//!   keeps the previous credentials and is visible in [`RoleState::error`] and the logs.
//! - [`Secret`]: secrets never appear in `Debug` output or logs.
//!
//! Time comes from `tokio::time` through [`Clock`], so rotation is tested with a paused clock.
//! Heavy dependencies (SigV4, rustls) stay in this crate; it never pulls the AWS SDK.

#![forbid(unsafe_code)]

pub mod process;
pub mod refresh;
pub mod role;
pub mod secret;
pub mod source;
pub mod sts;
pub mod time;

pub use refresh::{Fetch, Fetching, Manager, RoleState, Served, Sources, MIN_REMAINING, ROTATE_BEFORE};
pub use role::{BaseRef, Role};
pub use secret::Secret;
pub use source::{BaseCredentials, Credentials, FetchError, Source, SourceInvalid};
pub use time::Clock;
