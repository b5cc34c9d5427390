//! The Alibaba Cloud ECS dialect: the EC2-shaped tree Alibaba serves at `100.100.100.200`
//! (a listener bound to `alibaba`, docs/dialects.md "Routing").
//!
//! `/` lists `2016-01-01` and `latest` (cloud-init's AliYun datasource reads `2016-01-01`);
//! under either: `meta-data/` (Alibaba's names: `hostname`, `instance-id`, `region-id`,
//! `zone-id`, `private-ipv4`, `public-keys/<n>/openssh-key`, `instance/instance-type`,
//! `network/interfaces/macs/<mac>/…`, `ram/security-credentials/<role>`, …), `user-data` (raw
//! bytes; 404 when absent), `vendor-data` and `dynamic/instance-identity/{document,pkcs7}`
//! (the PKCS#7 signature of the document, base64, with the deployment's signing key).
//!
//! `instance/spot/termination-time`: the time (`2015-01-05T18:02:00Z`, UTC) of the spot
//! interruption the instance's events show now ([`imds_model::InstanceEvents::spot_interruption`],
//! whatever its action: Alibaba has this one leaf for every reclaim), present and listed only
//! from its notice until it ends or is canceled. The tree is built per request, so it is never
//! stale.
//!
//! Security-hardening mode: `PUT /latest/api/token` with
//! `X-aliyun-ecs-metadata-token-ttl-seconds: 1..21600` mints a session token (the shared
//! [`crate::token`]); a request carrying `X-aliyun-ecs-metadata-token` must carry a valid one
//! (else 401), and the record's `imds.tokens: required` makes it mandatory, as Alibaba's
//! `HttpTokens: required` does.
//!
//! `ram/security-credentials/<role>` answers Alibaba's credentials JSON (`AccessKeyId`,
//! `AccessKeySecret`, `SecurityToken`, `Expiration`, `LastUpdated`, `Code: Success`) from the
//! instance's `iam_role` (rule R3), what the Alibaba Cloud credentials SDK's ECS RAM role
//! provider reads.
//!
//! # Overrides
//!
//! `dialects.alibaba` has EC2's form: `meta-data/` paths to strings (set) or `null` (removed),
//! e.g. `{"image-id": "aliyun_3_x64_20G_alibase_20240819.vhd", "vpc-id": "vpc-bp1…"}`.

use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use imds_model::{Instance, TokenMode};
use serde_json::{json, Value};

use crate::credentials::{format_time, CredentialState};
use crate::derive;
use crate::text_tree::{self, Found, Node};
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "alibaba";

/// What is computed per request.
#[derive(Debug, Clone, Copy)]
enum Computed {
    /// `ram/security-credentials/<role>`.
    Credentials,
    /// `dynamic/instance-identity/pkcs7`: the document signed (listed only with a signer).
    Pkcs7,
}

/// Checks a `dialects.alibaba` block (EC2's form).
pub fn check_overrides(block: &Value) -> Vec<(String, String)> {
    text_tree::check_overrides(block)
}

/// Answers one Alibaba request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let instance = subject.instance;
    let Some((version, segments)) = text_tree::split(&request.path) else {
        return gated(instance, request, context, || text(wire::VERSIONS.join("\n")));
    };
    if !wire::VERSIONS.contains(&version) {
        return not_found();
    }
    if segments.join("/") == wire::TOKEN_PATH {
        return token_request(instance, request, context, version);
    }
    gated(instance, request, context, || lookup(subject, &segments, context))
}

/// Applies the method check and the token gate, then answers with `answer`.
fn gated(
    instance: &Instance,
    request: &GuestRequest,
    context: &Context<'_>,
    answer: impl FnOnce() -> GuestResponse,
) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT_PLAIN, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    match request.headers.get(wire::TOKEN_HEADER) {
        Some(token) => {
            let valid = token
                .to_str()
                .ok()
                .is_some_and(|token| context.tokens.verify(token, instance.id.as_str(), context.now).is_ok());
            if !valid {
                return error(StatusCode::UNAUTHORIZED, "401 Unauthorized");
            }
        }
        None if instance.imds.tokens == TokenMode::Required => {
            return error(StatusCode::UNAUTHORIZED, "401 Unauthorized")
        }
        None => {}
    }
    answer()
}

/// `PUT /latest/api/token`.
fn token_request(instance: &Instance, request: &GuestRequest, context: &Context<'_>, version: &str) -> GuestResponse {
    if request.method != Method::PUT {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT_PLAIN, "")
            .with_header(header::ALLOW, HeaderValue::from_static("PUT"));
    }
    if version != wire::LATEST || request.headers.contains_key("x-forwarded-for") {
        return error(StatusCode::FORBIDDEN, "403 Forbidden");
    }
    let ttl =
        request.headers.get(wire::TTL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let minted = ttl.and_then(|ttl| context.tokens.mint(instance.id.as_str(), context.now, ttl, context.nonce).ok());
    match (minted, ttl) {
        (Some(token), Some(ttl)) => {
            text(token).with_header(HeaderName::from_static(wire::TTL_HEADER), HeaderValue::from(ttl))
        }
        _ => error(StatusCode::BAD_REQUEST, "400 Bad Request"),
    }
}

fn lookup(subject: &Subject<'_>, segments: &[&str], context: &Context<'_>) -> GuestResponse {
    let instance = subject.instance;
    // Built per request: what the events show changes with the clock, so nothing is kept.
    let termination = subject.events.and_then(|events| events.spot_interruption(context.now)).map(|(time, _)| time);
    let (tree, document) = tree(instance, context.signer.is_some(), termination);
    match tree.find(segments) {
        Some(Found::Listing(listing)) => text(listing),
        Some(Found::Leaf(body, content_type)) => GuestResponse::new(StatusCode::OK, content_type, body.clone()),
        Some(Found::Computed(Computed::Credentials)) => credentials(instance, context),
        Some(Found::Computed(Computed::Pkcs7)) => {
            use base64::Engine as _;
            match context.signer.and_then(|signer| signer.pkcs7(document.as_bytes())) {
                Some(der) => text(base64::engine::general_purpose::STANDARD.encode(der)),
                None => not_found(),
            }
        }
        None => not_found(),
    }
}

/// The tree under `/<version>/` (`signed`: a signing key is loaded; `termination`: the time of
/// the spot interruption the events show now) and the identity document.
fn tree(instance: &Instance, signed: bool, termination: Option<u64>) -> (Node<Computed>, String) {
    let mut meta_data = meta_data(instance, termination);
    if let Some(overrides) = instance.dialects.override_for(DIALECT) {
        meta_data.apply_overrides(overrides);
    }
    let document = identity_document(&meta_data);
    let mut identity = vec![("document", json_leaf(document.clone()))];
    if signed {
        identity.push(("pkcs7", Node::Computed(Computed::Pkcs7)));
    }
    let mut top =
        vec![("dynamic", Node::dir(vec![("instance-identity", Node::dir(identity))])), ("meta-data", meta_data)];
    if let Some(data) = &instance.user_data {
        top.push(("user-data", Node::Leaf(bytes::Bytes::copy_from_slice(data.as_bytes()), wire::TEXT_PLAIN)));
    }
    if let Some(data) = &instance.vendor_data {
        top.push(("vendor-data", Node::Leaf(bytes::Bytes::copy_from_slice(data.as_bytes()), wire::TEXT_PLAIN)));
    }
    (Node::dir(top), document)
}

/// `meta-data/`, in Alibaba's listing order.
fn meta_data(instance: &Instance, termination: Option<u64>) -> Node<Computed> {
    let nics = derive::nics(instance);
    let primary = nics.first();
    let mut entries: Vec<(&str, Node<Computed>)> = Vec::new();
    if let Some(net) = instance.network.as_ref().filter(|net| !net.nameservers.is_empty()) {
        let servers: Vec<String> = net.nameservers.iter().map(ToString::to_string).collect();
        entries.push(("dns-conf", Node::dir(vec![("nameservers", Node::text(servers.join("\n")))])));
    }
    if let Some(eip) = primary.and_then(|nic| nic.public_ipv4.or(nic.floating_ipv4)) {
        entries.push(("eipv4", Node::text(eip.to_string())));
    }
    entries.push(("hostname", Node::text(derive::hostname(instance))));
    if let Some(image) = &instance.image_id {
        entries.push(("image-id", Node::text(image.clone())));
    }
    entries.push(("instance-id", Node::text(instance.id.as_str())));
    let mut about =
        vec![("instance-name", Node::text(instance.name.clone().unwrap_or_else(|| derive::hostname(instance))))];
    if let Some(kind) = &instance.instance_type {
        about.push(("instance-type", Node::text(kind.clone())));
    }
    if let Some(time) = termination {
        let time = imds_model::time::format_rfc3339(time);
        about.push(("spot", Node::dir(vec![("termination-time", Node::text(time))])));
    }
    entries.push(("instance", Node::dir(about)));
    if let Some(mac) = primary.and_then(|nic| nic.mac) {
        entries.push(("mac", Node::text(mac.to_string())));
    }
    entries.push(("network-type", Node::text(wire::NETWORK_TYPE)));
    let macs: Vec<(String, Node<Computed>)> =
        nics.iter().filter_map(|nic| Some((nic.mac?.to_string(), interface(instance, nic)))).collect();
    if !macs.is_empty() {
        entries.push(("network", Node::dir(vec![("interfaces", Node::dir(vec![("macs", Node::Dir(macs))]))])));
    }
    if let Some(account) = instance.account.as_ref().and_then(|account| account.id.clone()) {
        entries.push(("owner-account-id", Node::text(account)));
    }
    if let Some(ip) = primary.and_then(derive::Nic::first_ipv4) {
        entries.push(("private-ipv4", Node::text(ip.to_string())));
    }
    if let Some(ip) = primary.and_then(|nic| nic.public_ipv4) {
        entries.push(("public-ipv4", Node::text(ip.to_string())));
    }
    let keys = derive::ssh_keys(instance);
    if !keys.is_empty() {
        let numbered: Vec<(String, Node<Computed>)> = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| (i.to_string(), Node::dir(vec![("openssh-key", Node::text(key))])))
            .collect();
        entries.push(("public-keys", Node::Dir(numbered)));
    }
    if let Some(role) = &instance.iam_role {
        let credentials = Node::Dir(vec![(role.as_str().to_owned(), Node::Computed(Computed::Credentials))]);
        entries.push(("ram", Node::dir(vec![("security-credentials", credentials)])));
    }
    if let Some(region) = &instance.region {
        entries.push(("region-id", Node::text(region.clone())));
    }
    entries.push(("serial-number", Node::text(crate::ids::instance_uuid(instance).to_string())));
    if let Some(zone) = &instance.zone {
        entries.push(("zone-id", Node::text(zone.clone())));
    }
    Node::dir(entries)
}

/// `network/interfaces/macs/<mac>/`.
fn interface(instance: &Instance, nic: &derive::Nic) -> Node<Computed> {
    let mac = nic.mac.map(|mac| mac.to_string()).unwrap_or_default();
    let id = crate::ids::fnv1a(&["alibaba-eni", instance.id.as_str(), &mac]);
    let mut entries = Vec::new();
    let first = nic.ipv4.first();
    if let Some(gateway) = first.and_then(|cidr| cidr.gateway) {
        entries.push(("gateway", Node::text(gateway.to_string())));
    }
    if !nic.ipv6.is_empty() {
        let ipv6s: Vec<String> = nic.ipv6.iter().map(|c| c.address.to_string()).collect();
        entries.push(("ipv6s", Node::text(json!(ipv6s).to_string())));
    }
    if let Some(cidr) = first {
        entries.push(("netmask", Node::text(netmask(cidr.prefix).to_string())));
    }
    entries.push(("network-interface-id", Node::text(format!("eni-{id:016x}"))));
    if let Some(ip) = nic.first_ipv4() {
        entries.push(("primary-ip-address", Node::text(ip.to_string())));
    }
    let ipv4s: Vec<String> =
        nic.ipv4.iter().map(|c| c.address.to_string()).chain(nic.bare_ipv4.map(|ip| ip.to_string())).collect();
    if !ipv4s.is_empty() {
        entries.push(("private-ipv4s", Node::text(json!(ipv4s).to_string())));
    }
    if let Some(cidr) = first {
        let network = u32::from(cidr.address) & u32::from(netmask(cidr.prefix));
        entries
            .push(("vswitch-cidr-block", Node::text(format!("{}/{}", std::net::Ipv4Addr::from(network), cidr.prefix))));
    }
    Node::dir(entries)
}

fn netmask(prefix: u8) -> std::net::Ipv4Addr {
    let bits = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    std::net::Ipv4Addr::from(bits)
}

/// `dynamic/instance-identity/document`, read from `meta-data/` (overrides applied).
fn identity_document(meta_data: &Node<Computed>) -> String {
    let leaf = |path: &str| -> Value {
        let segments: Vec<&str> = path.split('/').collect();
        match meta_data.find(&segments) {
            Some(Found::Leaf(body, _)) => Value::from(String::from_utf8_lossy(body).into_owned()),
            _ => Value::Null,
        }
    };
    json!({
        "zone-id": leaf("zone-id"),
        "serial-number": leaf("serial-number"),
        "instance-id": leaf("instance-id"),
        "region-id": leaf("region-id"),
        "private-ipv4": leaf("private-ipv4"),
        "owner-account-id": leaf("owner-account-id"),
        "mac": leaf("mac"),
        "image-id": leaf("image-id"),
        "instance-type": leaf("instance/instance-type"),
    })
    .to_string()
}

/// `ram/security-credentials/<role>`.
fn credentials(instance: &Instance, context: &Context<'_>) -> GuestResponse {
    let Some(role) = &instance.iam_role else { return not_found() };
    let body = match context.credentials.credentials_for(role.as_str(), instance.id.as_str(), context.now) {
        Some(CredentialState::Ready(issued)) => pretty(&[
            ("AccessKeyId", Value::from(issued.access_key_id)),
            ("AccessKeySecret", Value::from(issued.secret_access_key)),
            ("Expiration", Value::from(format_time(issued.expiration))),
            ("SecurityToken", Value::from(issued.token)),
            ("LastUpdated", Value::from(format_time(issued.last_updated))),
            ("Code", Value::from(wire::SUCCESS)),
        ]),
        Some(CredentialState::Unavailable { last_updated }) => pretty(&[
            ("Code", Value::from("Failed")),
            ("Message", Value::from(format!("cannot assume the RAM role {role}"))),
            ("LastUpdated", Value::from(format_time(last_updated))),
        ]),
        None => pretty(&[
            ("Code", Value::from("Failed")),
            ("Message", Value::from(format!("cannot assume the RAM role {role}"))),
            ("LastUpdated", Value::from(format_time(context.now))),
        ]),
    };
    GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, body)
}

/// A flat JSON object, two-space pretty with `" : "`, keys in the given order.
fn pretty(fields: &[(&str, Value)]) -> String {
    let lines: Vec<String> = fields.iter().map(|(key, value)| format!("  {} : {value}", Value::from(*key))).collect();
    format!("{{\n{}\n}}", lines.join(",\n"))
}

fn json_leaf(body: String) -> Node<Computed> {
    Node::Leaf(bytes::Bytes::from(body), wire::JSON)
}

fn text(body: impl Into<bytes::Bytes>) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, body)
}

fn error(status: StatusCode, title: &str) -> GuestResponse {
    GuestResponse::new(status, wire::TEXT_HTML, wire::error_page(title))
}

/// Alibaba's 404.
pub fn not_found() -> GuestResponse {
    error(StatusCode::NOT_FOUND, "404 Not Found")
}
