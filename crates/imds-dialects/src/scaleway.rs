//! The Scaleway dialect, served only on a listener address bound to it (Scaleway's
//! `169.254.42.42`): Scaleway's paths are never chosen on the shared listener.
//!
//! - `GET /conf?format=json`: the server: `id` (the instance UUID, rule R1), `name`,
//!   `hostname`, `commercial_type` (the record's `instance_type`), `organization` and `project`
//!   (its account id), `tags`, `ssh_public_keys` (`[{key, fingerprint}]`, the fingerprint
//!   `SHA256:…` of the key), `public_ip` (`{address, dynamic, id}` or `null`), `private_ip`,
//!   `ipv6` (`{address, netmask, gateway}` or `null`: cloud-init reads it to configure IPv6),
//!   `zone` and `location`; `GET /conf` the same as shell variables (`KEY=value` lines,
//!   nested keys joined with `_`, lists as their length and then one entry per index).
//! - `GET /user_data` and `/vendor_data`: the keys present (`cloud-init` when the record has
//!   the data); `/user_data/cloud-init` and `/vendor_data/cloud-init` the record's bytes, 404
//!   when it has none (cloud-init takes that as "none").
//!
//! User and vendor data answer only a connection from a privileged source port (below 1024,
//! which only root may bind): any other gets 403, as on Scaleway, so an unprivileged process
//! in the guest cannot read them. (NAT that rewrites source ports defeats this.)
//!
//! # Overrides
//!
//! `dialects.scaleway` is an object whose keys replace the document's top-level keys (`null`
//! removes one), e.g. `{"commercial_type": "DEV1-S", "location": {…}}`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use imds_model::{Instance, InterfaceRole, UserData};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::derive::{self, Nic};
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub(crate) mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "scaleway";

/// Answers one Scaleway request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let instance = subject.instance;
    let json = crate::query::pairs(request.query.as_deref()).any(|(k, v)| k == "format" && v == "json");
    let path = request.path.trim_end_matches('/');
    if path == wire::CONF {
        let doc = document(instance);
        return if json {
            GuestResponse::new(StatusCode::OK, wire::JSON, doc.to_string())
        } else {
            GuestResponse::new(StatusCode::OK, wire::TEXT, shell(&doc))
        };
    }
    let (data, rest) = match (path.strip_prefix(wire::USER_DATA), path.strip_prefix(wire::VENDOR_DATA)) {
        (Some(rest), _) => (instance.user_data.as_ref(), rest),
        (_, Some(rest)) => (instance.vendor_data.as_ref(), rest),
        _ => return not_found(),
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return not_found();
    }
    if request.source_port.is_none_or(|port| port >= wire::PRIVILEGED_PORTS) {
        return GuestResponse::new(StatusCode::FORBIDDEN, wire::TEXT, "Forbidden\n");
    }
    data_answer(data, rest.trim_start_matches('/'), json)
}

/// `/user_data…` or `/vendor_data…` for a privileged caller.
fn data_answer(data: Option<&UserData>, key: &str, json: bool) -> GuestResponse {
    match (key, data) {
        ("", _) => {
            let keys: Vec<&str> = data.map(|_| wire::CLOUD_INIT).into_iter().collect();
            if json {
                GuestResponse::new(StatusCode::OK, wire::JSON, json!({"user_data": keys}).to_string())
            } else {
                let mut doc = Map::new();
                doc.insert("user_data".into(), json!(keys));
                GuestResponse::new(StatusCode::OK, wire::TEXT, shell(&Value::Object(doc)))
            }
        }
        (wire::CLOUD_INIT, Some(data)) => {
            GuestResponse::new(StatusCode::OK, wire::OCTET_STREAM, Bytes::copy_from_slice(data.as_bytes()))
        }
        _ => not_found(),
    }
}

fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT, "Not Found\n")
}

/// The `/conf` document, overrides applied.
pub(crate) fn document(instance: &Instance) -> Value {
    let nics = derive::nics(instance);
    let mut doc = Map::new();
    let id = crate::ids::instance_uuid(instance).to_string();
    doc.insert("id".into(), json!(id));
    doc.insert("name".into(), json!(instance.name.clone().unwrap_or_else(|| derive::hostname(instance))));
    doc.insert("hostname".into(), json!(derive::hostname(instance)));
    doc.insert("commercial_type".into(), json!(instance.instance_type.clone().unwrap_or_default()));
    let account = instance.account.as_ref().and_then(|a| a.id.clone()).unwrap_or_default();
    doc.insert("organization".into(), json!(account));
    doc.insert("project".into(), json!(account));
    doc.insert("tags".into(), json!(derive::tag_list(instance)));
    let keys: Vec<Value> = derive::ssh_keys(instance)
        .into_iter()
        .map(|key| json!({"fingerprint": fingerprint(&key), "key": key}))
        .collect();
    doc.insert("ssh_public_keys".into(), Value::Array(keys));
    let public = derive::public_ipv4(instance);
    doc.insert(
        "public_ip".into(),
        public.map_or(Value::Null, |ip| json!({"address": ip.to_string(), "dynamic": false, "id": id})),
    );
    let private = nics.iter().find(|nic| nic.role == InterfaceRole::Private).and_then(Nic::first_ipv4);
    doc.insert("private_ip".into(), private.map_or(Value::Null, |ip| json!(ip.to_string())));
    let ipv6 = nics.first().and_then(|nic| nic.ipv6.first()).map_or(Value::Null, |cidr| {
        json!({"address": cidr.address.to_string(), "netmask": cidr.prefix.to_string(),
               "gateway": cidr.gateway.map(|g| g.to_string()).unwrap_or_default()})
    });
    doc.insert("ipv6".into(), ipv6);
    let zone = instance.zone.clone().or_else(|| instance.region.clone()).unwrap_or_default();
    doc.insert("location".into(), json!({"zone_id": zone}));
    doc.insert("zone".into(), json!(zone));
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        derive::merge_members(&mut doc, overrides);
    }
    Value::Object(doc)
}

/// `SHA256:<base64>` of a key line's decoded blob, with its comment, as `ssh-keygen -l`
/// prints it; the line itself when it does not decode.
fn fingerprint(line: &str) -> String {
    let mut parts = line.split_whitespace();
    let (kind, blob) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let comment = parts.collect::<Vec<_>>().join(" ");
    match STANDARD.decode(blob) {
        Ok(bytes) => {
            let digest = STANDARD_NO_PAD.encode(Sha256::digest(bytes));
            let kind = kind.strip_prefix("ssh-").unwrap_or(kind).to_ascii_uppercase();
            format!("SHA256:{digest} {comment} ({kind})").replace("  ", " ")
        }
        Err(_) => line.to_owned(),
    }
}

/// The shell-variable form: `KEY=value` lines, keys upper-cased and joined with `_`, lists as
/// `KEY=<length>` and then `KEY_<i>…`; values single-quoted when they need it.
fn shell(doc: &Value) -> String {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let name = key.to_ascii_uppercase().replace('-', "_");
                    let name = if prefix.is_empty() { name } else { format!("{prefix}_{name}") };
                    walk(&name, child, out);
                }
            }
            Value::Array(items) => {
                out.push(format!("{prefix}={}", items.len()));
                for (i, item) in items.iter().enumerate() {
                    walk(&format!("{prefix}_{i}"), item, out);
                }
            }
            Value::Null => out.push(format!("{prefix}=")),
            Value::String(s) => out.push(format!("{prefix}={}", quote(s))),
            other => out.push(format!("{prefix}={other}")),
        }
    }
    fn quote(s: &str) -> String {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:@+,".contains(&b)) {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    }
    let mut out = Vec::new();
    walk("", doc, &mut out);
    let mut text = out.join("\n");
    text.push('\n');
    text
}
