//! The fast way back from a stored record: [`Instance::from_bytes`] tries this before the full
//! walk.
//!
//! A stored record is what [`Instance::to_bytes`] wrote for an instance that passed the walk
//! when it was written, so its plain fields (strings, addresses, tags, the `imds` options) are
//! decoded by serde straight into their types, without building a [`Value`] of the whole
//! document or checking each text rule again. This is most of a cold start's work: a million
//! records are decoded before the first request is served. The sections with shapes of their own
//! (network, user and vendor data, SSH keys, account, identity, platform, dialects) are rare and
//! go through the walk's own code, so they come back exactly as it builds them. Anything this
//! path does not accept (an unknown or misspelt field, a wrong type, a section the walk refuses)
//! returns `None`, and the full walk reads the record and names what is wrong.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde_json::Value;

use super::{network, opaque_object, overrides, section, Ctx};
use crate::addr::MacAddr;
use crate::id::{InstanceId, RoleName};
use crate::instance::Instance;
use crate::limits::Limits;
use crate::settings::{EndpointMode, ImdsSettings, TagsMode, TokenMode};

/// A record as `to_bytes` writes it; an absent field takes the value the walk gives it (an
/// `Option` is `None` without being told).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    id: InstanceId,
    name: Option<String>,
    hostname: Option<String>,
    domain: Option<String>,
    #[serde(default)]
    ipv4: Vec<Ipv4Addr>,
    #[serde(default)]
    ipv6: Vec<Ipv6Addr>,
    #[serde(default)]
    mac: Vec<MacAddr>,
    #[serde(default)]
    host_interfaces: Vec<String>,
    network: Option<Value>,
    user_data: Option<Value>,
    vendor_data: Option<Value>,
    ssh_keys: Option<Value>,
    default_user: Option<String>,
    password_auth: Option<bool>,
    region: Option<String>,
    zone: Option<String>,
    node: Option<String>,
    instance_type: Option<String>,
    image_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    launch_index: Option<u32>,
    account: Option<Value>,
    created_at: Option<String>,
    iam_role: Option<RoleName>,
    identity: Option<Value>,
    imds: Option<StoredImds>,
    platform: Option<Value>,
    dialects: Option<Value>,
}

/// The `imds` options as stored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredImds {
    tokens: Option<TokenMode>,
    hop_limit: Option<u8>,
    endpoint: Option<EndpointMode>,
    tags: Option<TagsMode>,
}

/// Decodes a stored record, or `None` when only the full walk can say what it holds.
pub(crate) fn decode(bytes: &[u8]) -> Option<Instance> {
    let stored: Stored = serde_json::from_slice(bytes).ok()?;
    let mut ctx = Ctx::default();
    let c = &mut ctx;
    let unbounded = Limits::unbounded();
    let network = walk_section(c, "network", stored.network, network::network);
    let user_data = walk_section(c, "user_data", stored.user_data, |c, p, v| section::user_data(c, p, v, &unbounded));
    let vendor_data =
        walk_section(c, "vendor_data", stored.vendor_data, |c, p, v| section::user_data(c, p, v, &unbounded));
    let ssh_keys = walk_section(c, "ssh_keys", stored.ssh_keys, section::ssh_keys);
    let account = walk_section(c, "account", stored.account, section::account);
    let identity = walk_section(c, "identity", stored.identity, opaque_object);
    let platform = walk_section(c, "platform", stored.platform, overrides::platform);
    let dialects = walk_section(c, "dialects", stored.dialects, section::dialects);
    if !ctx.errors.is_empty() {
        return None;
    }
    let defaults = ImdsSettings::default();
    let imds = match stored.imds {
        None => defaults,
        Some(imds) => {
            let hop_limit = imds.hop_limit.unwrap_or(defaults.hop_limit);
            if !(ImdsSettings::MIN_HOP_LIMIT..=ImdsSettings::MAX_HOP_LIMIT).contains(&hop_limit) {
                return None;
            }
            ImdsSettings {
                tokens: imds.tokens.unwrap_or(defaults.tokens),
                hop_limit,
                endpoint: imds.endpoint.unwrap_or(defaults.endpoint),
                tags: imds.tags.or(defaults.tags),
            }
        }
    };
    Some(Instance {
        id: stored.id,
        name: stored.name,
        hostname: stored.hostname,
        domain: stored.domain,
        ipv4: stored.ipv4,
        ipv6: stored.ipv6,
        mac: stored.mac,
        host_interfaces: stored.host_interfaces,
        network: network.map(Box::new),
        user_data,
        vendor_data,
        ssh_keys: ssh_keys.unwrap_or_default(),
        default_user: stored.default_user,
        password_auth: stored.password_auth,
        region: stored.region,
        zone: stored.zone,
        node: stored.node,
        instance_type: stored.instance_type,
        image_id: stored.image_id,
        tags: stored.tags,
        launch_index: stored.launch_index,
        account: account.map(Box::new),
        created_at: stored.created_at,
        iam_role: stored.iam_role,
        identity: identity.map(Box::new),
        imds,
        platform: platform.map(Box::new),
        dialects: dialects.unwrap_or_default(),
    })
}

/// A section present and not null, read by the walk's `parse` (its errors go to `ctx`).
fn walk_section<T>(
    ctx: &mut Ctx,
    path: &str,
    value: Option<Value>,
    parse: impl FnOnce(&mut Ctx, &str, &Value) -> Option<T>,
) -> Option<T> {
    let value = value.filter(|v| !v.is_null())?;
    parse(ctx, path, &value)
}
