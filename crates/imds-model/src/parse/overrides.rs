//! Checks of the parts of override blocks and `platform` that imds reads itself, so that a
//! value the dialects would ignore is refused at the admin API instead. Everything else in those
//! objects is kept verbatim.

use serde_json::Value;

use super::{join, opaque_object, Ctx};
use crate::dialects::Dialect;

/// The SMBIOS fields `platform.smbios` may set.
const SMBIOS_FIELDS: &[&str] = &["manufacturer", "product", "version", "serial", "uuid", "sku", "family", "asset_tag"];

/// Checks the keys of `dialects.<dialect>` that carry a numeric id or a document.
pub(super) fn check(ctx: &mut Ctx, path: &str, dialect: &str, block: &Value) {
    let numeric_keys: &[&str] = match dialect {
        "digitalocean" => &["id", "droplet_id"],
        "hetzner" => &["id", "instance-id"],
        "linode" => &["id"],
        "vultr" => &["id", "instanceid"],
        _ => &[],
    };
    for key in numeric_keys {
        if let Some(value) = block.get(*key).filter(|v| !v.is_null()) {
            if !is_numeric_id(value) {
                ctx.error(
                    &join(path, key),
                    "expected a non-negative integer below 2^63 (a number or a decimal string)",
                );
            }
        }
    }
    if dialect == "exoscale" && block.get("password").is_some_and(|v| !v.is_null() && !v.is_string()) {
        ctx.error(&join(path, "password"), "expected a string (the password the password server sends) or null");
    }
    if dialect == "nocloud" {
        if block.get("network-config").is_some_and(|v| !v.is_null() && !v.is_object()) {
            ctx.error(&join(path, "network-config"), "expected an object (a network config document) or null");
        }
        if let Some(id) = block.get("instance-id").filter(|v| !v.is_null()) {
            if id.as_str().is_none_or(str::is_empty) {
                ctx.error(&join(path, "instance-id"), "expected a non-empty string");
            }
        }
    }
}

fn is_numeric_id(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_u64().is_some_and(|n| n <= u64::MAX >> 1),
        Value::String(s) => {
            !s.is_empty()
                && s.len() <= 19
                && s.bytes().all(|b| b.is_ascii_digit())
                && s.parse::<u64>().is_ok_and(|n| n <= u64::MAX >> 1)
        }
        _ => false,
    }
}

/// `platform`: an object kept verbatim whose `dialect` (if set) names a dialect and whose
/// `smbios` (if set) maps known SMBIOS fields to strings.
pub(super) fn platform(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Value> {
    let platform = opaque_object(ctx, path, value)?;
    let before = ctx.errors.len();
    if let Some(dialect) = platform.get("dialect").filter(|v| !v.is_null()) {
        if dialect.as_str().and_then(Dialect::from_name).is_none() {
            ctx.error(&join(path, "dialect"), format!("expected one of {}", Dialect::names()));
        }
    }
    if let Some(smbios) = platform.get("smbios").filter(|v| !v.is_null()) {
        let smbios_path = join(path, "smbios");
        match smbios.as_object() {
            None => ctx.error(&smbios_path, "expected an object"),
            Some(map) => {
                for (key, value) in map {
                    if !SMBIOS_FIELDS.contains(&key.as_str()) {
                        ctx.error(
                            &join(&smbios_path, key),
                            format!("unknown field; expected one of {}", SMBIOS_FIELDS.join(", ")),
                        );
                    } else if !value.is_string() {
                        ctx.error(&join(&smbios_path, key), "expected a string");
                    }
                }
            }
        }
    }
    (ctx.errors.len() == before).then_some(platform)
}
