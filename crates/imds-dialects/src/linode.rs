//! The Linode (Akamai) dialect: the metadata service cloud-init's Akamai datasource reads.
//!
//! `PUT /v1/token` with `Metadata-Token-Expiry-Seconds` (1 to 21600; 3600 when absent) answers
//! a session token (text, or `["<token>"]` with `Accept: application/json`); every other call
//! needs it in `Metadata-Token` (the early names `X-Metadata-Token…` are accepted too), else
//! 401. Tokens are the shared stateless ones ([`crate::token`]): valid for this instance only.
//!
//! - `GET /v1/instance`: `id` (a number, rule R1), `host_uuid`, `label`, `region`, `type`,
//!   `tags`, `specs`, `backups`, `image`, `account_euuid`;
//! - `GET /v1/network`: `interfaces`, `ipv4 {public, private, shared}` and
//!   `ipv6 {slaac, link_local, ranges, shared_ranges}` (CIDR strings, rule R2: the private
//!   interfaces' IPv4 addresses are `private`, the others `public`);
//! - `GET /v1/ssh-keys`: `{"users": {"<default_user or root>": [keys…]}}`;
//! - `GET /v1/user-data`: the record's bytes, base64-encoded (empty without user data).
//!
//! JSON with `Accept: application/json`, else text: `key: value` lines, nested keys joined with
//! `.`, lists as their items separated by spaces. Errors are JSON `{"errors": [{"reason": …}]}`.
//! The `label` is the record's `name`, else its host name (`hostname.domain`, as every dialect
//! tells it).
//!
//! # Overrides
//!
//! `dialects.linode` is an object whose keys replace `/v1/instance`'s top-level keys (`null`
//! removes one), e.g. `{"id": 123456, "type": "g6-standard-2", "specs": {…}}`; `id` follows
//! rule R1 and is the SMBIOS serial.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{header, HeaderValue, Method, StatusCode};
use imds_model::{Instance, InterfaceRole};
use serde_json::{json, Map, Value};

use crate::derive;
use crate::token::TokenError;
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub(crate) mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "linode";

/// The instance's numeric id (rule R1; `dialects.linode.id` wins): also its SMBIOS serial.
pub(crate) fn instance_id(instance: &Instance) -> u64 {
    derive::numeric_id(instance, DIALECT, "id")
}

/// Answers one Linode request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let instance = subject.instance;
    let json = wants_json(request);
    if request.path == wire::TOKEN {
        if request.method != Method::PUT {
            return method_not_allowed("PUT");
        }
        return token(instance, request, context, json);
    }
    let document = match request.path.as_str() {
        wire::INSTANCE => instance_document(instance),
        wire::NETWORK => network(instance),
        wire::SSH_KEYS => ssh_keys(instance),
        wire::USER_DATA => Value::Null,
        _ => return error(StatusCode::NOT_FOUND, "Not found"),
    };
    if request.method != Method::GET && request.method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let presented = header_value(request, &[wire::TOKEN_HEADER, wire::LEGACY_TOKEN_HEADER]);
    match presented.map(|token| context.tokens.verify(token, instance.id.as_str(), context.now)) {
        Some(Ok(_)) => {}
        Some(Err(_)) | None => return error(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
    if request.path == wire::USER_DATA {
        let encoded = instance.user_data.as_ref().map(|d| STANDARD.encode(d.as_bytes())).unwrap_or_default();
        return GuestResponse::new(StatusCode::OK, wire::TEXT, encoded);
    }
    if json {
        GuestResponse::new(StatusCode::OK, wire::JSON, document.to_string())
    } else {
        GuestResponse::new(StatusCode::OK, wire::TEXT, text(&document))
    }
}

/// `PUT /v1/token`.
fn token(instance: &Instance, request: &GuestRequest, context: &Context<'_>, json: bool) -> GuestResponse {
    let ttl = match header_value(request, &[wire::EXPIRY_HEADER, wire::LEGACY_EXPIRY_HEADER]) {
        None => wire::DEFAULT_EXPIRY,
        Some(value) => match value.trim().parse::<u64>() {
            Ok(ttl) => ttl,
            Err(_) => return error(StatusCode::BAD_REQUEST, "Invalid Metadata-Token-Expiry-Seconds"),
        },
    };
    match context.tokens.mint(instance.id.as_str(), context.now, ttl, context.nonce) {
        Ok(token) if json => GuestResponse::new(StatusCode::OK, wire::JSON, json!([token]).to_string()),
        Ok(token) => GuestResponse::new(StatusCode::OK, wire::TEXT, token),
        Err(TokenError::BadTtl | TokenError::Invalid | TokenError::Expired) => error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Metadata-Token-Expiry-Seconds must be between {} and {}",
                crate::token::MIN_TTL,
                crate::token::MAX_TTL
            ),
        ),
    }
}

fn header_value<'r>(request: &'r GuestRequest, names: &[&'static str]) -> Option<&'r str> {
    names.iter().find_map(|name| request.headers.get(*name)).and_then(|v| v.to_str().ok())
}

fn wants_json(request: &GuestRequest) -> bool {
    request
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().split(';').next() == Some("application/json")))
}

fn error(status: StatusCode, reason: &str) -> GuestResponse {
    GuestResponse::new(status, wire::JSON, wire::error(reason))
}

fn method_not_allowed(allow: &'static str) -> GuestResponse {
    error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        .with_header(header::ALLOW, HeaderValue::from_static(allow))
}

/// `/v1/instance`, overrides applied.
pub(crate) fn instance_document(instance: &Instance) -> Value {
    let mut doc = Map::new();
    doc.insert("id".into(), json!(instance_id(instance)));
    doc.insert("host_uuid".into(), json!(crate::ids::instance_uuid(instance).to_string()));
    let label = instance.name.clone().unwrap_or_else(|| derive::hostname(instance));
    doc.insert("label".into(), json!(label));
    doc.insert("region".into(), json!(instance.region.clone().unwrap_or_default()));
    doc.insert("type".into(), json!(instance.instance_type.clone().unwrap_or_default()));
    doc.insert("tags".into(), json!(derive::tag_list(instance)));
    doc.insert("specs".into(), json!({"vcpus": 0, "memory": 0, "gpus": 0, "transfer": 0, "disk": 0}));
    doc.insert("backups".into(), json!({"enabled": false, "status": null}));
    let image = instance.image_id.as_ref().map_or(Value::Null, |id| json!({"id": id, "label": id}));
    doc.insert("image".into(), image);
    let account = instance.account.as_ref().and_then(|a| a.id.clone()).unwrap_or_default();
    doc.insert("account_euuid".into(), json!(account));
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        // `id` is the numeric id rule's (R1), already applied.
        derive::merge_members(&mut doc, overrides.iter().filter(|(key, _)| *key != "id"));
    }
    Value::Object(doc)
}

/// `/v1/network`.
fn network(instance: &Instance) -> Value {
    let nics = derive::nics(instance);
    let mut public = Vec::new();
    let mut private = Vec::new();
    let mut slaac = None;
    let mut ranges = Vec::new();
    let interfaces: Vec<Value> = nics
        .iter()
        .enumerate()
        .map(|(index, nic)| {
            let addresses: Vec<String> = nic
                .ipv4
                .iter()
                .map(|c| format!("{}/{}", c.address, c.prefix))
                .chain(nic.bare_ipv4.map(|ip| format!("{ip}/32")))
                .collect();
            match nic.role {
                InterfaceRole::Public => public.extend(addresses),
                InterfaceRole::Private => private.extend(addresses),
            }
            for (i, cidr) in nic.ipv6.iter().enumerate() {
                if slaac.is_none() && i == 0 {
                    slaac = Some(format!("{}/128", cidr.address));
                } else {
                    ranges.push(format!("{}/{}", cidr.network(), cidr.prefix));
                }
            }
            if let (None, Some(ip)) = (&slaac, nic.bare_ipv6) {
                slaac = Some(format!("{ip}/128"));
            }
            let purpose = match nic.role {
                InterfaceRole::Public => "public",
                InterfaceRole::Private => "vlan",
            };
            json!({"label": nic.name.clone().unwrap_or_else(|| derive::nic_name(nic, index)),
                   "purpose": purpose, "ipam_address": null,
                   "mac": nic.mac.map(|m| m.to_string())})
        })
        .collect();
    json!({
        "interfaces": interfaces,
        "ipv4": {"public": public, "private": private, "shared": []},
        "ipv6": {"slaac": slaac, "link_local": null, "ranges": ranges, "shared_ranges": []},
    })
}

/// `/v1/ssh-keys`: the record's keys, for its default user (else `root`).
fn ssh_keys(instance: &Instance) -> Value {
    let user = instance.default_user.clone().unwrap_or_else(|| "root".to_owned());
    let mut users = Map::new();
    users.insert(user, json!(derive::ssh_keys(instance)));
    json!({"users": users})
}

/// The text form: `key: value` lines, nested keys joined with `.`, lists as space-separated
/// items; `null`s and empty objects are left out.
fn text(document: &Value) -> String {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&name, child, out);
                }
            }
            Value::Null => {}
            Value::Array(items) if items.iter().any(Value::is_object) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&format!("{prefix}.{i}"), item, out);
                }
            }
            Value::Array(items) => {
                out.push(format!("{prefix}: {}", items.iter().map(scalar).collect::<Vec<_>>().join(" ")))
            }
            scalar_value => out.push(format!("{prefix}: {}", scalar(scalar_value))),
        }
    }
    fn scalar(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    let mut out = Vec::new();
    walk("", document, &mut out);
    let mut text = out.join("\n");
    text.push('\n');
    text
}
