//! The kernel neighbour table as a cache: which MAC an IP address was last seen with.
//!
//! A guest registered by MAC only (it takes its address from DHCP, or a random link-local one as
//! cloud-init's DigitalOcean datasource does) is found by looking its source address up here. The
//! table is read with one RTM_GETNEIGH dump and kept; a lookup that misses, or finds a dump older
//! than [`MAX_AGE`], dumps again (one dump at a time, at most one per [`MIN_INTERVAL`]; callers
//! that arrived before a dump started are answered by it).
//!
//! Only as trustworthy as the host's neighbour entries: a guest can forge its MAC. Each entry
//! carries the interface it was learnt on, so the server checks it against the instance's
//! `host_interfaces` (a routed tap); on a bridge every port's entries are on the bridge, and the
//! per-port rules of `bridge imds` must stop forged frames first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use rtnetlink::Handle;
use tokio::time::Instant;

use crate::NetError;

/// How long a dump answers lookups.
pub const MAX_AGE: Duration = Duration::from_secs(2);
/// The least time between two dumps.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// What the table says of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The MAC the address resolves to.
    pub mac: [u8; 6],
    /// The interface the entry is on (a VM's tap or the bridge), when it still exists.
    pub interface: Option<String>,
    /// Whether that interface is a bridge (the entry says nothing of the port).
    pub on_bridge: bool,
}

#[derive(Debug, Default)]
struct Dump {
    at: Option<Instant>,
    entries: HashMap<IpAddr, Neighbour>,
}

/// A cached copy of the neighbour table.
#[derive(Debug, Clone)]
pub struct Neighbours {
    handle: Handle,
    dump: Arc<tokio::sync::Mutex<Arc<Dump>>>,
}

impl Neighbours {
    /// A cache reading this namespace's table through `handle`.
    pub fn new(handle: Handle) -> Self {
        Self { handle, dump: Arc::new(tokio::sync::Mutex::new(Arc::new(Dump::default()))) }
    }

    /// The MAC `ip` was last resolved to and on which interface, reading the table again when
    /// the copy is stale or does not know `ip`.
    pub async fn lookup(&self, ip: IpAddr) -> Result<Option<Neighbour>, NetError> {
        let ip = ip.to_canonical();
        let arrived = Instant::now();
        let mut dump = self.dump.lock().await;
        let fresh = dump.at.is_some_and(|at| at.elapsed() < MAX_AGE);
        if fresh {
            if let Some(found) = dump.entries.get(&ip) {
                return Ok(Some(found.clone()));
            }
        }
        // A dump taken after this caller arrived already knows (a flood of unknown callers
        // waits for one dump, not one each).
        if dump.at.is_some_and(|at| at >= arrived) {
            return Ok(dump.entries.get(&ip).cloned());
        }
        if let Some(at) = dump.at {
            tokio::time::sleep_until(at + MIN_INTERVAL).await;
        }
        let names: HashMap<u32, (String, bool)> = crate::link::links(&self.handle)
            .await?
            .into_iter()
            .map(|link| (link.index, (link.name, link.kind.as_deref() == Some("bridge"))))
            .collect();
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetError::Netlink { what: "reading the neighbour table".into(), source })?;
        let mut entries = HashMap::new();
        for message in messages {
            let index = message.header.ifindex;
            if matches!(
                message.header.state,
                NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::Noarp
            ) {
                continue;
            }
            let mut address = None;
            let mut lladdr = None;
            for attribute in message.attributes {
                match attribute {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => address = Some(IpAddr::V4(ip)),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => address = Some(IpAddr::V6(ip)),
                    NeighbourAttribute::LinkLayerAddress(bytes) => lladdr = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                    _ => {}
                }
            }
            if let (Some(address), Some(mac)) = (address, lladdr) {
                let (interface, on_bridge) = names.get(&index).cloned().map_or((None, false), |(n, b)| (Some(n), b));
                entries.insert(address, Neighbour { mac, interface, on_bridge });
            }
        }
        let found = entries.get(&ip).cloned();
        *dump = Arc::new(Dump { at: Some(Instant::now()), entries });
        Ok(found)
    }
}
