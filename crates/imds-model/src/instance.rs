//! [`Instance`]: the canonical instance record, its canonical JSON and byte forms, its claims
//! and the accessors dialects share.
//!
//! The only way to build an `Instance` from outside data is [`Instance::parse`] (admin input) or
//! [`Instance::from_bytes`] (the store); both run the validating walk in `parse` (the store's
//! records, already validated, skip it for their plain fields). The canonical
//! JSON ([`Instance::to_json`]) omits absent and empty fields and always includes `id` and
//! `imds`, so `parse(to_json(x)) == x`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use serde_json::Value;

use crate::addr::MacAddr;
use crate::dialects::Dialects;
use crate::error::{FieldError, Invalid};
use crate::id::{InstanceId, RoleName};
use crate::limits::Limits;
use crate::network::Network;
use crate::settings::ImdsSettings;
use crate::ssh::SshKey;
use crate::user_data::UserData;

/// Claim kinds, the part before the `/` of a claim string.
const CLAIM_KINDS: &[&str] = &["ipv4", "ipv6", "mac", "host_interfaces"];

/// The account or project an instance belongs to (GCE project, Azure subscription, OpenStack
/// project, Linode account).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Account {
    /// Account id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Account display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One instance record: everything every dialect renders from. All fields but `id` are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Primary key.
    pub id: InstanceId,
    /// Display name (defaults to the hostname in dialects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Short host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// DNS domain; the FQDN is `hostname.domain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Source IPv4 addresses that identify this guest (possibly NAT addresses).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv4: Vec<Ipv4Addr>,
    /// Source IPv6 addresses that identify this guest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<Ipv6Addr>,
    /// MACs that identify this guest (fallback), also the default NIC MAC.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mac: Vec<MacAddr>,
    /// Host-side interface names of the VM's NICs (its taps, veths or bridge ports): requests
    /// arriving there are this instance's, and with `[net] manage` only its own addresses may
    /// arrive there. Unique across instances.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_interfaces: Vec<String>,
    /// What the guest is told about its network; derived from `ipv4`/`mac` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Box<Network>>,
    /// User data, served verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<UserData>,
    /// Vendor data, served verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_data: Option<UserData>,
    /// SSH public keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<SshKey>,
    /// Default login user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_user: Option<String>,
    /// Whether password login is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_auth: Option<bool>,
    /// Region, e.g. `europe-west1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone, e.g. `europe-west1-b`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The serving node (hypervisor) the instance is placed on: only that node serves it.
    /// Absent: served by nodes that follow the whole store (scope `all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Instance type / machine type / VM size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Image id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Key/value tags.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Launch index within a reservation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_index: Option<u32>,
    /// Owning account or project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Box<Account>>,
    /// Creation time, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// IAM role; enables role credentials and cloud identities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iam_role: Option<RoleName>,
    /// Identity details (scopes, email, client id…), a JSON object kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Box<Value>>,
    /// EC2 metadata options, defaults filled in.
    pub imds: ImdsSettings,
    /// What the VMM presents (dialect, SMBIOS), a JSON object kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Box<Value>>,
    /// Dialect selection and overrides.
    #[serde(skip_serializing_if = "Dialects::is_empty")]
    pub dialects: Dialects,
}

impl Instance {
    /// A record with only an id, everything else absent or default.
    pub fn new(id: InstanceId) -> Self {
        Self {
            id,
            name: None,
            hostname: None,
            domain: None,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            mac: Vec::new(),
            host_interfaces: Vec::new(),
            network: None,
            user_data: None,
            vendor_data: None,
            ssh_keys: Vec::new(),
            default_user: None,
            password_auth: None,
            region: None,
            zone: None,
            node: None,
            instance_type: None,
            image_id: None,
            tags: BTreeMap::new(),
            launch_index: None,
            account: None,
            created_at: None,
            iam_role: None,
            identity: None,
            imds: ImdsSettings::default(),
            platform: None,
            dialects: Dialects::default(),
        }
    }

    /// Validates a JSON document (as sent to the admin API) and reports every problem at once.
    pub fn parse(value: &Value, limits: &Limits) -> Result<Instance, Invalid> {
        crate::parse::parse_instance(value, limits)
    }

    /// The canonical JSON form: omits `None` fields, empty lists and maps, and `dialects` when
    /// empty; always includes `id` and `imds` (defaults filled in).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an Instance has string map keys and no failing Serialize impls")
    }

    /// [`to_json`](Self::to_json) as compact bytes: what the store keeps.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Instance has string map keys and no failing Serialize impls")
    }

    /// Decodes what [`to_bytes`](Self::to_bytes) produced, without size limits: serde reads the
    /// plain fields straight into their types (a stored record passed every rule when it was
    /// written), and a record that path does not accept is walked like admin input. Every error
    /// message says the record is corrupt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Instance, Invalid> {
        if let Some(instance) = crate::parse::decode_stored(bytes) {
            return Ok(instance);
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| Invalid::one("", format!("corrupt record: not JSON: {e}")))?;
        Self::parse(&value, &Limits::unbounded()).map_err(|invalid| Invalid {
            errors: invalid
                .errors
                .into_iter()
                .map(|e| FieldError::new(e.field, format!("corrupt record: {}", e.message)))
                .collect(),
        })
    }

    /// The unique claims this record holds, sorted and deduplicated: `ipv4/<addr>`,
    /// `ipv6/<addr>` and `mac/<mac>` for every identifying address (the `ipv4`, `ipv6` and
    /// `mac` lists only, not `network.interfaces`), and `host_interfaces/<name>` for every host
    /// interface.
    pub fn claims(&self) -> Vec<String> {
        let mut claims: Vec<String> = self
            .ipv4
            .iter()
            .map(|ip| format!("ipv4/{ip}"))
            .chain(self.ipv6.iter().map(|ip| format!("ipv6/{ip}")))
            .chain(self.mac.iter().map(|mac| format!("mac/{mac}")))
            .chain(self.host_interfaces.iter().map(|name| format!("host_interfaces/{name}")))
            .collect();
        claims.sort();
        claims.dedup();
        claims
    }

    /// The first IPv4 the guest is told it has: `network.interfaces[0].ipv4[0].address`, else
    /// `ipv4[0]`.
    pub fn primary_ipv4(&self) -> Option<Ipv4Addr> {
        self.primary_interface()
            .and_then(|iface| iface.ipv4.first())
            .map(|cidr| cidr.address)
            .or_else(|| self.ipv4.first().copied())
    }

    /// The primary MAC: `network.interfaces[0].mac`, else `mac[0]`.
    pub fn primary_mac(&self) -> Option<MacAddr> {
        self.primary_interface().and_then(|iface| iface.mac).or_else(|| self.mac.first().copied())
    }

    /// The first configured interface, if `network` lists any.
    pub fn primary_interface(&self) -> Option<&crate::network::Interface> {
        self.network.as_ref().and_then(|net| net.interfaces.first())
    }

    /// The fully qualified host name: `hostname.domain`, or `hostname` alone.
    pub fn fqdn(&self) -> Option<String> {
        let hostname = self.hostname.as_deref()?;
        Some(match self.domain.as_deref() {
            Some(domain) => format!("{hostname}.{domain}"),
            None => hostname.to_owned(),
        })
    }
}

/// Splits a claim string into its kind and value, e.g. `"ipv4/10.0.0.1"` →
/// `("ipv4", "10.0.0.1")`. `None` for anything that is not a claim.
pub fn split_claim(claim: &str) -> Option<(&str, &str)> {
    let (kind, value) = claim.split_once('/')?;
    (CLAIM_KINDS.contains(&kind) && !value.is_empty()).then_some((kind, value))
}

#[cfg(test)]
mod tests;
