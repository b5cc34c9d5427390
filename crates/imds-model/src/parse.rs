//! The validating walk from a JSON document to an [`Instance`].
//!
//! Written by hand over [`serde_json::Value`] rather than with `#[derive(Deserialize)]` so that
//! it can report *every* problem, each at its path (`"ipv4[1]"`, `"imds.hop_limit"`,
//! `"tags.Name"`), instead of stopping at the first. A [`Ctx`] collects the errors; each helper
//! returns `Option<T>`, `None` meaning "an error was recorded". Normalisation happens here too:
//! MACs to lower-case colon form, IPv4-mapped IPv6 identifying addresses moved into `ipv4`.
//! The network walk lives in `parse/network.rs`, the smaller sections in `parse/section.rs`;
//! `parse/stored.rs` reads records back from the store without walking their plain fields again.

mod network;
mod overrides;
mod section;
mod stored;

pub(crate) use stored::decode as decode_stored;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::addr::{unidentifying, MacAddr};
use crate::error::{FieldError, Invalid};
use crate::id::{InstanceId, RoleName};
use crate::instance::Instance;
use crate::limits::Limits;
use crate::text;

/// Top-level fields of an instance document.
const FIELDS: &[&str] = &[
    "id",
    "name",
    "hostname",
    "domain",
    "ipv4",
    "ipv6",
    "mac",
    "host_interfaces",
    "network",
    "user_data",
    "vendor_data",
    "ssh_keys",
    "default_user",
    "password_auth",
    "region",
    "zone",
    "node",
    "instance_type",
    "image_id",
    "tags",
    "launch_index",
    "account",
    "created_at",
    "iam_role",
    "identity",
    "imds",
    "platform",
    "dialects",
];

/// Collects errors during one walk.
#[derive(Debug, Default)]
struct Ctx {
    errors: Vec<FieldError>,
}

impl Ctx {
    /// Records a problem at `path`.
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// Records the rule's error at `path`, if any; `Some(value)` when it passed.
    fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.error(path, message)).ok()
    }

    fn into_invalid(self) -> Invalid {
        Invalid { errors: self.errors }
    }
}

/// `parent.key`, or `key` at the root.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `map[key]`, treating an explicit `null` as absent (a merge patch deletes with `null`, so
/// documents built by hand often carry `"field": null` for "not set").
fn member<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// Runs `parse` on `map[key]` at path `parent.key` when the member is present and not null.
fn field<T>(
    ctx: &mut Ctx,
    map: &Map<String, Value>,
    parent: &str,
    key: &str,
    parse: impl FnOnce(&mut Ctx, &str, &Value) -> Option<T>,
) -> Option<T> {
    let value = member(map, key)?;
    parse(ctx, &join(parent, key), value)
}

/// A fixed-shape object: reports a wrong type, and every member not in `known`.
fn object<'a>(ctx: &mut Ctx, path: &str, value: &'a Value, known: &[&str]) -> Option<&'a Map<String, Value>> {
    let Some(map) = value.as_object() else {
        ctx.error(path, "expected an object");
        return None;
    };
    for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
        ctx.error(&join(path, key), "unknown field");
    }
    Some(map)
}

/// A JSON object kept verbatim (`identity`, `platform`, dialect overrides).
fn opaque_object(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Value> {
    if value.is_object() {
        Some(value.clone())
    } else {
        ctx.error(path, "expected an object");
        None
    }
}

fn string<'a>(ctx: &mut Ctx, path: &str, value: &'a Value) -> Option<&'a str> {
    let s = value.as_str();
    if s.is_none() {
        ctx.error(path, "expected a string");
    }
    s
}

/// A string checked by one of the `text` rules.
fn text_with(ctx: &mut Ctx, path: &str, value: &Value, rule: fn(&str) -> Result<(), String>) -> Option<String> {
    let s = string(ctx, path, value)?;
    ctx.check(path, rule(s))?;
    Some(s.to_owned())
}

fn boolean(ctx: &mut Ctx, path: &str, value: &Value) -> Option<bool> {
    let b = value.as_bool();
    if b.is_none() {
        ctx.error(path, "expected true or false");
    }
    b
}

/// An integer in `min..=max` (floats such as `2.0` are refused).
fn integer(ctx: &mut Ctx, path: &str, value: &Value, min: u64, max: u64) -> Option<u64> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            ctx.error(path, format!("expected an integer from {min} to {max}"));
            None
        }
    }
}

/// An array whose elements are parsed by `item` at `path[i]`; failed elements are dropped
/// (their errors are recorded).
fn list<T>(
    ctx: &mut Ctx,
    path: &str,
    value: &Value,
    what: &str,
    mut item: impl FnMut(&mut Ctx, &str, &Value) -> Option<T>,
) -> Vec<T> {
    let Some(items) = value.as_array() else {
        ctx.error(path, format!("expected an array of {what}"));
        return Vec::new();
    };
    items.iter().enumerate().filter_map(|(i, v)| item(ctx, &index(path, i), v)).collect()
}

/// One of a fixed set of strings.
fn choice<T: Copy>(ctx: &mut Ctx, path: &str, value: &Value, options: &[(&str, T)]) -> Option<T> {
    let found = value.as_str().and_then(|s| options.iter().find(|(name, _)| *name == s));
    if found.is_none() {
        let names: Vec<String> = options.iter().map(|(name, _)| format!("{name:?}")).collect();
        ctx.error(path, format!("expected one of {}", names.join(", ")));
    }
    found.map(|(_, v)| *v)
}

fn ipv4_addr(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Ipv4Addr> {
    let s = string(ctx, path, value)?;
    ctx.check(path, s.parse().map_err(|_| format!("not an IPv4 address: {s:?}")))
}

fn ipv6_addr(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Ipv6Addr> {
    let s = string(ctx, path, value)?;
    ctx.check(path, s.parse().map_err(|_| format!("not an IPv6 address: {s:?}")))
}

fn ip_addr(ctx: &mut Ctx, path: &str, value: &Value) -> Option<IpAddr> {
    let s = string(ctx, path, value)?;
    ctx.check(path, s.parse().map_err(|_| format!("not an IP address: {s:?}")))
}

fn mac_addr(ctx: &mut Ctx, path: &str, value: &Value) -> Option<MacAddr> {
    let s = string(ctx, path, value)?;
    ctx.check(path, s.parse().map_err(|e: crate::MacAddrError| e.to_string()))
}

/// Records "duplicate" at `path` when `key` was seen before; remembers it otherwise.
fn first_time<K: std::hash::Hash + Eq>(ctx: &mut Ctx, seen: &mut HashMap<K, String>, key: K, path: &str) -> bool {
    if let Some(first) = seen.get(&key) {
        ctx.error(path, format!("duplicate of {first}"));
        return false;
    }
    seen.insert(key, path.to_owned());
    true
}

/// An identifying address: one that can tell guests apart by source IP.
fn identifying(ctx: &mut Ctx, path: &str, ip: IpAddr) -> bool {
    match unidentifying(ip) {
        Some(why) => {
            ctx.error(path, format!("{ip} cannot identify a guest ({why})"));
            false
        }
        None => true,
    }
}

/// The `ipv4` and `ipv6` lists, with IPv4-mapped IPv6 addresses moved to `ipv4`.
fn identifying_ips(ctx: &mut Ctx, map: &Map<String, Value>) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut seen4 = HashMap::new();
    let mut seen6 = HashMap::new();
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let v4_items = member(map, "ipv4")
        .map(|v| list(ctx, "ipv4", v, "IPv4 addresses", |c, p, v| Some((p.to_owned(), string(c, p, v)?.to_owned()))));
    for (path, text) in v4_items.unwrap_or_default() {
        let parsed =
            text.parse::<Ipv4Addr>().ok().or_else(|| text.parse::<Ipv6Addr>().ok().and_then(|ip| ip.to_ipv4_mapped()));
        let Some(ip) = parsed else {
            ctx.error(&path, format!("not an IPv4 address: {text:?}"));
            continue;
        };
        if identifying(ctx, &path, ip.into()) && first_time(ctx, &mut seen4, ip, &path) {
            v4.push(ip);
        }
    }
    let v6_items = member(map, "ipv6")
        .map(|v| list(ctx, "ipv6", v, "IPv6 addresses", |c, p, v| Some((p.to_owned(), string(c, p, v)?.to_owned()))));
    for (path, text) in v6_items.unwrap_or_default() {
        let Ok(ip) = text.parse::<Ipv6Addr>() else {
            if text.parse::<Ipv4Addr>().is_ok() {
                ctx.error(&path, format!("{text} is an IPv4 address; list it under ipv4"));
            } else {
                ctx.error(&path, format!("not an IPv6 address: {text:?}"));
            }
            continue;
        };
        if let Some(mapped) = ip.to_ipv4_mapped() {
            if identifying(ctx, &path, mapped.into()) && first_time(ctx, &mut seen4, mapped, &path) {
                v4.push(mapped);
            }
        } else if identifying(ctx, &path, ip.into()) && first_time(ctx, &mut seen6, ip, &path) {
            v6.push(ip);
        }
    }
    (v4, v6)
}

/// The identifying `mac` list.
fn identifying_macs(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Vec<MacAddr>> {
    let mut seen = HashMap::new();
    let macs = list(ctx, path, value, "MAC addresses", |c, p, v| Some((p.to_owned(), mac_addr(c, p, v)?)));
    Some(macs.into_iter().filter(|(p, mac)| first_time(ctx, &mut seen, *mac, p)).map(|(_, mac)| mac).collect())
}

/// `host_interfaces`: distinct interface names.
fn host_interfaces(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Vec<String>> {
    let mut seen = HashMap::new();
    let names = list(ctx, path, value, "interface names", |c, p, v| {
        let name = text_with(c, p, v, text::interface_name)?;
        Some((p.to_owned(), name))
    });
    Some(names.into_iter().filter(|(p, name)| first_time(ctx, &mut seen, name.clone(), p)).map(|(_, n)| n).collect())
}

fn instance_id(ctx: &mut Ctx, path: &str, value: &Value) -> Option<InstanceId> {
    let s = string(ctx, path, value)?;
    ctx.check(path, InstanceId::try_from(s).map_err(|e| e.to_string()))
}

fn role_name(ctx: &mut Ctx, path: &str, value: &Value) -> Option<RoleName> {
    let s = string(ctx, path, value)?;
    ctx.check(path, RoleName::try_from(s).map_err(|e| e.to_string()))
}

/// Validates `value` as an instance document; see [`Instance::parse`].
pub(crate) fn parse_instance(value: &Value, limits: &Limits) -> Result<Instance, Invalid> {
    let mut ctx = Ctx::default();
    let Some(map) = value.as_object() else {
        return Err(Invalid::one("", "the instance document must be a JSON object"));
    };
    let map = object(&mut ctx, "", value, FIELDS).unwrap_or(map);
    let id = match map.get("id") {
        None => {
            ctx.error("id", "missing required field");
            None
        }
        Some(v) => instance_id(&mut ctx, "id", v),
    };
    let c = &mut ctx;
    let name = field(c, map, "", "name", |c, p, v| text_with(c, p, v, text::text));
    let hostname = field(c, map, "", "hostname", |c, p, v| text_with(c, p, v, text::hostname));
    let domain = field(c, map, "", "domain", |c, p, v| text_with(c, p, v, text::hostname));
    let (ipv4, ipv6) = identifying_ips(c, map);
    let mac = field(c, map, "", "mac", identifying_macs).unwrap_or_default();
    let host_interfaces = field(c, map, "", "host_interfaces", host_interfaces).unwrap_or_default();
    let network = field(c, map, "", "network", network::network);
    let user_data = field(c, map, "", "user_data", |c, p, v| section::user_data(c, p, v, limits));
    let vendor_data = field(c, map, "", "vendor_data", |c, p, v| section::user_data(c, p, v, limits));
    let ssh_keys = field(c, map, "", "ssh_keys", section::ssh_keys).unwrap_or_default();
    let default_user = field(c, map, "", "default_user", |c, p, v| text_with(c, p, v, text::text));
    let password_auth = field(c, map, "", "password_auth", boolean);
    let region = field(c, map, "", "region", |c, p, v| text_with(c, p, v, text::segment));
    let zone = field(c, map, "", "zone", |c, p, v| text_with(c, p, v, text::segment));
    let node = field(c, map, "", "node", |c, p, v| text_with(c, p, v, text::node_name));
    let instance_type = field(c, map, "", "instance_type", |c, p, v| text_with(c, p, v, text::text));
    let image_id = field(c, map, "", "image_id", |c, p, v| text_with(c, p, v, text::text));
    let tags = field(c, map, "", "tags", section::tags).unwrap_or_default();
    let launch_index = field(c, map, "", "launch_index", |c, p, v| {
        integer(c, p, v, 0, u32::MAX.into()).and_then(|n| u32::try_from(n).ok())
    });
    let account = field(c, map, "", "account", section::account);
    let created_at = field(c, map, "", "created_at", |c, p, v| text_with(c, p, v, text::timestamp));
    let iam_role = field(c, map, "", "iam_role", role_name);
    let identity = field(c, map, "", "identity", opaque_object);
    let imds = field(c, map, "", "imds", section::imds).unwrap_or_default();
    let platform = field(c, map, "", "platform", overrides::platform);
    let dialects = field(c, map, "", "dialects", section::dialects).unwrap_or_default();
    if imds.tags == Some(crate::settings::TagsMode::On) {
        // EC2 refuses to turn tags-in-metadata on while a key cannot be a path segment.
        for key in tags.keys() {
            c.check(&join("tags", key), text::ec2_metadata_tag_key(key));
        }
    }

    let (Some(id), true) = (id, ctx.errors.is_empty()) else {
        return Err(ctx.into_invalid());
    };
    let instance = Instance {
        id,
        name,
        hostname,
        domain,
        ipv4,
        ipv6,
        mac,
        host_interfaces,
        network: network.map(Box::new),
        user_data,
        vendor_data,
        ssh_keys,
        default_user,
        password_auth,
        region,
        zone,
        node,
        instance_type,
        image_id,
        tags,
        launch_index,
        account: account.map(Box::new),
        created_at,
        iam_role,
        identity: identity.map(Box::new),
        imds,
        platform: platform.map(Box::new),
        dialects,
    };
    // Unbounded (a stored record read back): no size to check, so no serialising to measure it.
    if limits.max_record != usize::MAX {
        let size = instance.to_bytes().len();
        if size > limits.max_record {
            return Err(Invalid::one("", format!("record is {size} bytes; the limit is {}", limits.max_record)));
        }
    }
    Ok(instance)
}

#[cfg(test)]
mod tests;
