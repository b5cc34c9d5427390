//! Answers kept in a [`Cache`] are the answers rendered without one: for every dialect that
//! keeps renderings (EC2's tree, GCE's and Azure's documents), asked twice with one cache and
//! once without, and guest state written between requests is seen at once. What caches keep
//! stays within their [`Budget`] and is given back when they are cleared or dropped.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use http::{HeaderName, HeaderValue, Method};
use imds_dialects::token::TokenKey;
use imds_dialects::{route, Budget, Cache, Context, GuestRequest, GuestResponse, Subject};
use imds_model::{GuestState, Instance, Limits, StateWrite};
use serde_json::json;

fn instance() -> Instance {
    let doc = json!({
        "id": "4815162342",
        "hostname": "web-1",
        "ipv4": ["10.0.0.11"],
        "mac": ["02:00:00:00:00:0b"],
        "user_data": "#cloud-config\nruncmd: [true]\n",
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2 alice@example"],
        "region": "eu-west-1",
        "dialects": {"gce": {"attributes": {"enable-guest-attributes": "TRUE"}}}
    });
    Instance::parse(&doc, &Limits::default()).unwrap()
}

fn context() -> Context<'static> {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(|| TokenKey::from_bytes([7; 32]));
    Context::new(&KEY, 1_800_000_000)
}

fn request(method: Method, target: &str) -> GuestRequest {
    let request = GuestRequest::new(method, target);
    if target.starts_with("/computeMetadata") {
        request.with_header(HeaderName::from_static("metadata-flavor"), HeaderValue::from_static("Google"))
    } else if target.starts_with("/metadata") {
        request.with_header(HeaderName::from_static("metadata"), HeaderValue::from_static("true"))
    } else {
        request
    }
}

fn send(instance: &Instance, state: &GuestState, cache: Option<&Cache>, request: &GuestRequest) -> GuestResponse {
    route(&Subject { instance, mmds: None, state, events: None, container_tokens: None, cache }, request, &context())
}

/// Successes, errors, redirects and every format of the three dialects that keep renderings.
const TARGETS: &[&str] = &[
    "/latest/meta-data/instance-id",
    "/latest/meta-data/",
    "/latest/user-data",
    "/latest/dynamic/instance-identity/document",
    "/latest/meta-data/no-such-leaf",
    "/computeMetadata/v1/instance/hostname",
    "/computeMetadata/v1/instance/",
    "/computeMetadata/v1/instance",
    "/computeMetadata/v1/?recursive=true",
    "/computeMetadata/v1/?recursive=TRUE",
    "/computeMetadata/v1/instance/?recursive=true",
    "/computeMetadata/v1/instance/?recursive=true&alt=text",
    "/computeMetadata/v1/instance/attributes/",
    "/computeMetadata/v1/instance/attributes/?alt=json",
    "/computeMetadata/v1/instance/network-interfaces/0/ip",
    "/computeMetadata/v1/instance/network-interfaces/0/ip?alt=json",
    "/computeMetadata/v1/instance/nothing-here",
    "/computeMetadata/v1/instance/?wait_for_change=true",
    "/computeMetadata/v1/instance/guest-attributes/",
    "/metadata/instance?api-version=2021-02-01",
    "/metadata/instance/compute?api-version=2021-02-01",
    "/metadata/instance?api-version=2021-03-01",
    "/metadata/instance?api-version=2021-03-01&extended=true",
    "/metadata/instance/compute/name?api-version=2021-02-01&format=text",
    "/metadata/instance/compute/name?api-version=2021-02-01",
    "/metadata/instance/compute/nothing?api-version=2021-02-01",
    "/metadata/instance?api-version=2017-04-02",
    "/metadata/instance?api-version=1999-01-01",
];

#[test]
fn kept_answers_are_the_rendered_answers() {
    let instance = instance();
    let state = GuestState::default();
    let cache = Cache::new(Budget::unlimited());
    for target in TARGETS {
        for method in [Method::GET, Method::HEAD] {
            let request = request(method.clone(), target);
            let fresh = send(&instance, &state, None, &request);
            let first = send(&instance, &state, Some(&cache), &request);
            let again = send(&instance, &state, Some(&cache), &request);
            assert_eq!(first, fresh, "{method} {target}: first answer with a cache");
            assert_eq!(again, fresh, "{method} {target}: answer from the cache");
        }
    }
    // GCE and Azure answers with status 200 were kept (one per distinct path and format).
    assert!(cache.answers() >= 10, "only {} answers kept", cache.answers());
}

#[test]
fn guest_attributes_written_between_requests_are_seen_with_the_same_cache() {
    let instance = instance();
    let cache = Cache::new(Budget::unlimited());
    let target = "/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519";
    let before = send(&instance, &GuestState::default(), Some(&cache), &request(Method::GET, target));
    assert_eq!(before.status, 404, "no attribute yet");
    let mut state = GuestState::default();
    state
        .apply(&StateWrite {
            dialect: "gce".into(),
            path: vec!["guest-attributes".into(), "hostkeys".into(), "ssh-ed25519".into()],
            value: Some(json!("AAAAkey")),
            only_if_absent: false,
        })
        .unwrap();
    let after = send(&instance, &state, Some(&cache), &request(Method::GET, target));
    assert_eq!((after.status.as_u16(), &after.body[..]), (200, &b"AAAAkey"[..]));
    let listing = "/computeMetadata/v1/instance/guest-attributes/hostkeys/";
    let listed = send(&instance, &state, Some(&cache), &request(Method::GET, listing));
    assert_eq!(&listed.body[..], b"ssh-ed25519\n");
}

#[test]
fn a_guest_walking_many_paths_keeps_a_bounded_number_of_answers() {
    let mut doc = instance().to_json();
    let attributes: serde_json::Map<String, serde_json::Value> =
        (0..200).map(|i| (format!("key-{i}"), json!(format!("value-{i}")))).collect();
    doc["dialects"]["gce"]["attributes"] = attributes.into();
    let instance = Instance::parse(&doc, &Limits::default()).unwrap();
    let cache = Cache::new(Budget::unlimited());
    for i in 0..200 {
        let target = format!("/computeMetadata/v1/instance/attributes/key-{i}");
        let response = send(&instance, &GuestState::default(), Some(&cache), &request(Method::GET, &target));
        assert_eq!(&response.body[..], format!("value-{i}").as_bytes());
        assert!(cache.answers() <= 64, "{} answers kept", cache.answers());
    }
    let again = send(
        &instance,
        &GuestState::default(),
        Some(&cache),
        &request(Method::GET, "/computeMetadata/v1/instance/attributes/key-3"),
    );
    assert_eq!(&again.body[..], b"value-3");
}

#[test]
fn caches_keep_within_their_budget_and_give_it_back() {
    let instance = instance();
    let state = GuestState::default();
    let targets = ["/latest/meta-data/instance-id", "/computeMetadata/v1/?recursive=true"];
    // Room for a few instances' renderings.
    let budget = Budget::new(48 << 10);
    let caches: Vec<Cache> = (0..8).map(|_| Cache::new(std::sync::Arc::clone(&budget))).collect();
    for cache in &caches {
        for target in targets {
            let request = request(Method::GET, target);
            assert_eq!(send(&instance, &state, Some(cache), &request), send(&instance, &state, None, &request));
            assert!(budget.used() <= budget.limit(), "{} bytes kept", budget.used());
        }
    }
    let trees = caches.iter().filter(|cache| cache.has_ec2_tree()).count();
    assert!((1..8).contains(&trees), "{trees} caches keep an EC2 tree");
    assert_eq!(caches.iter().map(Cache::bytes).sum::<usize>(), budget.used());
    let first = caches.iter().position(|cache| cache.has_ec2_tree()).unwrap();
    caches[first].clear();
    assert!(!caches[first].has_ec2_tree());
    assert_eq!(caches[first].answers(), 0);
    assert_eq!(caches.iter().map(Cache::bytes).sum::<usize>(), budget.used());
    // The room a clear gives back is used by the next cache that asks.
    let late = caches.iter().position(|cache| !cache.has_ec2_tree()).unwrap();
    send(&instance, &state, Some(&caches[late]), &request(Method::GET, targets[0]));
    assert!(caches[late].has_ec2_tree());
    drop(caches);
    assert_eq!(budget.used(), 0, "dropped caches give their bytes back");
}

#[test]
fn the_budget_lists_only_the_caches_that_hold_bytes() {
    let instance = instance();
    let state = GuestState::default();
    let budget = Budget::new(48 << 10);
    let caches: Vec<Cache> = (0..200).map(|_| Cache::new(std::sync::Arc::clone(&budget))).collect();
    assert!(budget.held().is_empty(), "nothing asked, nothing held");
    let request = request(Method::GET, "/latest/meta-data/instance-id");
    for cache in &caches {
        send(&instance, &state, Some(cache), &request);
    }
    // The budget has room for a few trees; every cache was asked, but only those keeping one are listed.
    let keeping = caches.iter().filter(|cache| cache.bytes() > 0).count();
    assert!((1..20).contains(&keeping), "{keeping} caches keep a tree");
    let held = budget.held();
    assert_eq!(held.len(), keeping);
    assert_eq!(held.iter().map(|held| held.bytes()).sum::<usize>(), budget.used());
    // Asked again, a listed cache is not listed twice.
    for cache in &caches {
        send(&instance, &state, Some(cache), &request);
    }
    assert_eq!(budget.held().len(), keeping);
    // Cleared caches leave the list, and one charged again after its clear comes back once.
    held[0].clear();
    drop(held);
    assert_eq!(budget.held().len(), keeping - 1);
    let refilled = caches.iter().position(|cache| cache.bytes() == 0).unwrap();
    send(&instance, &state, Some(&caches[refilled]), &request);
    assert!(caches[refilled].bytes() > 0, "the freed room is used");
    assert_eq!(budget.held().len(), keeping);
    // Dropped caches leave the list and give their bytes back.
    drop(caches);
    assert!(budget.held().is_empty());
    assert_eq!(budget.used(), 0);
}
