//! `meta-data/network/interfaces/macs/<mac>/`: one directory per interface, from
//! `network.interfaces`, else the single interface rule R2 derives (first MAC, first IPv4, first
//! IPv6). Leaves without a value are absent slots, so they are neither listed nor served. No I/O.

use std::net::{Ipv4Addr, Ipv6Addr};

use imds_model::{Instance, Ipv4Cidr, Ipv6Cidr, MacAddr};

use super::derived;
use super::tree::Entry;
use super::wire;
use crate::derive;

/// One interface as EC2 describes it.
#[derive(Debug, Clone)]
pub(crate) struct Nic {
    /// Hardware address; interfaces without one cannot be served and are skipped.
    pub(crate) mac: MacAddr,
    /// Private IPv4 addresses, primary first.
    pub(crate) ipv4: Vec<Ipv4Addr>,
    /// Subnet of the primary IPv4, when its prefix is known.
    pub(crate) ipv4_subnet: Option<Ipv4Cidr>,
    /// IPv6 addresses.
    pub(crate) ipv6: Vec<Ipv6Addr>,
    /// Subnets of the IPv6 addresses, when their prefixes are known.
    pub(crate) ipv6_subnets: Vec<Ipv6Cidr>,
    /// The public IPv4 mapped to the interface.
    pub(crate) public_ipv4: Option<Ipv4Addr>,
}

/// The instance's interfaces in device order (rule R2, `derive::nics`), those without a MAC
/// left out (EC2 keys every interface by its MAC), deduplicated by MAC.
pub(crate) fn nics(instance: &Instance) -> Vec<Nic> {
    let mut seen = Vec::new();
    derive::nics(instance)
        .into_iter()
        .filter_map(|nic| {
            let mac = nic.mac.filter(|mac| !seen.contains(mac))?;
            seen.push(mac);
            Some(Nic {
                mac,
                ipv4: nic.ipv4.iter().map(|cidr| cidr.address).chain(nic.bare_ipv4).collect(),
                ipv4_subnet: nic.ipv4.first().copied(),
                ipv6: nic.ipv6.iter().map(|cidr| cidr.address).chain(nic.bare_ipv6).collect(),
                ipv6_subnets: nic.ipv6.clone(),
                public_ipv4: nic.public_ipv4,
            })
        })
        .collect()
}

/// The VPC id: one per account and region, so instances of one account share it.
pub(crate) fn vpc_id(instance: &Instance) -> String {
    let region = derived::placement(instance).0.unwrap_or_default();
    derived::hex_id("vpc-", &["vpc", &derived::account_id(instance), &region], 17)
}

/// The `network/` directory (`network/interfaces/macs/<mac>/…`), empty when there is no NIC.
pub(crate) fn network_dir(instance: &Instance) -> Entry {
    let macs = nics(instance).iter().enumerate().map(|(index, nic)| mac_dir(instance, index, nic)).collect();
    Entry::dir(
        "network",
        "2011-01-01",
        vec![Entry::dir("interfaces", "2011-01-01", vec![Entry::dir("macs", "2011-01-01", macs)])],
    )
}

fn mac_dir(instance: &Instance, index: usize, nic: &Nic) -> Entry {
    let id = instance.id.as_str();
    let mac = nic.mac.to_string();
    let vpc = vpc_id(instance);
    let lines = |items: Vec<String>| (!items.is_empty()).then(|| items.join("\n"));
    let local_hostname = match (index, nic.ipv4.first()) {
        (0, _) => Some(derived::private_dns_name(instance)),
        (_, Some(ip)) => Some(derived::ip_dns_name(instance, *ip)),
        (_, None) => None,
    };
    let subnet_v4 = nic.ipv4_subnet.map(|cidr| format!("{}/{}", cidr.network(), cidr.prefix));
    let mut subnets_v6: Vec<String> =
        nic.ipv6_subnets.iter().map(|cidr| format!("{}/{}", cidr.network(), cidr.prefix)).collect();
    subnets_v6.dedup();
    let subnet_key = subnet_v4.clone().or_else(|| subnets_v6.first().cloned()).unwrap_or_default();
    let associations = match (nic.public_ipv4, nic.ipv4.first()) {
        (Some(public), Some(private)) => {
            vec![Entry::text(&public.to_string(), "2011-01-01", Some(private.to_string()))]
        }
        _ => Vec::new(),
    };
    let children = vec![
        Entry::text("device-number", "2011-01-01", Some(index.to_string())),
        Entry::text("interface-id", "2011-01-01", Some(derived::hex_id("eni-", &["eni", id, &mac], 17))),
        Entry::dir("ipv4-associations", "2011-01-01", associations),
        Entry::text("ipv6s", "2016-06-30", lines(nic.ipv6.iter().map(ToString::to_string).collect())),
        Entry::text("local-hostname", "2011-01-01", local_hostname),
        Entry::text("local-ipv4s", "2011-01-01", lines(nic.ipv4.iter().map(ToString::to_string).collect())),
        Entry::text("mac", "2011-01-01", Some(mac.clone())),
        Entry::text("network-card-index", "2020-11-01", Some("0".to_owned())),
        Entry::text("owner-id", "2011-01-01", Some(derived::account_id(instance))),
        Entry::text("public-hostname", "2011-01-01", nic.public_ipv4.map(|ip| derived::public_dns_name(instance, ip))),
        Entry::text("public-ipv4s", "2011-01-01", nic.public_ipv4.map(|ip| ip.to_string())),
        Entry::text("security-group-ids", "2011-01-01", Some(derived::hex_id("sg-", &["sg", &vpc], 17))),
        Entry::text("security-groups", "2011-01-01", Some(wire::SECURITY_GROUP.to_owned())),
        Entry::text("subnet-id", "2011-01-01", Some(derived::hex_id("subnet-", &["subnet", &vpc, &subnet_key], 17))),
        Entry::text("subnet-ipv4-cidr-block", "2011-01-01", subnet_v4),
        Entry::text("subnet-ipv6-cidr-blocks", "2016-06-30", lines(subnets_v6)),
        Entry::text("vpc-id", "2011-01-01", Some(vpc)),
    ];
    Entry::dir(&mac, "2011-01-01", children)
}
