//! The Hetzner Cloud dialect: `/hetzner/v1/metadata` (one YAML document),
//! `/hetzner/v1/metadata/<key>` (one key: scalars as text, lists and maps as YAML),
//! `/hetzner/v1/metadata/private-networks` (a YAML list) and `/hetzner/v1/userdata` (raw bytes;
//! 200 with an empty body when the record has none).
//!
//! The document (module `document`) holds `hostname`, `instance-id` (a YAML integer, rule R1:
//! the record id when decimal, else a 63-bit hash of it), `local-ipv4`, `public-ipv4`,
//! `public-keys`, `region`, `availability-zone`, `vendor_data` and `network-config` (netconfig
//! v1 from the record's network). cloud-init's Hetzner datasource requires the SMBIOS serial to
//! equal `instance-id`; the platform hint gives that serial.
//!
//! cloud-init base64-decodes user data that happens to be valid base64 (`maybe_b64decode`), so
//! user data that is base64 text reaches the guest decoded; imds serves the bytes verbatim.
//!
//! # Overrides
//!
//! `dialects.hetzner` is an object whose keys replace the document's keys, e.g.
//! `{"instance-id": 42, "public-ipv4": "203.0.113.7", "network-sysconfig": "…",
//! "private-networks": [{"ip": "10.0.0.2", "network_id": 1234, …}]}` (`null` removes a key;
//! `id` is an alias of `instance-id`). `private-networks` is served only at its own path.

use http::{header, HeaderValue, Method, StatusCode};
use serde_json::Value;

use crate::{Context, GuestRequest, GuestResponse, Subject};

mod document;
pub(crate) mod wire;

pub(crate) use document::instance_id;

/// Answers one Hetzner request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let instance = subject.instance;
    let path = request.path.trim_end_matches('/');
    if path == wire::USERDATA {
        let body = instance.user_data.as_ref().map(|data| data.as_bytes().to_vec()).unwrap_or_default();
        return ok(body);
    }
    let Some(rest) = path.strip_prefix(wire::METADATA) else {
        return not_found();
    };
    let mut doc = document::document(instance);
    let private_networks = doc.as_object_mut().and_then(|map| map.shift_remove(wire::PRIVATE_NETWORKS));
    if rest.is_empty() {
        return ok(crate::yaml::to_yaml(&doc));
    }
    let Some(key) = rest.strip_prefix('/').filter(|key| !key.contains('/')) else {
        return not_found();
    };
    let value = if key == wire::PRIVATE_NETWORKS { private_networks } else { doc.get(key).cloned() };
    match value {
        None | Some(Value::Null) => not_found(),
        Some(Value::String(s)) => ok(s),
        Some(value @ (Value::Number(_) | Value::Bool(_))) => ok(value.to_string()),
        Some(value) => ok(crate::yaml::to_yaml(&value)),
    }
}

fn ok(body: impl Into<bytes::Bytes>) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::TEXT, body)
}

/// Hetzner's 404.
fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT, wire::NOT_FOUND)
}
