//! The Vultr dialect: `/v1.json` (the instance as one JSON document, what cloud-init's Vultr
//! datasource reads) and the EC2-shaped `/latest/` tree (`meta-data/…`, `user-data`).
//!
//! `/latest/…` is also EC2's (and Exoscale's) path: an instance answers it as Vultr when its
//! `dialects.enabled` lists `vultr` before `ec2` and `exoscale` (docs/dialects.md, "Routing");
//! `/v1.json` is Vultr's alone.
//!
//! The document holds `hostname`, `instance-v2-id` (the instance UUID, rule R1; cloud-init
//! takes it as the instance id and compares it, on reboot, with the SMBIOS UUID the platform
//! hint gives), `instanceid` (the numeric id, rule R1), `region` (`{"regioncode": …}` from the
//! record's region), `public-keys`, `tags`, `user-data` and `vendor-data` (strings, `""` when
//! the record has none) and `interfaces` (rule R2, as cloud-init's Vultr helper reads them:
//! each with `mac`, `network-type`, `ipv4 {address, netmask, gateway, additional}` and
//! `ipv6 {address, network, prefix, additional}`; an interface without an IPv4 address after
//! the first is `unconfigured`).
//!
//! `/latest/meta-data/` serves `hostname`, `instance-id` (the same UUID), `local-hostname`,
//! `public-hostname`, `local-ipv4`, `public-ipv4` and `public-keys` (one key per line); the
//! listing rules are EC2's. `/latest/user-data` serves the record's bytes (404 when it has none).
//!
//! # Overrides
//!
//! `dialects.vultr` is an object whose keys replace the document's top-level keys (`null`
//! removes one), e.g. `{"region": {"regioncode": "EWR", "countrycode": "US"}}`.

use http::{header, HeaderValue, Method, StatusCode};
use imds_model::{Instance, InterfaceRole};
use serde_json::{json, Map, Value};

use crate::derive::{self, Nic};
use crate::text_tree::{Found, Node};
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub(crate) mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "vultr";

/// Answers one Vultr request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let instance = subject.instance;
    if request.path == wire::JSON_PATH {
        let body = serde_json::to_vec(&document(instance)).expect("a JSON value serialises");
        return GuestResponse::new(StatusCode::OK, wire::JSON, body);
    }
    let rest = match request.path.strip_prefix(wire::LATEST) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return not_found(),
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match tree(instance).find(&segments) {
        Some(Found::Listing(listing)) => GuestResponse::new(StatusCode::OK, wire::TEXT, listing),
        Some(Found::Leaf(body, content_type)) => GuestResponse::new(StatusCode::OK, content_type, body.clone()),
        Some(Found::Computed(never)) => match *never {},
        None => not_found(),
    }
}

fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT, wire::NOT_FOUND)
}

/// The instance's id, `instance-v2-id`: the instance UUID (rule R1) unless overridden.
pub(crate) fn instance_v2_id(instance: &Instance) -> String {
    derive::uuid_id(instance, DIALECT, "instance-v2-id")
}

/// The `/v1.json` document, overrides applied.
pub(crate) fn document(instance: &Instance) -> Value {
    let mut doc = Map::new();
    doc.insert("hostname".into(), json!(derive::hostname(instance)));
    doc.insert("instance-v2-id".into(), json!(crate::ids::instance_uuid(instance).to_string()));
    doc.insert("instanceid".into(), json!(derive::numeric_id(instance, DIALECT, "instanceid").to_string()));
    doc.insert("interfaces".into(), Value::Array(derive::nics(instance).iter().enumerate().map(interface).collect()));
    doc.insert("public-keys".into(), json!(derive::ssh_keys(instance)));
    doc.insert("region".into(), json!({"regioncode": instance.region.clone().unwrap_or_default()}));
    doc.insert("tags".into(), json!(derive::tag_list(instance)));
    doc.insert("user-data".into(), json!(derive::data_text(instance.user_data.as_ref())));
    doc.insert("vendor-data".into(), json!(derive::data_text(instance.vendor_data.as_ref())));
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        derive::merge_members(&mut doc, overrides);
    }
    Value::Object(doc)
}

/// One entry of `interfaces`.
fn interface((index, nic): (usize, &Nic)) -> Value {
    let mut out = Map::new();
    let first = nic.ipv4.first();
    let mut ipv4 = Map::new();
    if let Some(cidr) = first {
        ipv4.insert("address".into(), json!(cidr.address.to_string()));
        ipv4.insert("netmask".into(), json!(cidr.netmask().to_string()));
        if let Some(gateway) = cidr.gateway {
            ipv4.insert("gateway".into(), json!(gateway.to_string()));
        }
    } else if let Some(ip) = nic.bare_ipv4 {
        ipv4.insert("address".into(), json!(ip.to_string()));
    }
    let additional: Vec<Value> = nic
        .ipv4
        .iter()
        .skip(1)
        .map(|c| json!({"address": c.address.to_string(), "netmask": c.netmask().to_string()}))
        .collect();
    ipv4.insert("additional".into(), Value::Array(additional));
    let mut ipv6 = Map::new();
    if let Some(cidr) = nic.ipv6.first() {
        ipv6.insert("address".into(), json!(cidr.address.to_string()));
        ipv6.insert("network".into(), json!(cidr.network().to_string()));
        ipv6.insert("prefix".into(), json!(cidr.prefix.to_string()));
    } else if let Some(ip) = nic.bare_ipv6 {
        ipv6.insert("address".into(), json!(ip.to_string()));
    }
    let additional: Vec<Value> = nic
        .ipv6
        .iter()
        .skip(1)
        .map(|c| json!({"network": c.network().to_string(), "prefix": c.prefix.to_string()}))
        .collect();
    ipv6.insert("additional".into(), Value::Array(additional));
    out.insert("ipv4".into(), Value::Object(ipv4));
    out.insert("ipv6".into(), Value::Object(ipv6));
    if let Some(mac) = nic.mac {
        out.insert("mac".into(), json!(mac.to_string()));
    }
    if let Some(mtu) = nic.mtu {
        out.insert("mtu".into(), json!(mtu));
    }
    let kind = match nic.role {
        InterfaceRole::Public => "public",
        InterfaceRole::Private => "private",
    };
    out.insert("network-type".into(), json!(kind));
    if index > 0 && first.is_none() {
        out.insert("unconfigured".into(), json!(true));
    }
    Value::Object(out)
}

/// The `/latest/` tree (no leaf is computed per request).
fn tree(instance: &Instance) -> Node<std::convert::Infallible> {
    let hostname = derive::hostname(instance);
    let nics = derive::nics(instance);
    let mut meta = vec![
        ("hostname".to_owned(), Node::text(hostname.clone())),
        ("instance-id".to_owned(), Node::text(instance_v2_id(instance))),
        ("local-hostname".to_owned(), Node::text(hostname.clone())),
        ("public-hostname".to_owned(), Node::text(hostname)),
    ];
    let local = nics.iter().find(|nic| nic.role == InterfaceRole::Private).or(nics.first());
    if let Some(ip) = local.and_then(Nic::first_ipv4) {
        meta.push(("local-ipv4".to_owned(), Node::text(ip.to_string())));
    }
    if let Some(ip) = derive::public_ipv4(instance) {
        meta.push(("public-ipv4".to_owned(), Node::text(ip.to_string())));
    }
    let keys = derive::ssh_keys(instance);
    if !keys.is_empty() {
        meta.push(("public-keys".to_owned(), Node::text(keys.join("\n"))));
    }
    let mut root = vec![("meta-data".to_owned(), Node::Dir(meta))];
    if let Some(data) = &instance.user_data {
        let bytes = bytes::Bytes::copy_from_slice(data.as_bytes());
        root.push(("user-data".to_owned(), Node::Leaf(bytes, wire::OCTET_STREAM)));
    }
    Node::Dir(root)
}
