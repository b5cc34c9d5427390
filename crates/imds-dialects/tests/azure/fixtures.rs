//! The instance records the Azure tests render.

use imds_model::{Instance, Limits};
use serde_json::{json, Value};

/// An ed25519 key with a comment.
pub(crate) const ED: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";
/// An RSA key without a comment.
pub(crate) const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";

/// Parses a fixture document.
pub(crate) fn parse(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).expect("fixture is valid")
}

/// Only an id.
pub(crate) fn minimal() -> Instance {
    parse(json!({"id": "i-minimal"}))
}

/// The document of [`full`], for variants.
pub(crate) fn full_doc() -> Value {
    json!({
        "id": "i-0123456789abcdef0",
        "name": "web-1",
        "hostname": "web-1",
        "domain": "example.internal",
        "ipv4": ["192.0.2.10"],
        "mac": ["00:0d:3a:00:00:0b"],
        "network": {"interfaces": [
            {
                "mac": "00:0d:3a:00:00:0b",
                "ipv4": [{"address": "10.0.0.11", "prefix": 24}, {"address": "10.0.0.12", "prefix": 24}],
                "ipv6": [{"address": "2001:db8:1::11", "prefix": 64}],
                "public_ipv4": "203.0.113.7"
            },
            {"mac": "00:0d:3a:00:00:0c", "ipv4": [{"address": "10.0.1.5", "prefix": 20}]}
        ]},
        "user_data": "#cloud-config\nruncmd: [true]\n",
        "ssh_keys": [ED, {"key": RSA, "user": "deploy"}],
        "default_user": "azureuser",
        "password_auth": false,
        "region": "westeurope",
        "zone": "2",
        "instance_type": "Standard_D2s_v5",
        "image_id": "/subscriptions/s/images/base",
        "tags": {"env": "prod", "team": "platform"},
        "account": {"id": "8d4f3c2a-1b0e-4f7d-9c6b-5a4e3d2c1b0a", "name": "acme"},
    })
}

/// Everything the Azure document derives from the record: two NICs, keys, tags, user data.
pub(crate) fn full() -> Instance {
    parse(full_doc())
}

/// [`full`] with a `dialects.azure` block.
pub(crate) fn overridden() -> Instance {
    let mut doc = full_doc();
    doc["dialects"] = json!({"azure": {
        "vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
        "resourceGroupName": "web-rg",
        "vmSize": "Standard_B2s",
        "publisher": "Canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "24.04.202611010",
        "computerName": "web-1-host",
        "zone": "",
        "ppsType": "Running",
        "plan": {"name": "p", "product": "q", "publisher": "r"},
        "securityProfile": {"securityType": "TrustedLaunch", "secureBootEnabled": "true"}
    }});
    parse(doc)
}
