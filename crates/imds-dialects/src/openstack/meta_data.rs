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

/// The host name Nova reports: `hostname.domain`, else the display name, else the record id.
pub(crate) fn hostname(instance: &Instance) -> String {
    instance.fqdn().or_else(|| instance.name.clone()).unwrap_or_else(|| instance.id.as_str().to_owned())
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
        None => instance.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect(),
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
    let project_id = overrides
        .project_id
        .map(str::to_owned)
        .or_else(|| instance.account.as_ref().and_then(|account| account.id.clone()));
    if let (true, Some(project_id)) = (version >= wire::LIBERTY, project_id) {
        doc.insert("project_id".into(), json!(project_id));
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
