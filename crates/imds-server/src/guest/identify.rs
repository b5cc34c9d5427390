//! Who is asking: the caller's instance, from its connection and, for a trusted proxy, its
//! headers.
//!
//! In order:
//! 1. A connection from a configured proxy address ([`Config::proxies`]) may name the instance:
//!    `X-Instance-ID` with `X-Instance-ID-Signature` (hex HMAC-SHA256 of the id under the shared
//!    secret, as Nova's metadata proxy sends), or `X-Forwarded-For` (its last entry, the one the
//!    proxy added). From any other address these headers are ignored (and dialects that refuse
//!    `X-Forwarded-For` still refuse it).
//! 2. The source address (IPv4-mapped IPv6 counts as its IPv4) among the instances' `ipv4`/`ipv6`.
//! 3. With [`Config::neighbours`], the MAC the host's neighbour table holds for the source
//!    address, among the instances' `mac` lists: how a guest that took its address from DHCP
//!    (or a random link-local one, as cloud-init's DigitalOcean datasource does) is found. When
//!    the instance lists `host_interfaces`, the neighbour entry must be on one of them: a guest
//!    that copies another's MAC on its own tap is refused and logged, `[net] manage` or not.
//!
//! The source address and MAC are only as good as the host's rules: on a routed tap or a bridge
//! port, `imds net` and `[net] manage` drop what a guest sends with another instance's MAC or
//! addresses before it reaches imds (see `imds_net::rules`), which is what makes the arrival
//! interface the identity.

use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use imds_dialects::GuestResponse;
use imds_model::{InstanceId, MacAddr};

use crate::listener::Peer;
use crate::view::{Entry, Snapshot};

/// `X-Instance-ID`: the instance a trusted proxy speaks for.
pub const INSTANCE_ID: &str = "x-instance-id";
/// `X-Instance-ID-Signature`: hex HMAC-SHA256 of the id under the shared secret.
pub const INSTANCE_ID_SIGNATURE: &str = "x-instance-id-signature";
/// `X-Forwarded-For`.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The shared secret of trusted proxies.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySecret(Vec<u8>);

impl ProxySecret {
    /// A secret; empty ones are refused by the configuration.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The hex signature of `id` (what a proxy sends).
    pub fn sign(&self, id: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn verify(&self, id: &str, signature: &str) -> bool {
        let Some(bytes) = parse_hex(signature) else { return false };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.verify_slice(&bytes).is_ok()
    }
}

impl std::fmt::Debug for ProxySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxySecret(<redacted>)")
    }
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// How callers are identified beyond their source address.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Addresses of trusted metadata proxies.
    pub proxies: Vec<IpAddr>,
    /// Their shared secret (needed for `X-Instance-ID`).
    pub proxy_secret: Option<ProxySecret>,
    /// Whether to look unknown source addresses up in the host's neighbour table.
    pub neighbours: bool,
}

impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.proxies == other.proxies && self.proxy_secret == other.proxy_secret && self.neighbours == other.neighbours
    }
}
impl Eq for Config {}

/// The caller's canonical source address, or `None` for a connection without one.
pub fn caller_ip(peer: &Peer) -> Option<IpAddr> {
    match peer {
        Peer::Tcp { remote, .. } => Some(remote.ip().to_canonical()),
        Peer::Unix => None,
    }
}

/// Who a request is from: the instance, or the answer an unidentified caller gets.
#[derive(Debug)]
pub enum Caller {
    /// The caller's instance; `address` is what logs name it by.
    Instance {
        /// The instance.
        entry: Arc<Entry>,
        /// The address it is known by (the forwarded one behind a proxy).
        address: IpAddr,
    },
    /// No instance: the answer to send.
    Refused(GuestResponse),
    /// No instance holds this address (or the MAC it comes from): refused in the shape of the
    /// dialect asked, after the registration hold.
    Unknown(IpAddr),
}

fn nova_error(status: StatusCode, message: &'static str) -> GuestResponse {
    GuestResponse::new(status, "text/plain; charset=UTF-8", message)
}

/// Identifies the caller at `remote` sending `headers`.
pub async fn identify(
    config: &Config,
    neighbours: Option<&imds_net::neigh::Neighbours>,
    snapshot: &Snapshot,
    remote: IpAddr,
    headers: &HeaderMap,
) -> Caller {
    match by_address(config, snapshot, remote, headers) {
        Ok(caller) => caller,
        Err(address) => by_neighbour(config, neighbours, snapshot, remote, address).await,
    }
}

/// What the snapshot alone says of the caller at `remote` (steps 1 and 2): `Err` with the
/// address to look for in the neighbour table when no instance holds it.
pub fn by_address(config: &Config, snapshot: &Snapshot, remote: IpAddr, headers: &HeaderMap) -> Result<Caller, IpAddr> {
    let mut address = remote;
    if config.proxies.contains(&remote) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(id) = header(INSTANCE_ID) {
            let Some(signature) = header(INSTANCE_ID_SIGNATURE) else {
                tracing::warn!(proxy = %remote, instance = id, "proxy request without X-Instance-ID-Signature");
                return Ok(Caller::Refused(nova_error(
                    StatusCode::BAD_REQUEST,
                    "X-Instance-ID-Signature header is missing from request.",
                )));
            };
            let Some(secret) = &config.proxy_secret else {
                tracing::warn!(proxy = %remote, "X-Instance-ID from a proxy, but no net.proxy_secret_file is configured");
                return Ok(Caller::Refused(nova_error(StatusCode::FORBIDDEN, "Invalid proxy request signature.")));
            };
            if !secret.verify(id, signature) {
                tracing::warn!(proxy = %remote, instance = id, "proxy request with a wrong X-Instance-ID-Signature");
                return Ok(Caller::Refused(nova_error(StatusCode::FORBIDDEN, "Invalid proxy request signature.")));
            }
            let entry = InstanceId::try_from(id).ok().and_then(|id| snapshot.get(&id).cloned());
            return Ok(match entry {
                Some(entry) => Caller::Instance { entry, address: remote },
                None => Caller::Refused(nova_error(StatusCode::NOT_FOUND, "Instance not found.")),
            });
        }
        if let Some(forwarded) = header(FORWARDED_FOR) {
            match forwarded.rsplit(',').next().map(str::trim).and_then(|last| last.parse::<IpAddr>().ok()) {
                Some(ip) => address = ip.to_canonical(),
                None => {
                    tracing::warn!(proxy = %remote, forwarded, "unreadable X-Forwarded-For from a proxy");
                    return Ok(Caller::Unknown(remote));
                }
            }
        }
    }
    match snapshot.by_ip(address) {
        Some(entry) => Ok(Caller::Instance { entry: Arc::clone(entry), address }),
        None => Err(address),
    }
}

/// Step 3: the caller at `remote`, known as `address`, by the MAC the neighbour table holds.
async fn by_neighbour(
    config: &Config,
    neighbours: Option<&imds_net::neigh::Neighbours>,
    snapshot: &Snapshot,
    remote: IpAddr,
    address: IpAddr,
) -> Caller {
    if let (true, Some(neighbours)) = (config.neighbours && address == remote, neighbours) {
        match neighbours.lookup(address).await {
            Ok(Some(neighbour)) => {
                if let Some(entry) = snapshot.by_mac(MacAddr::new(neighbour.mac)) {
                    let interfaces = &entry.instance.host_interfaces;
                    let arrived = neighbour.interface.as_deref().unwrap_or("?");
                    // On a bridge the entry names the bridge, not the port: the port rules of
                    // `bridge imds` are what keep a MAC to its port there.
                    if interfaces.is_empty() || neighbour.on_bridge || interfaces.iter().any(|name| name == arrived) {
                        return Caller::Instance { entry: Arc::clone(entry), address };
                    }
                    tracing::warn!(
                        caller = %address,
                        instance = %entry.instance.id,
                        interface = arrived,
                        "forged source: the instance's MAC seen on an interface that is not among its host_interfaces"
                    );
                    return Caller::Unknown(address);
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the neighbour table"),
        }
    }
    tracing::info!(caller = %address, "guest request from an unknown address");
    Caller::Unknown(address)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn ipv4_mapped_callers_are_their_ipv4() {
        let local: SocketAddr = "[::]:80".parse().unwrap();
        let mapped = Peer::Tcp { remote: "[::ffff:10.0.0.7]:5000".parse().unwrap(), local };
        assert_eq!(caller_ip(&mapped), Some("10.0.0.7".parse().unwrap()));
        let v6 = Peer::Tcp { remote: "[fd00::7]:5000".parse().unwrap(), local };
        assert_eq!(caller_ip(&v6), Some("fd00::7".parse().unwrap()));
        assert_eq!(caller_ip(&Peer::Unix), None);
    }

    #[test]
    fn signatures_are_novas_hex_hmac_sha256() {
        let secret = ProxySecret::new("s3cret");
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"s3cret", b"i-1", hashlib.sha256).hexdigest())'
        assert_eq!(secret.sign("i-1"), "7413ac3c3c6280e254f452677b01835fa69cb624d284e5a6c0e8ed3a657f4484");
        assert!(secret.verify("i-1", &secret.sign("i-1")));
        assert!(secret.verify("i-1", &secret.sign("i-1").to_uppercase()));
        assert!(!secret.verify("i-2", &secret.sign("i-1")));
        assert!(!secret.verify("i-1", "zz"));
        assert_eq!(format!("{secret:?}"), "ProxySecret(<redacted>)");
    }
}
