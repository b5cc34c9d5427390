use http::{Method, StatusCode};
use imds_model::{Instance, Limits, SshKey};
use serde_json::json;

use super::tree::{filter_key, Entry, Node, NEWEST};
use super::*;

fn instance(doc: serde_json::Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).expect("fixture is valid")
}

/// A fixed key and clock: rendering is a pure function of them.
fn context() -> Context<'static> {
    static KEY: std::sync::LazyLock<crate::token::TokenKey> =
        std::sync::LazyLock::new(|| crate::token::TokenKey::from_bytes([7; 32]));
    Context::new(&KEY, 1_800_000_000)
}

fn get(instance: &Instance, path: &str) -> GuestResponse {
    respond(instance, &GuestRequest::new(Method::GET, path), &context())
}

#[test]
fn user_data_is_returned_byte_for_byte() {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut inst = instance(json!({"id": "i-bin"}));
    inst.user_data = Some(imds_model::UserData::from(all_bytes.clone()));
    let response = get(&inst, "/latest/user-data");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers[0].1, wire::OCTET_STREAM);
    assert_eq!(response.body.as_ref(), all_bytes.as_slice());
}

#[test]
fn version_filter_keys_sort_like_versions() {
    assert_eq!(filter_key("latest"), Some(NEWEST));
    assert_eq!(filter_key("1.0"), Some("1.0"));
    assert_eq!(filter_key("2009-04-04"), Some("2009-04-04"));
    for unknown in ["", "2016-11-15", "2.0", "Latest", "2009-04-04 "] {
        assert_eq!(filter_key(unknown), None, "{unknown:?}");
    }
    assert!(wire::VERSIONS.windows(2).all(|pair| pair[0] < pair[1]), "listed oldest first");
    assert!(wire::VERSIONS.iter().all(|v| *v < NEWEST));
}

#[test]
fn derived_ids_are_stable_and_shaped_like_aws() {
    let id = derived::hex_id("ami-", &["ami", "i-1"], 17);
    assert_eq!(id, derived::hex_id("ami-", &["ami", "i-1"], 17));
    assert_eq!(id.len(), 4 + 17);
    assert!(id["ami-".len()..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
    assert_ne!(id, derived::hex_id("ami-", &["ami", "i-2"], 17));
    assert_eq!(derived::hex_id("", &["x"], 40).len(), 40);
    assert_ne!(derived::fnv1a(&["ab", "c"]), derived::fnv1a(&["a", "bc"]));

    let account = derived::account_id(&instance(json!({"id": "i-1"})));
    assert_eq!(account.len(), 12);
    assert!(account.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(derived::account_id(&instance(json!({"id": "i-1", "account": {"id": "42"}}))), "42");
}

#[test]
fn placement_and_times() {
    let cases: &[(serde_json::Value, Option<&str>, Option<&str>)] = &[
        (json!({"id": "i"}), None, None),
        (json!({"id": "i", "zone": "us-west-2b"}), Some("us-west-2"), Some("us-west-2b")),
        (json!({"id": "i", "region": "us-west-2"}), Some("us-west-2"), Some("us-west-2a")),
        (json!({"id": "i", "region": "r", "zone": "z9"}), Some("r"), Some("z9")),
        (json!({"id": "i", "zone": "zone1"}), None, Some("zone1")),
        (json!({"id": "i", "zone": "a"}), None, Some("a")),
    ];
    for (doc, region, zone) in cases {
        let (r, z) = derived::placement(&instance(doc.clone()));
        assert_eq!((r.as_deref(), z.as_deref()), (*region, *zone), "{doc}");
    }
    assert_eq!(derived::created(&instance(json!({"id": "i"}))), "1970-01-01T00:00:00Z");
    let at = instance(json!({"id": "i", "created_at": "2026-08-01T10:11:12.345Z"}));
    assert_eq!(derived::created(&at), "2026-08-01T10:11:12Z");
}

#[test]
fn key_names_never_break_the_listing() {
    let key = |name: Option<&str>, line: &str| SshKey { name: name.map(str::to_owned), ..SshKey::new(line) };
    let cases = [
        (key(Some("deploy"), "ssh-ed25519 AAAA alice@x"), "deploy"),
        (key(None, "ssh-ed25519 AAAA alice@x"), "alice@x"),
        (key(Some("a/b"), "ssh-ed25519 AAAA alice@x"), "alice@x"),
        (key(Some(""), "ssh-ed25519 AAAA"), "key-3"),
        (key(Some("two\nlines"), "ssh-ed25519 AAAA ci/bot"), "key-3"),
        (key(None, "ssh-ed25519 AAAA"), "key-3"),
    ];
    for (k, expected) in cases {
        assert_eq!(meta_data::key_name(3, &k), expected, "{k:?}");
    }
}

#[test]
fn overrides_keep_listing_order_and_skip_paths_through_leaves() {
    let mut root = Entry::dir(
        "meta-data",
        "1.0",
        vec![Entry::text("b", "1.0", Some("1".into())), Entry::text("d", "2000", Some("2".into()))],
    );
    root.apply_overrides(&json!({"c/x": "3", "a": "0", "b/below": "no", "d": null, "e": ["no"]}));
    assert_eq!(Entry::listing(children(&root), NEWEST, false), "a\nb\nc/");
    assert_eq!(root.text_at("c/x", NEWEST), Some("3"));
    assert_eq!(root.text_at("b", NEWEST), Some("1"));
    root.apply_overrides(&json!("not an object"));
    assert_eq!(Entry::listing(children(&root), NEWEST, false), "a\nb\nc/");
}

fn children(entry: &Entry) -> &[Entry] {
    match &entry.node {
        Node::Dir(children) => children,
        other => panic!("not a directory: {other:?}"),
    }
}

#[test]
fn events_show_by_the_clock_at_their_versions_and_overrides_still_win() {
    let now = context().now;
    let spec = |doc: serde_json::Value| imds_model::EventSpec::parse(&doc, now, &[]).expect("valid event");
    let spot = spec(json!({"kind": "spot-interruption", "in_seconds": 300}))
        .into_event(imds_model::EventId::from_random(1), now);
    let rebalance = spec(json!({"kind": "rebalance-recommendation", "in_seconds": 100}));
    let rebalance = imds_model::InstanceEvents {
        events: vec![rebalance.into_event(imds_model::EventId::from_random(2), now)],
        retired_changes: 0,
    };
    let events = imds_model::InstanceEvents { events: vec![spot], retired_changes: 0 };
    let inst = instance(json!({"id": "i-ev"}));
    let cache = crate::Cache::new(crate::Budget::unlimited());
    let at = |seconds: u64, path: &str, inst: &Instance| {
        let subject = Subject { events: Some(&events), cache: Some(&cache), ..Subject::new(inst) };
        let context = Context::new(context().tokens, now + seconds);
        respond(subject, &GuestRequest::new(Method::GET, path), &context)
    };
    // While the events show nothing the kept tree answers; from their time on they show.
    let kept = crate::Cache::new(crate::Budget::unlimited());
    let rebalance_at = |seconds: u64| {
        let subject = Subject { events: Some(&rebalance), cache: Some(&kept), ..Subject::new(&inst) };
        let context = Context::new(context().tokens, now + seconds);
        respond(
            subject,
            &GuestRequest::new(Method::GET, "/latest/meta-data/events/recommendations/rebalance"),
            &context,
        )
    };
    assert_eq!(rebalance_at(99).status, StatusCode::NOT_FOUND);
    assert!(kept.has_ec2_tree());
    assert_eq!(rebalance_at(100).status, StatusCode::OK);
    assert_eq!(at(179, "/latest/meta-data/spot/instance-action", &inst).status, StatusCode::NOT_FOUND);
    let notice = at(180, "/latest/meta-data/spot/instance-action", &inst);
    assert_eq!(notice.status, StatusCode::OK);
    assert_eq!(
        std::str::from_utf8(&notice.body).unwrap(),
        format!("{{\"action\": \"terminate\", \"time\": \"{}\"}}", imds_model::time::format_rfc3339(now + 300))
    );
    // `instance-action` arrived after 2016-09-02; `termination-time` was there in 2014-11-05.
    assert_eq!(at(180, "/2016-09-02/meta-data/spot/", &inst).body.as_ref(), b"termination-time");
    assert_eq!(at(180, "/2014-02-25/meta-data/spot/", &inst).status, StatusCode::NOT_FOUND);
    let overridden = instance(json!({"id": "i-ev", "dialects": {"ec2": {"spot/instance-action": "by hand"}}}));
    assert_eq!(at(180, "/latest/meta-data/spot/instance-action", &overridden).body.as_ref(), b"by hand");
}
