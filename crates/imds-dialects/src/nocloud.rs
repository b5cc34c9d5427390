//! The NoCloud seed over HTTP, under [`Settings::nocloud_prefix`](crate::Settings) (default
//! `/nocloud/`): what cloud-init reads when the kernel command line or the SMBIOS serial says
//! `ds=nocloud-net;s=http://169.254.169.254/nocloud/`.
//!
//! Files: `meta-data` (YAML: `instance-id` — the record id verbatim —, `local-hostname`,
//! `public-keys`, plus `region` and `availability-zone` when set), `user-data` (the record's
//! bytes; **200 with an empty body** when there are none, because cloud-init treats a non-2xx
//! `user-data` as fatal), `vendor-data` (404 when absent: optional for cloud-init) and
//! `network-config` (netplan-style v2 generated from the record's network; 404 when the record
//! has no interface with a MAC or an address). The prefix itself lists the files that exist.
//! The guest is identified by its source address like every dialect, so no path carries an id.
//!
//! # Overrides
//!
//! `dialects.nocloud` is an object: `network-config` (an object) replaces the generated
//! network configuration (`null` removes it); every other key is merged into `meta-data`
//! (e.g. `{"instance-id": "iid-web-1", "dsmode": "net"}`; `null` removes a key).

use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::derive;
use crate::{Context, GuestRequest, GuestResponse, Subject};
use imds_model::Instance;

mod network;
pub(crate) mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "nocloud";

/// Answers one NoCloud request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let instance = subject.instance;
    let prefix = context.settings.nocloud_prefix.trim_end_matches('/');
    let Some(file) = request.path.strip_prefix(prefix) else {
        return not_found();
    };
    let file = file.trim_start_matches('/');
    match file {
        "" => {
            let mut files = vec![wire::META_DATA, wire::USER_DATA];
            if instance.vendor_data.is_some() {
                files.push(wire::VENDOR_DATA);
            }
            if network_config(instance).is_some() {
                files.push(wire::NETWORK_CONFIG);
            }
            GuestResponse::new(StatusCode::OK, wire::TEXT, files.join("\n") + "\n")
        }
        wire::META_DATA => GuestResponse::new(StatusCode::OK, wire::TEXT, crate::yaml::to_yaml(&meta_data(instance))),
        wire::USER_DATA => GuestResponse::new(
            StatusCode::OK,
            wire::OCTET_STREAM,
            instance.user_data.as_ref().map(|d| d.as_bytes().to_vec()).unwrap_or_default(),
        ),
        wire::VENDOR_DATA => match &instance.vendor_data {
            Some(data) => GuestResponse::new(StatusCode::OK, wire::OCTET_STREAM, data.as_bytes().to_vec()),
            None => not_found(),
        },
        wire::NETWORK_CONFIG => match network_config(instance) {
            Some(config) => GuestResponse::new(StatusCode::OK, wire::TEXT, crate::yaml::to_yaml(&config)),
            None => not_found(),
        },
        _ => not_found(),
    }
}

/// The `meta-data` mapping, overrides applied.
pub(crate) fn meta_data(instance: &Instance) -> Value {
    let mut doc = Map::new();
    doc.insert("instance-id".into(), json!(instance.id.as_str()));
    doc.insert("local-hostname".into(), json!(derive::hostname(instance)));
    let keys = derive::ssh_keys(instance);
    if !keys.is_empty() {
        doc.insert("public-keys".into(), json!(keys));
    }
    if let Some(region) = &instance.region {
        doc.insert("region".into(), json!(region));
    }
    if let Some(zone) = &instance.zone {
        doc.insert("availability-zone".into(), json!(zone));
    }
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        derive::merge_members(&mut doc, overrides.iter().filter(|(key, _)| *key != wire::NETWORK_CONFIG_OVERRIDE));
    }
    Value::Object(doc)
}

/// `network-config`: the override's document, else one generated from the record.
pub(crate) fn network_config(instance: &Instance) -> Option<Value> {
    match derive::overrides(instance, DIALECT).and_then(|o| o.get(wire::NETWORK_CONFIG_OVERRIDE)) {
        Some(Value::Null) => None,
        Some(config) => Some(config.clone()),
        None => network::generate(instance),
    }
}

/// The 404 for paths outside the seed.
fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT, wire::NOT_FOUND)
}
