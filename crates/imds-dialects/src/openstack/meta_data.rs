//! `meta_data.json` and the ids OpenStack derives from the record (rule R1).

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use uuid::Uuid;

use base64::Engine as _;
use imds_model::Instance;

use super::overrides::Overrides;
use super::wire;
use crate::Context;

/// The name space of the UUIDs derived from instance ids.
/// Nova's default availability zone.
const DEFAULT_ZONE: &str = "nova";
/// Bytes of `random_seed` (before base64), as Nova sends.
const RANDOM_SEED_BYTES: usize = 512;

/// The instance's OpenStack uuid: `dialects.openstack.uuid`, else the record id when it is a
/// UUID, else the UUIDv5 of `imds:instance/<id>` in the URL name space (deterministic, so every
/// replica and every restart agrees).
pub fn instance_uuid(instance: &Instance) -> Uuid {
    if let Some(uuid) = Overrides::of(instance).uuid {
        return uuid;
    }
    crate::ids::instance_uuid(instance)
}

/// The host name Nova reports: `hostname.domain` (`hostname` alone when it already has a dot),
/// `hostname.novalocal` without a domain (Nova's default `dhcp_domain`); without a host name,
/// the display name (`name`, else the record id) made a host name as Nova makes it (lower case,
/// runs of other characters as `-`; `server-<uuid>` when nothing is left), with that domain.
pub(crate) fn hostname(instance: &Instance) -> String {
    let domain = instance.domain.as_deref().unwrap_or(wire::DEFAULT_DHCP_DOMAIN);
    match &instance.hostname {
        Some(host) if host.contains('.') => host.clone(),
        Some(host) => format!("{host}.{domain}"),
        None => {
            let short = Some(sanitize(&display_name(instance))).filter(|s| !s.is_empty());
            let short = short.unwrap_or_else(|| format!("server-{}", instance_uuid(instance)));
            format!("{short}.{domain}")
        }
    }
}

/// A display name as Nova makes it a host name.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(63).collect::<String>().trim_end_matches('-').to_owned()
}

/// The project id: `dialects.openstack.project_id`, else `account.id`, else one derived from
/// `account.name` (or, without an account, from the deployment's default project): Nova's form,
/// 32 hex digits.
fn project_id(instance: &Instance, overridden: Option<&str>) -> String {
    if let Some(id) = overridden.map(str::to_owned).or_else(|| instance.account.as_ref().and_then(|a| a.id.clone())) {
        return id;
    }
    let name = instance.account.as_ref().and_then(|a| a.name.as_deref()).unwrap_or("default");
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("imds:openstack/project/{name}").as_bytes()).simple().to_string()
}

/// The display name: `name`, else the short host name, else the record id.
fn display_name(instance: &Instance) -> String {
    instance.name.clone().or_else(|| instance.hostname.clone()).unwrap_or_else(|| instance.id.as_str().to_owned())
}

/// `meta_data.json` as version `version` (a dated version) shows it.
pub(crate) fn render(instance: &Instance, version: &str, context: &Context<'_>) -> Value {
    let overrides = Overrides::of(instance);
    let uuid = instance_uuid(instance);
    let mut doc = Map::new();
    doc.insert("uuid".into(), json!(uuid.to_string()));
    let meta: Map<String, Value> = match overrides.meta {
        Some(meta) => meta.clone(),
        None => crate::derive::tags(instance).map(|(k, v)| (k.clone(), json!(v))).collect(),
    };
    if !meta.is_empty() {
        doc.insert("meta".into(), Value::Object(meta));
    }
    if !instance.ssh_keys.is_empty() {
        let names = key_names(instance);
        let public_keys: Map<String, Value> =
            names.iter().zip(&instance.ssh_keys).map(|(name, key)| (name.clone(), json!(key.key))).collect();
        let keys: Vec<Value> = names
            .iter()
            .zip(&instance.ssh_keys)
            .map(|(name, key)| json!({"name": name, "type": "ssh", "data": key.key}))
            .collect();
        doc.insert("public_keys".into(), Value::Object(public_keys));
        doc.insert("keys".into(), Value::Array(keys));
    }
    doc.insert("hostname".into(), json!(hostname(instance)));
    doc.insert("name".into(), json!(display_name(instance)));
    doc.insert("launch_index".into(), json!(instance.launch_index.unwrap_or(0)));
    let zone = overrides.availability_zone.or(instance.zone.as_deref()).unwrap_or(DEFAULT_ZONE);
    doc.insert("availability_zone".into(), json!(zone));
    if version >= wire::GRIZZLY {
        doc.insert("random_seed".into(), json!(random_seed(instance, context)));
    }
    if version >= wire::LIBERTY {
        doc.insert("project_id".into(), json!(project_id(instance, overrides.project_id)));
    }
    if version >= wire::NEWTON_ONE {
        doc.insert("devices".into(), overrides.devices.cloned().unwrap_or_else(|| json!([])));
    }
    if version >= wire::VICTORIA {
        doc.insert("dedicated_cpus".into(), overrides.dedicated_cpus.cloned().unwrap_or_else(|| json!([])));
    }
    Value::Object(doc)
}

/// Key pair names, one per `ssh_keys` entry: the EC2 dialect's names (`name`, else the
/// comment, else `key-N`), made unique with a `-N` suffix (`public_keys` is a JSON object).
pub(crate) fn key_names(instance: &Instance) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(instance.ssh_keys.len());
    for (index, key) in instance.ssh_keys.iter().enumerate() {
        let mut name = crate::derive::key_name(index, key);
        if names.contains(&name) {
            name = format!("{name}-{index}");
        }
        names.push(name);
    }
    names
}

/// 512 bytes the guest cannot predict, base64: an HMAC-SHA256 stream keyed with the
/// deployment's secret over the instance id and the current second. Nova reads them from
/// `os.urandom`; a dialect has no randomness, and cloud-init only mixes them into the pool.
fn random_seed(instance: &Instance, context: &Context<'_>) -> String {
    let key = context.tokens.to_bytes();
    let mut seed = Vec::with_capacity(RANDOM_SEED_BYTES);
    let mut block = 0u32;
    while seed.len() < RANDOM_SEED_BYTES {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes a key of any length");
        mac.update(b"openstack random_seed\0");
        mac.update(instance.id.as_str().as_bytes());
        mac.update(&context.now.to_be_bytes());
        mac.update(&block.to_be_bytes());
        seed.extend_from_slice(&mac.finalize().into_bytes());
        block += 1;
    }
    seed.truncate(RANDOM_SEED_BYTES);
    base64::engine::general_purpose::STANDARD.encode(seed)
}
