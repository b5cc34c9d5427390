use imds_model::{Instance, InstanceId, Limits, MacAddr};
use serde_json::json;

use super::*;

#[test]
fn vm_id_passes_uuids_through_and_derives_the_rest() {
    let uuid = Instance::new(InstanceId::try_from("6F1A2B3C-0D4E-4F50-8A6B-7C8D9E0F1A2B").unwrap());
    assert_eq!(vm_id(&uuid), "6f1a2b3c-0d4e-4f50-8a6b-7c8d9e0f1a2b");
    let plain = Instance::new(InstanceId::try_from("i-0123").unwrap());
    let derived = vm_id(&plain);
    assert_eq!(derived, vm_id(&plain), "deterministic");
    let parsed = uuid::Uuid::try_parse(&derived).unwrap();
    assert_eq!(parsed.get_version_num(), 5);
    assert_ne!(derived, vm_id(&Instance::new(InstanceId::try_from("i-0124").unwrap())));
    let overridden = Instance::parse(
        &json!({"id": "i-0123", "dialects": {"azure": {"vmId": "00000000-0000-4000-8000-000000000001"}}}),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(vm_id(&overridden), "00000000-0000-4000-8000-000000000001");
}

#[test]
fn macs_are_upper_case_without_separators() {
    assert_eq!(mac(MacAddr::new([0x00, 0x0d, 0x3a, 0x0a, 0xbc, 0x0b])), "000D3A0ABC0B");
}

#[test]
fn queries_refuse_repeated_names() {
    let query = Query::parse(Some("api-version=2021-02-01&format=text&&flag")).unwrap();
    assert_eq!(query.get("format"), Some("text"));
    assert_eq!(query.get("flag"), Some(""));
    assert_eq!(query.version(wire::API_VERSIONS), Some("2021-02-01"));
    assert_eq!(Query::parse(Some("api-version=2099-01-01")).unwrap().version(wire::API_VERSIONS), None);
    assert!(Query::parse(Some("api-version=2021-02-01&api-version=2021-02-01")).is_err());
    assert!(Query::parse(None).unwrap().get("format").is_none());
}

#[test]
fn override_blocks_are_checked_field_by_field() {
    let good = json!({"subscriptionId": "s", "vmId": "00000000-0000-4000-8000-000000000001",
        "plan": {"name": "n"}, "securityProfile": {"securityType": "TrustedLaunch"}});
    assert!(check_overrides(&good).is_empty(), "{:?}", check_overrides(&good));
    let bad = json!({"vmSize": 3, "vmId": "nope", "plan": {"colour": "x", "name": 1}, "securityProfile": [],
        "subscription": "s"});
    let fields: Vec<String> = check_overrides(&bad).into_iter().map(|(field, _)| field).collect();
    assert_eq!(fields, ["vmSize", "vmId", "plan.colour", "plan.name", "securityProfile", "subscription"]);
    assert_eq!(check_overrides(&json!("x")).len(), 1);
}
