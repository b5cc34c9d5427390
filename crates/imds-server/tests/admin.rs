//! The admin API over real sockets: CRUD, merge-patch, ETags, conflicts, bad input, auth.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use http::{Method, StatusCode};
use imds_server::client::{Client, Endpoint};
use imds_server::test_util::TestServer;
use imds_store::memory::MemoryStore;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");
const MERGE: (&str, &str) = ("content-type", "application/merge-patch+json");

async fn put(client: &Client, id: &str, doc: &Value, extra: &[(&str, &str)]) -> imds_server::client::Response {
    let mut headers = vec![JSON];
    headers.extend_from_slice(extra);
    client.send(Method::PUT, &format!("/v1/instances/{id}"), &headers, doc.to_string()).await.unwrap()
}

fn error_field(response: &imds_server::client::Response) -> String {
    response.json()["error"]["field"].as_str().unwrap_or("<none>").to_owned()
}

/// Everything the store holds, to prove failed requests changed nothing.
async fn store_state(server: &TestServer) -> (imds_store::Revision, Vec<Value>) {
    let rev = server.store.revision().await.unwrap();
    let page = server.admin().get("/v1/instances?limit=1000").await.unwrap().json();
    (rev, page["instances"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn create_read_replace_delete() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let doc = json!({"id": "i-1", "hostname": "one", "ipv4": ["127.0.0.31"], "mac": ["02:AA:BB:CC:DD:01"]});

    let created = put(&admin, "i-1", &doc, &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let etag = created.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    // Normalised on the way in: MAC lower-case, imds defaults filled in.
    assert_eq!(created.json()["mac"], json!(["02:aa:bb:cc:dd:01"]));
    assert_eq!(created.json()["imds"]["tokens"], "optional");
    assert_eq!(created.json()["imds"]["hop_limit"], 1);

    let read = admin.get("/v1/instances/i-1").await.unwrap();
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.header("etag"), Some(etag.as_str()));
    assert_eq!(read.json(), created.json());

    let replaced = put(&admin, "i-1", &json!({"hostname": "uno", "ipv4": ["127.0.0.31"]}), &[]).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_ne!(replaced.header("etag"), Some(etag.as_str()));
    assert_eq!(replaced.json()["id"], "i-1", "the path names the instance when the body does not");
    assert_eq!(replaced.json().get("mac"), None, "PUT replaces the whole record");

    // The guest sees the replacement at once: no sleep between write and read.
    assert_eq!(server.guest_from("127.0.0.31").get("/latest/meta-data/hostname").await.unwrap().text(), "uno");

    let deleted = admin.send(Method::DELETE, "/v1/instances/i-1", &[], "").await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(admin.get("/v1/instances/i-1").await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.guest_from("127.0.0.31").get("/latest/meta-data/hostname").await.unwrap().status,
        StatusCode::FORBIDDEN
    );
    let again = admin.send(Method::DELETE, "/v1/instances/i-1", &[], "").await.unwrap();
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn merge_patch_follows_rfc_7396() {
    let server = TestServer::start().await;
    let admin = server.admin();
    put(
        &admin,
        "i-p",
        &json!({"id": "i-p", "hostname": "before", "ipv4": ["127.0.0.32"], "region": "eu-west-1",
        "tags": {"Name": "p", "team": "core"}}),
        &[],
    )
    .await;

    let patched = admin
        .send(
            Method::PATCH,
            "/v1/instances/i-p",
            &[MERGE],
            json!({"hostname": "after", "region": null, "tags": {"team": null, "env": "prod"}}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let body = patched.json();
    assert_eq!(body["hostname"], "after");
    assert_eq!(body.get("region"), None, "null deletes");
    assert_eq!(body["tags"], json!({"Name": "p", "env": "prod"}), "objects merge member by member");
    assert_eq!(body["ipv4"], json!(["127.0.0.32"]), "members not in the patch stay");
    assert_eq!(server.guest_from("127.0.0.32").get("/latest/meta-data/hostname").await.unwrap().text(), "after");

    let wrong_type =
        admin.send(Method::PATCH, "/v1/instances/i-p", &[("content-type", "text/plain")], "{}").await.unwrap();
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let rename =
        admin.send(Method::PATCH, "/v1/instances/i-p", &[MERGE], json!({"id": "i-q"}).to_string()).await.unwrap();
    assert_eq!((rename.status, error_field(&rename)), (StatusCode::BAD_REQUEST, "id".to_owned()));
    let missing = admin.send(Method::PATCH, "/v1/instances/i-none", &[MERGE], "{}").await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let invalid = admin
        .send(Method::PATCH, "/v1/instances/i-p", &[MERGE], json!({"imds": {"hop_limit": 65}}).to_string())
        .await
        .unwrap();
    assert_eq!((invalid.status, error_field(&invalid)), (StatusCode::BAD_REQUEST, "imds.hop_limit".to_owned()));
    assert_eq!(admin.get("/v1/instances/i-p").await.unwrap().json(), body, "a rejected patch changes nothing");
}

#[tokio::test]
async fn etags_and_if_match() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let first = put(&admin, "i-e", &json!({"hostname": "a"}), &[]).await;
    let etag = first.header("etag").unwrap().to_owned();
    let second = put(&admin, "i-e", &json!({"hostname": "b"}), &[("if-match", &etag)]).await;
    assert_eq!(second.status, StatusCode::OK);
    let current = second.header("etag").unwrap().to_owned();

    let stale = put(&admin, "i-e", &json!({"hostname": "c"}), &[("if-match", &etag)]).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.json()["error"]["code"], "precondition_failed");
    let stale_patch =
        admin.send(Method::PATCH, "/v1/instances/i-e", &[MERGE, ("if-match", &etag)], "{}").await.unwrap();
    assert_eq!(stale_patch.status, StatusCode::PRECONDITION_FAILED);
    let stale_delete = admin.send(Method::DELETE, "/v1/instances/i-e", &[("if-match", &etag)], "").await.unwrap();
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(admin.get("/v1/instances/i-e").await.unwrap().json()["hostname"], "b");

    let create_only = put(&admin, "i-e", &json!({"hostname": "d"}), &[("if-none-match", "*")]).await;
    assert_eq!(create_only.status, StatusCode::PRECONDITION_FAILED);
    let fresh = put(&admin, "i-f", &json!({}), &[("if-none-match", "*")]).await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    let garbage = put(&admin, "i-e", &json!({}), &[("if-match", "yesterday")]).await;
    assert_eq!((garbage.status, error_field(&garbage)), (StatusCode::BAD_REQUEST, "If-Match".to_owned()));

    let patched = admin
        .send(
            Method::PATCH,
            "/v1/instances/i-e",
            &[MERGE, ("if-match", &current)],
            json!({"hostname": "e"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(patched.status, StatusCode::OK);
    let deleted = admin
        .send(Method::DELETE, "/v1/instances/i-e", &[("if-match", patched.header("etag").unwrap())], "")
        .await
        .unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn two_instances_never_share_an_address() {
    let server = TestServer::start().await;
    let admin = server.admin();
    put(&admin, "i-x", &json!({"ipv4": ["127.0.0.41"], "ipv6": ["fd00::41"], "mac": ["02:00:00:00:00:41"]}), &[]).await;
    let before = store_state(&server).await;

    for (doc, field, value) in [
        (json!({"ipv4": ["127.0.0.41"]}), "ipv4", "127.0.0.41"),
        (json!({"ipv6": ["FD00:0::41"]}), "ipv6", "fd00::41"),
        (json!({"ipv6": ["::ffff:127.0.0.41"]}), "ipv4", "127.0.0.41"),
        (json!({"mac": ["02-00-00-00-00-41"]}), "mac", "02:00:00:00:00:41"),
    ] {
        let response = put(&admin, "i-y", &doc, &[]).await;
        assert_eq!(response.status, StatusCode::CONFLICT, "{doc}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], "address_conflict");
        assert_eq!(error["field"], field);
        assert_eq!(error["conflicting_instance"], "i-x");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("i-x") && message.contains(value), "{message}");
    }
    assert_eq!(store_state(&server).await, before, "conflicts change nothing");

    // Once i-x lets go of the address, another instance may take it.
    let released =
        admin.send(Method::PATCH, "/v1/instances/i-x", &[MERGE], json!({"ipv4": null}).to_string()).await.unwrap();
    assert_eq!(released.status, StatusCode::OK);
    assert_eq!(put(&admin, "i-y", &json!({"ipv4": ["127.0.0.41"]}), &[]).await.status, StatusCode::CREATED);
    assert_eq!(server.guest_from("127.0.0.41").get("/latest/meta-data/instance-id").await.unwrap().text(), "i-y");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_changes_nothing() {
    let server = TestServer::with_config(
        Arc::new(MemoryStore::new()),
        None,
        imds_model::Limits { max_user_data: 1024, max_record: 8192, ..Default::default() },
        None,
    )
    .await;
    let admin = server.admin();
    put(&admin, "i-ok", &json!({"hostname": "ok", "ipv4": ["127.0.0.51"]}), &[]).await;
    let before = store_state(&server).await;

    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("i-bad", "{not json".into(), "invalid_json", ""),
        ("i-bad", "[1, 2]".into(), "invalid_instance", ""),
        ("i-bad", json!({"ipv4": ["300.1.1.1"]}).to_string(), "invalid_instance", "ipv4[0]"),
        ("i-bad", json!({"mac": ["zz:00"]}).to_string(), "invalid_instance", "mac[0]"),
        ("i-bad", json!({"imds": {"hop_limit": 0}}).to_string(), "invalid_instance", "imds.hop_limit"),
        ("i-bad", json!({"imds": {"tokens": "sometimes"}}).to_string(), "invalid_instance", "imds.tokens"),
        ("i-bad", json!({"hostnme": "typo"}).to_string(), "invalid_instance", "hostnme"),
        ("i-bad", json!({"user_data": "x".repeat(1025)}).to_string(), "invalid_instance", "user_data"),
        ("i-bad", json!({"user_data": {"base64": "!!!"}}).to_string(), "invalid_instance", "user_data"),
        ("i-bad", json!({"id": "i-other"}).to_string(), "bad_request", "id"),
        ("bad%20id", json!({}).to_string(), "invalid_instance", "id"),
        ("i-ok", json!({"ipv4": ["not-an-ip"]}).to_string(), "invalid_instance", "ipv4[0]"),
    ];
    for (id, body, code, field) in cases {
        let response = admin.send(Method::PUT, &format!("/v1/instances/{id}"), &[JSON], body.clone()).await.unwrap();
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.text());
        assert_eq!(response.json()["error"]["code"], code, "{body}");
        assert_eq!(error_field(&response), field, "{body}");
        assert!(response.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Several mistakes at once are all reported.
    let many = put(&admin, "i-bad", &json!({"ipv4": ["x"], "mac": ["y"], "imds": {"hop_limit": 99}}), &[]).await;
    let fields: Vec<String> = many.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    for field in ["ipv4[0]", "mac[0]", "imds.hop_limit"] {
        assert!(fields.iter().any(|f| f == field), "{field} missing from {fields:?}");
    }

    let huge = admin.send(Method::PUT, "/v1/instances/i-bad", &[JSON], vec![b' '; 64 * 1024]).await.unwrap();
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.json()["error"]["code"], "too_large");

    let list = admin.get("/v1/instances?limit=0").await.unwrap();
    assert_eq!((list.status, error_field(&list)), (StatusCode::BAD_REQUEST, "limit".to_owned()));
    let nowhere = admin.get("/v1/nothing").await.unwrap();
    assert_eq!((nowhere.status, nowhere.json()["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let method = admin.send(Method::POST, "/v1/instances/i-ok", &[JSON], "{}").await.unwrap();
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);

    assert_eq!(store_state(&server).await, before, "no bad request changed the store");
    assert_eq!(server.guest_from("127.0.0.51").get("/latest/meta-data/hostname").await.unwrap().text(), "ok");
}

#[tokio::test]
async fn user_data_with_all_byte_values_round_trips_through_the_admin_api() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let admin = server.admin();
    let bytes: Vec<u8> = (0..=255u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let created = put(&admin, "i-b", &json!({"user_data": {"base64": encoded}}), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let read = admin.get("/v1/instances/i-b").await.unwrap().json();
    let back = base64::engine::general_purpose::STANDARD.decode(read["user_data"]["base64"].as_str().unwrap()).unwrap();
    assert_eq!(back, bytes);
    // Text user-data comes back as the same text.
    put(&admin, "i-t", &json!({"user_data": "#!/bin/sh\necho héllo\n"}), &[]).await;
    assert_eq!(admin.get("/v1/instances/i-t").await.unwrap().json()["user_data"], "#!/bin/sh\necho héllo\n");
}

#[tokio::test]
async fn list_pages_by_id() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for n in [3, 1, 5, 2, 4] {
        put(&admin, &format!("i-{n}"), &json!({}), &[]).await;
    }
    let first = admin.get("/v1/instances?limit=2").await.unwrap().json();
    let ids = |page: &Value| {
        page["instances"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ["i-1", "i-2"]);
    assert_eq!(first["next_after"], "i-2");
    let second = admin.get("/v1/instances?limit=2&after=i-2").await.unwrap().json();
    assert_eq!(ids(&second), ["i-3", "i-4"]);
    let last = admin.get("/v1/instances?limit=2&after=i-4").await.unwrap().json();
    assert_eq!(ids(&last), ["i-5"]);
    assert_eq!(last.get("next_after"), None);
    assert_eq!(ids(&admin.get("/v1/instances").await.unwrap().json()).len(), 5);
}

#[tokio::test]
async fn tcp_clients_need_the_token_unix_socket_clients_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let server = TestServer::with_config(
        Arc::new(MemoryStore::new()),
        Some("t0ken"),
        imds_model::Limits::default(),
        Some(socket.clone()),
    )
    .await;

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);

    let before = server.store.revision().await.unwrap();
    let anonymous = Client::new(Endpoint::Tcp(server.admin_addr));
    let refused = anonymous.get("/v1/instances").await.unwrap();
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["field"], "Authorization");
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    let wrong = Client::new(Endpoint::Tcp(server.admin_addr)).with_token(Some("nope".into()));
    assert_eq!(wrong.get("/v1/instances").await.unwrap().status, StatusCode::UNAUTHORIZED);
    let refused_put = anonymous.send(Method::PUT, "/v1/instances/i-z", &[JSON], "{}").await.unwrap();
    assert_eq!(refused_put.status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.store.revision().await.unwrap(), before, "a refused write changes nothing");

    assert_eq!(server.admin().get("/v1/instances").await.unwrap().status, StatusCode::OK);
    let unix = Client::new(Endpoint::Unix(socket.clone()));
    assert_eq!(put(&unix, "i-u", &json!({}), &[]).await.status, StatusCode::CREATED);
    // Health needs no token: load balancers and orchestrators probe it.
    assert_eq!(anonymous.get("/healthz").await.unwrap().status, StatusCode::OK);
    server.node_ready().await;
    assert_eq!(anonymous.get("/readyz").await.unwrap().json()["status"], "ready");
}

#[tokio::test]
async fn openapi_document_is_served_and_matches_the_committed_copy() {
    let server = TestServer::start().await;
    let served = server.admin().get("/v1/openapi.json").await.unwrap();
    assert_eq!(served.status, StatusCode::OK);
    let generated = imds_server::admin::openapi::render();
    assert_eq!(served.json(), serde_json::from_str::<Value>(&generated).unwrap());

    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var_os("IMDS_UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `IMDS_UPDATE_OPENAPI=1 cargo test -p imds-server --test it openapi` and commit it"
    );

    // Every documented operation is routed (answers with something other than a routing 404/405).
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "i-route-check");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server.admin().send(method.clone(), &concrete, &[MERGE], "{}").await.unwrap();
            let code = response.json()["error"]["code"].clone();
            assert!(
                code != "method_not_allowed"
                    && !(response.status == StatusCode::NOT_FOUND
                        && code == "not_found"
                        && response.json()["error"]["field"].is_null()),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[tokio::test]
async fn openapi_says_which_operations_need_the_token_and_what_bodies_require() {
    let server = TestServer::with_store(Arc::new(MemoryStore::new()), Some("t0ken")).await;
    let anonymous = Client::new(Endpoint::Tcp(server.admin_addr));
    let doc: Value = serde_json::from_str(&imds_server::admin::openapi::render()).unwrap();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let open = operation.get("security") == Some(&json!([]));
            assert_eq!(
                open,
                ["/healthz", "/readyz", "/status", "/v1/openapi.json"].contains(&path.as_str()),
                "{method} {path}"
            );
            // What the document says is what the server does without a token.
            let concrete = path.replace("{id}", "i-auth-check").replace("{name}", "auth-check");
            let method_ = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = anonymous.send(method_, &concrete, &[JSON], "{}").await.unwrap();
            if open {
                assert!(operation["responses"].get("401").is_none(), "{method} {path}");
                assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            } else {
                assert_eq!(
                    operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["RoleBody"]["required"], json!(["source"]));
    assert_eq!(schemas["SigningKeyBody"]["required"], json!(["private_key_pem"]));
    assert_eq!(schemas["BaseCredentialsBody"]["oneOf"][0]["required"], json!(["access_key_id", "secret_access_key"]));
    // MMDS documents are any JSON value, as the server accepts (Firecracker does the same).
    assert!(schemas["AnyValue"].get("type").is_none(), "{}", schemas["AnyValue"]);
    let mmds = &doc["paths"]["/v1/instances/{id}/mmds"];
    for method in ["put", "patch"] {
        assert_eq!(
            mmds[method]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/AnyValue"
        );
    }
    server.create(json!({"id": "i-any", "ipv4": ["127.0.0.71"]})).await;
    for document in ["[1, 2]", "\"text\"", "42", "null", "true"] {
        let put = server.admin().send(Method::PUT, "/v1/instances/i-any/mmds", &[JSON], document).await.unwrap();
        assert_eq!(put.status, StatusCode::NO_CONTENT, "{document}: {}", put.text());
    }
}
