//! `network-config` generated from the record: network config version 2 (netplan's schema),
//! one `ethernets` entry per interface, matched by MAC and renamed to its record name (else
//! `ethN`), with its addresses, default routes from the gateways, MTU and the resolvers.

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
        let routes: Vec<Value> = nic
            .ipv4
            .iter()
            .find_map(|c| c.gateway)
            .map(|gw| json!({"to": "0.0.0.0/0", "via": gw.to_string()}))
            .into_iter()
            .chain(nic.ipv6.iter().find_map(|c| c.gateway).map(|gw| json!({"to": "::/0", "via": gw.to_string()})))
            .collect();
        if !routes.is_empty() {
            eth.insert("routes".into(), json!(routes));
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
