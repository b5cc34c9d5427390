//! Values every dialect (and the platform hints) derives the same way from the record, so that
//! one instance tells one story through all of them: numeric ids
//! (rule R1 of docs/dialects.md), the host name, the interface list (rule R2), tags and SSH key
//! lines. Pure
//! functions of the record.

use std::net::{Ipv4Addr, Ipv6Addr};

use imds_model::{Instance, InterfaceRole, Ipv4Cidr, Ipv6Cidr, MacAddr, SshKey};
use serde_json::Value;

use crate::ids::fnv1a;

/// The instance's numeric id for `dialect` (rule R1): the override block's `id` (or
/// `alias`, the dialect's own name for it) when it is a non-negative integer or a decimal
/// string; else the record id when it is decimal and fits in 63 bits; else a 63-bit hash of the
/// record id, never 0.
pub(crate) fn numeric_id(instance: &Instance, dialect: &str, alias: &str) -> u64 {
    let block = instance.dialects.override_for(dialect);
    let overridden =
        [dialect_key(block, "id"), dialect_key(block, alias)].into_iter().flatten().find_map(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => decimal(s),
            _ => None,
        });
    overridden.or_else(|| decimal(instance.id.as_str())).unwrap_or_else(|| {
        let hash = fnv1a(&["numeric-id", instance.id.as_str()]) & (u64::MAX >> 1);
        hash.max(1)
    })
}

fn dialect_key<'a>(block: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    block.and_then(|b| b.get(key))
}

/// `s` as a number when it is 1 to 19 ASCII digits with a value below 2^63.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| *n <= u64::MAX >> 1)
}

/// The host name the guest is told: `hostname.domain` (as EC2's `local-hostname`, so cloud-init
/// sets the same host name and FQDN whichever dialect it reads), `hostname` alone when it already
/// has a dot or there is no domain, else `name`, else the record id.
pub(crate) fn hostname(instance: &Instance) -> String {
    match (&instance.hostname, &instance.domain) {
        (Some(host), Some(domain)) if !host.contains('.') => format!("{host}.{domain}"),
        (Some(host), _) => host.clone(),
        (None, _) => instance.name.clone().unwrap_or_else(|| instance.id.as_str().to_owned()),
    }
}

/// The name EC2's `public-keys/` and OpenStack's `keys` give a key, the same in both.
/// Its pair name: its `name`, else its comment, else `key-N`; a candidate containing `/`
/// or a line break is skipped (cloud-init splits the listing on both).
pub(crate) fn key_name(index: usize, key: &SshKey) -> String {
    [key.name.as_deref(), key.comment()]
        .into_iter()
        .flatten()
        .find(|name| !name.is_empty() && !name.contains(['/', '\n', '\r']))
        .map_or_else(|| format!("key-{index}"), str::to_owned)
}

/// One guest interface as these dialects describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nic {
    /// Hardware address, when known.
    pub(crate) mac: Option<MacAddr>,
    /// The record's interface name, if it gives one.
    pub(crate) name: Option<String>,
    /// Public or private: the record's role, else public for the first interface, private after.
    pub(crate) role: InterfaceRole,
    /// MTU, if set.
    pub(crate) mtu: Option<u16>,
    /// Whether the guest should use DHCPv4: the record's flag, else when there is no static or
    /// known-prefix IPv4.
    pub(crate) dhcp4: bool,
    /// Static IPv4 addresses with their prefixes.
    pub(crate) ipv4: Vec<Ipv4Cidr>,
    /// An IPv4 address whose prefix is not known (derived from the identifying `ipv4[0]`).
    pub(crate) bare_ipv4: Option<Ipv4Addr>,
    /// Static IPv6 addresses.
    pub(crate) ipv6: Vec<Ipv6Cidr>,
    /// An IPv6 address whose prefix is not known (derived from the identifying `ipv6[0]`).
    pub(crate) bare_ipv6: Option<Ipv6Addr>,
    /// The public (1:1 NAT) IPv4.
    pub(crate) public_ipv4: Option<Ipv4Addr>,
    /// A floating/reserved IPv4.
    pub(crate) floating_ipv4: Option<Ipv4Addr>,
    /// The 802.1Q VLAN the interface is tagged with, if any.
    pub(crate) vlan: Option<u16>,
}

impl Nic {
    /// A public interface told to use DHCP, with what the record identifies the guest by.
    pub(crate) fn dhcp(mac: Option<MacAddr>, bare_ipv4: Option<Ipv4Addr>, bare_ipv6: Option<Ipv6Addr>) -> Nic {
        Nic {
            mac,
            name: None,
            role: InterfaceRole::Public,
            mtu: None,
            dhcp4: true,
            ipv4: Vec::new(),
            bare_ipv4,
            ipv6: Vec::new(),
            bare_ipv6,
            public_ipv4: None,
            floating_ipv4: None,
            vlan: None,
        }
    }

    /// The first IPv4 address, with or without a known prefix.
    pub(crate) fn first_ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4.first().map(|c| c.address).or(self.bare_ipv4)
    }
}

/// The guest's interfaces in device order: `network.interfaces`, else (rule R2) one interface
/// from `mac[0]`, `ipv4[0]` and `ipv6[0]` when the record has any of them.
pub(crate) fn nics(instance: &Instance) -> Vec<Nic> {
    let role = |index: usize, role: Option<InterfaceRole>| {
        role.unwrap_or(if index == 0 { InterfaceRole::Public } else { InterfaceRole::Private })
    };
    let configured = instance.network.as_ref().map(|net| net.interfaces.as_slice()).unwrap_or_default();
    if configured.is_empty() {
        if instance.mac.is_empty() && instance.ipv4.is_empty() && instance.ipv6.is_empty() {
            return Vec::new();
        }
        return vec![Nic::dhcp(
            instance.mac.first().copied(),
            instance.ipv4.first().copied(),
            instance.ipv6.first().copied(),
        )];
    }
    configured
        .iter()
        .enumerate()
        .map(|(index, iface)| Nic {
            mac: iface.mac.or_else(|| (index == 0).then(|| instance.mac.first().copied()).flatten()),
            name: iface.name.clone(),
            role: role(index, iface.role),
            mtu: iface.mtu,
            dhcp4: iface.dhcp4.unwrap_or(iface.ipv4.is_empty()),
            ipv4: iface.ipv4.clone(),
            bare_ipv4: None,
            ipv6: iface.ipv6.clone(),
            bare_ipv6: None,
            public_ipv4: iface.public_ipv4,
            floating_ipv4: iface.floating_ipv4,
            vlan: iface.vlan,
        })
        .collect()
}

/// The interface name the guest should use for interface `index`: the record's, else `ethN`.
pub(crate) fn nic_name(nic: &Nic, index: usize) -> String {
    nic.name.clone().unwrap_or_else(|| format!("eth{index}"))
}

/// The tags a dialect other than EC2 serves: the record's, unless `imds.tags` is `off`.
pub(crate) fn tags(instance: &Instance) -> impl Iterator<Item = (&String, &String)> {
    instance.tags.iter().filter(|_| instance.imds.tags_served(true))
}

/// Tags as a flat list: `key:value`, or `key` when the value is empty.
pub(crate) fn tag_list(instance: &Instance) -> Vec<String> {
    tags(instance).map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}:{v}") }).collect()
}

/// The SSH key lines, in record order, duplicates removed.
pub(crate) fn ssh_keys(instance: &Instance) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for key in &instance.ssh_keys {
        if !keys.contains(&key.key) {
            keys.push(key.key.clone());
        }
    }
    keys
}

/// The public IPv4 the guest is reachable at: the primary interface's `public_ipv4`, else its
/// first address.
pub(crate) fn public_ipv4(instance: &Instance) -> Option<Ipv4Addr> {
    let nics = nics(instance);
    let primary = nics.first()?;
    primary.public_ipv4.or_else(|| primary.first_ipv4())
}

/// Applies override members to a document: each replaces the document's member, `null` removes it.
pub(crate) fn merge_members<'a>(
    doc: &mut serde_json::Map<String, Value>,
    members: impl IntoIterator<Item = (&'a String, &'a Value)>,
) {
    for (key, value) in members {
        if value.is_null() {
            doc.shift_remove(key);
        } else {
            doc.insert(key.clone(), value.clone());
        }
    }
}

/// User-data or vendor-data as text (invalid UTF-8 replaced), `""` when there is none.
pub(crate) fn data_text(data: Option<&imds_model::UserData>) -> String {
    data.map_or_else(String::new, |d| String::from_utf8_lossy(d.as_bytes()).into_owned())
}

/// A dialect's UUID-form instance id: the override block's string `key`, else the instance UUID
/// (rule R1).
pub(crate) fn uuid_id(instance: &Instance, dialect: &str, key: &str) -> String {
    match overrides(instance, dialect).and_then(|o| o.get(key)).and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => crate::ids::instance_uuid(instance).to_string(),
    }
}

/// The override block for `dialect` as an object, if it is one.
pub(crate) fn overrides<'a>(instance: &'a Instance, dialect: &str) -> Option<&'a serde_json::Map<String, Value>> {
    instance.dialects.override_for(dialect).and_then(Value::as_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imds_model::Limits;
    use serde_json::json;

    fn parse(doc: Value) -> Instance {
        Instance::parse(&doc, &Limits::default()).unwrap()
    }

    #[test]
    fn numeric_ids_pass_through_hash_or_follow_the_override() {
        assert_eq!(numeric_id(&parse(json!({"id": "123456"})), "digitalocean", "droplet_id"), 123_456);
        let hashed = numeric_id(&parse(json!({"id": "web-1"})), "digitalocean", "droplet_id");
        assert!(hashed > 0 && hashed <= u64::MAX >> 1);
        assert_eq!(hashed, numeric_id(&parse(json!({"id": "web-1"})), "hetzner", "instance-id"));
        let overridden = parse(json!({"id": "web-1", "dialects": {"hetzner": {"instance-id": "77"}}}));
        assert_eq!(numeric_id(&overridden, "hetzner", "instance-id"), 77);
        assert_eq!(numeric_id(&overridden, "digitalocean", "droplet_id"), hashed);
        let too_big = parse(json!({"id": "99999999999999999999"}));
        assert_ne!(numeric_id(&too_big, "digitalocean", "droplet_id"), 0);
    }

    #[test]
    fn one_interface_is_derived_from_the_identifying_addresses() {
        let nics = nics(&parse(json!({"id": "a", "ipv4": ["10.0.0.5"], "mac": ["02:00:00:00:00:01"]})));
        assert_eq!(nics.len(), 1);
        assert_eq!(nics[0].first_ipv4(), Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(nics[0].dhcp4);
        assert!(super::nics(&parse(json!({"id": "a"}))).is_empty());
    }
}
