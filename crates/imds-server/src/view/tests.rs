use imds_model::{Instance, Limits};
use imds_store::{Key, Record};
use serde_json::json;

use super::*;

fn record(doc: serde_json::Value, rev: u64) -> Record {
    let instance = Instance::parse(&doc, &Limits::default()).expect("valid fixture");
    Record {
        key: Key::new(INSTANCES, instance.id.as_str()),
        node: None,
        claims: instance.claims(),
        value: instance.to_bytes(),
        rev: Revision(rev),
    }
}

#[test]
fn indexes_follow_puts_and_deletes() {
    let a = record(json!({"id": "i-a", "ipv4": ["10.0.0.1"], "ipv6": ["fd00::1"], "mac": ["02:00:00:00:00:0a"]}), 1);
    let snapshot = Snapshot::from_records(Revision(1), &[a], Budget::unlimited());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(snapshot.by_ip(ip("10.0.0.1")).unwrap().instance.id.as_str(), "i-a");
    assert_eq!(snapshot.by_ip(ip("::ffff:10.0.0.1")).unwrap().instance.id.as_str(), "i-a", "IPv4-mapped callers");
    assert_eq!(snapshot.by_ip(ip("fd00::1")).unwrap().rev, Revision(1));
    assert!(snapshot.by_mac("02:00:00:00:00:0a".parse().unwrap()).is_some());

    // Moving the address: the old one no longer identifies the instance.
    let moved = record(json!({"id": "i-a", "ipv4": ["10.0.0.2"]}), 2);
    let next = snapshot.apply(Revision(2), &[Change::Put(moved)]);
    assert!(next.by_ip(ip("10.0.0.1")).is_none());
    assert!(next.by_ip(ip("fd00::1")).is_none());
    assert_eq!(next.by_ip(ip("10.0.0.2")).unwrap().rev, Revision(2));
    assert_eq!(next.rev(), Revision(2));
    // The old snapshot is untouched: readers holding it see a consistent world.
    assert!(snapshot.by_ip(ip("10.0.0.1")).is_some());

    let gone = next.apply(Revision(3), &[Change::Delete { key: Key::new(INSTANCES, "i-a"), node: None }]);
    assert!(gone.is_empty());
    assert!(gone.by_ip(ip("10.0.0.2")).is_none());
}

#[test]
fn other_collections_and_unreadable_records_are_skipped() {
    let mut junk = record(json!({"id": "i-j", "ipv4": ["10.0.0.9"]}), 1);
    junk.value = b"not json".to_vec();
    let other =
        Record { key: Key::new("secrets", "k"), node: None, claims: vec![], value: b"x".to_vec(), rev: Revision(2) };
    let ok = record(json!({"id": "i-ok", "ipv4": ["10.0.0.8"]}), 3);
    let snapshot = Snapshot::from_records(Revision(3), &[junk, other, ok], Budget::unlimited());
    assert_eq!(snapshot.len(), 1);
    assert!(snapshot.by_ip("10.0.0.8".parse().unwrap()).is_some());
}

#[tokio::test]
async fn wait_for_returns_when_the_revision_is_swapped_in() {
    let view = View::new();
    assert!(!view.is_ready());
    assert!(!view.wait_for(Revision(0), Duration::from_millis(10)).await);
    let waiter = {
        let view = view.clone();
        tokio::spawn(async move { view.wait_for(Revision(5), Duration::from_secs(10)).await })
    };
    view.swap(Snapshot::from_records(Revision(4), &[], Budget::unlimited()));
    assert!(view.is_ready());
    view.advance(Revision(5));
    assert!(waiter.await.unwrap());
    assert!(view.wait_for(Revision(3), Duration::from_millis(10)).await, "older revisions are already there");
}
