//! The Hetzner metadata document, overrides applied (`private-networks` included; the caller
//! serves it at its own path only).

use imds_model::{Instance, InterfaceRole};
use serde_json::{json, Map, Value};

use crate::derive::{self, Nic};

/// The dialect's name in `dialects`.
const DIALECT: &str = "hetzner";

/// The server's numeric id (rule R1; `dialects.hetzner.instance-id` or `.id` wins).
pub(crate) fn instance_id(instance: &Instance) -> u64 {
    derive::numeric_id(instance, DIALECT, "instance-id")
}

/// The document.
pub(crate) fn document(instance: &Instance) -> Value {
    let nics = derive::nics(instance);
    let mut doc = Map::new();
    doc.insert("hostname".into(), json!(derive::hostname(instance)));
    doc.insert("instance-id".into(), json!(instance_id(instance)));
    // The private side when there is one (Hetzner's private networks), else the primary NIC.
    let local = nics.iter().find(|nic| nic.role == InterfaceRole::Private).or(nics.first());
    if let Some(ip) = local.and_then(Nic::first_ipv4) {
        doc.insert("local-ipv4".into(), json!(ip.to_string()));
    }
    if let Some(ip) = derive::public_ipv4(instance) {
        doc.insert("public-ipv4".into(), json!(ip.to_string()));
    }
    doc.insert("public-keys".into(), json!(derive::ssh_keys(instance)));
    if let Some(region) = &instance.region {
        doc.insert("region".into(), json!(region));
    }
    if let Some(zone) = &instance.zone {
        doc.insert("availability-zone".into(), json!(zone));
    }
    if let Some(data) = &instance.vendor_data {
        doc.insert("vendor_data".into(), json!(String::from_utf8_lossy(data.as_bytes())));
    }
    if let Some(config) = network_config(instance, &nics) {
        doc.insert("network-config".into(), config);
    }
    doc.insert("private-networks".into(), private_networks(&nics));
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        for (key, value) in overrides {
            let key = if key == "id" { "instance-id" } else { key.as_str() };
            match value {
                Value::Null => {
                    doc.shift_remove(key);
                }
                Value::String(s) if key == "instance-id" => {
                    doc.insert(key.to_owned(), s.parse::<u64>().map_or_else(|_| json!(s), |n| json!(n)));
                }
                value => {
                    doc.insert(key.to_owned(), value.clone());
                }
            }
        }
    }
    Value::Object(doc)
}

/// cloud-init netconfig v1: one `physical` entry per interface with a MAC, then the resolvers.
/// `None` when no interface has a MAC (cloud-init then falls back to DHCP on its own).
pub(crate) fn network_config(instance: &Instance, nics: &[Nic]) -> Option<Value> {
    let mut config = Vec::new();
    for (index, nic) in nics.iter().enumerate() {
        let Some(mac) = nic.mac else { continue };
        let mut subnets = Vec::new();
        if nic.dhcp4 {
            subnets.push(json!({"type": "dhcp"}));
        }
        let v4 = nic.ipv4.iter().map(|c| (c.address.to_string(), c.prefix, c.gateway.map(|g| g.to_string())));
        let v6 = nic.ipv6.iter().map(|c| (c.address.to_string(), c.prefix, c.gateway.map(|g| g.to_string())));
        for (address, prefix, gateway) in v4.chain(v6) {
            let mut subnet = Map::new();
            subnet.insert("type".into(), json!("static"));
            subnet.insert("address".into(), json!(format!("{address}/{prefix}")));
            if let Some(gateway) = gateway {
                subnet.insert("gateway".into(), json!(gateway));
            }
            subnets.push(Value::Object(subnet));
        }
        let mut entry = Map::new();
        entry.insert("type".into(), json!("physical"));
        entry.insert("name".into(), json!(derive::nic_name(nic, index)));
        entry.insert("mac_address".into(), json!(mac.to_string()));
        if let Some(mtu) = nic.mtu {
            entry.insert("mtu".into(), json!(mtu));
        }
        entry.insert("subnets".into(), Value::Array(subnets));
        config.push(Value::Object(entry));
    }
    if config.is_empty() {
        return None;
    }
    if let Some(net) = &instance.network {
        if !net.nameservers.is_empty() || !net.search.is_empty() {
            let mut entry = Map::new();
            entry.insert("type".into(), json!("nameserver"));
            entry.insert("address".into(), json!(net.nameservers.iter().map(ToString::to_string).collect::<Vec<_>>()));
            if !net.search.is_empty() {
                entry.insert("search".into(), json!(net.search));
            }
            config.push(Value::Object(entry));
        }
    }
    Some(json!({"version": 1, "config": config}))
}

/// `private-networks`: the private interfaces, numbered from 1 as Hetzner numbers them.
fn private_networks(nics: &[Nic]) -> Value {
    let networks = nics
        .iter()
        .filter(|nic| nic.role == InterfaceRole::Private)
        .enumerate()
        .filter_map(|(index, nic)| {
            let first = nic.ipv4.first()?;
            let mut entry = Map::new();
            entry.insert("ip".into(), json!(first.address.to_string()));
            entry.insert(
                "alias_ips".into(),
                json!(nic.ipv4.iter().skip(1).map(|c| c.address.to_string()).collect::<Vec<_>>()),
            );
            entry.insert("interface_num".into(), json!(index + 1));
            if let Some(mac) = nic.mac {
                entry.insert("mac_address".into(), json!(mac.to_string()));
            }
            entry.insert("network".into(), json!(format!("{}/{}", first.network(), first.prefix)));
            entry.insert("subnet".into(), json!(format!("{}/{}", first.network(), first.prefix)));
            if let Some(gateway) = first.gateway {
                entry.insert("gateway".into(), json!(gateway.to_string()));
            }
            Some(Value::Object(entry))
        })
        .collect();
    Value::Array(networks)
}
