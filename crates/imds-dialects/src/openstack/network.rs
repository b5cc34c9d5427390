//! `network_data.json`: links, networks and services from the record's `network`, else from the
//! single interface rule R2 derives (first MAC, told to use DHCP).
//!
//! Per interface (skipped without a MAC): a `phy` link (`id` `tap` + the first 11 characters of
//! its `vif_id`, both derived from the instance uuid and the MAC), plus a `vlan` link on top when
//! the interface has a VLAN id; networks sit on the top link: one `ipv4` per static IPv4 address,
//! `ipv4_dhcp` when `dhcp4` is true or the interface has no static IPv4 (unless `dhcp4` is
//! false), one `ipv6` per static IPv6 address. Static networks carry Nova's default route to
//! their gateway, the record's routes whose next hop is in their subnet, and the name servers of
//! their family; every name server is also a top-level `dns` service.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};
use uuid::Uuid;

use imds_model::{Instance, Route};

use crate::derive;

/// `network_data.json` for `instance` whose OpenStack uuid is `uuid`.
pub(crate) fn render(instance: &Instance, uuid: Uuid) -> Value {
    let network = instance.network.as_ref();
    let nameservers = network.map(|n| n.nameservers.as_slice()).unwrap_or_default();
    let routes = network.map(|n| n.routes.as_slice()).unwrap_or_default();
    let mut links = Vec::new();
    let mut networks = Vec::new();
    // Rule R2; a derived interface's bare addresses are left to DHCP, as its `dhcp4` says.
    for iface in derive::nics(instance) {
        let Some(mac) = iface.mac else {
            continue;
        };
        let vif_id = Uuid::new_v5(&uuid, format!("vif/{mac}").as_bytes());
        let network_id = Uuid::new_v5(&uuid, format!("network/{mac}").as_bytes());
        let phy_id = format!("tap{}", &vif_id.to_string()[..11]);
        let mut link = json!({"id": phy_id, "vif_id": vif_id.to_string(), "type": "phy"});
        if let Some(mtu) = iface.mtu {
            link["mtu"] = json!(mtu);
        }
        link["ethernet_mac_address"] = json!(mac.to_string());
        links.push(link);
        let link_id = match iface.vlan {
            Some(vlan) => {
                let vlan_id = format!("{phy_id}.{vlan}");
                let mut vlan_link = json!({
                    "id": vlan_id,
                    "vif_id": vif_id.to_string(),
                    "type": "vlan",
                    "vlan_link": phy_id,
                    "vlan_id": vlan,
                    "vlan_mac_address": mac.to_string(),
                });
                if let Some(mtu) = iface.mtu {
                    vlan_link["mtu"] = json!(mtu);
                }
                vlan_link["ethernet_mac_address"] = json!(mac.to_string());
                links.push(vlan_link);
                vlan_id
            }
            None => phy_id,
        };
        let mut add = |kind: &str, fixed: Option<(String, String, Vec<Value>, Vec<Value>)>| {
            let mut entry = json!({"id": format!("network{}", networks.len()), "type": kind, "link": link_id});
            if let Some((ip_address, netmask, routes, services)) = fixed {
                entry["ip_address"] = json!(ip_address);
                entry["netmask"] = json!(netmask);
                entry["routes"] = Value::Array(routes);
                entry["network_id"] = json!(network_id.to_string());
                entry["services"] = Value::Array(services);
            } else {
                entry["network_id"] = json!(network_id.to_string());
            }
            networks.push(entry);
        };
        for cidr in &iface.ipv4 {
            let on_link = |via: IpAddr| match via {
                IpAddr::V4(via) => same_prefix(u32::from(via).into(), u32::from(cidr.address).into(), 32, cidr.prefix),
                IpAddr::V6(_) => false,
            };
            let routes = route_list(cidr.gateway.map(IpAddr::V4), routes, on_link);
            let services = dns(nameservers, IpAddr::is_ipv4);
            add("ipv4", Some((cidr.address.to_string(), cidr.netmask().to_string(), routes, services)));
        }
        if iface.dhcp4 {
            add("ipv4_dhcp", None);
        }
        for cidr in &iface.ipv6 {
            let on_link = |via: IpAddr| match via {
                IpAddr::V6(via) => same_prefix(via.into(), cidr.address.into(), 128, cidr.prefix),
                IpAddr::V4(_) => false,
            };
            let routes = route_list(cidr.gateway.map(IpAddr::V6), routes, on_link);
            let services = dns(nameservers, IpAddr::is_ipv6);
            add("ipv6", Some((cidr.address.to_string(), v6_mask(cidr.prefix).to_string(), routes, services)));
        }
    }
    json!({"links": links, "networks": networks, "services": dns(nameservers, |_| true)})
}

/// The routes of one static network: the default route via its gateway, then the record's
/// routes whose next hop `on_link` accepts.
fn route_list(gateway: Option<IpAddr>, routes: &[Route], on_link: impl Fn(IpAddr) -> bool) -> Vec<Value> {
    let default = gateway.map(|gateway| {
        let any = if gateway.is_ipv4() { "0.0.0.0" } else { "::" };
        json!({"network": any, "netmask": any, "gateway": gateway.to_string()})
    });
    let extra = routes.iter().filter(|route| on_link(route.via)).filter_map(|route| {
        let (network, prefix) = route.to.split_once('/')?;
        let network: IpAddr = network.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let netmask = match network {
            IpAddr::V4(_) => IpAddr::V4(v4_mask(prefix)),
            IpAddr::V6(_) => IpAddr::V6(v6_mask(prefix)),
        };
        Some(json!({"network": network.to_string(), "netmask": netmask.to_string(), "gateway": route.via.to_string()}))
    });
    default.into_iter().chain(extra).collect()
}

/// `dns` services for the name servers `family` accepts.
fn dns(nameservers: &[IpAddr], family: impl Fn(&IpAddr) -> bool) -> Vec<Value> {
    nameservers.iter().filter(|ip| family(ip)).map(|ip| json!({"type": "dns", "address": ip.to_string()})).collect()
}

/// Whether `a` and `b` (addresses `bits` wide) share their first `prefix` bits.
fn same_prefix(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    (a ^ b).checked_shr(bits - u32::from(prefix).min(bits)).unwrap_or(0) == 0
}

/// The IPv4 netmask of a prefix length.
fn v4_mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0))
}

/// The IPv6 netmask of a prefix length, as Nova prints it (`ffff:ffff:ffff:ffff::`).
fn v6_mask(prefix: u8) -> Ipv6Addr {
    Ipv6Addr::from(u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0))
}
