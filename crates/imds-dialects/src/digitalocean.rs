//! The DigitalOcean dialect: `/metadata/v1.json` (everything as one JSON document) and the text
//! tree under `/metadata/v1/`.
//!
//! The JSON document is built first (module `document`); the text tree is the same document
//! walked as directories (module `tree`), so the two never disagree. Types are DigitalOcean's:
//! `droplet_id` is a number (rule R1: the record id when decimal, else a 63-bit hash of it), IPv6
//! `cidr` a number, `floating_ip.ipv4.active` and `features.dhcp_enabled` booleans. The first
//! interface is `public` and the others `private` unless the record gives each a `role`.
//! `user-data` and `vendor-data` leaves serve the record's bytes verbatim; in the JSON document
//! they are strings (bytes that are not UTF-8 are replaced, as JSON cannot carry them).
//!
//! # Overrides
//!
//! `dialects.digitalocean` is an object whose keys replace the top-level keys of the JSON
//! document (and so of the tree): for example `{"droplet_id": 3164494, "auth_key": "…",
//! "features": {"dhcp_enabled": true}, "interfaces": {…}}`; a `null` value removes the key. `id`
//! is accepted as an alias of `droplet_id` (a number or a decimal string); the SMBIOS hint's
//! serial follows it.
//!
//! Methods other than `GET` and `HEAD` answer 405; unknown paths 404.

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};

use crate::{Context, GuestRequest, GuestResponse, Subject};

mod document;
mod tree;
pub(crate) mod wire;

pub(crate) use document::droplet_id;

/// Answers one DigitalOcean request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let instance = subject.instance;
    let doc = document::document(instance);
    if request.path == wire::JSON_PATH {
        let body = serde_json::to_vec(&doc).expect("a JSON value serialises");
        return GuestResponse::new(StatusCode::OK, wire::JSON, body);
    }
    let Some(rest) = request.path.strip_prefix(wire::TREE_ROOT) else {
        return not_found();
    };
    let rest = rest.trim_start_matches('/').trim_end_matches('/');
    let segments: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    match tree::lookup(instance, &doc, &segments) {
        Some(body) => GuestResponse::new(StatusCode::OK, wire::TEXT, body),
        None => not_found(),
    }
}

/// DigitalOcean's 404.
fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT, Bytes::from_static(wire::NOT_FOUND.as_bytes()))
}
