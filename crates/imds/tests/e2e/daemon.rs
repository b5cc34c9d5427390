//! `imds serve`: the dev mode of the README and configuration errors.

use std::process::Command;

use http::StatusCode;
use imds_server::client::Client;

use super::support::{binary, temp_dir, Daemon};

#[tokio::test]
async fn dev_mode_serves_the_demo_instance_to_loopback() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::start(&dir, &["--dev"], &[]);
    assert_eq!(daemon.guest.to_string(), "127.0.0.1:1338");
    assert_eq!(daemon.admin.to_string(), "127.0.0.1:8998");
    assert!(daemon.stdout.iter().any(|l| l.contains("[::1]:1338")), "{:#?}", daemon.stdout);
    assert!(dir.join(".imds-dev/imds.db").exists(), "dev data lives under ./.imds-dev");

    let v4 = Client::from_source(daemon.guest, "127.0.0.1".parse().unwrap());
    let id = v4.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!((id.status, id.text().as_str()), (StatusCode::OK, "i-0123456789abcdef0"));
    assert!(v4.get("/latest/user-data").await.unwrap().text().starts_with("#cloud-config"));
    let v6 = Client::from_source("[::1]:1338".parse().unwrap(), "::1".parse().unwrap());
    assert_eq!(v6.get("/latest/meta-data/instance-id").await.unwrap().text(), "i-0123456789abcdef0");

    // No token needed on loopback in --dev; the demo exists once even after a restart.
    let admin = Client::new(imds_server::client::Endpoint::Tcp(daemon.admin));
    let list = admin.get("/v1/instances").await.unwrap();
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["instances"].as_array().unwrap().len(), 1);
    drop(daemon);
    let again = Daemon::start(&dir, &["--dev"], &[]);
    let admin = Client::new(imds_server::client::Endpoint::Tcp(again.admin));
    assert_eq!(admin.get("/v1/instances").await.unwrap().json()["instances"].as_array().unwrap().len(), 1);
}

#[test]
fn invalid_configuration_lists_every_problem_and_exits_2() {
    let (_guard, dir) = temp_dir();
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[guest]\nlisten = [\"nowhere\"]\n[admin]\nlisten = \"0.0.0.0:8998\"\n[store]\nbackend = \"floppy\"\n[log]\nformat = \"xml\"\n").unwrap();
    let output = Command::new(binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .env_remove("IMDS_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in
        ["guest.listen", "\"nowhere\"", "admin.listen", "bearer token", "store.backend", "floppy", "log.format"]
    {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }

    std::fs::write(&config, "[guest]\nlisten = [\"127.0.0.1:0\"]\nunknown_key = 1\n").unwrap();
    let output = Command::new(binary()).args(["serve", "--config", config.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown_key"));

    let output = Command::new(binary()).args(["serve", "--config", "/nonexistent/imds.toml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/imds.toml"));
}

#[tokio::test]
async fn json_logs_carry_one_line_per_admin_write() {
    use http::Method;
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db_and_flags(&dir, &dir.join("imds.db"), &["--log-format", "json"]);
    let admin = daemon.admin_client();
    let json = [("content-type", "application/json")];
    let merge = [("content-type", "application/merge-patch+json")];
    assert_eq!(admin.send(Method::PUT, "/v1/instances/i-log", &json, "{}").await.unwrap().status, StatusCode::CREATED);
    assert_eq!(
        admin.send(Method::PATCH, "/v1/instances/i-log", &merge, r#"{"zone":"z1a"}"#).await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        admin.send(Method::DELETE, "/v1/instances/i-log", &[], "").await.unwrap().status,
        StatusCode::NO_CONTENT
    );
    // A refused write is not a write: it must not be logged as one.
    assert_eq!(
        admin.send(Method::PUT, "/v1/instances/i-log", &json, "{bad").await.unwrap().status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(admin.get("/v1/instances").await.unwrap().status, StatusCode::OK);

    // Every write has returned, so its log line has been written; give the pipe a moment.
    let mut actions = Vec::new();
    for _ in 0..100 {
        let lines = daemon.stderr.lock().unwrap().clone();
        let parsed: Vec<serde_json::Value> =
            lines.iter().map(|l| serde_json::from_str(l).expect("every log line is JSON")).collect();
        actions = parsed
            .iter()
            .filter(|v| v["fields"]["id"] == "i-log")
            .map(|v| v["fields"]["action"].as_str().unwrap_or("").to_owned())
            .collect();
        if actions.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(actions, ["put", "patch", "delete"]);
}

#[tokio::test]
async fn serve_honours_vmans_metadata_variables() {
    let (_guard, dir) = temp_dir();
    let config = dir.join("imds.toml");
    // No guest listener in the file: VMAN's variables say where guests are served.
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"\"\ntoken = \"{}\"\n[store]\npath = \"{}\"\n",
            super::support::TOKEN,
            dir.join("imds.db").display()
        ),
    )
    .unwrap();
    let env = [("VMAN_METADATA_BIND_IP", "127.0.0.1"), ("VMAN_METADATA_PORT", "0"), ("VMAN_METADATA_ENABLED", "1")];
    let daemon = Daemon::start(&dir, &["--config", config.to_str().unwrap()], &env);
    assert_eq!(daemon.guest.ip().to_string(), "127.0.0.1");
    let body = r##"{"hostname": "vman-vm", "ip": "127.0.3.20", "user_data": "#cloud-config\n"}"##;
    let put = daemon
        .admin_client()
        .send(http::Method::PUT, "/vms/vm-1/metadata", &[("content-type", "application/json")], body)
        .await
        .unwrap();
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let guest = Client::from_source(daemon.guest, "127.0.3.20".parse().unwrap());
    assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), "vman-vm");

    let output = Command::new(binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("VMAN_METADATA_ENABLED", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("VMAN_METADATA_ENABLED"));
}
