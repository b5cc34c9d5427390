//! The metadata addresses, through rtnetlink (no `ip` in a loop).
//!
//! Addresses imds adds carry the address protocol [`ADDRESS_PROTOCOL`] (IFA_PROTO), and a dummy
//! link it creates carries the alias [`LINK_ALIAS`]: that is how `down` removes exactly what `up`
//! added and nothing an operator put there.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressProtocol};
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkDummy};

use crate::{MetadataInterface, NetError};

/// The IFA_PROTO value of addresses imds adds (`ip addr` shows it as `proto 73`; 73 is 'I').
pub const ADDRESS_PROTOCOL: u8 = 73;
/// The alias of a dummy interface imds created.
pub const LINK_ALIAS: &str = "imds metadata addresses";

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its kind (`bridge`, `dummy`, `veth` ...), absent for loopback and physical devices.
    pub kind: Option<String>,
    /// Its alias.
    pub alias: Option<String>,
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The interface's index.
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// Whether imds added it.
    pub ours: bool,
}

/// Opens a netlink connection, driven by a task of the current runtime.
pub fn connect() -> Result<Handle, NetError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
    tokio::spawn(connection);
    Ok(handle)
}

fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}

fn link_of(message: LinkMessage) -> Link {
    let mut link = Link { index: message.header.index, name: String::new(), kind: None, alias: None };
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// Every interface of this network namespace.
pub async fn links(handle: &Handle) -> Result<Vec<Link>, NetError> {
    let messages: Vec<LinkMessage> =
        handle.link().get().execute().try_collect().await.map_err(netlink("listing interfaces"))?;
    Ok(messages.into_iter().map(link_of).collect())
}

/// Every address of this network namespace.
pub async fn addresses(handle: &Handle) -> Result<Vec<Address>, NetError> {
    let messages: Vec<AddressMessage> =
        handle.address().get().execute().try_collect().await.map_err(netlink("listing addresses"))?;
    Ok(messages
        .into_iter()
        .filter_map(|message| {
            let mut ip = None;
            let mut ours = false;
            for attribute in &message.attributes {
                match attribute {
                    // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer's on
                    // point-to-point links (and the only one on IPv6).
                    AddressAttribute::Local(local) => ip = Some(*local),
                    AddressAttribute::Address(address) if ip.is_none() => ip = Some(*address),
                    AddressAttribute::Protocol(AddressProtocol::Other(ADDRESS_PROTOCOL)) => ours = true,
                    _ => {}
                }
            }
            Some(Address { index: message.header.index, ip: ip?, prefix: message.header.prefix_len, ours })
        })
        .collect())
}

/// Where the metadata addresses go, as `up` found or made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The interface.
    pub link: Link,
    /// What kind of interface it is.
    pub kind: MetadataInterface,
    /// What `up` had to decide on the way (a fallback, a created link), for the operator.
    pub notes: Vec<String>,
}

/// Finds the interface named `name` (`lo`, a bridge, a dummy); with `create`, makes a dummy when
/// it does not exist and falls back to loopback when the kernel cannot (no dummy driver),
/// saying so in the notes.
pub async fn place(handle: &Handle, name: &str, create: bool) -> Result<Placement, NetError> {
    let all = links(handle).await?;
    let find = |all: &[Link], name: &str| all.iter().find(|link| link.name == name).cloned();
    let loopback = |all: &[Link], notes: Vec<String>| -> Result<Placement, NetError> {
        let link =
            find(all, "lo").ok_or_else(|| NetError::Config("this namespace has no loopback interface".into()))?;
        Ok(Placement { link, kind: MetadataInterface::Loopback, notes })
    };
    if name == "lo" {
        return loopback(&all, Vec::new());
    }
    if let Some(link) = find(&all, name) {
        return Ok(match link.kind.as_deref() {
            Some("bridge") => {
                let notes = if bridge_mac_is_fixed(name) == Some(false) {
                    vec![format!(
                        "bridge {name} has no MAC of its own: it takes its lowest port's, so a VM joining can change the gateway's MAC under every other VM (their ARP caches keep the old one for seconds); give it a fixed one (`ip link set {name} address ...`, systemd-networkd's MACAddress=)"
                    )]
                } else {
                    Vec::new()
                };
                Placement { kind: MetadataInterface::Bridge(name.to_owned()), link, notes }
            }
            Some("dummy") => Placement { kind: MetadataInterface::Dummy(name.to_owned()), link, notes: Vec::new() },
            other => {
                return Err(NetError::Config(format!(
                    "net.interface: {name} exists but is a {} interface; name a bridge, a dummy, \"lo\", or a name that does not exist yet (imds creates a dummy)",
                    other.unwrap_or("physical or loopback")
                )))
            }
        });
    }
    // Gone: a dummy imds created, or the loopback fallback when there is none.
    let dummy_gone = || loopback(&all, vec![format!("{name} does not exist; the addresses are on lo")]);
    if !create {
        return dummy_gone();
    }
    let message = LinkDummy::new(name).alias(LINK_ALIAS).up().build();
    match handle.link().add(message).execute().await {
        Ok(()) => {
            let all = links(handle).await?;
            let link = find(&all, name).ok_or_else(|| NetError::Config(format!("{name} vanished after creation")))?;
            Ok(Placement {
                link,
                kind: MetadataInterface::Dummy(name.to_owned()),
                notes: vec![format!("created dummy interface {name}")],
            })
        }
        Err(error) => loopback(
            &all,
            vec![format!(
                "cannot create dummy interface {name} ({error}; the kernel has no dummy driver?): putting the metadata addresses on lo instead"
            )],
        ),
    }
}

/// Whether the bridge `name`'s MAC was set explicitly (`addr_assign_type` 3, `NET_ADDR_SET`)
/// rather than taken from its ports; `None` when sysfs does not say.
pub fn bridge_mac_is_fixed(name: &str) -> Option<bool> {
    let kind = std::fs::read_to_string(format!("/sys/class/net/{name}/addr_assign_type")).ok()?;
    Some(kind.trim() == "3")
}

/// Adds `ip` (as /32 or /128) to `link` with imds' address protocol, unless it is already there.
/// Returns whether it added it.
pub async fn add_address(handle: &Handle, link: &Link, ip: IpAddr, present: &[Address]) -> Result<bool, NetError> {
    if present.iter().any(|address| address.index == link.index && address.ip == ip) {
        return Ok(false);
    }
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    let mut request = handle.address().add(link.index, ip, prefix);
    request.message_mut().attributes.push(AddressAttribute::Protocol(AddressProtocol::Other(ADDRESS_PROTOCOL)));
    request.execute().await.map_err(netlink(format!("adding {ip}/{prefix} to {}", link.name)))?;
    Ok(true)
}

/// Removes every address imds added and the dummy links it created; returns what it removed.
pub async fn remove_ours(handle: &Handle) -> Result<Vec<String>, NetError> {
    let all = links(handle).await?;
    let name =
        |index: u32| all.iter().find(|link| link.index == index).map_or("?", |link| link.name.as_str()).to_owned();
    let mut removed = Vec::new();
    let messages: Vec<AddressMessage> =
        handle.address().get().execute().try_collect().await.map_err(netlink("listing addresses"))?;
    for message in messages {
        let ours = message
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Protocol(AddressProtocol::Other(ADDRESS_PROTOCOL))));
        if !ours {
            continue;
        }
        let ip = message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        let label = format!(
            "address {}/{} on {}",
            ip.map_or("?".into(), |ip| ip.to_string()),
            message.header.prefix_len,
            name(message.header.index)
        );
        handle.address().del(message).execute().await.map_err(netlink(format!("removing {label}")))?;
        removed.push(label);
    }
    for link in
        all.iter().filter(|link| link.kind.as_deref() == Some("dummy") && link.alias.as_deref() == Some(LINK_ALIAS))
    {
        handle.link().del(link.index).execute().await.map_err(netlink(format!("deleting {}", link.name)))?;
        removed.push(format!("dummy interface {}", link.name));
    }
    Ok(removed)
}
