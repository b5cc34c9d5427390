//! The kernel neighbour table as a cache: which MAC an IP address was last seen with.
//!
//! A guest registered by MAC only (it takes its address from DHCP, or a random link-local one as
//! cloud-init's DigitalOcean datasource does) is found by looking its source address up here. The
//! table is read with one RTM_GETNEIGH dump and kept; a lookup that misses, or finds a dump older
//! than [`MAX_AGE`], dumps again (one dump at a time; at most one per [`MIN_INTERVAL`]).
//!
//! Only as trustworthy as the host's neighbour entries: on a bridge or tap where guests can forge
//! their MAC, the per-port rules of `bridge imds` / `inet imds` must stop forged frames first.

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

#[derive(Debug, Default)]
struct Dump {
    at: Option<Instant>,
    macs: HashMap<IpAddr, [u8; 6]>,
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

    /// The MAC `ip` was last resolved to, reading the table again when the copy is stale or
    /// does not know `ip`.
    pub async fn lookup(&self, ip: IpAddr) -> Result<Option<[u8; 6]>, NetError> {
        let ip = ip.to_canonical();
        let mut dump = self.dump.lock().await;
        let fresh = dump.at.is_some_and(|at| at.elapsed() < MAX_AGE);
        if fresh {
            if let Some(mac) = dump.macs.get(&ip) {
                return Ok(Some(*mac));
            }
        }
        if dump.at.is_some_and(|at| at.elapsed() < MIN_INTERVAL) {
            return Ok(dump.macs.get(&ip).copied());
        }
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetError::Netlink { what: "reading the neighbour table".into(), source })?;
        let mut macs = HashMap::new();
        for message in messages {
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
                macs.insert(address, mac);
            }
        }
        let found = macs.get(&ip).copied();
        *dump = Arc::new(Dump { at: Some(Instant::now()), macs });
        Ok(found)
    }
}
