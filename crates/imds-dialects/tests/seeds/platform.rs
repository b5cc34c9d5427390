//! SMBIOS platform hints per dialect.

use std::borrow::Cow;

use imds_dialects::platform::{smbios, Smbios};
use imds_dialects::{Dialect, Settings};
use serde_json::json;

use super::{full, get, parse};

#[test]
fn digitalocean_and_hetzner_serials_are_the_dialect_ids() {
    let instance = full();
    let v1: serde_json::Value = serde_json::from_slice(&get(&instance, "/metadata/v1.json").body).unwrap();
    let droplet = smbios(&instance, Dialect::DigitalOcean, &Settings::DEFAULT).unwrap();
    assert_eq!(droplet.manufacturer.as_deref(), Some("DigitalOcean"));
    assert_eq!(droplet.serial, Some(v1["droplet_id"].to_string()));
    let hetzner = smbios(&instance, Dialect::Hetzner, &Settings::DEFAULT).unwrap();
    assert_eq!(hetzner.manufacturer.as_deref(), Some("Hetzner"));
    let id = super::ok_body(&instance, "/hetzner/v1/metadata/instance-id");
    assert_eq!(hetzner.serial, Some(id));
    // Overrides move the serial with the id.
    let overridden = parse(json!({"id": "x", "dialects": {"hetzner": {"id": 5}, "digitalocean": {"droplet_id": 6}}}));
    assert_eq!(smbios(&overridden, Dialect::Hetzner, &Settings::DEFAULT).unwrap().serial.as_deref(), Some("5"));
    assert_eq!(smbios(&overridden, Dialect::DigitalOcean, &Settings::DEFAULT).unwrap().serial.as_deref(), Some("6"));
}

#[test]
fn nocloud_points_at_the_seed_prefix() {
    let settings = Settings { nocloud_prefix: Cow::Borrowed("/seed/") };
    let hint = smbios(&full(), Dialect::NoCloud, &settings).unwrap();
    assert_eq!(hint.serial.as_deref(), Some("ds=nocloud-net;s=http://169.254.169.254/seed/"));
    assert_eq!(hint.qemu_args(), ["-smbios", "type=1,serial=ds=nocloud-net;s=http://169.254.169.254/seed/"]);
}

#[test]
fn ec2_hints_carry_an_ec2_uuid_and_serial_for_any_id() {
    // ds-identify wants product UUID and serial both starting with `ec2`, equal.
    for id in ["i-0123456789abcdef0", "0f8fad5b-d9cb-469f-a165-70867728950e"] {
        let instance = parse(json!({"id": id}));
        let hint = smbios(&instance, Dialect::Ec2, &Settings::DEFAULT).unwrap();
        let uuid = hint.uuid.clone().unwrap();
        assert!(uuid.starts_with("ec2") && uuid::Uuid::try_parse(&uuid).is_ok(), "{id}: {uuid}");
        assert_eq!(hint.serial.as_deref(), Some(uuid.as_str()), "{id}");
        assert_eq!(smbios(&instance, Dialect::Ec2, &Settings::DEFAULT).unwrap(), hint, "stable");
    }
    let uuid_id = parse(json!({"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}));
    let hint = smbios(&uuid_id, Dialect::Ec2, &Settings::DEFAULT).unwrap();
    assert_eq!(hint.uuid.as_deref(), Some("ec2fad5b-d9cb-469f-a165-70867728950e"));
}

#[test]
fn every_dialect_but_mmds_has_a_hint_matching_cloud_init_gates() {
    let instance = parse(json!({"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}));
    let hint = |d| smbios(&instance, d, &Settings::DEFAULT);
    assert_eq!(hint(Dialect::Mmds), None);
    assert_eq!(hint(Dialect::Azure).unwrap().asset_tag.as_deref(), Some("7783-7084-3265-9085-8269-3286-77"));
    assert_eq!(hint(Dialect::OpenStack).unwrap().product.as_deref(), Some("OpenStack Nova"));
    assert_eq!(hint(Dialect::Gce).unwrap().product.as_deref(), Some("Google Compute Engine"));
    assert!(hint(Dialect::Gce).unwrap().serial.unwrap().starts_with("GoogleCloud-"));
    assert_eq!(hint(Dialect::Hetzner).unwrap().uuid.as_deref(), Some("0f8fad5b-d9cb-469f-a165-70867728950e"));
    let azure: Smbios = hint(Dialect::Azure).unwrap();
    assert_eq!(
        azure.qemu_args(),
        [
            "-smbios",
            "type=1,manufacturer=Microsoft Corporation,product=Virtual Machine,uuid=0f8fad5b-d9cb-469f-a165-70867728950e",
            "-smbios",
            "type=3,asset=7783-7084-3265-9085-8269-3286-77"
        ]
    );
}
