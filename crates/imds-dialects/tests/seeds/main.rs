//! The DigitalOcean, Hetzner, NoCloud, Linode, Vultr, Scaleway, UpCloud and Exoscale dialects and the SMBIOS platform hints through the
//! public router: golden files for whole documents, table cases for leaves and errors, and one
//! instance read through all three dialects telling one story. Set `IMDS_UPDATE_GOLDEN=1` to
//! rewrite the golden files from the current output instead of comparing.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod consistency;
mod digitalocean;
mod exoscale;
mod hetzner;
mod linode;
mod nocloud;
mod platform;
mod scaleway;
mod upcloud;
mod vultr;

use std::path::PathBuf;

use http::Method;
use imds_dialects::token::TokenKey;
use imds_dialects::{route, Context, GuestRequest, GuestResponse, Settings, Subject};
use imds_model::{Instance, Limits};
use serde_json::{json, Value};

/// An ed25519 key with a comment.
const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";
/// An RSA key without a comment.
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";
/// The full fixture's user data.
const USER_DATA: &str = "#cloud-config\nruncmd: [\"echo hi\"]\n";

/// Parses a fixture document.
fn parse(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).expect("fixture is valid")
}

/// `doc` with `dialects.enabled` set to `names` (in that order).
fn enabling(mut doc: Value, names: &[&str]) -> Instance {
    doc["dialects"]["enabled"] = json!(names);
    parse(doc)
}

/// `request` through the router, with the fixed context.
fn send_request(instance: &Instance, request: &GuestRequest) -> GuestResponse {
    route(&Subject::new(instance), request, &context())
}

/// Only an id.
fn minimal() -> Instance {
    parse(json!({"id": "vm-minimal"}))
}

/// The document of [`full`].
fn full_doc() -> Value {
    json!({
        "id": "web-1-prod",
        "hostname": "web-1",
        "domain": "example.internal",
        "ipv4": ["192.0.2.10"],
        "mac": ["02:00:00:00:00:0b"],
        "network": {
            "interfaces": [
                {
                    "mac": "02:00:00:00:00:0b",
                    "ipv4": [{"address": "203.0.113.10", "prefix": 24, "gateway": "203.0.113.1"}],
                    "ipv6": [{"address": "2001:db8::10", "prefix": 64, "gateway": "fe80::1"}],
                    "floating_ipv4": "198.51.100.7",
                    "mtu": 1500
                },
                {
                    "mac": "02:00:00:00:00:0c",
                    "role": "private",
                    "ipv4": [{"address": "10.0.0.11", "prefix": 16}, {"address": "10.0.0.12", "prefix": 16}]
                }
            ],
            "nameservers": ["1.1.1.1", "2606:4700:4700::1111"],
            "search": ["example.internal"]
        },
        "user_data": USER_DATA,
        "vendor_data": "#cloud-config\npackages: [htop]\n",
        "ssh_keys": [ED, {"key": RSA, "name": "deploy"}],
        "region": "fra1",
        "zone": "fra1-a",
        "tags": {"env": "prod", "web": ""}
    })
}

/// Everything these dialects render.
fn full() -> Instance {
    parse(full_doc())
}

/// A fixed key and clock.
fn context() -> Context<'static> {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(|| TokenKey::from_bytes([7; 32]));
    Context::new(&KEY, 1_800_000_000)
}

/// `GET target` through the router.
fn get(instance: &Instance, target: &str) -> GuestResponse {
    send(instance, Method::GET, target, &Settings::DEFAULT)
}

/// `method target` through the router with `settings`.
fn send(instance: &Instance, method: Method, target: &str, settings: &Settings) -> GuestResponse {
    let mut context = context();
    context.settings = settings;
    route(&Subject::new(instance), &GuestRequest::new(method, target), &context)
}

/// The body as text.
fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).expect("utf-8 body")
}

/// The `Content-Type` header.
fn content_type(response: &GuestResponse) -> &str {
    response.header(&http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).expect("a content type")
}

/// `GET target`, which must answer 200, as text.
#[track_caller]
fn ok_body(instance: &Instance, target: &str) -> String {
    let response = get(instance, target);
    assert_eq!(response.status, 200, "{target}: {}", body(&response));
    body(&response).to_owned()
}

/// Compares `actual` with `tests/data/<dialect>/<name>`, or rewrites it when
/// `IMDS_UPDATE_GOLDEN=1`.
#[track_caller]
fn golden(dialect: &str, name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(dialect).join(name);
    if std::env::var_os("IMDS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with IMDS_UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(
        expected == actual,
        "{}: differs\n--- expected ---\n{expected}\n--- actual ---\n{actual}\n--- end ---",
        path.display()
    );
}
