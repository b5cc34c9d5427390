//! The AWS EC2 instance metadata dialect (IMDS).
//!
//! This is the skeleton the foundation needs to prove the guest path end to end:
//! `/latest/meta-data/` with `instance-id`, `hostname`, `local-ipv4`, and `/latest/user-data`
//! as raw bytes. Listings follow EC2's wire rules (newline-separated, no trailing newline,
//! `text/plain`); anything else is EC2's exact 404 page. The full tree, dated versions and
//! IMDSv2 tokens belong to the EC2 dialect proper.

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use imds_model::Instance;

use crate::{GuestRequest, GuestResponse};

pub mod wire;

/// Answers one EC2 request for `instance`.
pub fn respond(instance: &Instance, request: &GuestRequest) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT_PLAIN, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let path = request.path.trim_end_matches('/');
    let found = match path {
        "" => Some(text("latest")),
        "/latest" => Some(text(version_listing(instance))),
        "/latest/meta-data" => Some(text(meta_data_listing(instance))),
        "/latest/user-data" => instance.user_data.as_ref().map(|data| {
            GuestResponse::new(StatusCode::OK, wire::OCTET_STREAM, Bytes::copy_from_slice(data.as_bytes()))
        }),
        _ => path.strip_prefix("/latest/meta-data/").and_then(|leaf| meta_data_leaf(instance, leaf)).map(text),
    };
    found.unwrap_or_else(not_found)
}

/// EC2's 404 response: `text/html` with the exact page real instances send.
pub fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT_HTML, wire::NOT_FOUND_PAGE)
}

fn text(body: impl Into<Bytes>) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, body)
}

fn version_listing(instance: &Instance) -> String {
    let mut entries = vec!["dynamic", "meta-data"];
    if instance.user_data.is_some() {
        entries.push("user-data");
    }
    entries.join("\n")
}

fn meta_data_listing(instance: &Instance) -> String {
    META_DATA_LEAVES
        .iter()
        .filter(|leaf| meta_data_leaf(instance, leaf).is_some())
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The leaves this skeleton serves, in EC2's (alphabetical) listing order.
const META_DATA_LEAVES: [&str; 4] = ["hostname", "instance-id", "local-hostname", "local-ipv4"];

fn meta_data_leaf(instance: &Instance, leaf: &str) -> Option<String> {
    match leaf {
        "instance-id" => Some(instance.id.as_str().to_owned()),
        "hostname" | "local-hostname" => Some(hostname(instance)),
        "local-ipv4" => instance.primary_ipv4().map(|ip| ip.to_string()),
        _ => None,
    }
}

/// The instance's private DNS name: its hostname (with its domain when it has one), else EC2's
/// IP-based form `ip-10-0-0-1.<region>.compute.internal` (`ec2.internal` in us-east-1).
fn hostname(instance: &Instance) -> String {
    if let Some(host) = &instance.hostname {
        return match &instance.domain {
            Some(domain) if !host.contains('.') => format!("{host}.{domain}"),
            _ => host.clone(),
        };
    }
    let Some(ip) = instance.primary_ipv4() else {
        return instance.id.as_str().to_owned();
    };
    let ip_part = format!("ip-{}", ip.to_string().replace('.', "-"));
    match instance.region.as_deref() {
        None | Some("us-east-1") => format!("{ip_part}.ec2.internal"),
        Some(region) => format!("{ip_part}.{region}.compute.internal"),
    }
}

#[cfg(test)]
mod tests;
