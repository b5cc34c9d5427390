//! The canonical instance record of imds: its types, validation and RFC 7396 merge-patch.
//!
//! This crate owns [`Instance`], the one record every dialect renders from, and everything needed
//! to turn an admin's JSON document into one: [`Instance::parse`] walks the document by hand and
//! reports *every* problem at once as an [`Invalid`] listing [`FieldError`]s with field paths
//! (`"network.interfaces[0].mac"`). Identifiers and validated strings are newtypes
//! ([`InstanceId`], [`MacAddr`], [`RoleName`]) checked once in `TryFrom`/`FromStr`.
//!
//! It must not do I/O: no files, no sockets, no async, no clock. The store keeps
//! [`Instance::to_bytes`] and reads it back with [`Instance::from_bytes`]; the server keeps the
//! in-memory view; dialects render. [`merge_patch`] is the admin API's PATCH semantics.
#![forbid(unsafe_code)]

mod addr;
mod dialects;
mod error;
pub mod event;
mod id;
mod instance;
mod limits;
mod merge_patch;
mod mmds;
mod network;
mod parse;
mod settings;
mod ssh;
mod state;
mod text;
pub mod time;
mod user_data;

pub use addr::{Ipv4Cidr, Ipv6Cidr, MacAddr, MacAddrError};
pub use dialects::{Dialect, DialectSettings, Dialects};
pub use error::{FieldError, Invalid};
pub use event::{Event, EventId, EventKind, EventSpec, EventState, InstanceEvents};
pub use id::{InstanceId, InstanceIdError, RoleName, RoleNameError};
pub use instance::{split_claim, Account, Instance};
pub use limits::Limits;
pub use merge_patch::merge_patch;
pub use mmds::{Mmds, MmdsVersion};
pub use network::{Interface, InterfaceRole, Network, Route};
pub use settings::{EndpointMode, ImdsSettings, TagsMode, TokenMode};
pub use ssh::SshKey;
pub use state::{GuestState, StateWrite, StateWriteError};
pub use text::{ec2_metadata_tag_key, node_name};
pub use user_data::{UserData, UserDataError};
