//! `/metadata/v1.json`: the droplet as DigitalOcean describes it, overrides applied.

use imds_model::{Instance, InterfaceRole};
use serde_json::{json, Map, Value};

use crate::derive::{self, Nic};

/// The dialect's name in `dialects`.
const DIALECT: &str = "digitalocean";

/// The droplet id (rule R1; `dialects.digitalocean.droplet_id` or `.id` wins).
pub(crate) fn droplet_id(instance: &Instance) -> u64 {
    derive::numeric_id(instance, DIALECT, "droplet_id")
}

/// The whole JSON document.
pub(crate) fn document(instance: &Instance) -> Value {
    let nics = derive::nics(instance);
    let mut doc = Map::new();
    doc.insert("droplet_id".into(), json!(droplet_id(instance)));
    doc.insert("hostname".into(), json!(derive::hostname(instance)));
    if let Some(data) = &instance.user_data {
        doc.insert("user_data".into(), json!(String::from_utf8_lossy(data.as_bytes())));
    }
    // DigitalOcean always lists vendor data (its own cloud-config); empty when the record has none.
    let vendor =
        instance.vendor_data.as_ref().map_or_else(String::new, |d| String::from_utf8_lossy(d.as_bytes()).into_owned());
    doc.insert("vendor_data".into(), json!(vendor));
    doc.insert("public_keys".into(), json!(derive::ssh_keys(instance)));
    if let Some(region) = &instance.region {
        doc.insert("region".into(), json!(region));
    }
    doc.insert("interfaces".into(), interfaces(&nics));
    let floating = nics.iter().find_map(|nic| nic.floating_ipv4);
    doc.insert(
        "floating_ip".into(),
        match floating {
            Some(ip) => json!({"ipv4": {"active": true, "ip_address": ip.to_string()}}),
            None => json!({"ipv4": {"active": false}}),
        },
    );
    let nameservers: Vec<String> = instance
        .network
        .as_ref()
        .map(|net| net.nameservers.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    doc.insert("dns".into(), json!({"nameservers": nameservers}));
    doc.insert("tags".into(), json!(derive::tag_list(instance)));
    doc.insert("features".into(), json!({"dhcp_enabled": nics.iter().any(|nic| nic.dhcp4)}));
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        for (key, value) in overrides {
            let key = if key == "id" { "droplet_id" } else { key.as_str() };
            match value {
                Value::Null => {
                    doc.shift_remove(key);
                }
                Value::String(s) if key == "droplet_id" => {
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

/// `interfaces`: `{"public": […], "private": […]}`, each role present only when it has one.
fn interfaces(nics: &[Nic]) -> Value {
    let mut public = Vec::new();
    let mut private = Vec::new();
    for nic in nics {
        match nic.role {
            InterfaceRole::Public => public.push(interface(nic, "public")),
            InterfaceRole::Private => private.push(interface(nic, "private")),
        }
    }
    let mut out = Map::new();
    if !public.is_empty() {
        out.insert("public".into(), Value::Array(public));
    }
    if !private.is_empty() {
        out.insert("private".into(), Value::Array(private));
    }
    Value::Object(out)
}

fn interface(nic: &Nic, kind: &str) -> Value {
    let mut out = Map::new();
    if let Some(cidr) = nic.ipv4.first() {
        let mut ipv4 = Map::new();
        ipv4.insert("ip_address".into(), json!(cidr.address.to_string()));
        ipv4.insert("netmask".into(), json!(cidr.netmask().to_string()));
        if let Some(gateway) = cidr.gateway {
            ipv4.insert("gateway".into(), json!(gateway.to_string()));
        }
        out.insert("ipv4".into(), Value::Object(ipv4));
    } else if let Some(ip) = nic.bare_ipv4 {
        out.insert("ipv4".into(), json!({"ip_address": ip.to_string()}));
    }
    if let Some(cidr) = nic.ipv6.first() {
        let mut ipv6 = Map::new();
        ipv6.insert("ip_address".into(), json!(cidr.address.to_string()));
        ipv6.insert("cidr".into(), json!(cidr.prefix));
        if let Some(gateway) = cidr.gateway {
            ipv6.insert("gateway".into(), json!(gateway.to_string()));
        }
        out.insert("ipv6".into(), Value::Object(ipv6));
    } else if let Some(ip) = nic.bare_ipv6 {
        out.insert("ipv6".into(), json!({"ip_address": ip.to_string()}));
    }
    if let Some(mac) = nic.mac {
        out.insert("mac".into(), json!(mac.to_string()));
    }
    out.insert("type".into(), json!(kind));
    Value::Object(out)
}
