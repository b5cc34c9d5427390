//! Roles through the admin API and their credentials through the EC2 dialect, on a real
//! daemon over loopback: static and process sources, the error form, rotation on demand,
//! write-only secrets and readiness.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::{Client, Response};
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");

async fn put_role(server: &TestServer, name: &str, body: Value) -> Response {
    server.admin().send(Method::PUT, &format!("/v1/roles/{name}"), &[JSON], body.to_string()).await.unwrap()
}

async fn get(client: &Client, path: &str) -> Response {
    client.send(Method::GET, path, &[], "").await.unwrap()
}

/// Polls `check` on the guest's credentials until it holds (bounded: 10 s).
async fn wait_for_credentials(guest: &Client, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let response = get(guest, path).await;
        let json = response.json();
        if check(&json) {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("credentials at {path} never satisfied the check; last: {}", get(guest, path).await.text());
}

fn static_role(key: &str) -> Value {
    json!({"source": {"type": "static", "access_key_id": key, "secret_access_key": "static-secret-value",
                      "session_token": "static-token-value", "expiration": "2099-01-01T00:00:00Z"}})
}

#[tokio::test]
async fn a_static_role_is_served_byte_exact_and_its_secrets_never_come_back() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-cred1", "ipv4": ["127.0.40.1"], "iam_role": "app"})).await;
    let guest = server.guest_from("127.0.40.1");
    let path = "/latest/meta-data/iam/security-credentials/app";
    // Before the role exists: EC2's error form, still a 200.
    let before = get(&guest, path).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.json()["Code"], "AssumeRoleUnauthorizedAccess");

    let created = put_role(&server, "app", static_role("AKIAEXAMPLESTATIC01")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let shown = created.text();
    assert!(!shown.contains("static-secret-value") && !shown.contains("static-token-value"), "{shown}");
    assert_eq!(created.json()["source"]["secret_access_key_set"], true);

    let json = wait_for_credentials(&guest, path, |json| json["Code"] == "Success").await;
    let body = get(&guest, path).await.text();
    assert_eq!(
        body,
        format!(
            "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"{}\",\n  \"Type\" : \"AWS-HMAC\",\n  \
             \"AccessKeyId\" : \"AKIAEXAMPLESTATIC01\",\n  \"SecretAccessKey\" : \"static-secret-value\",\n  \
             \"Token\" : \"static-token-value\",\n  \"Expiration\" : \"2099-01-01T00:00:00Z\"\n}}",
            json["LastUpdated"].as_str().unwrap()
        )
    );
    assert_eq!(get(&guest, "/latest/meta-data/iam/security-credentials/").await.text(), "app");
    let listing = get(&guest, "/latest/meta-data/iam/security-credentials/").await;
    assert_eq!(listing.header("content-type"), Some("text/plain"));

    // GET and list show no secret; the status says the credentials are valid.
    for path in ["/v1/roles/app", "/v1/roles"] {
        let response = get(&server.admin(), path).await;
        assert_eq!(response.status, StatusCode::OK);
        let text = response.text();
        assert!(!text.contains("static-secret-value") && !text.contains("static-token-value"), "{text}");
    }
    let role = get(&server.admin(), "/v1/roles/app").await.json();
    assert_eq!(role["status"]["valid"], true);
    assert_eq!(role["status"]["access_key_id"], "AKIAEXAMPLESTATIC01");

    // Delete: the guest gets the error form again; the API says 404.
    let deleted = server.admin().send(Method::DELETE, "/v1/roles/app", &[], "").await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&server.admin(), "/v1/roles/app").await.status, StatusCode::NOT_FOUND);
    wait_for_credentials(&guest, path, |json| json["Code"] == "AssumeRoleUnauthorizedAccess").await;
}

#[tokio::test]
async fn bad_roles_are_refused_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let cases = [
        ("app", json!({"source": {"type": "sts", "role_arn": "not-an-arn"}}), "source.role_arn"),
        (
            "app",
            json!({"source": {"type": "static", "access_key_id": "", "secret_access_key": "x"}}),
            "source.access_key_id",
        ),
        ("app", json!({"source": {"type": "process", "command": []}}), "source.command"),
        ("app", json!({"source": {"type": "ftp"}}), "source"),
        (
            "app",
            json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::1:role/a", "duration_seconds": 60}}),
            "source.duration_seconds",
        ),
        ("a:b", static_role("AKIA1"), "name"),
    ];
    for (name, body, field) in cases {
        let response = put_role(&server, name, body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.text());
        assert_eq!(response.json()["error"]["field"], field, "{body}: {}", response.text());
    }
    let list = get(&server.admin(), "/v1/roles").await.json();
    assert_eq!(list["roles"], json!([]));
    // Base credentials only for sts roles; unknown role → 404.
    put_role(&server, "plain", static_role("AKIA2")).await;
    let base = json!({"access_key_id": "AKIABASE", "secret_access_key": "base-secret"});
    let refused =
        server.admin().send(Method::PUT, "/v1/roles/plain/base-credentials", &[JSON], base.to_string()).await.unwrap();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let missing =
        server.admin().send(Method::PUT, "/v1/roles/nope/base-credentials", &[JSON], base.to_string()).await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_sts_role_waits_for_base_credentials_and_readiness_says_so() {
    let server = TestServer::start().await;
    // No roles: ready once the signing key is generated, and starting until then.
    let ready = get(&server.admin(), "/readyz").await;
    if ready.status != StatusCode::OK {
        assert_eq!(ready.json()["waiting_for"], serde_json::json!(["the identity signing key"]), "{}", ready.text());
    }
    server.node_ready().await;
    let ready = get(&server.admin(), "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "no roles: ready");
    // STS on a loopback port nobody listens on: the role cannot get credentials.
    let body = json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app",
                                 "endpoint": "http://127.0.0.1:9/"}});
    assert_eq!(put_role(&server, "app", body).await.status, StatusCode::CREATED);
    let mut last = String::new();
    for _ in 0..100 {
        let response = get(&server.admin(), "/readyz").await;
        last = response.text();
        if last.contains("no base credentials") {
            // One role without credentials does not take the node out of service.
            assert_eq!(response.status, StatusCode::OK, "{last}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let json: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(json["status"], "ready", "{last}");
    assert_eq!(json["roles"]["app"]["valid"], false, "{last}");
    assert!(json["roles_without_credentials"]["app"].as_str().unwrap().contains("no base credentials"), "{last}");
    // Posting base credentials (AWS key names accepted) is write-only; STS is unreachable, so
    // the error changes to say that.
    let base = json!({"AccessKeyId": "AKIABASEEXAMPLE", "SecretAccessKey": "base-secret-value", "Token": ""});
    let posted =
        server.admin().send(Method::PUT, "/v1/roles/app/base-credentials", &[JSON], base.to_string()).await.unwrap();
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{}", posted.text());
    let role = get(&server.admin(), "/v1/roles/app").await;
    assert!(!role.text().contains("base-secret-value"));
    assert_eq!(role.json()["base_credentials"], json!({"set": true, "access_key_id": "AKIABASEEXAMPLE"}));
    for _ in 0..200 {
        let text = get(&server.admin(), "/readyz").await.text();
        if text.contains("cannot reach STS") {
            assert!(!text.contains("base-secret-value"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("readiness never reported the unreachable STS");
}

#[tokio::test]
async fn a_process_role_rotates_on_demand_and_guests_see_the_new_keys() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    let script = dir.path().join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS%04d\", \"SecretAccessKey\": \"s%d\", \
             \"SessionToken\": \"t%d\", \"Expiration\": \"2099-01-01T00:00:00Z\"}}' $n $n $n\n",
            c = counter.display()
        ),
    )
    .unwrap();
    let body =
        json!({"source": {"type": "process", "command": ["/bin/sh", script.to_str().unwrap()], "timeout_seconds": 10}});
    assert_eq!(put_role(&server, "proc", body).await.status, StatusCode::CREATED);
    server.create(json!({"id": "i-cred4", "ipv4": ["127.0.40.4"], "iam_role": "proc"})).await;
    let guest = server.guest_from("127.0.40.4");
    let path = "/latest/meta-data/iam/security-credentials/proc";
    wait_for_credentials(&guest, path, |json| json["AccessKeyId"] == "ASIAPROCESS0001").await;
    let refreshed = server.admin().send(Method::POST, "/v1/roles/proc/refresh", &[], "").await.unwrap();
    assert_eq!(refreshed.status, StatusCode::ACCEPTED);
    let json = wait_for_credentials(&guest, path, |json| json["AccessKeyId"] == "ASIAPROCESS0002").await;
    assert_eq!(json["SecretAccessKey"], "s2");
    assert_eq!(json["Token"], "t2");
    // A failing command keeps serving the last good credentials and shows the error.
    std::fs::write(&script, "#!/bin/sh\necho broken >&2\nexit 3\n").unwrap();
    server.admin().send(Method::POST, "/v1/roles/proc/refresh", &[], "").await.unwrap();
    for _ in 0..200 {
        let role = get(&server.admin(), "/v1/roles/proc").await.json();
        if role["status"]["error"].is_string() {
            assert!(role["status"]["error"].as_str().unwrap().contains("exited"), "{role}");
            assert_eq!(role["status"]["valid"], true);
            assert_eq!(get(&guest, path).await.json()["AccessKeyId"], "ASIAPROCESS0002");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the failed refresh never showed in the role's status");
}

/// Concurrent PUTs of one role race on its revision; each is retried against the newer
/// version, so every one succeeds and none answers a precondition failure (least of all one
/// about an instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_role_puts_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = imds_store_sqlite::SqliteStore::open(&dir.path().join("imds.db"), Default::default()).unwrap();
    let server = TestServer::with_store(std::sync::Arc::new(store), None).await;
    let mut answers = Vec::new();
    for round in 0..5 {
        let name = format!("app-{round}");
        let puts = (0..8).map(|n| put_role(&server, &name, static_role(&format!("AKIARACE{n:012}"))));
        let round = futures::future::join_all(puts).await;
        assert_eq!(round.iter().filter(|a| a.status == StatusCode::CREATED).count(), 1, "one PUT created {name}");
        answers.extend(round);
    }
    for answer in &answers {
        assert!(matches!(answer.status, StatusCode::OK | StatusCode::CREATED), "{}: {}", answer.status, answer.text());
    }
}

/// Polls `/readyz` until role `name`'s error contains `want` (bounded: 10 s); returns it.
async fn role_error(server: &TestServer, name: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        last = get(&server.admin(), "/readyz").await.text();
        let json: Value = serde_json::from_str(&last).unwrap_or_default();
        if let Some(error) = json["roles_without_credentials"][name].as_str().filter(|error| error.contains(want)) {
            return error.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("role {name} never failed with {want:?}; last: {last}");
}

/// A store written by an older build holds an `sts` role's base credentials inside its role
/// record: at start they move to their own record (the role record keeps only their access
/// key id), the role still signs with them, and writing the role from the configuration again
/// with the same credentials writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_credentials_inside_an_older_role_record_move_to_their_own_at_start() {
    use imds_store::{Expect, Key, Op, Put, Store};
    const SECRET: &str = "older-base-secret-value";
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
        imds_store_sqlite::SqliteStore::open(&dir.path().join("imds.db"), Default::default()).unwrap(),
    );
    // STS on a loopback port nobody listens on: a fetch that has base credentials fails to
    // reach it; one without fails before that, saying so.
    let old = json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app",
                                "endpoint": "http://127.0.0.1:9/"},
                     "base_credentials": {"access_key_id": "AKIAOLDERBASE", "secret_access_key": SECRET}});
    let put = Put {
        key: Key::new("roles", "app"),
        node: None,
        claims: Vec::new(),
        value: serde_json::to_vec(&old).unwrap(),
        expect: Expect::Absent,
    };
    store.commit(vec![Op::Put(put)]).await.unwrap();

    let server = TestServer::with_store(std::sync::Arc::clone(&store), None).await;
    let role = store.get(&Key::new("roles", "app")).await.unwrap().unwrap();
    let text = String::from_utf8(role.value.clone()).unwrap();
    assert!(!text.contains(SECRET) && text.contains("AKIAOLDERBASE"), "{text}");
    let apart = store.get(&Key::new("role-secrets", "app")).await.unwrap().expect("their own record");
    assert_eq!(apart.rev, role.rev, "split in one commit");
    assert!(String::from_utf8_lossy(&apart.value).contains(SECRET));
    let shown = get(&server.admin(), "/v1/roles/app").await;
    assert_eq!(shown.json()["base_credentials"], json!({"set": true, "access_key_id": "AKIAOLDERBASE"}));
    assert!(!shown.text().contains(SECRET));
    role_error(&server, "app", "cannot reach STS").await;

    // The configuration's role, with the same base credentials or none: nothing to write.
    let mut configured = imds_creds::Role::parse(&old).unwrap();
    imds_server::creds::put_configured(&store, "app", &configured).await.unwrap();
    configured.base_credentials = None;
    imds_server::creds::put_configured(&store, "app", &configured).await.unwrap();
    assert_eq!(store.get(&Key::new("roles", "app")).await.unwrap().unwrap().rev, role.rev);

    // Another source: the base credentials go with the same write.
    let process = json!({"source": {"type": "process", "command": ["/bin/false"]}});
    assert_eq!(put_role(&server, "app", process).await.status, StatusCode::OK);
    assert!(store.get(&Key::new("role-secrets", "app")).await.unwrap().is_none());
}

/// After a restart, an `sts` role whose base credentials were set through the admin API still
/// has them, and a PUT of the role without any keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_credentials_survive_a_restart_and_a_put_without_them() {
    use imds_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let open = || -> std::sync::Arc<dyn Store> {
        std::sync::Arc::new(
            imds_store_sqlite::SqliteStore::open(&dir.path().join("imds.db"), Default::default()).unwrap(),
        )
    };
    let body = json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app",
                                 "endpoint": "http://127.0.0.1:9/"}});
    let server = TestServer::with_store(open(), None).await;
    assert_eq!(put_role(&server, "app", body.clone()).await.status, StatusCode::CREATED);
    role_error(&server, "app", "no base credentials").await;
    let base = json!({"access_key_id": "AKIARESTART", "secret_access_key": "restart-secret"});
    let posted =
        server.admin().send(Method::PUT, "/v1/roles/app/base-credentials", &[JSON], base.to_string()).await.unwrap();
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{}", posted.text());
    role_error(&server, "app", "cannot reach STS").await;
    server.running.stop().await;

    let server = TestServer::with_store(open(), None).await;
    role_error(&server, "app", "cannot reach STS").await;
    assert_eq!(put_role(&server, "app", body).await.status, StatusCode::OK);
    let shown = get(&server.admin(), "/v1/roles/app").await.json();
    assert_eq!(shown["base_credentials"], json!({"set": true, "access_key_id": "AKIARESTART"}));
    role_error(&server, "app", "cannot reach STS").await;
}

/// A node that starts with a role assumed once per instance waits for each instance's first
/// fetch, not for a role-wide one that never comes, and shows each instance's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_with_a_session_per_instance_is_fetched_per_instance_and_readiness_follows() {
    use imds_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let open = || -> std::sync::Arc<dyn Store> {
        std::sync::Arc::new(
            imds_store_sqlite::SqliteStore::open(&dir.path().join("imds.db"), Default::default()).unwrap(),
        )
    };
    let server = TestServer::with_store(open(), None).await;
    let body = json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app",
                                 "endpoint": "http://127.0.0.1:9/", "session_per_instance": true}});
    assert_eq!(put_role(&server, "app", body).await.status, StatusCode::CREATED);
    server.create(json!({"id": "i-sess1", "ipv4": ["127.0.40.11"], "iam_role": "app"})).await;
    server.create(json!({"id": "i-sess2", "ipv4": ["127.0.40.12"], "iam_role": "app"})).await;
    server.running.stop().await;

    let server = TestServer::with_store(open(), None).await;
    let ready = server.node_ready().await;
    for id in ["i-sess1", "i-sess2"] {
        let reason = ready["roles_without_credentials"][format!("app#{id}")].as_str().unwrap_or_default();
        assert!(reason.contains("no base credentials"), "{ready}");
    }
    let shown = get(&server.admin(), "/v1/roles/app").await.json();
    assert_eq!(shown["status"], json!({"valid": false, "session_per_instance": true, "instances": 2}), "{shown}");
    // Guests get EC2's error form, as for any role without credentials.
    let guest = server.guest_from("127.0.40.11");
    let answer = get(&guest, "/latest/meta-data/iam/security-credentials/app").await.json();
    assert_eq!(answer["Code"], "AssumeRoleUnauthorizedAccess", "{answer}");
}
