//! The `network` section: interfaces, nameservers, search domains and routes.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

use super::{
    boolean, choice, field, first_time, integer, ip_addr, ipv4_addr, ipv6_addr, join, list, mac_addr, member, object,
    string, text_with, Ctx,
};
use crate::addr::{parse_cidr_text, Ipv4Cidr, Ipv6Cidr};
use crate::network::{Interface, InterfaceRole, Network, Route};
use crate::text;

const NETWORK_FIELDS: &[&str] = &["interfaces", "nameservers", "search", "routes"];
const INTERFACE_FIELDS: &[&str] =
    &["mac", "name", "role", "mtu", "dhcp4", "ipv4", "ipv6", "public_ipv4", "floating_ipv4", "vlan"];
const CIDR_FIELDS: &[&str] = &["address", "prefix", "gateway"];
const ROUTE_FIELDS: &[&str] = &["to", "via"];

/// `network`.
pub(super) fn network(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Network> {
    let map = object(ctx, path, value, NETWORK_FIELDS)?;
    let interfaces = field(ctx, map, path, "interfaces", interfaces).unwrap_or_default();
    let nameservers = field(ctx, map, path, "nameservers", |c, p, v| Some(list(c, p, v, "IP addresses", ip_addr)));
    let search = field(ctx, map, path, "search", |c, p, v| {
        Some(list(c, p, v, "domain names", |c, p, v| text_with(c, p, v, text::hostname)))
    });
    let routes = field(ctx, map, path, "routes", |c, p, v| Some(list(c, p, v, "routes {to, via}", route)));
    Some(Network {
        interfaces,
        nameservers: nameservers.unwrap_or_default(),
        search: search.unwrap_or_default(),
        routes: routes.unwrap_or_default(),
    })
}

/// `network.interfaces`, checking that no two interfaces share a MAC.
fn interfaces(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Vec<Interface>> {
    let parsed = list(ctx, path, value, "interface objects", |c, p, v| Some((p.to_owned(), interface(c, p, v)?)));
    let mut seen = HashMap::new();
    let mut result = Vec::with_capacity(parsed.len());
    for (iface_path, iface) in parsed {
        if let Some(mac) = iface.mac {
            if !first_time(ctx, &mut seen, mac, &join(&iface_path, "mac")) {
                continue;
            }
        }
        result.push(iface);
    }
    Some(result)
}

fn interface(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Interface> {
    let map = object(ctx, path, value, INTERFACE_FIELDS)?;
    Some(Interface {
        mac: field(ctx, map, path, "mac", mac_addr),
        name: field(ctx, map, path, "name", |c, p, v| text_with(c, p, v, text::segment)),
        role: field(ctx, map, path, "role", |c, p, v| {
            choice(c, p, v, &[("public", InterfaceRole::Public), ("private", InterfaceRole::Private)])
        }),
        mtu: field(ctx, map, path, "mtu", |c, p, v| integer(c, p, v, 68, 65_535).and_then(|n| u16::try_from(n).ok())),
        dhcp4: field(ctx, map, path, "dhcp4", boolean),
        ipv4: field(ctx, map, path, "ipv4", |c, p, v| {
            Some(list(c, p, v, "IPv4 address objects {address, prefix, gateway?}", ipv4_cidr))
        })
        .unwrap_or_default(),
        ipv6: field(ctx, map, path, "ipv6", |c, p, v| {
            Some(list(c, p, v, "IPv6 address objects {address, prefix, gateway?}", ipv6_cidr))
        })
        .unwrap_or_default(),
        public_ipv4: field(ctx, map, path, "public_ipv4", ipv4_addr),
        floating_ipv4: field(ctx, map, path, "floating_ipv4", ipv4_addr),
        vlan: field(ctx, map, path, "vlan", |c, p, v| integer(c, p, v, 1, 4094).and_then(|n| u16::try_from(n).ok())),
    })
}

/// A required member: records "missing required field" when absent.
fn required<T>(
    ctx: &mut Ctx,
    map: &serde_json::Map<String, Value>,
    path: &str,
    key: &str,
    parse: impl FnOnce(&mut Ctx, &str, &Value) -> Option<T>,
) -> Option<T> {
    if member(map, key).is_none() {
        ctx.error(&join(path, key), "missing required field");
        return None;
    }
    field(ctx, map, path, key, parse)
}

fn ipv4_cidr(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Ipv4Cidr> {
    let map = object(ctx, path, value, CIDR_FIELDS)?;
    let address = required(ctx, map, path, "address", ipv4_addr);
    let prefix =
        required(ctx, map, path, "prefix", |c, p, v| integer(c, p, v, 0, 32).and_then(|n| u8::try_from(n).ok()));
    let gateway = field(ctx, map, path, "gateway", ipv4_addr);
    Some(Ipv4Cidr { address: address?, prefix: prefix?, gateway })
}

fn ipv6_cidr(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Ipv6Cidr> {
    let map = object(ctx, path, value, CIDR_FIELDS)?;
    let address = required(ctx, map, path, "address", ipv6_addr);
    let prefix =
        required(ctx, map, path, "prefix", |c, p, v| integer(c, p, v, 0, 128).and_then(|n| u8::try_from(n).ok()));
    let gateway = field(ctx, map, path, "gateway", ipv6_addr);
    Some(Ipv6Cidr { address: address?, prefix: prefix?, gateway })
}

fn route(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Route> {
    let map = object(ctx, path, value, ROUTE_FIELDS)?;
    let to = required(ctx, map, path, "to", |c, p, v| {
        let s = string(c, p, v)?;
        let (addr, _) = c.check(p, parse_cidr_text(s))?;
        Some((s.to_owned(), addr))
    });
    let via = required(ctx, map, path, "via", ip_addr);
    let ((to, to_addr), via) = (to?, via?);
    if to_addr.is_ipv4() != via.is_ipv4() {
        let family = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        ctx.error(&join(path, "via"), format!("via is {} but to is {}", family(via), family(to_addr)));
        return None;
    }
    Some(Route { to, via })
}
