use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::settings::{EndpointMode, TagsMode, TokenMode};
use crate::{merge_patch, UserData};

const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";

fn parse(doc: Value) -> Result<Instance, Invalid> {
    Instance::parse(&doc, &Limits::default())
}

/// `{"id": "i-1"}` with `extra` merged in.
fn with(extra: Value) -> Value {
    let mut doc = json!({"id": "i-1"});
    merge_patch(&mut doc, &extra);
    doc
}

fn errors(doc: Value) -> Vec<(String, String)> {
    match parse(doc.clone()) {
        Ok(_) => panic!("expected errors for {doc}"),
        Err(invalid) => invalid.errors.into_iter().map(|e| (e.field, e.message)).collect(),
    }
}

fn full_doc() -> Value {
    json!({
        "id": "i-0abc",
        "name": "web 1",
        "hostname": "web-1",
        "domain": "example.internal",
        "ipv4": ["100.127.0.11"],
        "ipv6": ["fd00::11"],
        "mac": ["02:00:00:00:00:0b"],
        "network": {
            "interfaces": [{
                "mac": "02:00:00:00:00:0b", "name": "eth0", "role": "public", "mtu": 1500,
                "dhcp4": true,
                "ipv4": [{"address": "10.0.0.11", "prefix": 24, "gateway": "10.0.0.1"}],
                "ipv6": [{"address": "2001:db8::b", "prefix": 64, "gateway": "fe80::1"}],
                "public_ipv4": "203.0.113.7", "floating_ipv4": "203.0.113.8", "vlan": 10
            }],
            "nameservers": ["10.0.0.2", "2001:db8::53"],
            "search": ["example.internal"],
            "routes": [{"to": "0.0.0.0/0", "via": "10.0.0.1"}, {"to": "::/0", "via": "fe80::1"}]
        },
        "user_data": "#cloud-config\n",
        "vendor_data": {"base64": "//4="},
        "ssh_keys": [ED, {"key": ED, "user": "bob", "name": "bob-laptop", "expires": "2027-01-01T00:00:00Z"}],
        "default_user": "cloud",
        "password_auth": false,
        "region": "europe-west1",
        "zone": "europe-west1-b",
        "node": "hv-0001",
        "instance_type": "e2-small",
        "image_id": "img-1",
        "tags": {"Name": "web-1", "empty": ""},
        "launch_index": 0,
        "account": {"id": "123", "name": "acme"},
        "created_at": "2026-08-01T00:00:00Z",
        "iam_role": "app-role",
        "identity": {"scopes": ["a"], "email": "x@example"},
        "imds": {"tokens": "required", "hop_limit": 2, "endpoint": "enabled", "tags": "on"},
        "platform": {"dialect": "gce"},
        "dialects": {"enabled": ["ec2", "gce"], "gce": {"zone": "z"}}
    })
}

#[test]
fn minimal_document_gets_defaults() {
    let instance = parse(json!({"id": "i-1"})).unwrap();
    assert_eq!(instance, Instance::new(InstanceId::try_from("i-1").unwrap()));
    assert_eq!(instance.imds.hop_limit, 1);
    assert_eq!(
        instance.to_json(),
        json!({"id": "i-1", "imds": {"tokens": "optional", "hop_limit": 1, "endpoint": "enabled"}})
    );
}

#[test]
fn full_document_parses_and_round_trips() {
    let instance = parse(full_doc()).unwrap();
    assert_eq!(instance.imds.tokens, TokenMode::Required);
    assert_eq!(instance.imds.endpoint, EndpointMode::Enabled);
    assert_eq!(instance.imds.tags, Some(TagsMode::On));
    assert_eq!(instance.ssh_keys[1].user.as_deref(), Some("bob"));
    assert_eq!(instance.vendor_data.as_ref().unwrap().as_bytes(), &[0xff, 0xfe]);
    assert_eq!(instance.dialects.overrides["gce"], json!({"zone": "z"}));
    // The canonical form of a canonical document is the document itself.
    assert_eq!(instance.to_json(), full_doc());
    assert_eq!(parse(instance.to_json()).unwrap(), instance);
    assert_eq!(Instance::from_bytes(&instance.to_bytes()).unwrap(), instance);
}

#[test]
fn nulls_mean_absent() {
    let instance = parse(with(json!({})).tap(|d| {
        d["name"] = Value::Null;
        d["ipv4"] = Value::Null;
        d["imds"] = Value::Null;
    }))
    .unwrap();
    assert_eq!(instance.name, None);
    assert!(instance.ipv4.is_empty());
}

#[test]
fn five_mistakes_are_all_reported() {
    let got = errors(json!({
        "id": "bad id",
        "ipv4": ["10.0.0.1", "10.0.0.1"],
        "network": {"interfaces": [{"mac": "nope"}]},
        "imds": {"hop_limit": 0},
        "hostnme": "typo"
    }));
    let paths: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(paths, ["hostnme", "id", "ipv4[1]", "network.interfaces[0].mac", "imds.hop_limit"], "{got:?}");
    assert_eq!(got[0].1, "unknown field");
    assert_eq!(got[2].1, "duplicate of ipv4[0]");
    assert_eq!(got[4].1, "expected an integer from 1 to 64");
}

/// One row per rule: a fragment merged into `{"id": "i-1"}`, the path at fault and a piece of
/// the message.
#[test]
fn every_rule_reports_its_path() {
    let long = |n: usize| "x".repeat(n);
    let long_tag_path = format!("tags.{}", long(129));
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"id": ""}), "id", "must not be empty"),
        (json!({"id": 7}), "id", "expected a string"),
        (json!({"id": ".."}), "id", "must not start with '.'"),
        (json!({"id": "a/b"}), "id", "contains '/'"),
        (json!({"name": ""}), "name", "must not be empty"),
        (json!({"name": long(256)}), "name", "the limit is 255"),
        (json!({"name": "a\u{7}"}), "name", "control"),
        (json!({"hostname": "-web"}), "hostname", "must not start or end"),
        (json!({"hostname": "web_1"}), "hostname", "contains '_'"),
        (json!({"hostname": 3}), "hostname", "expected a string"),
        (json!({"domain": "a..b"}), "domain", "empty label"),
        (json!({"ipv4": "10.0.0.1"}), "ipv4", "expected an array of IPv4 addresses"),
        (json!({"ipv4": [1]}), "ipv4[0]", "expected a string"),
        (json!({"ipv4": ["10.0.0.300"]}), "ipv4[0]", "not an IPv4 address"),
        (json!({"ipv4": ["fd00::1"]}), "ipv4[0]", "not an IPv4 address"),
        (json!({"ipv4": ["0.0.0.0"]}), "ipv4[0]", "unspecified"),
        (json!({"ipv4": ["255.255.255.255"]}), "ipv4[0]", "broadcast"),
        (json!({"ipv4": ["224.0.0.5"]}), "ipv4[0]", "multicast"),
        (json!({"ipv6": ["10.0.0.1"]}), "ipv6[0]", "list it under ipv4"),
        (json!({"ipv6": ["zz::"]}), "ipv6[0]", "not an IPv6 address"),
        (json!({"ipv6": ["::"]}), "ipv6[0]", "unspecified"),
        (json!({"ipv6": ["ff02::1"]}), "ipv6[0]", "multicast"),
        (json!({"ipv6": ["fd00::1", "FD00:0::1"]}), "ipv6[1]", "duplicate of ipv6[0]"),
        (json!({"ipv4": ["10.0.0.1"], "ipv6": ["::ffff:10.0.0.1"]}), "ipv6[0]", "duplicate of ipv4[0]"),
        (json!({"mac": ["02:00:00:00:00:0b", "02-00-00-00-00-0B"]}), "mac[1]", "duplicate of mac[0]"),
        (json!({"mac": ["x"]}), "mac[0]", "not a MAC address"),
        (json!({"mac": {}}), "mac", "expected an array of MAC addresses"),
        (json!({"network": []}), "network", "expected an object"),
        (json!({"network": {"iface": []}}), "network.iface", "unknown field"),
        (json!({"network": {"interfaces": [{"nmae": "eth0"}]}}), "network.interfaces[0].nmae", "unknown field"),
        (json!({"network": {"interfaces": [{"mtu": 67}]}}), "network.interfaces[0].mtu", "from 68 to 65535"),
        (json!({"network": {"interfaces": [{"mtu": 1500.5}]}}), "network.interfaces[0].mtu", "integer"),
        (json!({"network": {"interfaces": [{"vlan": 4095}]}}), "network.interfaces[0].vlan", "from 1 to 4094"),
        (
            json!({"network": {"interfaces": [{"role": "dmz"}]}}),
            "network.interfaces[0].role",
            "\"public\", \"private\"",
        ),
        (json!({"network": {"interfaces": [{"dhcp4": "yes"}]}}), "network.interfaces[0].dhcp4", "true or false"),
        (json!({"network": {"interfaces": [{"name": "a/b"}]}}), "network.interfaces[0].name", "'/'"),
        (
            json!({"network": {"interfaces": [{"public_ipv4": "::1"}]}}),
            "network.interfaces[0].public_ipv4",
            "not an IPv4",
        ),
        (
            json!({"network": {"interfaces": [{"ipv4": [{"address": "10.0.0.1", "prefix": 33}]}]}}),
            "network.interfaces[0].ipv4[0].prefix",
            "from 0 to 32",
        ),
        (
            json!({"network": {"interfaces": [{"ipv4": [{"prefix": 24}]}]}}),
            "network.interfaces[0].ipv4[0].address",
            "missing required field",
        ),
        (
            json!({"network": {"interfaces": [{"ipv4": ["10.0.0.1/24"]}]}}),
            "network.interfaces[0].ipv4[0]",
            "expected an object",
        ),
        (
            json!({"network": {"interfaces": [{"ipv6": [{"address": "fd00::1", "prefix": 129}]}]}}),
            "network.interfaces[0].ipv6[0].prefix",
            "from 0 to 128",
        ),
        (
            json!({"network": {"interfaces": [{"ipv6": [{"address": "fd00::1", "prefix": 64, "gateway": "10.0.0.1"}]}]}}),
            "network.interfaces[0].ipv6[0].gateway",
            "not an IPv6",
        ),
        (
            json!({"network": {"interfaces": [{"mac": "02:00:00:00:00:01"}, {"mac": "02:00:00:00:00:01"}]}}),
            "network.interfaces[1].mac",
            "duplicate of network.interfaces[0].mac",
        ),
        (json!({"network": {"nameservers": ["dns"]}}), "network.nameservers[0]", "not an IP address"),
        (json!({"network": {"search": ["a b"]}}), "network.search[0]", "contains ' '"),
        (json!({"network": {"routes": [{"to": "10.0.0.0", "via": "10.0.0.1"}]}}), "network.routes[0].to", "CIDR"),
        (
            json!({"network": {"routes": [{"to": "10.0.0.0/8", "via": "fe80::1"}]}}),
            "network.routes[0].via",
            "via is IPv6 but to is IPv4",
        ),
        (json!({"network": {"routes": [{"to": "10.0.0.0/8"}]}}), "network.routes[0].via", "missing required field"),
        (json!({"user_data": 5}), "user_data", "expected a string or an object"),
        (json!({"user_data": {"base64": "!!"}}), "user_data", "invalid base64"),
        (json!({"user_data": {"base64": "AA==", "gzip": true}}), "user_data", "unknown field \"gzip\""),
        (json!({"vendor_data": {}}), "vendor_data", "missing field \"base64\""),
        (json!({"ssh_keys": ED}), "ssh_keys", "expected an array of SSH public keys"),
        (json!({"ssh_keys": [ED, ED, "not a key"]}), "ssh_keys[2]", "expected \"<type> <base64>"),
        (json!({"ssh_keys": [3]}), "ssh_keys[0]", "expected an SSH public key string or an object"),
        (json!({"ssh_keys": [{"user": "bob"}]}), "ssh_keys[0].key", "missing required field"),
        (json!({"ssh_keys": [{"key": ED, "expires": "tomorrow"}]}), "ssh_keys[0].expires", "RFC 3339"),
        (json!({"ssh_keys": [{"key": ED, "comment": "x"}]}), "ssh_keys[0].comment", "unknown field"),
        (json!({"default_user": ""}), "default_user", "must not be empty"),
        (json!({"password_auth": "no"}), "password_auth", "true or false"),
        (json!({"region": "eu/west"}), "region", "'/'"),
        (json!({"zone": long(256)}), "zone", "the limit is 255"),
        (json!({"node": "hv/1"}), "node", "not '/'"),
        (json!({"node": ""}), "node", "must not be empty"),
        (json!({"node": 7}), "node", "string"),
        (json!({"instance_type": "a\nb"}), "instance_type", "control"),
        (json!({"image_id": ""}), "image_id", "must not be empty"),
        (json!({"tags": ["a"]}), "tags", "expected an object of string values"),
        (json!({"tags": {"Name": 1}}), "tags.Name", "expected a string"),
        (json!({"tags": {"a/b": "x"}}), "tags.a/b", "must not contain '/'"),
        (json!({"tags": {"k": long(257)}}), "tags.k", "the limit is 256"),
        (json!({"tags": {long(129): "v"}}), &long_tag_path, "the limit is 128"),
        (json!({"launch_index": -1}), "launch_index", "from 0 to 4294967295"),
        (json!({"launch_index": 4_294_967_296u64}), "launch_index", "from 0 to 4294967295"),
        (json!({"account": {"id": "1", "owner": "x"}}), "account.owner", "unknown field"),
        (json!({"account": {"id": ""}}), "account.id", "must not be empty"),
        (json!({"created_at": "2026-08-01"}), "created_at", "RFC 3339"),
        (json!({"iam_role": "a/b"}), "iam_role", "role name contains '/'"),
        (json!({"identity": "x"}), "identity", "expected an object"),
        (json!({"platform": []}), "platform", "expected an object"),
        (json!({"imds": {"tokens": "always"}}), "imds.tokens", "\"optional\", \"required\""),
        (json!({"imds": {"hop_limit": 65}}), "imds.hop_limit", "from 1 to 64"),
        (json!({"imds": {"hop_limit": "2"}}), "imds.hop_limit", "integer"),
        (json!({"imds": {"endpoint": "on"}}), "imds.endpoint", "\"enabled\", \"disabled\""),
        (json!({"imds": {"tags": true}}), "imds.tags", "\"off\", \"on\""),
        (json!({"imds": {"http_tokens": "required"}}), "imds.http_tokens", "unknown field"),
        (json!({"dialects": {"enabled": ["ec2", "aws"]}}), "dialects.enabled[1]", "unknown dialect \"aws\""),
        (json!({"dialects": {"enabled": ["ec2", "ec2"]}}), "dialects.enabled[1]", "duplicate of dialects.enabled[0]"),
        (json!({"dialects": {"enabled": "ec2"}}), "dialects.enabled", "expected an array of dialect names"),
        (json!({"dialects": {"gce": "x"}}), "dialects.gce", "expected an object"),
        (json!({"dialects": {"aws": {}}}), "dialects.aws", "unknown dialect"),
        (json!({"dialects": []}), "dialects", "expected an object"),
        (
            json!({"dialects": {"digitalocean": {"droplet_id": -1}}}),
            "dialects.digitalocean.droplet_id",
            "non-negative integer",
        ),
        (json!({"dialects": {"hetzner": {"id": "12a"}}}), "dialects.hetzner.id", "non-negative integer"),
        (
            json!({"dialects": {"hetzner": {"instance-id": 9223372036854775808u64}}}),
            "dialects.hetzner.instance-id",
            "below 2^63",
        ),
        (
            json!({"dialects": {"nocloud": {"network-config": "v2"}}}),
            "dialects.nocloud.network-config",
            "expected an object",
        ),
        (json!({"dialects": {"nocloud": {"instance-id": ""}}}), "dialects.nocloud.instance-id", "non-empty string"),
        (json!({"platform": {"dialect": "vax"}}), "platform.dialect", "expected one of"),
        (json!({"platform": {"smbios": {"serial": 5}}}), "platform.smbios.serial", "expected a string"),
        (json!({"platform": {"smbios": {"colour": "red"}}}), "platform.smbios.colour", "unknown field"),
        (json!({"userdata": "x"}), "userdata", "unknown field"),
    ];
    for (fragment, path, message) in cases {
        let got = errors(with(fragment.clone()));
        assert_eq!(got.len(), 1, "{fragment}: {got:?}");
        assert_eq!(got[0].0, path, "{fragment}: {got:?}");
        assert!(got[0].1.contains(message), "{fragment}: {:?} lacks {message:?}", got[0].1);
    }
}

#[test]
fn document_shape_errors() {
    assert_eq!(errors(json!([1])), [("".to_owned(), "the instance document must be a JSON object".to_owned())]);
    assert_eq!(errors(json!({})), [("id".to_owned(), "missing required field".to_owned())]);
    assert_eq!(errors(json!({"id": null})), [("id".to_owned(), "expected a string".to_owned())]);
}

#[test]
fn macs_are_normalised_everywhere() {
    let instance = parse(with(json!({
        "mac": ["02-00-00-00-00-0B", "0200.0000.000C"],
        "network": {"interfaces": [{"mac": "02:00:00:00:00:0D"}]}
    })))
    .unwrap();
    let json = instance.to_json();
    assert_eq!(json["mac"], json!(["02:00:00:00:00:0b", "02:00:00:00:00:0c"]));
    assert_eq!(json["network"]["interfaces"][0]["mac"], json!("02:00:00:00:00:0d"));
}

#[test]
fn mapped_ipv6_moves_to_ipv4() {
    let instance = parse(with(json!({
        "ipv4": ["10.0.0.1", "::ffff:10.0.0.2"],
        "ipv6": ["fd00::1", "::ffff:10.0.0.3"]
    })))
    .unwrap();
    let v4: Vec<Ipv4Addr> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(instance.ipv4, v4);
    assert_eq!(instance.ipv6, vec!["fd00::1".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(instance.to_json()["ipv4"], json!(["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
}

#[test]
fn ssh_keys_are_trimmed_and_keep_their_form() {
    let instance = parse(with(json!({"ssh_keys": [format!("{ED}\n"), {"key": ED}]}))).unwrap();
    assert_eq!(instance.ssh_keys[0].key, ED);
    // An object with only `key` is canonically a plain string.
    assert_eq!(instance.to_json()["ssh_keys"], json!([ED, ED]));
}

#[test]
fn user_data_of_every_byte_round_trips() {
    let all: Vec<u8> = (0..=255u8).collect();
    let mut instance = parse(with(json!({}))).unwrap();
    instance.user_data = Some(UserData::from(all.clone()));
    let back = Instance::from_bytes(&instance.to_bytes()).unwrap();
    assert_eq!(back.user_data.as_ref().unwrap().as_bytes(), all.as_slice());
    let b64 = instance.to_json()["user_data"]["base64"].as_str().unwrap().to_owned();
    let parsed = parse(with(json!({"user_data": {"base64": b64}}))).unwrap();
    assert_eq!(parsed, instance);
}

#[test]
fn utf8_user_data_is_a_plain_string() {
    let instance = parse(with(json!({"user_data": {"base64": "I2Nsb3VkLWNvbmZpZwo="}}))).unwrap();
    assert_eq!(instance.to_json()["user_data"], json!("#cloud-config\n"));
}

#[test]
fn user_data_limit_is_inclusive() {
    let limits = Limits { max_user_data: 10, ..Limits::default() };
    let ok = with(json!({"user_data": "x".repeat(10), "vendor_data": "y".repeat(10)}));
    assert!(Instance::parse(&ok, &limits).is_ok());
    let over = with(json!({"user_data": "x".repeat(11), "vendor_data": "y".repeat(11)}));
    let err = Instance::parse(&over, &limits).unwrap_err();
    let got: Vec<(&str, &str)> = err.errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            ("user_data", "user_data is 11 bytes; the limit is 10 bytes"),
            ("vendor_data", "vendor_data is 11 bytes; the limit is 10 bytes")
        ]
    );
    // The limit applies after base64 decoding: 12 base64 characters are 9 bytes.
    assert!(Instance::parse(&with(json!({"user_data": {"base64": "AAAAAAAAAAAA"}})), &limits).is_ok());
}

#[test]
fn record_limit_is_inclusive() {
    let doc = with(json!({"name": "web"}));
    let size = parse(doc.clone()).unwrap().to_bytes().len();
    assert!(Instance::parse(&doc, &Limits { max_record: size, ..Limits::default() }).is_ok());
    let err = Instance::parse(&doc, &Limits { max_record: size - 1, ..Limits::default() }).unwrap_err();
    assert_eq!(err.errors, [FieldError::new("", format!("record is {size} bytes; the limit is {}", size - 1))]);
}

#[test]
fn from_bytes_reports_corruption() {
    let err = Instance::from_bytes(b"{not json").unwrap_err();
    assert!(err.errors[0].message.starts_with("corrupt record: not JSON"), "{err}");
    let err = Instance::from_bytes(br#"{"id": "a/b"}"#).unwrap_err();
    assert_eq!(err.errors[0].field, "id");
    assert!(err.errors[0].message.starts_with("corrupt record: "), "{err}");
    // Stored records are read without limits.
    let big = parse(with(json!({"user_data": "x".repeat(70_000)})).tap(|_| ()));
    assert!(big.is_err());
    let bytes = serde_json::to_vec(&with(json!({"user_data": "x".repeat(70_000)}))).unwrap();
    assert!(Instance::from_bytes(&bytes).is_ok());
}

/// What the full walk makes of stored bytes.
fn walked(bytes: &[u8]) -> Result<Instance, Invalid> {
    parse_instance(&serde_json::from_slice(bytes).unwrap(), &Limits::unbounded())
}

#[test]
fn stored_records_decode_as_the_walk_reads_them() {
    let instance = parse(full_doc()).unwrap();
    let bytes = instance.to_bytes();
    // Every section of the full document on the fast path, not the fallback.
    assert_eq!(decode_stored(&bytes), Some(instance.clone()));
    assert_eq!(walked(&bytes), Ok(instance));
    let minimal = br#"{"id":"i-1","imds":{"tokens":"optional","hop_limit":1,"endpoint":"enabled"}}"#;
    assert_eq!(decode_stored(minimal), Some(Instance::new(InstanceId::try_from("i-1").unwrap())));
}

#[test]
fn stored_records_the_fast_path_refuses_are_walked() {
    // Nulls for lists: the walk reads them as absent.
    let nulls = br#"{"id":"i-1","ipv4":null,"tags":null}"#;
    assert_eq!(decode_stored(nulls), None);
    assert_eq!(Instance::from_bytes(nulls), Ok(Instance::new(InstanceId::try_from("i-1").unwrap())));
    // Unknown fields, bad ids, out-of-range options and bad sections: the walk names them.
    for (bytes, field) in [
        (&br#"{"id":"i-1","colour":"red"}"#[..], "colour"),
        (br#"{"id":"a/b"}"#, "id"),
        (br#"{"id":"i-1","imds":{"hop_limit":65}}"#, "imds.hop_limit"),
        (br#"{"id":"i-1","network":{"interfaces":[{"mac":"nope"}]}}"#, "network.interfaces[0].mac"),
        (br#"{"id":"i-1","dialects":{"enabled":["nope"]}}"#, "dialects.enabled[0]"),
    ] {
        assert_eq!(decode_stored(bytes), None, "{}", String::from_utf8_lossy(bytes));
        let err = Instance::from_bytes(bytes).unwrap_err();
        assert_eq!(err.errors[0].field, field, "{err}");
        assert!(err.errors[0].message.starts_with("corrupt record: "), "{err}");
    }
}

/// Small helper so a document can be tweaked inline.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

fn instance_strategy() -> impl Strategy<Value = Instance> {
    (
        "[a-z0-9][a-z0-9._:-]{0,20}",
        proptest::option::of("[a-z]([a-z0-9-]{0,9}[a-z0-9])?"),
        proptest::collection::btree_set(any::<[u8; 3]>(), 0..3),
        proptest::collection::btree_set(any::<[u8; 6]>(), 0..3),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        proptest::collection::btree_map("[A-Za-z][A-Za-z0-9 ._-]{0,8}", "[ -~]{0,12}", 0..3),
        (1u8..=64, any::<bool>(), proptest::option::of(any::<u32>())),
        proptest::option::of(proptest::collection::vec((any::<[u8; 6]>(), 0u8..=32), 0..3)),
    )
        .prop_map(|(id, hostname, v4, macs, user_data, tags, (hop, required, launch), ifaces)| {
            let mut instance = Instance::new(InstanceId::try_from(id).unwrap());
            instance.hostname = hostname;
            instance.ipv4 = v4.into_iter().map(|[a, b, c]| Ipv4Addr::new(10, a, b, c)).collect();
            instance.mac = macs.into_iter().map(MacAddr::new).collect();
            instance.user_data = user_data.map(UserData::from);
            instance.tags = tags;
            instance.imds.hop_limit = hop;
            instance.imds.tokens = if required { TokenMode::Required } else { TokenMode::Optional };
            instance.launch_index = launch;
            instance.network = ifaces.map(|ifaces| {
                Box::new(crate::Network {
                    interfaces: ifaces
                        .into_iter()
                        .enumerate()
                        .map(|(i, (mac, prefix))| crate::Interface {
                            mac: Some(MacAddr::new([mac[0], mac[1], mac[2], mac[3], mac[4], i as u8])),
                            ipv4: vec![crate::Ipv4Cidr {
                                address: Ipv4Addr::new(10, 1, 0, i as u8),
                                prefix,
                                gateway: None,
                            }],
                            ..crate::Interface::default()
                        })
                        .collect(),
                    ..crate::Network::default()
                })
            });
            instance
        })
}

proptest! {
    #[test]
    fn parse_inverts_to_json(instance in instance_strategy()) {
        let parsed = Instance::parse(&instance.to_json(), &Limits::default());
        prop_assert_eq!(parsed.as_ref(), Ok(&instance));
        prop_assert_eq!(Instance::from_bytes(&instance.to_bytes()), Ok(instance.clone()));
        prop_assert_eq!(decode_stored(&instance.to_bytes()), Some(instance));
    }
}
