//! The Exoscale (CloudStack) dialect: the EC2-shaped metadata tree cloud-init's Exoscale and
//! CloudStack datasources crawl, and the password server they ask for the VM's password.
//!
//! # The metadata tree
//!
//! `GET /` lists `1.0` and `latest`; `/<version>/` lists `meta-data/` and `user-data`;
//! `/<version>/meta-data/` serves `availability-zone`, `cloud-identifier`, `instance-id` and
//! `vm-id` (both the instance UUID, rule R1), `local-hostname`, `public-hostname`,
//! `local-ipv4`, `public-ipv4`, `public-keys` (one key per line) and `service-offering` (the
//! record's `instance_type`); `user-data` serves the record's bytes (404 when it has none). No
//! session tokens: CloudStack has none, and the record's `imds` options gate EC2 alone (R5).
//!
//! These are EC2's paths too: an instance answers them as Exoscale when its
//! `dialects.enabled` lists `exoscale` before `ec2` (docs/dialects.md, "Routing").
//!
//! # The password server
//!
//! On the listener bound to it (port 8080 of the metadata address), every request is a
//! password-server request, whatever its path: `DomU_Request: send_my_password` answers the
//! password the operator set in `dialects.exoscale.password` until the guest acknowledges it
//! with `DomU_Request: saved_password`; from then on (and when there is no password) it
//! answers `saved_password`. Any other request answers `bad_request`. The acknowledgement is
//! a guest write ([`crate::GuestWrite`]): the guest state's `exoscale.saved` holds a keyed
//! digest of the acknowledged password, so an admin replace of the record keeps it, and a new
//! password set by the operator is served again.
//!
//! # Overrides
//!
//! `dialects.exoscale` is an object: `password` (a string: the password to serve) and
//! `meta-data/` paths with a string value (replacing or adding that leaf) or `null` (removing
//! it), e.g. `{"service-offering": "standard.medium", "cloud-identifier": null}`; the admin API
//! refuses other values ([`check_overrides`]).

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use imds_model::{Instance, InterfaceRole, StateWrite};
use serde_json::Value;

use crate::derive::{self, Nic};
use crate::text_tree::{Found, Node};
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub(crate) mod wire;

/// The dialect's name in `dialects` and in the guest state.
const DIALECT: &str = "exoscale";
/// The guest-state key of the acknowledged password's digest.
const SAVED: &str = "saved";
/// The override key of the password.
const PASSWORD: &str = "password";

/// Answers one metadata request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let path = request.path.trim_matches('/');
    if path.is_empty() {
        return GuestResponse::new(StatusCode::OK, wire::TEXT, wire::VERSIONS.join("\n"));
    }
    let (version, rest) = path.split_once('/').unwrap_or((path, ""));
    if !wire::VERSIONS.contains(&version) {
        return not_found(&request.path);
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match tree(subject.instance).find(&segments) {
        Some(Found::Listing(listing)) => GuestResponse::new(StatusCode::OK, wire::TEXT, listing),
        Some(Found::Leaf(body, content_type)) => GuestResponse::new(StatusCode::OK, content_type, body.clone()),
        Some(Found::Computed(never)) => match *never {},
        None => not_found(&request.path),
    }
}

/// Apache's 404 page.
pub(crate) fn not_found(path: &str) -> GuestResponse {
    let escaped = path.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    GuestResponse::new(
        StatusCode::NOT_FOUND,
        wire::TEXT_HTML,
        wire::error_page("404 Not Found", &format!("The requested URL {escaped} was not found on this server.")),
    )
}

/// Checks a `dialects.exoscale` block: `meta-data/` paths to strings or `null` (`password`, a
/// string, is one of them as far as the form goes). `(field, message)` per problem.
pub fn check_overrides(block: &Value) -> Vec<(String, String)> {
    crate::text_tree::check_overrides(block)
}

/// Answers one password-server request for the subject instance.
pub fn password_server(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let instance = subject.instance;
    let asked = request.headers.get(wire::DOMU_REQUEST).and_then(|v| v.to_str().ok()).map(str::trim);
    let password = derive::overrides(instance, DIALECT).and_then(|o| o.get(PASSWORD)).and_then(Value::as_str);
    let pending = password.filter(|p| !p.is_empty()).map(|p| (p, digest(instance, p, context)));
    let saved = subject.state.get(DIALECT, &[SAVED]).and_then(Value::as_str);
    let pending = pending.filter(|(_, d)| saved != Some(d.as_str()));
    match asked {
        Some(wire::SEND_MY_PASSWORD) => match pending {
            Some((password, _)) => text(password.to_owned()),
            None => text(wire::SAVED_PASSWORD),
        },
        Some(wire::SAVED_PASSWORD) => match pending {
            Some((_, digest)) => {
                let write = StateWrite {
                    dialect: DIALECT.to_owned(),
                    path: vec![SAVED.to_owned()],
                    value: Some(Value::String(digest)),
                    only_if_absent: false,
                };
                text(wire::SAVED_PASSWORD).with_write(write, text(wire::SAVED_PASSWORD))
            }
            None => text(wire::SAVED_PASSWORD),
        },
        _ => text(wire::BAD_REQUEST),
    }
}

fn text(body: impl Into<Bytes>) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::TEXT, body)
}

/// A keyed digest of `password` for `instance`: what the guest state keeps of an acknowledged
/// password (never the password itself).
fn digest(instance: &Instance, password: &str, context: &Context<'_>) -> String {
    let data = [instance.id.as_str().as_bytes(), &[0], password.as_bytes()].concat();
    context.tokens.derive("exoscale-saved-password", &data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The instance's id: the instance UUID (rule R1), also its SMBIOS UUID.
fn instance_id(instance: &Instance) -> String {
    crate::ids::instance_uuid(instance).to_string()
}

/// The tree under `/<version>/`, overrides applied (no leaf is computed per request).
fn tree(instance: &Instance) -> Node<std::convert::Infallible> {
    let hostname = derive::hostname(instance);
    let nics = derive::nics(instance);
    let mut meta: Vec<(String, Node<std::convert::Infallible>)> = Vec::new();
    let mut leaf = |name: &str, value: String| meta.push((name.to_owned(), Node::text(value)));
    if let Some(zone) = instance.zone.as_ref().or(instance.region.as_ref()) {
        leaf("availability-zone", zone.clone());
    }
    leaf("cloud-identifier", format!("CloudStack-{{{}}}", instance_id(instance)));
    leaf("instance-id", instance_id(instance));
    leaf("local-hostname", hostname.clone());
    let local = nics.iter().find(|nic| nic.role == InterfaceRole::Private).or(nics.first());
    if let Some(ip) = local.and_then(Nic::first_ipv4) {
        leaf("local-ipv4", ip.to_string());
    }
    leaf("public-hostname", hostname);
    if let Some(ip) = derive::public_ipv4(instance) {
        leaf("public-ipv4", ip.to_string());
    }
    let keys = derive::ssh_keys(instance);
    if !keys.is_empty() {
        leaf("public-keys", keys.join("\n"));
    }
    if let Some(kind) = &instance.instance_type {
        leaf("service-offering", kind.clone());
    }
    leaf("vm-id", instance_id(instance));
    let mut meta = Node::Dir(meta);
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        let leaves: serde_json::Map<String, Value> =
            overrides.iter().filter(|(key, _)| key.as_str() != PASSWORD).map(|(k, v)| (k.clone(), v.clone())).collect();
        meta.apply_overrides(&Value::Object(leaves));
    }
    let mut root = vec![("meta-data".to_owned(), meta)];
    if let Some(data) = &instance.user_data {
        root.push(("user-data".to_owned(), Node::Leaf(Bytes::copy_from_slice(data.as_bytes()), wire::OCTET_STREAM)));
    }
    Node::Dir(root)
}
