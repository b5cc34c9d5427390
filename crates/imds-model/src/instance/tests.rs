use serde_json::json;

use super::*;

fn parse(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).unwrap()
}

#[test]
fn claims_are_sorted_and_cover_only_identifying_lists() {
    let instance = parse(json!({
        "id": "i-1",
        "ipv4": ["10.0.0.2", "10.0.0.1"],
        "ipv6": ["fd00::1", "::ffff:10.0.0.3"],
        "mac": ["02:00:00:00:00:0B"],
        "network": {"interfaces": [{"mac": "02:00:00:00:00:99", "ipv4": [{"address": "10.9.9.9", "prefix": 24}]}]}
    }));
    assert_eq!(
        instance.claims(),
        ["ipv4/10.0.0.1", "ipv4/10.0.0.2", "ipv4/10.0.0.3", "ipv6/fd00::1", "mac/02:00:00:00:00:0b"]
    );
    // Records built by hand may repeat an address; claims stay unique.
    let mut dup = instance.clone();
    dup.ipv4.push("10.0.0.1".parse().unwrap());
    assert_eq!(dup.claims(), instance.claims());
    assert!(parse(json!({"id": "i-2"})).claims().is_empty());
}

#[test]
fn split_claims() {
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        ("ipv4/10.0.0.1", Some(("ipv4", "10.0.0.1"))),
        ("ipv6/fd00::1", Some(("ipv6", "fd00::1"))),
        ("mac/02:00:00:00:00:0b", Some(("mac", "02:00:00:00:00:0b"))),
        ("ipv4/", None),
        ("host/x", None),
        ("10.0.0.1", None),
        ("", None),
    ];
    for (claim, expected) in cases {
        assert_eq!(split_claim(claim), *expected, "{claim}");
    }
    for claim in parse(json!({"id": "i", "ipv4": ["10.0.0.1"], "mac": ["02:00:00:00:00:01"]})).claims() {
        assert!(split_claim(&claim).is_some(), "{claim}");
    }
}

#[test]
fn primary_addresses_prefer_the_network_section() {
    let both = parse(json!({
        "id": "i-1",
        "ipv4": ["100.127.0.11"],
        "mac": ["02:00:00:00:00:01"],
        "network": {"interfaces": [{"mac": "02:00:00:00:00:02", "ipv4": [{"address": "10.0.0.11", "prefix": 24}]}]}
    }));
    assert_eq!(both.primary_ipv4(), Some("10.0.0.11".parse().unwrap()));
    assert_eq!(both.primary_mac(), Some("02:00:00:00:00:02".parse().unwrap()));

    let bare_interface = parse(json!({
        "id": "i-1", "ipv4": ["100.127.0.11"], "mac": ["02:00:00:00:00:01"],
        "network": {"interfaces": [{"name": "eth0"}]}
    }));
    assert_eq!(bare_interface.primary_ipv4(), Some("100.127.0.11".parse().unwrap()));
    assert_eq!(bare_interface.primary_mac(), Some("02:00:00:00:00:01".parse().unwrap()));

    let no_network = parse(json!({"id": "i-1", "ipv4": ["100.127.0.11"], "mac": ["02:00:00:00:00:01"]}));
    assert_eq!(no_network.primary_ipv4(), Some("100.127.0.11".parse().unwrap()));
    assert_eq!(no_network.primary_mac(), Some("02:00:00:00:00:01".parse().unwrap()));

    let nothing = parse(json!({"id": "i-1", "ipv6": ["fd00::1"]}));
    assert_eq!(nothing.primary_ipv4(), None);
    assert_eq!(nothing.primary_mac(), None);
}

#[test]
fn canonical_json_omits_empties_and_keeps_imds() {
    let mut instance = Instance::new(InstanceId::try_from("i-1").unwrap());
    instance.network = Some(Box::default());
    instance.dialects.enabled = Some(Vec::new());
    assert_eq!(
        instance.to_json(),
        json!({
            "id": "i-1",
            "network": {},
            "imds": {"tokens": "optional", "hop_limit": 1, "endpoint": "enabled"},
            "dialects": {"enabled": []}
        })
    );
    assert_eq!(Instance::parse(&instance.to_json(), &Limits::default()).unwrap(), instance);
    assert_eq!(serde_json::from_slice::<Value>(&instance.to_bytes()).unwrap(), instance.to_json());
}

#[test]
fn fqdn_joins_hostname_and_domain() {
    assert_eq!(
        parse(json!({"id": "i", "hostname": "web", "domain": "ex.internal"})).fqdn().as_deref(),
        Some("web.ex.internal")
    );
    assert_eq!(parse(json!({"id": "i", "hostname": "web"})).fqdn().as_deref(), Some("web"));
    assert_eq!(parse(json!({"id": "i", "domain": "ex.internal"})).fqdn(), None);
}
