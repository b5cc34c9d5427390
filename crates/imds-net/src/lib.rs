//! The host datapath of imds: what `imds net up|down|status` puts in place and what the running
//! server keeps in sync.
//!
//! - [`link`]: the metadata addresses (`169.254.169.254/32`, the IPv6 endpoints) on the interface
//!   imds owns (a dummy `imds0`, loopback where the kernel has no dummy driver, or an existing
//!   bridge), through rtnetlink. Addresses imds adds carry the address protocol
//!   [`link::ADDRESS_PROTOCOL`], so `down` removes exactly those.
//! - [`rules`]: the nftables tables `inet imds` and `bridge imds` rendered as one `nft -f`
//!   script (pure functions, unit-tested), and the per-instance identity rules (routed: what
//!   may arrive on each instance's host interface; bridged: what each bridge port may send).
//! - [`nft`]: runs a script as one atomic `nft -f` transaction and reads tables back as JSON.
//! - [`neigh`]: the kernel neighbour table (RTM_GETNEIGH) as a cache, refreshed on a miss: how
//!   an instance registered by MAC only is found.
//!
//! This crate knows nothing of the store or of HTTP; it never touches a table it does not own.

pub mod link;
pub mod neigh;
pub mod nft;
pub mod pattern;
pub mod rules;

use std::net::IpAddr;

pub use pattern::Pattern;

/// Where the metadata addresses live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataInterface {
    /// A dummy interface of this name, created by `up` (loopback when the kernel cannot).
    Dummy(String),
    /// The loopback interface `lo` (the Go mock's `lo:metadata`).
    Loopback,
    /// An existing Linux bridge the guests are on (VMAN's model); also gets a `bridge imds` table.
    Bridge(String),
}

/// What the host datapath looks like: read from `[net]` and the listeners of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Interfaces guests arrive on (`tap*`, `fc-*`, `vnet*`, a bridge name).
    pub guest_interfaces: Vec<Pattern>,
    /// The interface named in `[net] interface` (`imds0` by default).
    pub interface: String,
    /// The metadata addresses: the guest listeners' IPs.
    pub addresses: Vec<IpAddr>,
    /// The guest listeners' TCP ports.
    pub guest_ports: Vec<u16>,
    /// TCP ports that must never be reachable from a guest interface (the admin listener's).
    pub admin_ports: Vec<u16>,
    /// Whether `serve` keeps the per-instance identity rules: then traffic from a guest interface
    /// to the metadata addresses passes only when an instance's rule lets it (fail closed).
    pub manage: bool,
    /// New TCP connections (SYNs) to the guest ports one source address may open per second
    /// before the kernel drops the rest; 0 turns the limit off.
    pub syn_per_second: u32,
    /// SYNs a source may send at once above `syn_per_second`.
    pub syn_burst: u32,
}

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A netlink request failed.
    #[error("netlink: {what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The error from the kernel.
        source: rtnetlink::Error,
    },
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// `nft` could not be run, or talking to it failed.
    #[error("cannot run nft (Debian package nftables): {0}")]
    NftUnavailable(#[source] std::io::Error),
    /// `nft -j` printed something that is not its JSON.
    #[error("nft printed unreadable JSON: {0}")]
    NftOutput(#[source] serde_json::Error),
    /// `nft` refused the script or the query (its message).
    #[error("nft: {0}")]
    Nft(String),
    /// The configuration does not fit this host.
    #[error("{0}")]
    Config(String),
}
