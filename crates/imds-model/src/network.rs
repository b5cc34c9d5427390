//! [`Network`]: what the guest is told about its network (interfaces, DNS, routes).
//!
//! This is distinct from the record's identifying addresses (`Instance::ipv4`, `ipv6`, `mac`),
//! which may be NAT addresses the guest never sees. When `network` is absent, dialects derive a
//! single primary interface from `ipv4[0]`/`mac[0]` (rule R2 of docs/dialects.md).

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use crate::addr::{Ipv4Cidr, Ipv6Cidr, MacAddr};

/// The guest-visible network configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Network {
    /// Interfaces in device order; the first is the primary NIC.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// DNS resolvers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<IpAddr>,
    /// DNS search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Static routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// Which side of the network an interface faces (DigitalOcean public/private, OCI VNICs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceRole {
    /// Internet-facing (`"public"`).
    Public,
    /// Internal (`"private"`).
    Private,
}

/// One network interface of the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Interface {
    /// Hardware address, lower-case colon form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Interface name, e.g. `eth0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Public or private.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<InterfaceRole>,
    /// MTU, 68 to 65535.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Whether the guest should use DHCPv4 on this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp4: Option<bool>,
    /// Static IPv4 addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv4: Vec<Ipv4Cidr>,
    /// Static IPv6 addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<Ipv6Cidr>,
    /// The public (1:1 NAT) IPv4 mapped to this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ipv4: Option<Ipv4Addr>,
    /// A floating/reserved IPv4 (DigitalOcean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floating_ipv4: Option<Ipv4Addr>,
    /// 802.1Q VLAN id, 1 to 4094.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Route {
    /// Destination in CIDR notation, e.g. `0.0.0.0/0`; validated, stored as given.
    pub to: String,
    /// Next hop, of the same address family as `to`.
    pub via: IpAddr,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_parts_are_omitted() {
        assert_eq!(serde_json::to_value(Network::default()).unwrap(), json!({}));
        let iface = Interface {
            mac: Some(MacAddr::new([2, 0, 0, 0, 0, 0x0b])),
            role: Some(InterfaceRole::Private),
            ipv4: vec![Ipv4Cidr { address: Ipv4Addr::new(10, 0, 0, 11), prefix: 24, gateway: None }],
            ..Interface::default()
        };
        assert_eq!(
            serde_json::to_value(&iface).unwrap(),
            json!({"mac": "02:00:00:00:00:0b", "role": "private", "ipv4": [{"address": "10.0.0.11", "prefix": 24}]})
        );
        let route = Route { to: "0.0.0.0/0".into(), via: "10.0.0.1".parse().unwrap() };
        assert_eq!(serde_json::to_value(&route).unwrap(), json!({"to": "0.0.0.0/0", "via": "10.0.0.1"}));
    }
}
