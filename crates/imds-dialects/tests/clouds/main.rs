//! The dialects served at addresses of their own or under their own prefix (Alibaba, Tencent,
//! Oracle, AWS container credentials) through the public router: golden files for whole
//! documents, table cases for leaves, tokens and errors. Set `IMDS_UPDATE_GOLDEN=1` to rewrite
//! the golden files from the current output instead of comparing.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

#[path = "../support/fakes.rs"]
mod fakes;

mod alibaba;
mod container;
mod oracle;
mod tencent;

use std::path::PathBuf;

use http::{HeaderName, HeaderValue, Method};
use imds_dialects::{route, Context, Dialect, GuestRequest, GuestResponse, Subject};
use imds_model::{Instance, Limits};
use serde_json::{json, Value};

/// An ed25519 key with a comment.
const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";
/// An RSA key without a comment.
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";
/// The full fixture's user data.
const USER_DATA: &str = "#cloud-config\nruncmd: [\"echo hi\"]\n";

const ROLES: fakes::Roles = fakes::Roles {
    access_key_id: "STS.NUCLOUDKEY",
    secret_access_key: "cloud-secret",
    token: "cloud-session-token",
    lifetime: 3600,
};

fn parse(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).expect("fixture is valid")
}

/// Only an id and an address.
fn minimal() -> Instance {
    parse(json!({"id": "vm-minimal", "ipv4": ["192.0.2.20"]}))
}

/// The document of [`full`].
fn full_doc() -> Value {
    json!({
        "id": "i-bp67acfmxazb4p1",
        "hostname": "web-1",
        "domain": "example.internal",
        "ipv4": ["192.0.2.10"],
        "mac": ["02:00:00:00:00:0b"],
        "network": {
            "interfaces": [
                {
                    "mac": "02:00:00:00:00:0b",
                    "ipv4": [{"address": "203.0.113.10", "prefix": 24, "gateway": "203.0.113.1"},
                             {"address": "203.0.113.11", "prefix": 24}],
                    "ipv6": [{"address": "2001:db8::10", "prefix": 64, "gateway": "fe80::1"}],
                    "public_ipv4": "198.51.100.7"
                },
                {"mac": "02:00:00:00:00:0c", "role": "private", "ipv4": [{"address": "10.0.0.11", "prefix": 16}]}
            ],
            "nameservers": ["100.100.2.136", "100.100.2.138"]
        },
        "user_data": USER_DATA,
        "vendor_data": "#cloud-config\npackages: [htop]\n",
        "ssh_keys": [ED, {"key": RSA, "name": "deploy"}],
        "region": "cn-hangzhou",
        "zone": "cn-hangzhou-i",
        "instance_type": "ecs.g7.large",
        "image_id": "aliyun_3_x64_20G_alibase_20240819.vhd",
        "account": {"id": "1234567890123456"},
        "iam_role": "app-role"
    })
}

fn full() -> Instance {
    parse(full_doc())
}

/// `method target` on a listener bound to `dialect`, with `headers`.
fn send(
    instance: &Instance,
    dialect: Dialect,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
) -> GuestResponse {
    let mut request = GuestRequest::new(method, target).on_listener_of(dialect);
    for (name, value) in headers {
        request = request.with_header(HeaderName::try_from(*name).unwrap(), HeaderValue::try_from(*value).unwrap());
    }
    let mut context = Context::new(fakes::key(), fakes::NOW);
    context.credentials = &ROLES;
    context.signer = Some(&fakes::FakeSigner);
    context.nonce = 42;
    route(&Subject::new(instance), &request, &context)
}

/// The body as text.
fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).expect("utf-8 body")
}

/// The `Content-Type` header.
fn content_type(response: &GuestResponse) -> &str {
    response.header(&http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).expect("a content type")
}

/// Compares `actual` with `tests/data/<dialect>/<name>`, or rewrites it when
/// `IMDS_UPDATE_GOLDEN=1`.
#[track_caller]
fn golden(dialect: &str, name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(dialect).join(name);
    if std::env::var_os("IMDS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
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

/// One spot interruption of `action`, created at [`fakes::NOW`] to take effect 300 s later
/// (noticed from 180 s on, AWS's two minutes before).
fn spot(action: &str) -> imds_model::InstanceEvents {
    let spec = json!({"kind": "spot-interruption", "action": action, "in_seconds": 300});
    let event = imds_model::EventSpec::parse(&spec, fakes::NOW, &[])
        .expect("a valid event")
        .into_event(imds_model::EventId::from_random(7), fakes::NOW);
    imds_model::InstanceEvents { events: vec![event], retired_changes: 0 }
}

/// `GET target` on a listener bound to `dialect`, `seconds` after [`fakes::NOW`], for an
/// instance with `events`.
fn get_at(
    instance: &Instance,
    events: &imds_model::InstanceEvents,
    dialect: Dialect,
    target: &str,
    seconds: u64,
) -> GuestResponse {
    let request = GuestRequest::new(Method::GET, target).on_listener_of(dialect);
    let mut context = Context::new(fakes::key(), fakes::NOW + seconds);
    context.credentials = &ROLES;
    context.signer = Some(&fakes::FakeSigner);
    route(&Subject { events: Some(events), ..Subject::new(instance) }, &request, &context)
}
