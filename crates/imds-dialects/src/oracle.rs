//! The Oracle Cloud Infrastructure (OCI) dialect: `/opc/v2/` (and the legacy `/opc/v1/`) on the
//! metadata address, what cloud-init's Oracle datasource and OCI's agents read.
//!
//! - `/opc/v2/instance/`: the instance document (`id`, `displayName`, `hostname`,
//!   `availabilityDomain`, `ociAdName`, `faultDomain`, `compartmentId`, `region`,
//!   `canonicalRegionName`, `image`, `shape`, `state`, `timeCreated`, `metadata`
//!   {`ssh_authorized_keys` (newline-separated), `user_data` (base64)}, `freeformTags`);
//! - `/opc/v2/vnics/`: one entry per interface (`vnicId`, `privateIp`, `vlanTag`, `macAddr`,
//!   `virtualRouterIp`, `subnetCidrBlock`, `nicIndex`, and the IPv6 fields when it has IPv6);
//! - any member by path (`/opc/v2/instance/metadata/user_data`, `/opc/v2/vnics/0/privateIp`):
//!   strings as text, everything else as JSON.
//!
//! v2 requires `Authorization: Bearer Oracle` (401 otherwise); v1 needs no header and answers
//! the same, unless the record's `dialects.oracle.v1` is `false` (then 404, as OCI's "legacy
//! endpoints disabled"). A request carrying `Forwarded`, `X-Forwarded-For`,
//! `X-Forwarded-Host` or `X-Real-IP` is refused (403), as OCI refuses them.
//!
//! # Overrides
//!
//! `dialects.oracle`: `v1` (boolean), `metadata` (an object merged into the document's
//! `metadata`), and any other key replaces that member of the instance document (`null`
//! removes it), e.g. `{"compartmentId": "ocid1.compartment.oc1..aaaa", "shape":
//! "VM.Standard.E4.Flex", "v1": false}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{header, HeaderValue, Method, StatusCode};
use imds_model::Instance;
use serde_json::{json, Map, Value};

use crate::derive;
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "oracle";

/// Checks a `dialects.oracle` block; `(field, message)` per problem.
pub fn check_overrides(block: &Value) -> Vec<(String, String)> {
    let Some(map) = block.as_object() else {
        return vec![(String::new(), "must be an object".to_owned())];
    };
    let mut problems = Vec::new();
    if map.get("v1").is_some_and(|v| !v.is_boolean()) {
        problems.push(("v1".to_owned(), "must be true or false".to_owned()));
    }
    if map.get("metadata").is_some_and(|v| !v.is_object()) {
        problems.push(("metadata".to_owned(), "must be an object".to_owned()));
    }
    problems
}

/// Answers one OCI request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    let instance = subject.instance;
    if wire::FORWARDING_HEADERS.iter().any(|name| request.headers.contains_key(*name)) {
        return error(StatusCode::FORBIDDEN, "Forbidden", "requests with forwarding headers are refused");
    }
    if request.method != Method::GET && request.method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "only GET is served")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let rest = request.path.strip_prefix(wire::PREFIX).unwrap_or(&request.path);
    let mut segments = rest.split('/').filter(|s| !s.is_empty());
    match segments.next() {
        Some("v2") => {
            let authorized =
                request.headers.get(header::AUTHORIZATION).is_some_and(|value| value == wire::AUTHORIZATION);
            if !authorized {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "NotAuthenticated",
                    "the Authorization header must be \"Bearer Oracle\"",
                );
            }
        }
        Some("v1") if v1_enabled(instance) => {}
        _ => return not_found(),
    }
    let segments: Vec<&str> = segments.collect();
    let Some((category, path)) = segments.split_first() else {
        return not_found();
    };
    let root = match *category {
        "instance" => document(instance),
        "vnics" => vnics(instance),
        _ => return not_found(),
    };
    let mut value = &root;
    for segment in path {
        let next = match value {
            Value::Object(map) => map.get(*segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(next) => value = next,
            None => return not_found(),
        }
    }
    match value {
        Value::String(text) if !path.is_empty() => GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, text.clone()),
        value => {
            GuestResponse::new(StatusCode::OK, wire::JSON, serde_json::to_string_pretty(value).unwrap_or_default())
        }
    }
}

/// Whether `/opc/v1/` answers (`dialects.oracle.v1`, default true).
fn v1_enabled(instance: &Instance) -> bool {
    derive::overrides(instance, DIALECT).and_then(|block| block.get("v1")).and_then(Value::as_bool).unwrap_or(true)
}

/// The instance document, overrides applied.
fn document(instance: &Instance) -> Value {
    let mut doc = Map::new();
    if let Some(zone) = &instance.zone {
        doc.insert("availabilityDomain".into(), json!(zone));
    }
    doc.insert("faultDomain".into(), json!(wire::FAULT_DOMAIN));
    if let Some(account) = instance.account.as_ref().and_then(|a| a.id.clone()) {
        doc.insert("compartmentId".into(), json!(account));
    }
    let hostname = derive::hostname(instance);
    doc.insert("displayName".into(), json!(instance.name.clone().unwrap_or_else(|| hostname.clone())));
    doc.insert("hostname".into(), json!(hostname));
    doc.insert("id".into(), json!(instance.id.as_str()));
    if let Some(image) = &instance.image_id {
        doc.insert("image".into(), json!(image));
    }
    let mut metadata = Map::new();
    let keys = derive::ssh_keys(instance);
    if !keys.is_empty() {
        metadata.insert("ssh_authorized_keys".into(), json!(keys.join("\n")));
    }
    if let Some(data) = &instance.user_data {
        metadata.insert("user_data".into(), json!(STANDARD.encode(data.as_bytes())));
    }
    let overrides = derive::overrides(instance, DIALECT);
    if let Some(extra) = overrides.and_then(|block| block.get("metadata")).and_then(Value::as_object) {
        for (key, value) in extra {
            metadata.insert(key.clone(), value.clone());
        }
    }
    doc.insert("metadata".into(), Value::Object(metadata));
    if let Some(region) = &instance.region {
        doc.insert("region".into(), json!(region));
        doc.insert("canonicalRegionName".into(), json!(region));
    }
    if let Some(zone) = &instance.zone {
        doc.insert("ociAdName".into(), json!(zone));
    }
    if let Some(shape) = &instance.instance_type {
        doc.insert("shape".into(), json!(shape));
    }
    doc.insert("state".into(), json!(wire::RUNNING));
    if let Some(millis) = instance.created_at.as_deref().and_then(imds_model::time::parse_rfc3339).map(|s| s * 1000) {
        doc.insert("timeCreated".into(), json!(millis));
    }
    if !instance.tags.is_empty() {
        doc.insert("freeformTags".into(), json!(instance.tags));
    }
    // `v1` is a setting and `metadata` was merged above: neither is a document member.
    derive::merge_members(
        &mut doc,
        overrides.into_iter().flatten().filter(|(key, _)| !matches!(key.as_str(), "v1" | "metadata")),
    );
    Value::Object(doc)
}

/// `/opc/v2/vnics/`.
fn vnics(instance: &Instance) -> Value {
    let entries: Vec<Value> = derive::nics(instance)
        .iter()
        .enumerate()
        .map(|(index, nic)| {
            let mac = nic.mac.map(|mac| mac.to_string()).unwrap_or_default();
            let id = crate::ids::fnv1a(&["oracle-vnic", instance.id.as_str(), &mac]);
            let mut vnic = Map::new();
            vnic.insert("vnicId".into(), json!(format!("ocid1.vnic.oc1..{id:016x}")));
            if let Some(ip) = nic.first_ipv4() {
                vnic.insert("privateIp".into(), json!(ip.to_string()));
            }
            vnic.insert("vlanTag".into(), json!(0));
            if nic.mac.is_some() {
                vnic.insert("macAddr".into(), json!(mac));
            }
            if let Some(cidr) = nic.ipv4.first() {
                if let Some(gateway) = cidr.gateway {
                    vnic.insert("virtualRouterIp".into(), json!(gateway.to_string()));
                }
                let mask = if cidr.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(cidr.prefix.min(32))) };
                let network = std::net::Ipv4Addr::from(u32::from(cidr.address) & mask);
                vnic.insert("subnetCidrBlock".into(), json!(format!("{network}/{}", cidr.prefix)));
            }
            vnic.insert("nicIndex".into(), json!(index));
            if !nic.ipv6.is_empty() {
                let addresses: Vec<String> = nic.ipv6.iter().map(|c| c.address.to_string()).collect();
                vnic.insert("ipv6Addresses".into(), json!(addresses));
                if let Some(gateway) = nic.ipv6.iter().find_map(|c| c.gateway) {
                    vnic.insert("ipv6VirtualRouterIp".into(), json!(gateway.to_string()));
                }
            }
            Value::Object(vnic)
        })
        .collect();
    Value::Array(entries)
}

/// An error in OCI's JSON shape.
pub fn error(status: StatusCode, code: &str, message: &str) -> GuestResponse {
    GuestResponse::new(status, wire::JSON, json!({"code": code, "message": message}).to_string())
}

/// OCI's 404.
pub fn not_found() -> GuestResponse {
    error(StatusCode::NOT_FOUND, "NotFound", "Not Found")
}
