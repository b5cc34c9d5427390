//! The Tencent Cloud CVM dialect: the tree Tencent serves at `metadata.tencentyun.com`
//! (`169.254.0.23`), on a listener bound to `tencent` (docs/dialects.md "Routing").
//!
//! `/` lists `1.0`, `2017-09-19` and `latest`; under each: `meta-data/` (Tencent's names:
//! `instance-id`, `instance-name`, `uuid`, `local-ipv4`, `public-ipv4`, `mac` (upper case, as
//! Tencent writes it), `placement/{region,zone}`, `instance/{instance-type,image-id}`, `app-id`,
//! `network/interfaces/macs/<MAC>/…` with `local-ipv4s/<ip>/{gateway,local-ipv4,public-ipv4,
//! public-ipv4-mode,subnet-mask}`, `cam/security-credentials/<role>`) and `user-data` (raw bytes;
//! 404 when absent).
//!
//! `spot/termination-time`: the time of the spot interruption the instance's events show now
//! ([`imds_model::InstanceEvents::spot_interruption`], whatever its action), written as Tencent
//! does, `2018-08-18 12:05:33` at UTC+8 with no zone; present and listed only from its notice
//! until it ends or is canceled (404 otherwise, as for an instance that is not a spot
//! instance). The tree is built per request, so it is never stale.
//!
//! `cam/security-credentials/<role>` answers Tencent's field names (`TmpSecretId`,
//! `TmpSecretKey`, `Token`, `ExpiredTime` as Unix seconds, `Expiration`, `Code: Success`), what
//! the Tencent Cloud SDKs' CVM role credential providers read, from the instance's `iam_role`.
//!
//! # Overrides
//!
//! `dialects.tencent` has EC2's form: `meta-data/` paths to strings or `null`, e.g.
//! `{"instance-id": "ins-3g445roi", "app-id": "1250000000"}`.

use http::{header, HeaderValue, Method, StatusCode};
use imds_model::Instance;
use serde_json::{json, Value};

use crate::credentials::{format_time, CredentialState};
use crate::derive;
use crate::text_tree::{self, Found, Node};
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "tencent";

/// What is computed per request.
#[derive(Debug, Clone, Copy)]
enum Computed {
    /// `cam/security-credentials/<role>`.
    Credentials,
}

/// Checks a `dialects.tencent` block (EC2's form).
pub fn check_overrides(block: &Value) -> Vec<(String, String)> {
    text_tree::check_overrides(block)
}

/// Answers one Tencent request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT_PLAIN, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let instance = subject.instance;
    let Some((version, segments)) = text_tree::split(&request.path) else {
        return text(wire::VERSIONS.join("\n"));
    };
    if !wire::VERSIONS.contains(&version) {
        return not_found();
    }
    // Built per request: what the events show changes with the clock, so nothing is kept.
    let termination = subject.events.and_then(|events| events.spot_interruption(context.now)).map(|(time, _)| time);
    match tree(instance, termination).find(&segments) {
        Some(Found::Listing(listing)) => text(listing),
        Some(Found::Leaf(body, content_type)) => GuestResponse::new(StatusCode::OK, content_type, body.clone()),
        Some(Found::Computed(Computed::Credentials)) => credentials(instance, context),
        None => not_found(),
    }
}

/// The tree under `/<version>/` (`termination`: the time of the spot interruption the events
/// show now).
fn tree(instance: &Instance, termination: Option<u64>) -> Node<Computed> {
    let mut meta_data = meta_data(instance, termination);
    if let Some(overrides) = instance.dialects.override_for(DIALECT) {
        meta_data.apply_overrides(overrides);
    }
    let mut top = vec![("meta-data", meta_data)];
    if let Some(data) = &instance.user_data {
        top.push(("user-data", Node::Leaf(bytes::Bytes::copy_from_slice(data.as_bytes()), wire::TEXT_PLAIN)));
    }
    Node::dir(top)
}

/// A MAC as Tencent writes it: upper case.
fn mac_text(mac: imds_model::MacAddr) -> String {
    mac.to_string().to_ascii_uppercase()
}

/// `meta-data/`, in Tencent's listing order.
fn meta_data(instance: &Instance, termination: Option<u64>) -> Node<Computed> {
    let nics = derive::nics(instance);
    let primary = nics.first();
    let mut entries: Vec<(&str, Node<Computed>)> = Vec::new();
    if let Some(account) = instance.account.as_ref().and_then(|account| account.id.clone()) {
        entries.push(("app-id", Node::text(account)));
    }
    if let Some(role) = &instance.iam_role {
        let credentials = Node::Dir(vec![(role.as_str().to_owned(), Node::Computed(Computed::Credentials))]);
        entries.push(("cam", Node::dir(vec![("security-credentials", credentials)])));
    }
    let mut about = Vec::new();
    if let Some(image) = &instance.image_id {
        about.push(("image-id", Node::text(image.clone())));
    }
    if let Some(kind) = &instance.instance_type {
        about.push(("instance-type", Node::text(kind.clone())));
    }
    if !about.is_empty() {
        entries.push(("instance", Node::dir(about)));
    }
    entries.push(("instance-id", Node::text(instance.id.as_str())));
    entries.push(("instance-name", Node::text(instance.name.clone().unwrap_or_else(|| derive::hostname(instance)))));
    if let Some(ip) = primary.and_then(derive::Nic::first_ipv4) {
        entries.push(("local-ipv4", Node::text(ip.to_string())));
    }
    if let Some(mac) = primary.and_then(|nic| nic.mac) {
        entries.push(("mac", Node::text(mac_text(mac))));
    }
    let macs: Vec<(String, Node<Computed>)> =
        nics.iter().filter_map(|nic| Some((mac_text(nic.mac?), interface(nic)))).collect();
    if !macs.is_empty() {
        entries.push(("network", Node::dir(vec![("interfaces", Node::dir(vec![("macs", Node::Dir(macs))]))])));
    }
    let mut placement = Vec::new();
    if let Some(region) = &instance.region {
        placement.push(("region", Node::text(region.clone())));
    }
    if let Some(zone) = &instance.zone {
        placement.push(("zone", Node::text(zone.clone())));
    }
    if !placement.is_empty() {
        entries.push(("placement", Node::dir(placement)));
    }
    if let Some(ip) = primary.and_then(|nic| nic.public_ipv4) {
        entries.push(("public-ipv4", Node::text(ip.to_string())));
    }
    if let Some(time) = termination {
        let time = imds_model::time::format_utc8(time);
        entries.push(("spot", Node::dir(vec![("termination-time", Node::text(time))])));
    }
    entries.push(("uuid", Node::text(crate::ids::instance_uuid(instance).to_string())));
    Node::dir(entries)
}

/// `network/interfaces/macs/<MAC>/`.
fn interface(nic: &derive::Nic) -> Node<Computed> {
    let mut entries = Vec::new();
    let mut local: Vec<(String, Node<Computed>)> = Vec::new();
    for cidr in &nic.ipv4 {
        let mut leaves = Vec::new();
        if let Some(gateway) = cidr.gateway.or_else(|| nic.ipv4.first().and_then(|c| c.gateway)) {
            leaves.push(("gateway", Node::text(gateway.to_string())));
        }
        leaves.push(("local-ipv4", Node::text(cidr.address.to_string())));
        if let Some(public) = nic.public_ipv4.filter(|_| Some(cidr) == nic.ipv4.first()) {
            leaves.push(("public-ipv4", Node::text(public.to_string())));
            leaves.push(("public-ipv4-mode", Node::text("NAT")));
        }
        leaves.push(("subnet-mask", Node::text(netmask(cidr.prefix).to_string())));
        local.push((cidr.address.to_string(), Node::dir(leaves)));
    }
    if let (true, Some(ip)) = (local.is_empty(), nic.bare_ipv4) {
        local.push((ip.to_string(), Node::dir(vec![("local-ipv4", Node::text(ip.to_string()))])));
    }
    if !local.is_empty() {
        entries.push(("local-ipv4s", Node::Dir(local)));
    }
    if let Some(mac) = nic.mac {
        entries.push(("mac", Node::text(mac_text(mac))));
    }
    if let Some(ip) = nic.first_ipv4() {
        entries.push(("primary-local-ipv4", Node::text(ip.to_string())));
    }
    if let Some(public) = nic.public_ipv4 {
        entries.push(("public-ipv4s", Node::text(public.to_string())));
    }
    Node::dir(entries)
}

fn netmask(prefix: u8) -> std::net::Ipv4Addr {
    let bits = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    std::net::Ipv4Addr::from(bits)
}

/// `cam/security-credentials/<role>`.
fn credentials(instance: &Instance, context: &Context<'_>) -> GuestResponse {
    let Some(role) = &instance.iam_role else { return not_found() };
    let body = match context.credentials.credentials_for(role.as_str(), instance.id.as_str(), context.now) {
        Some(CredentialState::Ready(issued)) => json!({
            "TmpSecretId": issued.access_key_id,
            "TmpSecretKey": issued.secret_access_key,
            "ExpiredTime": issued.expiration,
            "Expiration": format_time(issued.expiration),
            "Token": issued.token,
            "Code": wire::SUCCESS,
        }),
        Some(CredentialState::Unavailable { .. }) | None => json!({
            "Code": "Failed",
            "Message": format!("cannot assume the CAM role {role}"),
        }),
    };
    let body = serde_json::to_string_pretty(&body).unwrap_or_default();
    GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, body)
}

fn text(body: impl Into<bytes::Bytes>) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, body)
}

/// Tencent's 404.
pub fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT_HTML, wire::error_page("404 Not Found"))
}
