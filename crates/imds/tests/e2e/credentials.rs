//! Roles from the configuration file, `imds role`, `imds signing` and `imds verify` against
//! the real binary.

use std::process::{Command, Output};

use super::support::{binary, temp_dir, Daemon, TOKEN};

fn imds(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("IMDS_ADMIN", format!("http://{}", daemon.admin))
        .env("IMDS_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn configured_roles_reach_guests_and_imds_verify_checks_signatures() {
    let (_guard, dir) = temp_dir();
    let config = dir.join("imds.toml");
    std::fs::write(
        &config,
        format!(
            "[guest]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"\"\ntoken = \"{TOKEN}\"\n\
             [store]\npath = \"{}\"\n[roles.app.source]\ntype = \"static\"\naccess_key_id = \"AKIAFROMCONFIG\"\n\
             secret_access_key = \"config-secret\"\n",
            dir.join("imds.db").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&dir, &["--config", config.to_str().unwrap()], &[]);
    let admin = daemon.admin_client();
    let created = admin
        .send(
            http::Method::PUT,
            "/v1/instances/i-e2e-creds",
            &[("content-type", "application/json")],
            r#"{"id": "i-e2e-creds", "ipv4": ["127.0.42.1"], "iam_role": "app"}"#.to_owned(),
        )
        .await
        .unwrap();
    assert_eq!(created.status, http::StatusCode::CREATED);
    let guest = daemon.guest_from("127.0.42.1");
    let mut credentials = serde_json::Value::Null;
    let mut signature = String::new();
    for _ in 0..200 {
        credentials = guest.get("/latest/meta-data/iam/security-credentials/app").await.unwrap().json();
        let response = guest.get("/latest/dynamic/instance-identity/signature").await.unwrap();
        signature = response.text();
        if credentials["Code"] == "Success" && response.status == http::StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(credentials["AccessKeyId"], "AKIAFROMCONFIG", "{credentials}");

    let listed = imds(&daemon, &["role", "ls"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    assert!(
        table.lines().any(|line| line.starts_with("app ") && line.contains("static") && line.contains("true")),
        "{table}"
    );
    assert!(!table.contains("config-secret"));

    // imds verify: good signatures pass, a changed document fails with exit 1.
    let document = guest.get("/latest/dynamic/instance-identity/document").await.unwrap().text();
    let pkcs7 = guest.get("/latest/dynamic/instance-identity/pkcs7").await.unwrap().text();
    let path = |name: &str, body: &str| {
        let file = dir.join(name);
        std::fs::write(&file, body).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let (doc, sig, p7) = (path("document", &document), path("signature", &signature), path("pkcs7", &pkcs7));
    let good = imds(&daemon, &["verify", "--document", &doc, "--signature", &sig]);
    assert!(good.status.success(), "{}", text(&good.stderr));
    let attached = imds(&daemon, &["verify", "--pkcs7", &p7, "--document", &doc]);
    assert!(attached.status.success(), "{}", text(&attached.stderr));
    assert_eq!(text(&attached.stdout).trim_end(), document);
    let certs = imds(&daemon, &["signing", "certs"]);
    let certs = path("certs.pem", &text(&certs.stdout));
    let forged = path("forged", &document.replace("i-e2e-creds", "i-someone-else"));
    let bad = imds(&daemon, &["verify", "--document", &forged, "--signature", &sig, "--certs", &certs]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stdout));
    assert!(text(&bad.stderr).contains("NOT verified"));
}
