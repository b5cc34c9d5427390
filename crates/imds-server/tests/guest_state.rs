//! Guest-owned state: guest writes applied to the store, concurrent writers, write-once values,
//! visibility to the next read, and cleanup when the instance is deleted.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use http::{Method, StatusCode};
use imds_dialects::GuestResponse;
use imds_model::{GuestState, InstanceId, StateWrite};
use imds_server::guest::write;
use imds_server::test_util::TestServer;
use imds_server::view::{MMDS, STATE};
use imds_store::{Expect, Key, Put, Scope};
use serde_json::json;

/// How long a test's guest write waits to be visible.
const VISIBLE: std::time::Duration = std::time::Duration::from_secs(5);

fn set(dialect: &str, path: &[&str], value: &str, only_if_absent: bool) -> imds_dialects::GuestWrite {
    imds_dialects::GuestWrite {
        write: StateWrite {
            dialect: dialect.into(),
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            value: Some(json!(value)),
            only_if_absent,
        },
        conflict: GuestResponse::new(StatusCode::CONFLICT, "text/plain", "taken"),
    }
}

fn ok() -> GuestResponse {
    GuestResponse::new(StatusCode::OK, "text/plain", "")
}

#[tokio::test]
async fn concurrent_guest_writes_all_land_and_are_visible_when_acknowledged() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-w", "ipv4": ["127.0.0.61"]})).await;
    let id = InstanceId::try_from("i-w").unwrap();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let (store, view, id) = (server.store.clone(), server.running.view.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let key = format!("k{n}");
            let response =
                write::apply(&store, &view, &Scope::All, VISIBLE, &id, set("gce", &["attrs", &key], "v", false), ok())
                    .await;
            assert_eq!(response.status, StatusCode::OK, "{}", String::from_utf8_lossy(&response.body));
            // Acknowledged means the view guests read has it.
            let state = view.load().state(&id).cloned().unwrap();
            assert_eq!(state.get("gce", &["attrs", &key]), Some(&json!("v")));
        }));
    }
    for task in tasks {
        tokio::time::timeout(std::time::Duration::from_secs(20), task).await.unwrap().unwrap();
    }
    let record = server.store.get(&Key::new(STATE, "i-w")).await.unwrap().unwrap();
    let state = GuestState::from_bytes(&record.value).unwrap();
    assert_eq!(state.dialect("gce").unwrap()["attrs"].as_object().unwrap().len(), 16, "no write was lost");
}

#[tokio::test]
async fn a_write_once_value_is_set_once_and_the_second_writer_gets_the_conflict_answer() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-once", "ipv4": ["127.0.0.62"]})).await;
    let id = InstanceId::try_from("i-once").unwrap();
    let (store, view) = (&server.store, &server.running.view);
    let first =
        write::apply(store, view, &Scope::All, VISIBLE, &id, set("openstack", &["password"], "one", true), ok()).await;
    assert_eq!(first.status, StatusCode::OK);
    let second =
        write::apply(store, view, &Scope::All, VISIBLE, &id, set("openstack", &["password"], "two", true), ok()).await;
    assert_eq!((second.status, &second.body[..]), (StatusCode::CONFLICT, &b"taken"[..]));
    let state = view.load().state(&id).cloned().unwrap();
    assert_eq!(state.get("openstack", &["password"]), Some(&json!("one")));
}

#[tokio::test]
async fn replacing_the_record_keeps_guest_state_and_deleting_the_instance_removes_it() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-keep", "ipv4": ["127.0.0.63"]})).await;
    let id = InstanceId::try_from("i-keep").unwrap();
    let response = write::apply(
        &server.store,
        &server.running.view,
        &Scope::All,
        VISIBLE,
        &id,
        set("gce", &["a"], "b", false),
        ok(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    let mmds = Put {
        key: Key::new(MMDS, "i-keep"),
        node: None,
        claims: vec![],
        value: br#"{"version":"V1","data":{}}"#.to_vec(),
        expect: Expect::Absent,
    };
    server.store.put(mmds).await.unwrap();

    let admin = server.admin();
    let replaced = admin
        .send(
            Method::PUT,
            "/v1/instances/i-keep",
            &[("content-type", "application/json")],
            json!({"ipv4": ["127.0.0.63"], "hostname": "new"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(replaced.status, StatusCode::OK);
    assert!(server.store.get(&Key::new(STATE, "i-keep")).await.unwrap().is_some(), "an admin replace keeps it");

    let deleted = admin.send(Method::DELETE, "/v1/instances/i-keep", &[], "").await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(server.store.get(&Key::new(STATE, "i-keep")).await.unwrap().is_none());
    assert!(server.store.get(&Key::new(MMDS, "i-keep")).await.unwrap().is_none());
    let snapshot = server.running.view.load();
    assert!(snapshot.state(&id).is_none() && snapshot.mmds(&id).is_none());
}

#[tokio::test]
async fn mmds_and_guest_state_live_on_their_instance_node_and_move_with_it() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-node", "ipv4": ["127.0.0.64"], "node": "hv-a"})).await;
    let admin = server.admin();
    // The guest writes first: once its MMDS is configured, MMDS answers every path.
    let guest = server.guest_from("127.0.0.64");
    let password = guest.send(Method::POST, "/openstack/latest/password", &[], "secret").await.unwrap();
    assert_eq!(password.status, StatusCode::OK, "{}", password.text());
    let put = admin
        .send(Method::PUT, "/v1/instances/i-node/mmds", &[("content-type", "application/json")], r#"{"a":"b"}"#)
        .await
        .unwrap();
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.text());
    let node_of = |collection: &'static str| {
        let store = server.store.clone();
        async move { store.get(&Key::new(collection, "i-node")).await.unwrap().unwrap().node }
    };
    assert_eq!(node_of(MMDS).await.as_deref(), Some("hv-a"));
    assert_eq!(node_of(STATE).await.as_deref(), Some("hv-a"));

    let moved = admin
        .send(
            Method::PATCH,
            "/v1/instances/i-node",
            &[("content-type", "application/merge-patch+json")],
            r#"{"node":"hv-b"}"#,
        )
        .await
        .unwrap();
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(node_of(MMDS).await.as_deref(), Some("hv-b"), "the MMDS document moves with its instance");
    assert_eq!(node_of(STATE).await.as_deref(), Some("hv-b"), "guest state moves with its instance");
    let read = guest.send(Method::GET, "/a", &[], "").await.unwrap();
    assert_eq!(read.text(), "b", "the moved MMDS document is still served");
    let rev_of = |collection: &'static str| {
        let store = server.store.clone();
        async move { store.get(&Key::new(collection, "i-node")).await.unwrap().unwrap().rev.to_string() }
    };
    let etag = moved.header("etag").unwrap().trim_matches('"').to_owned();
    assert_eq!((rev_of(MMDS).await, rev_of(STATE).await), (etag.clone(), etag), "the move is one revision");

    // A bulk import that changes the node moves them too, in the instance's chunk.
    let line = json!({"id": "i-node", "ipv4": ["127.0.0.64"], "node": "hv-c"});
    let imported = admin
        .send(Method::POST, "/v1/instances", &[("content-type", "application/x-ndjson")], format!("{line}\n"))
        .await
        .unwrap();
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());
    assert_eq!(node_of(MMDS).await.as_deref(), Some("hv-c"), "an import moves the MMDS document");
    assert_eq!(node_of(STATE).await.as_deref(), Some("hv-c"), "an import moves guest state");
    let rev = imported.json()["rev"].as_str().unwrap().to_owned();
    assert_eq!((rev_of(MMDS).await, rev_of(STATE).await), (rev.clone(), rev), "the import's move is one revision");
    assert_eq!(guest.send(Method::GET, "/a", &[], "").await.unwrap().text(), "b");
}
