//! Acknowledged writes survive `kill -9`, and the view is rebuilt from the store on restart.

use http::{Method, StatusCode};
use serde_json::json;

use super::support::{temp_dir, Daemon};

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let (_guard, dir) = temp_dir();
    let db = dir.join("imds.db");
    let daemon = Daemon::with_db(&dir, &db);
    let admin = daemon.admin_client();
    let mut expected = Vec::new();
    for n in 0..25u8 {
        let id = format!("i-dur-{n:02}");
        let doc = json!({"id": id, "hostname": format!("host-{n}"), "ipv4": [format!("127.0.1.{}", n + 1)],
            "user_data": {"base64": base64_of(&[n, 0, 255, b'\n'])}});
        let response = admin
            .send(Method::PUT, &format!("/v1/instances/{id}"), &[("content-type", "application/json")], doc.to_string())
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::CREATED);
        expected.push((id, response.header("etag").unwrap().to_owned()));
    }
    let patched = admin
        .send(
            Method::PATCH,
            "/v1/instances/i-dur-00",
            &[("content-type", "application/merge-patch+json")],
            json!({"hostname": "patched"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(patched.status, StatusCode::OK);
    expected[0].1 = patched.header("etag").unwrap().to_owned();
    let deleted = admin.send(Method::DELETE, "/v1/instances/i-dur-24", &[], "").await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    expected.pop();
    daemon.kill9();

    let restarted = Daemon::with_db(&dir, &db);
    let admin = restarted.admin_client();
    for (id, etag) in &expected {
        let response = admin.get(&format!("/v1/instances/{id}")).await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{id} lost");
        assert_eq!(response.header("etag"), Some(etag.as_str()), "{id}: same revision after restart");
    }
    assert_eq!(
        admin.get("/v1/instances/i-dur-24").await.unwrap().status,
        StatusCode::NOT_FOUND,
        "the delete survived too"
    );
    // Guests are served from the rebuilt view.
    let guest = restarted.guest_from("127.0.1.1");
    assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), "patched");
    assert_eq!(guest.get("/latest/user-data").await.unwrap().body.as_ref(), &[0, 0, 255, b'\n']);
    let guest = restarted.guest_from("127.0.1.8");
    assert_eq!(guest.get("/latest/meta-data/instance-id").await.unwrap().text(), "i-dur-07");
    assert_eq!(
        restarted.guest_from("127.0.1.25").get("/latest/meta-data/instance-id").await.unwrap().status,
        StatusCode::FORBIDDEN
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn an_acknowledged_import_survives_kill_9() {
    const N: usize = 3_000;
    let (_guard, dir) = temp_dir();
    let db = dir.join("imds.db");
    let daemon = Daemon::with_db(&dir, &db);
    let body: String = (0..N)
        .map(|n| {
            let ip = format!("127.3.{}.{}", n / 250, n % 250 + 1);
            format!("{}\n", json!({"id": format!("i-bulk-{n:04}"), "hostname": format!("bulk-{n}"), "ipv4": [ip]}))
        })
        .collect();
    let response = daemon
        .admin_client()
        .send(Method::POST, "/v1/instances", &[("content-type", "application/x-ndjson")], body)
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["created"], N);
    daemon.kill9();

    let restarted = Daemon::with_db(&dir, &db);
    let admin = restarted.admin_client();
    let mut count = 0;
    let mut path = "/v1/instances?limit=1000".to_owned();
    loop {
        let page = admin.get(&path).await.unwrap().json();
        count += page["instances"].as_array().unwrap().len();
        match page["next_after"].as_str() {
            Some(next) => path = format!("/v1/instances?limit=1000&after={next}"),
            None => break,
        }
    }
    assert_eq!(count, N, "every imported instance survived");
    for n in [0, 1_234, N - 1] {
        let ip = format!("127.3.{}.{}", n / 250, n % 250 + 1);
        let got = restarted.guest_from(&ip).get("/latest/meta-data/instance-id").await.unwrap();
        assert_eq!(got.text(), format!("i-bulk-{n:04}"), "guest {ip}");
    }
}
