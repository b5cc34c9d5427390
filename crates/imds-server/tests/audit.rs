//! The audit log on a real daemon: one JSON line per sensitive guest read and admin write, no
//! secret in any of them, rotation by renaming the file, and lines the writer cannot write
//! counted as dropped.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use imds_server::{audit, guest};
use serde_json::{json, Value};

const TTL: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "x-aws-ec2-metadata-token";
const JSON: (&str, &str) = ("content-type", "application/json");
const SECRET: &str = "audit-secret-access-key";
const SESSION: &str = "audit-session-token";
const USER_DATA: &str = "#cloud-config\npassword: audit-user-data-secret\n";
const MMDS_SECRET: &str = "audit-mmds-secret";

async fn start(output: audit::Output) -> TestServer {
    let config = audit::Config { output: Some(output), ..Default::default() };
    TestServer::with_operations(None, guest::Config::default(), Default::default(), config).await
}

/// The file's lines as JSON, once it holds at least `count` of them (bounded: 10 s).
async fn lines(path: &Path, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} holds {} lines, not {count}: {text}",
            path.display(),
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin(server: &TestServer, method: Method, path: &str, body: Value) -> StatusCode {
    server.admin().send(method, path, &[JSON], body.to_string()).await.unwrap().status
}

#[tokio::test]
async fn every_sensitive_read_and_admin_write_is_one_line_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let server = start(audit::Output::File(path.clone())).await;
    let role = json!({"source": {"type": "static", "access_key_id": "AKIAAUDIT", "secret_access_key": SECRET,
                                 "session_token": SESSION, "expiration": "2099-01-01T00:00:00Z"}});
    assert_eq!(admin(&server, Method::PUT, "/v1/roles/app", role).await, StatusCode::CREATED);
    let instance = json!({"id": "i-au1", "ipv4": ["127.0.61.1"], "iam_role": "app", "user_data": USER_DATA});
    assert_eq!(admin(&server, Method::PUT, "/v1/instances/i-au1", instance).await, StatusCode::CREATED);
    server.create(json!({"id": "i-au2", "ipv4": ["127.0.61.2"]})).await;
    let mmds = "/v1/instances/i-au2/mmds";
    assert_eq!(
        admin(&server, Method::PUT, &format!("{mmds}/config"), json!({"version": "V1"})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(admin(&server, Method::PUT, mmds, json!({"key": MMDS_SECRET})).await, StatusCode::NO_CONTENT);
    let refused =
        admin(&server, Method::PUT, "/v1/instances/i-au3", json!({"id": "i-au3", "ipv4": ["not an ip"]})).await;
    assert_eq!(refused, StatusCode::BAD_REQUEST);
    server.node_ready().await;

    let a = server.guest_from("127.0.61.1");
    let token = a.send(Method::PUT, "/latest/api/token", &[(TTL, "60")], "").await.unwrap().text();
    let creds = "/latest/meta-data/iam/security-credentials/app";
    let served = a.send(Method::GET, creds, &[(TOKEN, &token)], "").await.unwrap();
    assert!(served.text().contains(SECRET), "the guest does get its credentials");
    assert_eq!(a.get("/latest/user-data").await.unwrap().text(), USER_DATA);
    assert_eq!(a.get("/latest/dynamic/instance-identity/pkcs7").await.unwrap().status, StatusCode::OK);
    assert_eq!(a.get("/latest/meta-data/instance-id").await.unwrap().status, StatusCode::OK, "not audited");
    let forged = a.send(Method::GET, creds, &[(TOKEN, "AAAA")], "").await.unwrap();
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let b = server.guest_from("127.0.61.2");
    assert!(b.get("/key").await.unwrap().text().contains(MMDS_SECRET));
    // An address no instance holds asking for credentials: recorded, without an instance.
    let stranger = server.guest_from("127.0.61.99").get(creds).await.unwrap();

    let lines = lines(&path, 13).await;
    assert_eq!(lines.len(), 13, "six admin writes, seven guest reads");
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [SECRET, SESSION, token.as_str(), "audit-user-data-secret", MMDS_SECRET] {
        assert!(!text.contains(secret), "the audit log holds {secret:?}: {text}");
    }
    for line in &lines {
        let time = line["time"].as_str().unwrap();
        assert!(imds_model::time::parse_rfc3339(time).is_some() && time.ends_with('Z'), "{time}");
    }
    let admin_lines: Vec<(&str, &str, u64)> = lines
        .iter()
        .filter(|line| line["plane"] == "admin")
        .map(|line| {
            (line["method"].as_str().unwrap(), line["path"].as_str().unwrap(), line["status"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        admin_lines,
        [
            ("PUT", "/v1/roles/app", 201),
            ("PUT", "/v1/instances/i-au1", 201),
            ("PUT", "/v1/instances/i-au2", 201),
            ("PUT", "/v1/instances/i-au2/mmds/config", 204),
            ("PUT", "/v1/instances/i-au2/mmds", 204),
            ("PUT", "/v1/instances/i-au3", 400),
        ]
    );
    let first_admin = lines.iter().find(|line| line["plane"] == "admin").unwrap();
    assert_eq!(first_admin["source"], "127.0.0.1");
    let instance_write = lines.iter().find(|line| line["path"] == "/v1/instances/i-au1").unwrap();
    assert_eq!(instance_write["instance"], "i-au1");

    let guest_lines: Vec<Value> = lines
        .iter()
        .filter(|line| line["plane"] == "guest")
        .map(|line| {
            let mut line = line.clone();
            line.as_object_mut().unwrap().remove("time");
            line
        })
        .collect();
    let guest =
        |kind: &str, instance: Option<&str>, source: &str, dialect: &str, method: &str, path: &str, status: u16| {
            let mut line = json!({"plane": "guest", "kind": kind, "source": source, "dialect": dialect,
                              "method": method, "path": path, "status": status});
            if let Some(instance) = instance {
                line["instance"] = instance.into();
            }
            line
        };
    assert_eq!(
        guest_lines,
        [
            guest("token", Some("i-au1"), "127.0.61.1", "ec2", "PUT", "/latest/api/token", 200),
            guest("credentials", Some("i-au1"), "127.0.61.1", "ec2", "GET", creds, 200),
            guest("user-data", Some("i-au1"), "127.0.61.1", "ec2", "GET", "/latest/user-data", 200),
            guest(
                "signature",
                Some("i-au1"),
                "127.0.61.1",
                "ec2",
                "GET",
                "/latest/dynamic/instance-identity/pkcs7",
                200
            ),
            guest("credentials", Some("i-au1"), "127.0.61.1", "ec2", "GET", creds, 401),
            guest("mmds", Some("i-au2"), "127.0.61.2", "mmds", "GET", "/key", 200),
            guest("credentials", None, "127.0.61.99", "ec2", "GET", creds, stranger.status.as_u16()),
        ]
    );
}

#[tokio::test]
async fn a_renamed_log_is_left_behind_and_the_next_line_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let server = start(audit::Output::File(path.clone())).await;
    server.create(json!({"id": "i-au4", "ipv4": ["127.0.61.4"], "user_data": "#!/bin/sh\n"})).await;
    let a = server.guest_from("127.0.61.4");
    assert_eq!(a.get("/latest/user-data").await.unwrap().status, StatusCode::OK);
    assert_eq!(lines(&path, 2).await.len(), 2, "the create and the read");

    // What logrotate does: rename, then (without telling the daemon) expect a new file.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    assert_eq!(a.get("/latest/user-data").await.unwrap().status, StatusCode::OK);
    let fresh = lines(&path, 1).await;
    assert_eq!(fresh.len(), 1);
    assert_eq!((fresh[0]["kind"].as_str(), fresh[0]["instance"].as_str()), (Some("user-data"), Some("i-au4")));
    assert_eq!(lines(&rotated, 2).await.len(), 2, "the rotated file keeps its lines and gets no more");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // Asked to reopen (SIGHUP) with the file in place, the log keeps appending to it.
    server.running.audit.as_ref().unwrap().reopen();
    assert_eq!(a.get("/latest/user-data").await.unwrap().status, StatusCode::OK);
    assert_eq!(lines(&path, 2).await.len(), 2);
}

#[tokio::test]
async fn lines_that_cannot_be_written_are_counted_as_dropped() {
    // /dev/full takes the open and refuses every write (ENOSPC).
    let server = start(audit::Output::File("/dev/full".into())).await;
    server.create(json!({"id": "i-au5", "ipv4": ["127.0.61.5"], "user_data": "x"})).await;
    let a = server.guest_from("127.0.61.5");
    for _ in 0..3 {
        assert_eq!(a.get("/latest/user-data").await.unwrap().status, StatusCode::OK, "guests are served regardless");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = server.admin().get("/metrics").await.unwrap().text();
        let dropped = text.lines().find_map(|line| line.strip_prefix("imds_audit_lines_dropped_total ")).unwrap();
        let written = text.lines().find_map(|line| line.strip_prefix("imds_audit_lines_written_total ")).unwrap();
        // The create's line and the three reads'.
        if dropped == "4" {
            assert_eq!(written, "0");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "dropped lines: {dropped}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
