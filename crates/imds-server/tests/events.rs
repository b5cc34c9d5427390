//! Runtime events over real sockets, on tokio's paused clock (the daemon's one clock follows
//! it, so the tests move time without sleeping): every kind in EC2, GCE and Azure before, at
//! and after its times; Azure approval and `DocumentIncarnation`; GCE `wait_for_change` woken
//! by an admin change and by the clock; selectors; the timer picking up a schedule after a
//! restart on the same SQLite file; and bad admin input writing nothing.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::Response;
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const FLAVOR: (&str, &str) = ("metadata-flavor", "Google");
const AZURE: (&str, &str) = ("metadata", "true");
const SCHEDULED_EVENTS: &str = "/metadata/scheduledevents?api-version=2020-07-01";

fn record(id: &str, ip: &str) -> Value {
    json!({"id": id, "name": format!("vm-{id}"), "ipv4": [ip], "zone": "us-east-1a"})
}

async fn post(server: &TestServer, path: &str, body: Value) -> Response {
    server.admin().send(Method::POST, path, &[("content-type", "application/json")], body.to_string()).await.unwrap()
}

/// Creates an event through the admin API and returns it.
async fn add(server: &TestServer, id: &str, body: Value) -> Value {
    let response = post(server, &format!("/v1/instances/{id}/events"), body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()
}

async fn admin_get(server: &TestServer, path: &str) -> Value {
    let response = server.admin().get(path).await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text());
    response.json()
}

async fn ec2(server: &TestServer, source: &str, path: &str) -> (StatusCode, String) {
    let response = server.guest_from(source).get(&format!("/latest/meta-data/{path}")).await.unwrap();
    (response.status, response.text())
}

async fn gce(server: &TestServer, source: &str, path: &str) -> String {
    let target = format!("/computeMetadata/v1/instance/{path}");
    let response = server.guest_from(source).send(Method::GET, &target, &[FLAVOR], "").await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{target}: {}", response.text());
    response.text()
}

async fn azure(server: &TestServer, source: &str) -> Value {
    let response = server.guest_from(source).send(Method::GET, SCHEDULED_EVENTS, &[AZURE], "").await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

fn unix(value: &Value) -> u64 {
    imds_model::time::parse_rfc3339(value.as_str().unwrap()).unwrap()
}

/// Moves the paused clock from `from` (a whole second the daemon's clock read at most a
/// moment ago) so that the daemon reads `to`, and lets its tasks run.
async fn advance(from: &mut u64, to: u64) {
    assert!(to >= *from);
    tokio::time::advance(Duration::from_secs(to - *from)).await;
    *from = to;
    // Let the timer's write land (the paused clock does not move while the store works).
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_spot_interruption_shows_in_every_dialect_at_its_times() {
    let server = TestServer::start().await;
    server.create(record("i-spot", "127.0.30.1")).await;
    let src = "127.0.30.1";
    let event = add(&server, "i-spot", json!({"kind": "spot-interruption", "in_seconds": 300})).await;
    let mut now = unix(&event["created_at"]);
    let time = unix(&event["not_before"]);
    assert_eq!(time, now + 300);
    assert_eq!(unix(&event["notice_at"]), time - 120, "two minutes' notice, as AWS gives");
    assert_eq!(
        (event["kind"].as_str(), event["action"].as_str(), event["state"].as_str()),
        (Some("spot-interruption"), Some("terminate"), Some("scheduled"))
    );
    let id = event["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("instance-event-") && id.len() == 32, "{id}");

    // Before the notice: nothing anywhere.
    advance(&mut now, time - 121).await;
    assert_eq!(ec2(&server, src, "spot/instance-action").await.0, StatusCode::NOT_FOUND);
    assert_eq!(ec2(&server, src, "spot/").await.0, StatusCode::NOT_FOUND);
    assert!(!ec2(&server, src, "").await.1.lines().any(|line| line == "spot/"));
    assert_eq!(
        ec2(&server, src, "instance-life-cycle").await.1,
        "spot",
        "a spot interruption makes it a spot instance"
    );
    assert_eq!(gce(&server, src, "preempted").await, "FALSE");
    assert_eq!(gce(&server, src, "maintenance-event").await, "NONE");
    assert_eq!(azure(&server, src).await, json!({"DocumentIncarnation": 0, "Events": []}));

    // At the notice: EC2's notice, GCE's maintenance event, Azure's Preempt.
    advance(&mut now, time - 120).await;
    let stamp = imds_model::time::format_rfc3339(time);
    let (status, body) = ec2(&server, src, "spot/instance-action").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, format!("{{\"action\": \"terminate\", \"time\": \"{stamp}\"}}").as_str())
    );
    // What aws-node-termination-handler reads: `action` and an RFC 3339 `time`.
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(imds_model::time::parse_rfc3339(parsed["time"].as_str().unwrap()), Some(time));
    assert_eq!(ec2(&server, src, "spot/termination-time").await, (StatusCode::OK, stamp.clone()));
    assert_eq!(ec2(&server, src, "spot").await.1, "instance-action\ntermination-time");
    assert!(ec2(&server, src, "").await.1.lines().any(|line| line == "spot/"));
    assert_eq!(gce(&server, src, "maintenance-event").await, "TERMINATE_ON_HOST_MAINTENANCE");
    assert_eq!(gce(&server, src, "preempted").await, "FALSE");
    let document = azure(&server, src).await;
    assert_eq!(document["DocumentIncarnation"], 1);
    let shown = &document["Events"][0];
    // Azure's event ids are GUIDs: one derived from the event's own id, the same on every node.
    let guid = shown["EventId"].as_str().unwrap();
    assert!(guid.len() == 36 && guid.matches('-').count() == 4 && guid != id.as_str(), "{guid}");
    assert_eq!(azure(&server, src).await["Events"][0]["EventId"], guid);
    assert_eq!(shown["EventType"], "Preempt");
    assert_eq!(shown["EventStatus"], "Scheduled");
    assert_eq!(shown["Resources"], json!(["vm-i-spot"]));
    assert_eq!(shown["EventSource"], "Platform");
    assert_eq!(shown["DurationInSeconds"], -1);
    assert_eq!(shown["NotBefore"], imds_model::time::format_rfc1123(time).as_str());

    // At the time: preempted, started.
    advance(&mut now, time).await;
    assert_eq!(gce(&server, src, "preempted").await, "TRUE");
    let document = azure(&server, src).await;
    assert_eq!(document["DocumentIncarnation"], 2);
    assert_eq!(document["Events"][0]["EventStatus"], "Started");
    assert_eq!(document["Events"][0]["NotBefore"], "");
    assert_eq!(ec2(&server, src, "spot/termination-time").await.0, StatusCode::OK, "the notice stays until the end");
    assert_eq!(admin_get(&server, &format!("/v1/events/{id}")).await["state"], "active");

    // Canceled: gone from every dialect; the incarnation counts the removal.
    let canceled = server.admin().send(Method::DELETE, &format!("/v1/events/{id}"), &[], "").await.unwrap();
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text());
    assert_eq!(canceled.json()["state"], "canceled");
    assert_eq!(ec2(&server, src, "spot/instance-action").await.0, StatusCode::NOT_FOUND);
    assert_eq!(gce(&server, src, "preempted").await, "FALSE");
    assert_eq!(azure(&server, src).await, json!({"DocumentIncarnation": 3, "Events": []}));
    let again = server.admin().send(Method::DELETE, &format!("/v1/events/{id}"), &[], "").await.unwrap();
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["error"]["field"], "event_id");
}

#[tokio::test(start_paused = true)]
async fn hibernate_and_stop_interruptions_have_no_termination_time() {
    let server = TestServer::start().await;
    server.create(record("i-hib", "127.0.30.2")).await;
    let event =
        add(&server, "i-hib", json!({"kind": "spot-interruption", "action": "hibernate", "in_seconds": 60})).await;
    let body = ec2(&server, "127.0.30.2", "spot/instance-action").await.1;
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["action"], "hibernate");
    assert_eq!(parsed["time"], event["not_before"]);
    assert_eq!(ec2(&server, "127.0.30.2", "spot/termination-time").await.0, StatusCode::NOT_FOUND);
    assert_eq!(ec2(&server, "127.0.30.2", "spot").await.1, "instance-action");
}

#[tokio::test(start_paused = true)]
async fn rebalance_maintenance_and_lifecycle_follow_the_clock() {
    let server = TestServer::start().await;
    server.create(record("i-mnt", "127.0.30.3")).await;
    let src = "127.0.30.3";
    let rebalance = add(&server, "i-mnt", json!({"kind": "rebalance-recommendation", "in_seconds": 30})).await;
    let mut now = unix(&rebalance["created_at"]);
    let maintenance = add(
        &server,
        "i-mnt",
        json!({"kind": "scheduled-maintenance", "code": "system-reboot", "in_seconds": 1000, "duration_seconds": 600,
               "description": "scheduled reboot of the host"}),
    )
    .await;
    let lifecycle = add(
        &server,
        "i-mnt",
        json!({"kind": "target-lifecycle-state", "lifecycle_state": "InService", "in_seconds": 0}),
    )
    .await;
    assert_eq!(lifecycle["state"], "active");
    add(
        &server,
        "i-mnt",
        json!({"kind": "target-lifecycle-state", "lifecycle_state": "Terminated", "in_seconds": 500}),
    )
    .await;
    let (begin, end) = (unix(&maintenance["not_before"]), unix(&maintenance["not_after"]));
    assert_eq!((begin, end), (now + 1000, now + 1600));
    let maintenance_id = maintenance["id"].as_str().unwrap();

    // Maintenance is announced at once, in AWS's layout and GMT times.
    assert_eq!(ec2(&server, src, "events/recommendations/rebalance").await.0, StatusCode::NOT_FOUND);
    let (status, scheduled) = ec2(&server, src, "events/maintenance/scheduled").await;
    assert_eq!(status, StatusCode::OK);
    let gmt = imds_model::time::format_ec2_event;
    assert_eq!(
        scheduled,
        format!(
            "[ {{\n  \"NotBefore\" : \"{}\",\n  \"Code\" : \"system-reboot\",\n  \"Description\" : \"scheduled reboot of the host\",\n  \"EventId\" : \"{maintenance_id}\",\n  \"NotAfter\" : \"{}\",\n  \"State\" : \"active\"\n}} ]",
            gmt(begin),
            gmt(end)
        )
    );
    assert_eq!(ec2(&server, src, "events/maintenance/history").await.1, "[]");
    assert_eq!(ec2(&server, src, "autoscaling/target-lifecycle-state").await.1, "InService");
    assert_eq!(gce(&server, src, "maintenance-event").await, "TERMINATE_ON_HOST_MAINTENANCE");
    let document = azure(&server, src).await;
    assert_eq!(document["Events"].as_array().unwrap().len(), 1, "rebalance and lifecycle have no Azure form");
    assert_eq!(document["Events"][0]["EventType"], "Reboot");
    assert_eq!(document["Events"][0]["DurationInSeconds"], 600);
    assert_eq!(document["Events"][0]["Description"], "scheduled reboot of the host");

    let to = now + 30;
    advance(&mut now, to).await;
    let (status, body) = ec2(&server, src, "events/recommendations/rebalance").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("{{\"noticeTime\": \"{}\"}}", rebalance["not_before"].as_str().unwrap()));
    assert!(ec2(&server, src, "events/recommendations").await.1.contains("rebalance"));

    let to = now + 470;
    advance(&mut now, to).await;
    assert_eq!(ec2(&server, src, "autoscaling/target-lifecycle-state").await.1, "Terminated");

    // Over: the maintenance moves to the history, marked completed.
    advance(&mut now, end).await;
    assert_eq!(ec2(&server, src, "events/maintenance/scheduled").await.1, "[]");
    let history: Value = serde_json::from_str(&ec2(&server, src, "events/maintenance/history").await.1).unwrap();
    assert_eq!(history[0]["State"], "completed");
    assert_eq!(history[0]["Description"], "[Completed] scheduled reboot of the host");
    assert_eq!(gce(&server, src, "maintenance-event").await, "NONE");
    assert_eq!(azure(&server, src).await["Events"], json!([]));
    // The timer recorded each change in the store.
    let listed = admin_get(&server, "/v1/instances/i-mnt/events").await;
    let states: Vec<&str> = listed["events"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "active", "active", "completed"]);
    let completed = admin_get(&server, "/v1/events?state=completed").await;
    assert_eq!(completed["events"].as_array().unwrap().len(), 1);
    assert_eq!(completed["events"][0]["id"], maintenance_id);
}

#[tokio::test(start_paused = true)]
async fn azure_guests_approve_events_and_unknown_ids_are_refused() {
    let server = TestServer::start().await;
    server.create(record("i-az", "127.0.30.4")).await;
    server.create(record("i-other", "127.0.30.5")).await;
    let src = "127.0.30.4";
    let freeze = add(
        &server,
        "i-az",
        json!({"kind": "scheduled-maintenance", "code": "system-maintenance", "in_seconds": 3600}),
    )
    .await;
    let other = add(&server, "i-other", json!({"kind": "scheduled-maintenance", "in_seconds": 3600})).await;
    let id = freeze["id"].as_str().unwrap();
    let before = azure(&server, src).await;
    assert_eq!(before["DocumentIncarnation"], 1);
    assert_eq!(before["Events"][0]["EventType"], "Freeze");
    assert_eq!(before["Events"][0]["EventStatus"], "Scheduled");

    let approve = |event: &str| json!({"StartRequests": [{"EventId": event}]}).to_string();
    let guest = server.guest_from(src);
    // Another instance's event, an unknown one and a malformed body: Azure's 400, nothing started.
    for body in [approve(other["id"].as_str().unwrap()), approve("instance-event-00000000000000000"), "[]".to_owned()] {
        let refused = guest.send(Method::POST, SCHEDULED_EVENTS, &[AZURE], body.clone()).await.unwrap();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(refused.json()["error"].as_str().unwrap().starts_with("Bad request."), "{}", refused.text());
    }
    assert_eq!(azure(&server, src).await, before);

    // The guest approves the event by the GUID the document shows, as Azure's agents do.
    let guid = before["Events"][0]["EventId"].as_str().unwrap();
    let started = guest.send(Method::POST, SCHEDULED_EVENTS, &[AZURE], approve(guid)).await.unwrap();
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let after = azure(&server, src).await;
    assert_eq!(after["DocumentIncarnation"], 2);
    assert_eq!(after["Events"][0]["EventStatus"], "Started");
    let recorded = admin_get(&server, &format!("/v1/events/{id}")).await;
    assert_eq!(recorded["state"], "active");
    assert!(recorded["started_at"].is_string(), "{recorded}");
    // EC2 and GCE see the same event in effect.
    assert_eq!(gce(&server, src, "maintenance-event").await, "MIGRATE_ON_HOST_MAINTENANCE");
    // The other instance's event is untouched.
    assert_eq!(
        admin_get(&server, &format!("/v1/events/{}", other["id"].as_str().unwrap())).await["state"],
        "scheduled"
    );
}

#[tokio::test(start_paused = true)]
async fn gce_long_polls_wake_on_event_changes_and_at_event_times() {
    let server = TestServer::start().await;
    server.create(record("i-gce", "127.0.30.6")).await;
    let src = "127.0.30.6";
    let poll = |path: &'static str| {
        let guest = server.guest_from(src).with_timeout(Duration::from_secs(4000));
        async move {
            let target = format!("/computeMetadata/v1/instance/{path}?wait_for_change=true&timeout_sec=3000");
            guest.send(Method::GET, &target, &[FLAVOR], "").await.unwrap()
        }
    };
    // An admin change wakes a waiter on maintenance-event.
    let waiting = tokio::spawn(poll("maintenance-event"));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    let event = add(&server, "i-gce", json!({"kind": "scheduled-maintenance", "in_seconds": 600})).await;
    let woken = tokio::time::timeout(Duration::from_secs(60), waiting).await.unwrap().unwrap();
    assert_eq!(woken.text(), "TERMINATE_ON_HOST_MAINTENANCE");
    let mut now = unix(&event["created_at"]);

    // The clock wakes a waiter on preempted at the spot time, with no write in between needed.
    let spot = add(&server, "i-gce", json!({"kind": "spot-interruption", "in_seconds": 200})).await;
    let waiting = tokio::spawn(poll("preempted"));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished());
    advance(&mut now, unix(&spot["not_before"]) - 1).await;
    assert!(!waiting.is_finished(), "nothing changed yet");
    advance(&mut now, unix(&spot["not_before"])).await;
    let woken = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    assert_eq!(woken.text(), "TRUE");
}

#[tokio::test(start_paused = true)]
async fn selectors_create_one_event_per_matching_instance_at_once() {
    let server = TestServer::start().await;
    let tagged = |id: &str, ip: &str, env: &str| json!({"id": id, "ipv4": [ip], "tags": {"env": env}});
    server.create(tagged("i-d1", "127.0.30.11", "dev")).await;
    server.create(tagged("i-d2", "127.0.30.12", "dev")).await;
    server.create(tagged("i-p1", "127.0.30.13", "prod")).await;
    let created =
        post(&server, "/v1/events", json!({"selector": "tag:env=dev", "kind": "rebalance-recommendation"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let mut instances: Vec<String> = created.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["instance"].as_str().unwrap().to_owned())
        .collect();
    instances.sort();
    assert_eq!(instances, ["i-d1", "i-d2"]);
    for (src, seen) in
        [("127.0.30.11", StatusCode::OK), ("127.0.30.12", StatusCode::OK), ("127.0.30.13", StatusCode::NOT_FOUND)]
    {
        assert_eq!(ec2(&server, src, "events/recommendations/rebalance").await.0, seen, "{src}");
    }
    // A list naming a missing instance writes nothing at all.
    let missing =
        post(&server, "/v1/events", json!({"instances": ["i-p1", "i-nope"], "kind": "rebalance-recommendation"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    assert_eq!(admin_get(&server, "/v1/instances/i-p1/events").await["events"], json!([]));
    let listed = post(&server, "/v1/events", json!({"instances": ["i-p1"], "kind": "spot-interruption"})).await;
    assert_eq!(listed.status, StatusCode::CREATED);
    assert_eq!(admin_get(&server, "/v1/events?state=scheduled").await["events"].as_array().unwrap().len(), 1);
    assert_eq!(admin_get(&server, "/v1/events").await["events"].as_array().unwrap().len(), 3);
    // Nothing matches: no events, no error.
    let none =
        post(&server, "/v1/events", json!({"selector": "node:elsewhere", "kind": "rebalance-recommendation"})).await;
    assert_eq!((none.status, none.json()), (StatusCode::CREATED, json!({"events": []})));
}

#[tokio::test(start_paused = true)]
async fn bad_event_requests_name_the_field_and_write_nothing() {
    let server = TestServer::start().await;
    server.create(record("i-bad", "127.0.30.20")).await;
    let cases = [
        (json!({"kind": "meteor-strike"}), "kind"),
        (json!({"in_seconds": 5}), "kind"),
        (json!({"kind": "spot-interruption", "action": "explode"}), "action"),
        (json!({"kind": "rebalance-recommendation", "action": "stop"}), "action"),
        (json!({"kind": "scheduled-maintenance", "code": "reboot-everything"}), "code"),
        (json!({"kind": "spot-interruption", "not_before": "2001-01-01T00:00:00Z"}), "not_before"),
        (json!({"kind": "spot-interruption", "not_before": "soon"}), "not_before"),
        (json!({"kind": "spot-interruption", "in_seconds": 10, "not_before": "2099-01-01T00:00:00Z"}), "not_before"),
        (json!({"kind": "spot-interruption", "in_seconds": -3}), "in_seconds"),
        (json!({"kind": "spot-interruption", "colour": "red"}), "colour"),
        (json!({"kind": "target-lifecycle-state"}), "lifecycle_state"),
    ];
    for (body, field) in cases {
        let response = post(&server, "/v1/instances/i-bad/events", body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.text());
        assert_eq!(response.json()["error"]["field"], field, "{body}: {}", response.text());
    }
    let duplicate = server
        .admin()
        .send(Method::POST, "/v1/instances/i-bad/events", &[], r#"{"kind": "spot-interruption", "kind": "x"}"#)
        .await
        .unwrap();
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin_get(&server, "/v1/instances/i-bad/events").await["events"], json!([]));
    assert!(server.store.get(&imds_server::records::events(&"i-bad".try_into().unwrap())).await.unwrap().is_none());
    let selector =
        post(&server, "/v1/events", json!({"selector": "colour:red", "kind": "rebalance-recommendation"})).await;
    assert_eq!(
        (selector.status, selector.json()["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("selector"))
    );

    let unknown = post(&server, "/v1/instances/i-none/events", json!({"kind": "spot-interruption"})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad_id = server.admin().get("/v1/events/not-an-event").await.unwrap();
    assert_eq!((bad_id.status, bad_id.json()["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("event_id")));
    let no_event = server.admin().get("/v1/events/instance-event-0123456789abcdef0").await.unwrap();
    assert_eq!(no_event.status, StatusCode::NOT_FOUND);
    let bad_state = server.admin().get("/v1/events?state=exploded").await.unwrap();
    assert_eq!(
        (bad_state.status, bad_state.json()["error"]["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("state"))
    );
}

#[tokio::test(start_paused = true)]
async fn events_are_deleted_with_their_instance() {
    let server = TestServer::start().await;
    server.create(record("i-gone", "127.0.30.21")).await;
    let event = add(&server, "i-gone", json!({"kind": "spot-interruption"})).await;
    let path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    assert_eq!(server.admin().get(&path).await.unwrap().status, StatusCode::OK);
    let deleted = server.admin().send(Method::DELETE, "/v1/instances/i-gone", &[], "").await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(server.admin().get(&path).await.unwrap().status, StatusCode::NOT_FOUND);
    assert!(server.store.get(&imds_server::records::events(&"i-gone".try_into().unwrap())).await.unwrap().is_none());
    // A new instance with the same id starts with no events.
    server.create(record("i-gone", "127.0.30.21")).await;
    assert_eq!(ec2(&server, "127.0.30.21", "spot/instance-action").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_server_picks_up_the_schedule_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imds.db");
    let open = || -> Arc<dyn imds_store::Store> {
        Arc::new(imds_store_sqlite::SqliteStore::open(&path, Default::default()).unwrap())
    };
    let first = TestServer::with_store(open(), None).await;
    first.create(record("i-rs", "127.0.30.30")).await;
    let event = add(&first, "i-rs", json!({"kind": "spot-interruption", "in_seconds": 600})).await;
    let id = event["id"].as_str().unwrap().to_owned();
    let mut now = unix(&event["created_at"]);
    first.running.stop().await;
    drop(first.store);

    let second = TestServer::with_store(open(), None).await;
    let key = imds_server::records::events(&"i-rs".try_into().unwrap());
    let stored_state = || async {
        let record = second.store.get(&key).await.unwrap().unwrap();
        let list = imds_server::records::decode_events(&record).unwrap();
        list.events[0].state
    };
    assert_eq!(stored_state().await, imds_model::EventState::Scheduled);
    assert_eq!(ec2(&second, "127.0.30.30", "spot/instance-action").await.0, StatusCode::NOT_FOUND);
    advance(&mut now, unix(&event["not_before"])).await;
    // The new server's timer records the change at the time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored_state().await != imds_model::EventState::Active {
        assert!(tokio::time::Instant::now() < deadline, "the timer did not record the spot time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ec2(&second, "127.0.30.30", "spot/termination-time").await.1, event["not_before"].as_str().unwrap());
    assert_eq!(admin_get(&second, &format!("/v1/events/{id}")).await["state"], "active");
}

#[tokio::test(start_paused = true)]
async fn events_move_with_their_instance_to_another_node() {
    let server = TestServer::start().await;
    server.create(record("i-mv", "127.0.30.40")).await;
    add(&server, "i-mv", json!({"kind": "spot-interruption", "in_seconds": 600})).await;
    let key = imds_server::records::events(&"i-mv".try_into().unwrap());
    assert_eq!(server.store.get(&key).await.unwrap().unwrap().node, None);
    let patched = server
        .admin()
        .send(
            Method::PATCH,
            "/v1/instances/i-mv",
            &[("content-type", "application/merge-patch+json")],
            r#"{"node": "hv-2"}"#,
        )
        .await
        .unwrap();
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let moved = server.store.get(&key).await.unwrap().unwrap();
    assert_eq!(moved.node.as_deref(), Some("hv-2"), "the event list follows its instance in the same commit");
    let instance =
        server.store.get(&imds_server::records::instance(&"i-mv".try_into().unwrap())).await.unwrap().unwrap();
    assert_eq!(moved.rev, instance.rev);
}

#[tokio::test(start_paused = true)]
async fn alibaba_and_tencent_show_a_spot_interruption_from_its_notice_until_it_is_canceled() {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = imds_server::guest::Config {
        dialect_listen: vec![(imds_dialects::Dialect::Alibaba, loopback), (imds_dialects::Dialect::Tencent, loopback)],
        unknown_hold: Duration::ZERO,
        ..imds_server::guest::Config::default()
    };
    let server = TestServer::with_guest(config).await;
    let (alibaba, tencent) = (server.running.dialect_addrs[0].1, server.running.dialect_addrs[1].1);
    let src: std::net::IpAddr = "127.0.30.50".parse().unwrap();
    server.create(record("i-cn", "127.0.30.50")).await;
    let get = |listener: std::net::SocketAddr, path: &'static str| async move {
        let response = imds_server::client::Client::from_source(listener, src).get(path).await.unwrap();
        (response.status, response.text())
    };
    const ALIBABA: &str = "/latest/meta-data/instance/spot/termination-time";
    const TENCENT: &str = "/latest/meta-data/spot/termination-time";
    let event = add(&server, "i-cn", json!({"kind": "spot-interruption", "in_seconds": 300})).await;
    let mut now = unix(&event["created_at"]);
    let time = unix(&event["not_before"]);

    // Before the notice: 404 and unlisted in both trees.
    advance(&mut now, time - 121).await;
    assert_eq!(get(alibaba, ALIBABA).await.0, StatusCode::NOT_FOUND);
    assert!(!get(alibaba, "/latest/meta-data/instance/").await.1.lines().any(|line| line == "spot/"));
    assert_eq!(get(tencent, TENCENT).await.0, StatusCode::NOT_FOUND);
    assert!(!get(tencent, "/latest/meta-data/").await.1.lines().any(|line| line == "spot/"));

    // At the notice: Alibaba's UTC time, Tencent's UTC+8 time, both listed.
    advance(&mut now, time - 120).await;
    let (status, body) = get(alibaba, ALIBABA).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, imds_model::time::format_rfc3339(time).as_str()));
    assert!(get(alibaba, "/latest/meta-data/instance/").await.1.lines().any(|line| line == "spot/"));
    let (status, body) = get(tencent, TENCENT).await;
    assert_eq!(status, StatusCode::OK);
    let utc = imds_model::time::format_rfc3339(time + 8 * 3600);
    assert_eq!(body, utc.trim_end_matches('Z').replace('T', " "), "Tencent's `2018-08-18 12:05:33` at UTC+8");
    assert!(get(tencent, "/latest/meta-data/").await.1.lines().any(|line| line == "spot/"));

    // At its time, after the timer's state write: still shown.
    advance(&mut now, time + 1).await;
    assert_eq!(admin_get(&server, &format!("/v1/events/{}", event["id"].as_str().unwrap())).await["state"], "active");
    assert_eq!(get(alibaba, ALIBABA).await.0, StatusCode::OK);
    assert_eq!(get(tencent, TENCENT).await.0, StatusCode::OK);

    // Canceled: gone at once from both, leaf and listing.
    let path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    let canceled = server.admin().send(Method::DELETE, &path, &[], "").await.unwrap();
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text());
    assert_eq!(get(alibaba, ALIBABA).await.0, StatusCode::NOT_FOUND);
    assert!(!get(alibaba, "/latest/meta-data/instance/").await.1.lines().any(|line| line == "spot/"));
    assert_eq!(get(tencent, TENCENT).await.0, StatusCode::NOT_FOUND);
    assert!(!get(tencent, "/latest/meta-data/").await.1.lines().any(|line| line == "spot/"));
}

/// A store that moves instance `id` (its record and every attachment, in one commit, as the
/// admin API's move does) to node `to` just before the first write of `id`'s event list after
/// [`MoveBeforeEventWrite::arm`]: the move lands between that write's read and its commit.
#[derive(Debug)]
struct MoveBeforeEventWrite {
    inner: Arc<dyn imds_store::Store>,
    id: String,
    to: String,
    armed: std::sync::atomic::AtomicBool,
    moved: std::sync::atomic::AtomicBool,
}

impl MoveBeforeEventWrite {
    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    async fn move_now(&self) {
        let id: imds_model::InstanceId = self.id.as_str().try_into().unwrap();
        let mut ops = Vec::new();
        let keys = std::iter::once(imds_server::records::instance(&id)).chain(imds_server::records::attachments(&id));
        for key in keys {
            let Some(record) = self.inner.get(&key).await.unwrap() else { continue };
            ops.push(imds_store::Op::Put(imds_store::Put {
                key,
                node: Some(self.to.clone()),
                claims: record.claims,
                value: record.value,
                expect: imds_store::Expect::Revision(record.rev),
            }));
        }
        self.inner.commit(ops).await.unwrap();
        self.moved.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl imds_store::Store for MoveBeforeEventWrite {
    async fn get(&self, key: &imds_store::Key) -> Result<Option<imds_store::Record>, imds_store::StoreError> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<imds_store::Page, imds_store::StoreError> {
        self.inner.list(collection, after, limit).await
    }
    async fn commit(&self, ops: Vec<imds_store::Op>) -> Result<imds_store::Committed, imds_store::StoreError> {
        let writes_events = ops.iter().any(|op| {
            matches!(op, imds_store::Op::Put(put)
                if put.key.collection == imds_server::records::EVENTS && put.key.id == self.id)
        });
        if writes_events && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.move_now().await;
        }
        self.inner.commit(ops).await
    }
    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
    async fn snapshot(&self, scope: &imds_store::Scope) -> Result<imds_store::Snapshot, imds_store::StoreError> {
        self.inner.snapshot(scope).await
    }
    async fn subscribe(
        &self,
        scope: &imds_store::Scope,
        after: imds_store::Revision,
    ) -> Result<imds_store::Feed, imds_store::StoreError> {
        self.inner.subscribe(scope, after).await
    }
    async fn compact(&self, through: imds_store::Revision) -> Result<(), imds_store::StoreError> {
        self.inner.compact(through).await
    }
    async fn revision(&self) -> Result<imds_store::Revision, imds_store::StoreError> {
        self.inner.revision().await
    }

    async fn acquire(
        &self,
        key: &imds_store::Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<imds_store::Acquired, imds_store::StoreError> {
        self.inner.acquire(key, holder, ttl).await
    }

    async fn release(&self, key: &imds_store::Key, holder: &str) -> Result<(), imds_store::StoreError> {
        self.inner.release(key, holder).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_move_racing_a_timed_state_change_leaves_nothing_on_the_old_node() {
    let racing = Arc::new(MoveBeforeEventWrite {
        inner: Arc::new(imds_store::memory::MemoryStore::new()),
        id: "i-race".to_owned(),
        to: "hv-b".to_owned(),
        armed: false.into(),
        moved: false.into(),
    });
    let server = TestServer::with_store(Arc::clone(&racing) as Arc<dyn imds_store::Store>, None).await;
    let mut doc = record("i-race", "127.0.30.60");
    doc["node"] = json!("hv-a");
    server.create(doc).await;
    let event = add(&server, "i-race", json!({"kind": "spot-interruption", "in_seconds": 300})).await;
    let mut now = unix(&event["created_at"]);
    let time = unix(&event["not_before"]);

    // The timer records `active` at the event's time; the move lands between its read and its
    // commit.
    racing.arm();
    advance(&mut now, time + 1).await;
    assert!(racing.moved.load(std::sync::atomic::Ordering::SeqCst), "the timer wrote no state change");
    let id: imds_model::InstanceId = "i-race".try_into().unwrap();
    let instance = server.store.get(&imds_server::records::instance(&id)).await.unwrap().unwrap();
    let events = server.store.get(&imds_server::records::events(&id)).await.unwrap().unwrap();
    assert_eq!(instance.node.as_deref(), Some("hv-b"));
    assert_eq!(events.node.as_deref(), Some("hv-b"), "the event list stayed behind on the old node");
    let list = imds_model::InstanceEvents::from_bytes(&events.value).unwrap();
    assert_eq!(list.events[0].state, imds_model::EventState::Active, "the timer's write was lost");
    let old = server.store.snapshot(&imds_store::Scope::Node("hv-a".into())).await.unwrap();
    assert!(
        old.records.is_empty(),
        "left behind on hv-a: {:?}",
        old.records.iter().map(|r| &r.key).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_event_list_written_while_its_instance_moves_goes_with_the_instance() {
    let racing = Arc::new(MoveBeforeEventWrite {
        inner: Arc::new(imds_store::memory::MemoryStore::new()),
        id: "i-first".to_owned(),
        to: "hv-b".to_owned(),
        armed: false.into(),
        moved: false.into(),
    });
    let server = TestServer::with_store(Arc::clone(&racing) as Arc<dyn imds_store::Store>, None).await;
    let mut doc = record("i-first", "127.0.30.61");
    doc["node"] = json!("hv-a");
    server.create(doc).await;
    let id: imds_model::InstanceId = "i-first".try_into().unwrap();
    // The instance has no event list yet; the move lands between the read and the commit of
    // the write that creates it.
    racing.arm();
    let now = 1_800_000_000;
    let spec = imds_model::EventSpec::parse(&json!({"kind": "spot-interruption"}), now, &[]).unwrap();
    let event = spec.into_event(imds_server::events::random_id(), now);
    let written = imds_server::events::modify(
        &server.store,
        server.running.view.writers(),
        &id,
        Vec::new,
        |list: &mut imds_model::InstanceEvents| Ok::<_, imds_store::StoreError>((list.push(event.clone(), now), ())),
    )
    .await
    .unwrap();
    assert!(matches!(written, imds_server::events::Modified::Written(..)));
    assert!(racing.moved.load(std::sync::atomic::Ordering::SeqCst));
    let events = server.store.get(&imds_server::records::events(&id)).await.unwrap().unwrap();
    assert_eq!(events.node.as_deref(), Some("hv-b"), "the new list was placed on the node the instance left");
    let old = server.store.snapshot(&imds_store::Scope::Node("hv-a".into())).await.unwrap();
    assert!(
        old.records.is_empty(),
        "left behind on hv-a: {:?}",
        old.records.iter().map(|r| &r.key).collect::<Vec<_>>()
    );
    // An instance that is gone gets no list.
    let gone: imds_model::InstanceId = "i-gone".try_into().unwrap();
    let refused = imds_server::events::modify(
        &server.store,
        server.running.view.writers(),
        &gone,
        Vec::new,
        |list: &mut imds_model::InstanceEvents| Ok::<_, imds_store::StoreError>((list.push(event.clone(), now), ())),
    )
    .await;
    assert!(matches!(refused, Err(imds_store::StoreError::NotFound { .. })), "{refused:?}");
    assert!(server.store.get(&imds_server::records::events(&gone)).await.unwrap().is_none());
}
