//! The smaller sections of an instance document: user/vendor data, SSH keys, tags, account,
//! `imds` settings and `dialects`.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{choice, field, first_time, integer, join, list, object, opaque_object, string, text_with, Ctx};
use crate::dialects::{Dialect, Dialects};
use crate::instance::Account;
use crate::limits::Limits;
use crate::settings::{EndpointMode, ImdsSettings, TagsMode, TokenMode};
use crate::ssh::{check_key, SshKey};
use crate::text;
use crate::user_data::UserData;

const SSH_KEY_FIELDS: &[&str] = &["key", "user", "name", "expires"];
const ACCOUNT_FIELDS: &[&str] = &["id", "name"];
const IMDS_FIELDS: &[&str] = &["tokens", "hop_limit", "endpoint", "tags"];

/// `user_data` or `vendor_data`: a string or `{"base64": ...}`, at most `max_user_data` bytes.
pub(super) fn user_data(ctx: &mut Ctx, path: &str, value: &Value, limits: &Limits) -> Option<UserData> {
    let data = ctx.check(path, UserData::from_json(value).map_err(|e| e.to_string()))?;
    if data.len() > limits.max_user_data {
        ctx.error(path, format!("{path} is {} bytes; the limit is {} bytes", data.len(), limits.max_user_data));
        return None;
    }
    Some(data)
}

/// `ssh_keys`: strings, or objects `{key, user?, name?, expires?}`.
pub(super) fn ssh_keys(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Vec<SshKey>> {
    Some(list(ctx, path, value, "SSH public keys", ssh_key))
}

fn ssh_key(ctx: &mut Ctx, path: &str, value: &Value) -> Option<SshKey> {
    match value {
        Value::String(s) => ctx.check(path, check_key(s)).map(SshKey::new),
        Value::Object(_) => {
            let map = object(ctx, path, value, SSH_KEY_FIELDS)?;
            let key = match map.get("key") {
                None | Some(Value::Null) => {
                    ctx.error(&join(path, "key"), "missing required field");
                    None
                }
                Some(v) => {
                    let key_path = join(path, "key");
                    string(ctx, &key_path, v).and_then(|s| ctx.check(&key_path, check_key(s)))
                }
            };
            let user = field(ctx, map, path, "user", |c, p, v| text_with(c, p, v, text::segment));
            let name = field(ctx, map, path, "name", |c, p, v| text_with(c, p, v, text::segment));
            let expires = field(ctx, map, path, "expires", |c, p, v| text_with(c, p, v, text::timestamp));
            Some(SshKey { key: key?, user, name, expires })
        }
        _ => {
            ctx.error(path, "expected an SSH public key string or an object {key, user?, name?, expires?}");
            None
        }
    }
}

/// `tags`: an object of string values; keys become URL path segments.
pub(super) fn tags(ctx: &mut Ctx, path: &str, value: &Value) -> Option<BTreeMap<String, String>> {
    let Some(map) = value.as_object() else {
        ctx.error(path, "expected an object of string values");
        return None;
    };
    let mut tags = BTreeMap::new();
    for (key, value) in map {
        let tag_path = join(path, key);
        let key_ok = ctx.check(&tag_path, text::tag_key(key)).is_some();
        if let Some(value) = text_with(ctx, &tag_path, value, text::tag_value) {
            if key_ok {
                tags.insert(key.clone(), value);
            }
        }
    }
    Some(tags)
}

/// `account`: `{id?, name?}`.
pub(super) fn account(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Account> {
    let map = object(ctx, path, value, ACCOUNT_FIELDS)?;
    Some(Account {
        id: field(ctx, map, path, "id", |c, p, v| text_with(c, p, v, text::text)),
        name: field(ctx, map, path, "name", |c, p, v| text_with(c, p, v, text::text)),
    })
}

/// `imds`: EC2 metadata options, defaults for whatever is absent.
pub(super) fn imds(ctx: &mut Ctx, path: &str, value: &Value) -> Option<ImdsSettings> {
    let map = object(ctx, path, value, IMDS_FIELDS)?;
    let defaults = ImdsSettings::default();
    let tokens = field(ctx, map, path, "tokens", |c, p, v| {
        choice(c, p, v, &[("optional", TokenMode::Optional), ("required", TokenMode::Required)])
    });
    let hop_limit = field(ctx, map, path, "hop_limit", |c, p, v| {
        let (min, max) = (ImdsSettings::MIN_HOP_LIMIT, ImdsSettings::MAX_HOP_LIMIT);
        integer(c, p, v, min.into(), max.into()).and_then(|n| u8::try_from(n).ok())
    });
    let endpoint = field(ctx, map, path, "endpoint", |c, p, v| {
        choice(c, p, v, &[("enabled", EndpointMode::Enabled), ("disabled", EndpointMode::Disabled)])
    });
    let tags =
        field(ctx, map, path, "tags", |c, p, v| choice(c, p, v, &[("off", TagsMode::Off), ("on", TagsMode::On)]));
    Some(ImdsSettings {
        tokens: tokens.unwrap_or(defaults.tokens),
        hop_limit: hop_limit.unwrap_or(defaults.hop_limit),
        endpoint: endpoint.unwrap_or(defaults.endpoint),
        tags: tags.or(defaults.tags),
    })
}

/// `dialects`: `{"enabled": [...], "<dialect>": {...}, ...}`.
pub(super) fn dialects(ctx: &mut Ctx, path: &str, value: &Value) -> Option<Dialects> {
    let Some(map) = value.as_object() else {
        ctx.error(path, "expected an object");
        return None;
    };
    let known = || format!("expected one of {}", Dialect::names());
    let mut dialects = Dialects::default();
    for (key, value) in map {
        let key_path = join(path, key);
        if value.is_null() {
            continue;
        }
        if key == "enabled" {
            let mut seen = HashMap::new();
            let names = list(ctx, &key_path, value, "dialect names", |c, p, v| {
                let name = string(c, p, v)?;
                let Some(dialect) = Dialect::from_name(name) else {
                    c.error(p, format!("unknown dialect {name:?}; {}", known()));
                    return None;
                };
                first_time(c, &mut seen, name.to_owned(), p).then_some(dialect)
            });
            dialects.enabled = Some(names);
        } else if Dialect::from_name(key).is_none() {
            ctx.error(&key_path, format!("unknown dialect; {} (or \"enabled\")", known()));
        } else if let Some(block) = opaque_object(ctx, &key_path, value) {
            super::overrides::check(ctx, &key_path, key, &block);
            dialects.overrides.insert(key.clone(), block);
        }
    }
    Some(dialects)
}
