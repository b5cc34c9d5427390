//! The UpCloud dialect: `/metadata/v1.json`, the server as one JSON document, as cloud-init's
//! UpCloud datasource reads it.
//!
//! `/metadata/v1.json` is also DigitalOcean's path: an instance answers it as UpCloud when its
//! `dialects.enabled` lists `upcloud` before `digitalocean` (docs/dialects.md, "Routing").
//!
//! The document holds `cloud_name`, `instance_id` (the instance UUID, rule R1: cloud-init
//! compares it with the SMBIOS UUID, which the platform hint gives), `hostname`, `platform`,
//! `subplatform`, `public_keys`, `region` (the record's zone, else its region), `network`
//! (`interfaces` with UpCloud's `ip_addresses`, and `dns`), `storage`, `tags`, `user_data` and
//! `vendor_data` (strings; `""` when the record has none; bytes that are not UTF-8 are replaced,
//! as JSON cannot carry them). Interfaces follow rule R2; the first is `public`, the rest
//! `private` unless each has a `role`. An interface that uses DHCP marks its first IPv4 address
//! `dhcp: true`; a floating IPv4 is listed as UpCloud lists it (`floating: true`, a `/32`).
//!
//! # Overrides
//!
//! `dialects.upcloud` is an object whose keys replace the document's top-level keys (`null`
//! removes one), e.g. `{"instance_id": "00f2…", "storage": {"disks": […]}}`.
//!
//! Methods other than `GET` and `HEAD` answer 405.

use http::{header, HeaderValue, Method, StatusCode};
use imds_model::{Instance, InterfaceRole};
use serde_json::{json, Map, Value};

use crate::derive::{self, Nic};
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub(crate) mod wire;

/// The dialect's name in `dialects`.
const DIALECT: &str = "upcloud";

/// Answers one UpCloud request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, _context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    if request.path != wire::JSON_PATH {
        return GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT, wire::NOT_FOUND);
    }
    let body = serde_json::to_vec(&document(subject.instance)).expect("a JSON value serialises");
    GuestResponse::new(StatusCode::OK, wire::JSON, body)
}

/// The server's id: the instance UUID (rule R1), which is also its SMBIOS UUID.
pub(crate) fn instance_id(instance: &Instance) -> String {
    derive::uuid_id(instance, DIALECT, "instance_id")
}

/// The whole document, overrides applied.
pub(crate) fn document(instance: &Instance) -> Value {
    let mut doc = Map::new();
    doc.insert("cloud_name".into(), json!(wire::CLOUD_NAME));
    doc.insert("instance_id".into(), json!(crate::ids::instance_uuid(instance).to_string()));
    doc.insert("hostname".into(), json!(derive::hostname(instance)));
    doc.insert("platform".into(), json!(wire::PLATFORM));
    doc.insert("subplatform".into(), json!(wire::SUBPLATFORM));
    doc.insert("public_keys".into(), json!(derive::ssh_keys(instance)));
    if let Some(region) = instance.zone.as_ref().or(instance.region.as_ref()) {
        doc.insert("region".into(), json!(region));
    }
    doc.insert("network".into(), network(instance));
    doc.insert("storage".into(), json!({"disks": []}));
    doc.insert("tags".into(), json!(derive::tag_list(instance)));
    doc.insert("user_data".into(), json!(derive::data_text(instance.user_data.as_ref())));
    doc.insert("vendor_data".into(), json!(derive::data_text(instance.vendor_data.as_ref())));
    if let Some(overrides) = derive::overrides(instance, DIALECT) {
        derive::merge_members(&mut doc, overrides);
    }
    Value::Object(doc)
}

/// `network`: `{"interfaces": […], "dns": […]}`.
fn network(instance: &Instance) -> Value {
    let nameservers: Vec<String> = instance
        .network
        .as_ref()
        .map(|net| net.nameservers.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let uuid = crate::ids::instance_uuid(instance);
    let interfaces: Vec<Value> = derive::nics(instance)
        .iter()
        .enumerate()
        .map(|(index, nic)| {
            let network_id = uuid::Uuid::new_v5(&uuid, format!("upcloud-network/{index}").as_bytes());
            let mut out = Map::new();
            out.insert("index".into(), json!(index + 1));
            out.insert("ip_addresses".into(), Value::Array(addresses(nic, &nameservers)));
            if let Some(mac) = nic.mac {
                out.insert("mac".into(), json!(mac.to_string()));
            }
            out.insert("network_id".into(), json!(network_id.to_string()));
            let kind = match nic.role {
                InterfaceRole::Public => "public",
                InterfaceRole::Private => "private",
            };
            out.insert("type".into(), json!(kind));
            Value::Object(out)
        })
        .collect();
    json!({"interfaces": interfaces, "dns": nameservers})
}

/// One interface's `ip_addresses`.
fn addresses(nic: &Nic, nameservers: &[String]) -> Vec<Value> {
    let dns = |v6: bool| -> Vec<&String> { nameservers.iter().filter(|ns| ns.contains(':') == v6).collect() };
    let entry = |address: String, dhcp: bool, family: &str, floating: bool, gateway: String, network: String| {
        let v6 = family == "IPv6";
        json!({"address": address, "dhcp": dhcp, "dns": if floating { Vec::new() } else { dns(v6) },
               "family": family, "floating": floating, "gateway": gateway, "network": network})
    };
    let mut out = Vec::new();
    for (i, cidr) in nic.ipv4.iter().enumerate() {
        let gateway = cidr.gateway.map(|g| g.to_string()).unwrap_or_default();
        let network = format!("{}/{}", cidr.network(), cidr.prefix);
        out.push(entry(cidr.address.to_string(), nic.dhcp4 && i == 0, "IPv4", false, gateway, network));
    }
    if let (true, Some(ip)) = (nic.ipv4.is_empty(), nic.bare_ipv4) {
        out.push(entry(ip.to_string(), true, "IPv4", false, String::new(), format!("{ip}/32")));
    }
    for cidr in &nic.ipv6 {
        let gateway = cidr.gateway.map(|g| g.to_string()).unwrap_or_default();
        let network = format!("{}/{}", cidr.network(), cidr.prefix);
        out.push(entry(cidr.address.to_string(), false, "IPv6", false, gateway, network));
    }
    if let (true, Some(ip)) = (nic.ipv6.is_empty(), nic.bare_ipv6) {
        out.push(entry(ip.to_string(), true, "IPv6", false, String::new(), format!("{ip}/128")));
    }
    if let Some(ip) = nic.floating_ipv4 {
        out.push(entry(ip.to_string(), false, "IPv4", true, String::new(), format!("{ip}/32")));
    }
    out
}
