//! Kept renderings over real sockets: with a budget far smaller than the instances' renderings,
//! every guest still gets its own correct answers, the kept bytes never exceed the budget, and
//! the renderings' tending drops idle ones and, under pressure, the least recently asked.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use imds_server::view::renderings;
use serde_json::{json, Value};

const INSTANCES: u32 = 40;
/// About five instances' EC2 trees.
const BUDGET: usize = 64 << 10;

/// The requests' clock: Unix seconds.
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn record(n: u32) -> Value {
    json!({
        "id": format!("i-render-{n}"),
        "hostname": format!("host-{n}"),
        "ipv4": [format!("127.0.6.{}", n + 1)],
        "region": "eu-west-1",
        "user_data": format!("#cloud-config\n# instance {n}\n"),
    })
}

/// Asks instance `n`'s EC2 and GCE questions from its own address and checks each answer is its own.
async fn ask(server: &TestServer, n: u32) {
    let guest = server.guest_from(&format!("127.0.6.{}", n + 1));
    let id = guest.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!((id.status, id.text()), (StatusCode::OK, format!("i-render-{n}")));
    let hostname = guest.get("/latest/meta-data/local-hostname").await.unwrap();
    assert_eq!(hostname.status, StatusCode::OK);
    assert!(hostname.text().starts_with(&format!("host-{n}")), "{}", hostname.text());
    let gce = guest
        .send(Method::GET, "/computeMetadata/v1/instance/?recursive=true", &[("metadata-flavor", "Google")], "")
        .await
        .unwrap();
    assert_eq!(gce.status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&gce.text()).unwrap();
    assert_eq!(doc["hostname"].as_str().unwrap().split('.').next(), Some(format!("host-{n}").as_str()));
}

#[tokio::test]
async fn a_small_budget_bounds_what_is_kept_and_every_guest_still_gets_its_own_answers() {
    let server = TestServer::with_render_cache(BUDGET).await;
    for n in 0..INSTANCES {
        server.create(record(n)).await;
    }
    let budget = || std::sync::Arc::clone(server.running.view.load().budget());
    assert_eq!(budget().limit(), BUDGET);
    for round in 0..2 {
        for n in 0..INSTANCES {
            ask(&server, n).await;
            assert!(budget().used() <= BUDGET, "round {round}, instance {n}: {} bytes kept", budget().used());
        }
    }
    // The budget filled up: some instances keep renderings, the others are answered without.
    let snapshot = server.running.view.load();
    let keeping = snapshot.entries().filter(|entry| entry.cache.bytes() > 0).count();
    assert!(budget().used() > BUDGET / 2, "only {} bytes kept", budget().used());
    assert!((1..INSTANCES as usize).contains(&keeping), "{keeping} instances keep renderings");

    // Under pressure, tending drops renderings until the budget is at most 70% used.
    renderings::sweep(&budget(), now(), renderings::IDLE.as_secs());
    assert!(budget().used() <= BUDGET / 10 * 7, "{} bytes kept after tending", budget().used());
    // Idle renderings all go; the answers are the same afterwards.
    renderings::sweep(&budget(), now(), 0);
    assert_eq!(budget().used(), 0);
    assert!(snapshot.entries().all(|entry| entry.cache.bytes() == 0));
    for n in 0..INSTANCES {
        ask(&server, n).await;
    }
}

#[tokio::test]
async fn a_new_version_of_a_record_gives_back_what_the_old_one_kept() {
    let server = TestServer::with_render_cache(BUDGET).await;
    server.create(record(0)).await;
    ask(&server, 0).await;
    let budget = || std::sync::Arc::clone(server.running.view.load().budget());
    let kept = budget().used();
    assert!(kept > 0, "the first instance's renderings were kept");
    let mut changed = record(0);
    changed["hostname"] = json!("renamed");
    let response = server
        .admin()
        .send(Method::PUT, "/v1/instances/i-render-0", &[("content-type", "application/json")], changed.to_string())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    // Old snapshots are released as requests finish; nothing holds the old version for long.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while budget().used() != 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(budget().used(), 0, "the old version's renderings are given back");
    let guest = server.guest_from("127.0.6.1");
    let hostname = guest.get("/latest/meta-data/local-hostname").await.unwrap();
    assert!(hostname.text().starts_with("renamed"), "{}", hostname.text());
}
