//! The instance records the EC2 tests render.

use imds_model::{Instance, Limits};
use serde_json::{json, Value};

/// An ed25519 key with a comment.
pub(crate) const ED: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";
/// An RSA key without a comment.
pub(crate) const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";
/// An ed25519 key whose comment contains a slash.
pub(crate) const SLASHED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops/ci";

/// Parses a fixture document.
pub(crate) fn parse(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).expect("fixture is valid")
}

/// Only an id.
pub(crate) fn minimal() -> Instance {
    parse(json!({"id": "i-minimal"}))
}

/// Everything EC2 renders: two interfaces, keys, tags on, a role, user data.
pub(crate) fn full() -> Instance {
    let mut instance = parse(full_doc());
    // A key EC2 refuses while tags are on: the admin API refuses it now, but a record stored
    // before that check may still hold one, and EC2's tree must still leave it out.
    instance.tags.insert("has space".into(), "x".into());
    instance
}

/// The document of [`full`], for variants.
pub(crate) fn full_doc() -> Value {
    json!({
        "id": "i-0123456789abcdef0",
        "hostname": "web-1",
        "domain": "example.internal",
        "ipv4": ["192.0.2.10"],
        "mac": ["02:00:00:00:00:0b"],
        "network": {"interfaces": [
            {
                "mac": "02:00:00:00:00:0b",
                "ipv4": [{"address": "10.0.0.11", "prefix": 24}, {"address": "10.0.0.12", "prefix": 24}],
                "ipv6": [{"address": "2001:db8:1::11", "prefix": 64}],
                "public_ipv4": "203.0.113.7"
            },
            {"mac": "02:00:00:00:00:0c", "ipv4": [{"address": "10.0.1.5", "prefix": 20}]}
        ]},
        "user_data": "#cloud-config\nruncmd: [true]\n",
        "ssh_keys": [ED, {"key": RSA, "name": "deploy"}, RSA, SLASHED],
        "region": "eu-west-1",
        "zone": "eu-west-1b",
        "instance_type": "m5.large",
        "image_id": "ami-0abcdef1234567890",
        "tags": {"Name": "web-1", "env": "prod", "empty": ""},
        "launch_index": 2,
        "account": {"id": "123456789012", "name": "acme"},
        "created_at": "2026-08-01T12:34:56.789Z",
        "iam_role": "app-role",
        "imds": {"tags": "on"}
    })
}

/// IPv6 only: one MAC and one IPv6 address, no IPv4 anywhere.
pub(crate) fn ipv6_only() -> Instance {
    parse(json!({"id": "i-v6only", "mac": ["02:00:00:00:00:66"], "ipv6": ["2001:db8::66"], "zone": "us-east-1c"}))
}

/// [`full`] with `dialects.ec2` overrides that replace, create and remove entries.
pub(crate) fn overridden() -> Instance {
    let mut doc = full_doc();
    doc["dialects"] = json!({"ec2": {
        "instance-life-cycle": "spot",
        "placement/availability-zone-id": "euw1-az2",
        "spot/termination-time": "2026-08-01T00:02:00Z",
        "block-device-mapping": "/dev/xvda",
        "public-keys/1": null,
        "services/domain": null,
        "services/partition": null
    }});
    parse(doc)
}

/// The fixtures every crawl covers.
pub(crate) fn all() -> Vec<(&'static str, Instance)> {
    vec![("minimal", minimal()), ("full", full()), ("ipv6-only", ipv6_only()), ("overridden", overridden())]
}
