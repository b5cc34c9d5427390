//! The OpenStack dialect over real sockets: the write-once password as guest state (concurrent
//! writers, an admin replace), a disabled dialect, and forwarding headers that never change
//! who the caller is. Guests call from 127.0.2.x.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const PASSWORD: &str = "/openstack/latest/password";

#[tokio::test]
async fn the_password_is_written_once_and_read_back() {
    let server = TestServer::start().await;
    server.create(json!({"id": "os-pw", "ipv4": ["127.0.2.1"]})).await;
    let guest = server.guest_from("127.0.2.1");

    let before = guest.send(Method::GET, PASSWORD, &[], "").await.unwrap();
    assert_eq!((before.status, before.text()), (StatusCode::OK, String::new()));
    let set = guest.send(Method::POST, "/openstack/2013-04-04/password", &[], "ZW5jcnlwdGVk").await.unwrap();
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    // Readable as soon as the write is acknowledged, at every version that has the file.
    for path in [PASSWORD, "/openstack/2018-08-27/password"] {
        let read = guest.send(Method::GET, path, &[], "").await.unwrap();
        assert_eq!((read.status, read.text()), (StatusCode::OK, "ZW5jcnlwdGVk".to_owned()), "{path}");
    }
    let again = guest.send(Method::POST, PASSWORD, &[], "b3RoZXI=").await.unwrap();
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.text().contains("409 Conflict"), "{}", again.text());
    let read = guest.send(Method::GET, PASSWORD, &[], "").await.unwrap();
    assert_eq!(read.text(), "ZW5jcnlwdGVk");

    let late = server.guest_from("127.0.2.1");
    let response = late.send(Method::POST, PASSWORD, &[], vec![b'a'; 1021]).await.unwrap();
    assert_eq!(response.status, StatusCode::CONFLICT, "a stored password answers 409 before the size check");
}

#[tokio::test]
async fn concurrent_password_posts_have_exactly_one_winner() {
    let server = TestServer::start().await;
    server.create(json!({"id": "os-race", "ipv4": ["127.0.2.2"]})).await;
    let mut tasks = Vec::new();
    for n in 0..12 {
        let guest = server.guest_from("127.0.2.2");
        tasks.push(tokio::spawn(async move {
            let body = format!("password-{n}");
            let response = guest.send(Method::POST, PASSWORD, &[], body.clone()).await.unwrap();
            (response.status, body)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap();
        match status {
            StatusCode::OK => winners.push(body),
            StatusCode::CONFLICT => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let read = server.guest_from("127.0.2.2").send(Method::GET, PASSWORD, &[], "").await.unwrap();
    assert_eq!(read.text(), winners[0], "the stored password is the winner's");
}

#[tokio::test]
async fn an_admin_replace_of_the_record_keeps_the_password() {
    let server = TestServer::start().await;
    server.create(json!({"id": "os-keep", "ipv4": ["127.0.2.3"], "hostname": "before"})).await;
    let guest = server.guest_from("127.0.2.3");
    let set = guest.send(Method::POST, PASSWORD, &[], "kept").await.unwrap();
    assert_eq!(set.status, StatusCode::OK);

    let replaced = server
        .admin()
        .send(
            Method::PUT,
            "/v1/instances/os-keep",
            &[("content-type", "application/json")],
            json!({"ipv4": ["127.0.2.3"], "hostname": "after"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    let meta = guest.send(Method::GET, "/openstack/latest/meta_data.json", &[], "").await.unwrap();
    let meta: Value = serde_json::from_slice(&meta.body).unwrap();
    assert_eq!(meta["hostname"], "after.novalocal", "the replace took effect");
    let read = guest.send(Method::GET, PASSWORD, &[], "").await.unwrap();
    assert_eq!(read.text(), "kept");
    let again = guest.send(Method::POST, PASSWORD, &[], "new").await.unwrap();
    assert_eq!(again.status, StatusCode::CONFLICT, "still write-once after the replace");
}

#[tokio::test]
async fn a_disabled_openstack_answers_as_if_absent() {
    let server = TestServer::start().await;
    server.create(json!({"id": "os-off", "ipv4": ["127.0.2.4"], "dialects": {"enabled": ["ec2"]}})).await;
    let guest = server.guest_from("127.0.2.4");
    for path in ["/openstack", "/openstack/latest/meta_data.json", PASSWORD] {
        let response = guest.send(Method::GET, path, &[], "").await.unwrap();
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
    }
    let post = guest.send(Method::POST, PASSWORD, &[], "x").await.unwrap();
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    // Enabling it afterwards shows no password was stored by the refused POST.
    let enabled = server
        .admin()
        .send(
            Method::PUT,
            "/v1/instances/os-off",
            &[("content-type", "application/json")],
            json!({"ipv4": ["127.0.2.4"]}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(enabled.status, StatusCode::OK);
    let read = guest.send(Method::GET, PASSWORD, &[], "").await.unwrap();
    assert_eq!((read.status, read.text()), (StatusCode::OK, String::new()));
}

#[tokio::test]
async fn forwarding_headers_from_a_guest_never_change_who_it_is() {
    let server = TestServer::start().await;
    server.create(json!({"id": "os-a", "ipv4": ["127.0.2.5"], "hostname": "alpha"})).await;
    server.create(json!({"id": "os-b", "ipv4": ["127.0.2.6"], "hostname": "bravo"})).await;
    let guest = server.guest_from("127.0.2.5");
    let spoof = [
        ("x-forwarded-for", "127.0.2.6"),
        ("forwarded", "for=127.0.2.6"),
        ("x-real-ip", "127.0.2.6"),
        ("x-instance-id", "os-b"),
        ("x-instance-id-signature", "0000"),
    ];
    let meta = guest.send(Method::GET, "/openstack/latest/meta_data.json", &spoof, "").await.unwrap();
    assert_eq!(meta.status, StatusCode::OK);
    let meta: Value = serde_json::from_slice(&meta.body).unwrap();
    assert_eq!(meta["hostname"], "alpha.novalocal");
    // A password posted with the headers lands on the caller's own instance.
    let set = guest.send(Method::POST, PASSWORD, &spoof, "mine").await.unwrap();
    assert_eq!(set.status, StatusCode::OK);
    let other = server.guest_from("127.0.2.6").send(Method::GET, PASSWORD, &[], "").await.unwrap();
    assert_eq!(other.text(), "", "the other instance's password is untouched");
    // An unknown address stays unknown whatever it claims.
    let stranger = server.guest_from("127.0.2.7");
    let response = stranger.send(Method::GET, "/openstack/latest/meta_data.json", &spoof, "").await.unwrap();
    // Nova's answer to an address it knows no instance for.
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(response.text().contains("The resource could not be found."), "{}", response.text());
}

#[tokio::test]
async fn the_admin_api_refuses_a_bad_openstack_override_block() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let bad = json!({"ipv4": ["127.0.2.8"], "dialects": {"openstack": {"uuid": "nope", "flavor": "m1"}}});
    let put = admin
        .send(Method::PUT, "/v1/instances/os-bad", &[("content-type", "application/json")], bad.to_string())
        .await
        .unwrap();
    assert_eq!(put.status, StatusCode::BAD_REQUEST, "{}", put.text());
    let error: Value = serde_json::from_slice(&put.body).unwrap();
    let text = error.to_string();
    assert!(text.contains("dialects.openstack.uuid") && text.contains("expected a UUID string"), "{text}");
    assert!(text.contains("dialects.openstack.flavor"), "{text}");
    let get = admin.send(Method::GET, "/v1/instances/os-bad", &[], "").await.unwrap();
    assert_eq!(get.status, StatusCode::NOT_FOUND, "nothing was stored");

    server
        .create(json!({"id": "os-good", "ipv4": ["127.0.2.9"], "dialects": {"openstack": {"project_id": "p1"}}}))
        .await;
    let patch = admin
        .send(
            Method::PATCH,
            "/v1/instances/os-good",
            &[("content-type", "application/merge-patch+json")],
            json!({"dialects": {"openstack": {"meta": {"n": 1}}}}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(patch.status, StatusCode::BAD_REQUEST, "{}", patch.text());
    assert!(patch.text().contains("dialects.openstack.meta"), "{}", patch.text());
    let guest = server.guest_from("127.0.2.9");
    let meta = guest.send(Method::GET, "/openstack/latest/meta_data.json", &[], "").await.unwrap();
    let meta: Value = serde_json::from_slice(&meta.body).unwrap();
    assert_eq!(meta["project_id"], "p1");
    assert!(meta.get("meta").is_none(), "the refused patch changed nothing");
}
