//! `network-config` generated from the record: network config version 2 (netplan's schema),
//! one `ethernets` entry per interface, matched by MAC and renamed to its record name (else
//! `ethN`), with its addresses, its default gateways, MTU and the resolvers.

use imds_model::Instance;
use serde_json::{json, Map, Value};

use crate::derive;

/// The document, or `None` when no interface has a MAC or an address to describe.
pub(crate) fn generate(instance: &Instance) -> Option<Value> {
    let nics = derive::nics(instance);
    let mut ethernets = Map::new();
    for (index, nic) in nics.iter().enumerate() {
        let name = derive::nic_name(nic, index);
        let mut eth = Map::new();
        if let Some(mac) = nic.mac {
            eth.insert("match".into(), json!({"macaddress": mac.to_string()}));
            eth.insert("set-name".into(), json!(name));
        }
        if nic.dhcp4 {
            eth.insert("dhcp4".into(), json!(true));
        }
        let addresses: Vec<String> = nic
            .ipv4
            .iter()
            .map(|c| format!("{}/{}", c.address, c.prefix))
            .chain(nic.ipv6.iter().map(|c| format!("{}/{}", c.address, c.prefix)))
            .collect();
        if !addresses.is_empty() {
            eth.insert("addresses".into(), json!(addresses));
        }
        // IPv4: a default route. IPv6: `gateway6`, because cloud-init's own v2 parser (used by
        // every renderer but netplan) reads a `::/0` route as `::/64`.
        if let Some(gateway) = nic.ipv4.iter().find_map(|c| c.gateway) {
            eth.insert("routes".into(), json!([{"to": "0.0.0.0/0", "via": gateway.to_string()}]));
        }
        if let Some(gateway) = nic.ipv6.iter().find_map(|c| c.gateway) {
            eth.insert("gateway6".into(), json!(gateway.to_string()));
        }
        if let Some(mtu) = nic.mtu {
            eth.insert("mtu".into(), json!(mtu));
        }
        if index == 0 {
            if let Some(net) = &instance.network {
                let mut ns = Map::new();
                if !net.nameservers.is_empty() {
                    ns.insert(
                        "addresses".into(),
                        json!(net.nameservers.iter().map(ToString::to_string).collect::<Vec<_>>()),
                    );
                }
                if !net.search.is_empty() {
                    ns.insert("search".into(), json!(net.search));
                }
                if !ns.is_empty() {
                    eth.insert("nameservers".into(), Value::Object(ns));
                }
            }
        }
        if nic.mac.is_none() && addresses.is_empty() {
            continue; // Nothing to match it by and nothing to configure.
        }
        ethernets.insert(name, Value::Object(eth));
    }
    if ethernets.is_empty() {
        return None;
    }
    Some(json!({"version": 2, "ethernets": ethernets}))
}
