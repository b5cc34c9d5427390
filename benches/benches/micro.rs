//! criterion micro-benchmarks of the guest hot path's parts: identifying the caller in a view of
//! 1 to 100,000 instances, rendering each dialect's common answers, session tokens, and the
//! classification every request gets for the metrics and the audit log.
//! Run with `cargo bench -p imds-bench` (scripts/bench runs it too).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use imds_dialects::token::TokenKey;
use imds_dialects::{route, Context, GuestRequest, Subject};
use imds_model::{Instance, Limits};
use imds_server::view::{Snapshot, INSTANCES};
use imds_store::{Key, Record, Revision};
use serde_json::json;

fn address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 1)) + n)
}

fn instance(n: u32) -> Instance {
    let doc = json!({
        "id": format!("i-{n:017x}"),
        "hostname": format!("host-{n}"),
        "ipv4": [address(n).to_string()],
        "mac": [format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", n >> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)],
        "region": "eu-west-1",
        "zone": "eu-west-1b",
        "instance_type": "m5.large",
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench@host"],
        "user_data": "#cloud-config\n",
    });
    Instance::parse(&doc, &Limits::default()).expect("bench fixture is valid")
}

fn snapshot(size: u32) -> Snapshot {
    let records: Vec<Record> = (0..size)
        .map(|n| {
            let instance = instance(n);
            Record {
                key: Key::new(INSTANCES, instance.id.as_str()),
                node: None,
                claims: instance.claims(),
                value: instance.to_bytes(),
                rev: Revision(u64::from(n) + 1),
            }
        })
        .collect();
    Snapshot::from_records(Revision(u64::from(size)), &records, imds_dialects::Budget::unlimited())
}

fn identify(c: &mut Criterion) {
    let mut group = c.benchmark_group("identify");
    for size in [1u32, 10_000, 100_000] {
        let snapshot = snapshot(size);
        let caller = IpAddr::V4(address(size / 2));
        group.bench_with_input(BenchmarkId::from_parameter(size), &caller, |b, caller| {
            b.iter(|| black_box(snapshot.by_ip(black_box(*caller)).is_some()));
        });
    }
    group.finish();
}

/// A render benchmark: name, request target, request headers.
type Case<'a> = (&'a str, &'a str, &'a [(http::header::HeaderName, &'a str)]);

fn render(c: &mut Criterion) {
    let key = TokenKey::from_bytes([9; 32]);
    let context = Context::new(&key, 1_800_000_000);
    let instance = instance(7);
    let subject = Subject::new(&instance);
    let mut group = c.benchmark_group("render");
    let metadata = [(http::header::HeaderName::from_static("metadata"), "true")];
    let cases: Vec<Case<'_>> = vec![
        ("ec2-leaf", "/latest/meta-data/instance-id", &[]),
        ("ec2-listing", "/latest/meta-data/", &[]),
        ("ec2-user-data", "/latest/user-data", &[]),
        ("ec2-identity-document", "/latest/dynamic/instance-identity/document", &[]),
        ("openstack-meta-data", "/openstack/latest/meta_data.json", &[]),
        ("openstack-network-data", "/openstack/latest/network_data.json", &[]),
        ("azure-instance", "/metadata/instance?api-version=2021-02-01", &metadata),
        ("azure-leaf", "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text", &metadata),
    ];
    for (name, path, headers) in cases {
        let mut request = GuestRequest::new(Method::GET, path);
        for (header, value) in headers {
            request = request.with_header(header.clone(), http::HeaderValue::from_str(value).expect("a valid value"));
        }
        group.bench_function(name, |b| b.iter(|| black_box(route(&subject, black_box(&request), &context))));
    }
    // Firecracker MMDS: a leaf of a small document, as text.
    let mmds = imds_model::Mmds {
        data: Some(json!({"latest": {"meta-data": {"instance-id": "i-7", "ami-id": "ami-1", "tags": {"a": "b"}}}})),
        ..imds_model::Mmds::default()
    };
    let with_mmds = Subject { mmds: Some(&mmds), ..subject };
    let request = GuestRequest::new(Method::GET, "/latest/meta-data/instance-id");
    group.bench_function("mmds-leaf", |b| b.iter(|| black_box(route(&with_mmds, black_box(&request), &context))));
    group.finish();
}

fn tokens(c: &mut Criterion) {
    let key = TokenKey::from_bytes([9; 32]);
    let token = key.mint("i-0123456789abcdef0", 1_800_000_000, 21_600, 1).expect("valid ttl");
    let mut group = c.benchmark_group("token");
    group.bench_function("mint", |b| {
        b.iter(|| black_box(key.mint(black_box("i-0123456789abcdef0"), 1_800_000_000, 21_600, black_box(1))));
    });
    group.bench_function("verify", |b| {
        b.iter(|| black_box(key.verify(black_box(&token), "i-0123456789abcdef0", 1_800_000_100)));
    });
    group.finish();
}

fn classify(c: &mut Criterion) {
    use imds_dialects::sensitive::read_of;
    let settings = imds_dialects::Settings::default();
    let mut group = c.benchmark_group("classify");
    for (name, dialect, target) in [
        ("ec2-leaf", imds_dialects::Dialect::Ec2, "/latest/meta-data/instance-id"),
        ("ec2-credentials", imds_dialects::Dialect::Ec2, "/latest/meta-data/iam/security-credentials/web"),
        ("gce-leaf", imds_dialects::Dialect::Gce, "/computeMetadata/v1/instance/hostname"),
    ] {
        let request = GuestRequest::new(Method::GET, target);
        group.bench_function(name, |b| b.iter(|| black_box(read_of(dialect, black_box(&request), &settings))));
    }
    group.finish();
}

// The macro defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, identify, render, tokens, classify);
}
use group::benches;
criterion_main!(benches);
