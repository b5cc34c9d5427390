//! Linode (Akamai): `PUT /v1/token`, then `/v1/instance`, `/v1/network`, `/v1/ssh-keys` and
//! `/v1/user-data` with the token, as JSON or text.

use base64::Engine as _;
use http::{HeaderName, HeaderValue, Method};
use imds_dialects::{GuestRequest, GuestResponse};
use imds_model::Instance;
use serde_json::{json, Value};

use super::{body, content_type, full, golden, parse, send_request, ED, RSA, USER_DATA};

fn header(request: GuestRequest, name: &'static str, value: &str) -> GuestRequest {
    request.with_header(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap())
}

fn token(instance: &Instance) -> String {
    let response = send_request(
        instance,
        &header(GuestRequest::new(Method::PUT, "/v1/token"), "metadata-token-expiry-seconds", "300"),
    );
    assert_eq!(response.status, 200, "{}", body(&response));
    body(&response).to_owned()
}

fn read(instance: &Instance, path: &str, json: bool) -> GuestResponse {
    let request = header(GuestRequest::new(Method::GET, path), "metadata-token", &token(instance));
    let request = if json { header(request, "accept", "application/json") } else { request };
    send_request(instance, &request)
}

#[test]
fn the_instance_and_network_as_json_and_as_text() {
    let instance = full();
    for (path, name) in [("/v1/instance", "instance"), ("/v1/network", "network"), ("/v1/ssh-keys", "ssh-keys")] {
        let as_json = read(&instance, path, true);
        assert_eq!((as_json.status.as_u16(), content_type(&as_json)), (200, "application/json"), "{path}");
        let pretty = serde_json::to_string_pretty(&serde_json::from_slice::<Value>(&as_json.body).unwrap()).unwrap();
        golden("linode", &format!("{name}.json"), &format!("{pretty}\n"));
        let as_text = read(&instance, path, false);
        assert_eq!(content_type(&as_text), "text/plain; charset=utf-8");
        golden("linode", &format!("{name}.txt"), body(&as_text));
    }
    let doc: Value = serde_json::from_slice(&read(&instance, "/v1/ssh-keys", true).body).unwrap();
    assert_eq!(doc, json!({"users": {"root": [ED, RSA]}}));
}

#[test]
fn user_data_is_base64_and_empty_without_any() {
    let response = read(&full(), "/v1/user-data", false);
    assert_eq!(response.status, 200);
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(&response.body).unwrap(), USER_DATA.as_bytes());
    assert_eq!(body(&read(&parse(json!({"id": "bare"})), "/v1/user-data", false)), "");
}

#[test]
fn every_read_needs_a_token_of_this_instance() {
    let instance = full();
    let other = parse(json!({"id": "other"}));
    for path in ["/v1/instance", "/v1/network", "/v1/ssh-keys", "/v1/user-data"] {
        let bare = send_request(&instance, &GuestRequest::new(Method::GET, path));
        assert_eq!((bare.status.as_u16(), body(&bare)), (401, r#"{"errors":[{"reason":"Unauthorized"}]}"#), "{path}");
        let foreign =
            send_request(&instance, &header(GuestRequest::new(Method::GET, path), "metadata-token", &token(&other)));
        assert_eq!(foreign.status, 401, "{path}");
        let junk = send_request(&instance, &header(GuestRequest::new(Method::GET, path), "metadata-token", "junk"));
        assert_eq!(junk.status, 401, "{path}");
        // The early header name is accepted.
        let legacy = send_request(
            &instance,
            &header(GuestRequest::new(Method::GET, path), "x-metadata-token", &token(&instance)),
        );
        assert_eq!(legacy.status, 200, "{path}");
    }
}

#[test]
fn token_requests_are_checked() {
    let instance = full();
    let put = |expiry: Option<&str>| {
        let request = GuestRequest::new(Method::PUT, "/v1/token");
        let request = match expiry {
            Some(value) => header(request, "metadata-token-expiry-seconds", value),
            None => request,
        };
        send_request(&instance, &request)
    };
    assert_eq!(put(None).status, 200); // 3600 s by default
    for bad in ["0", "21601", "soon", "-5"] {
        let response = put(Some(bad));
        assert_eq!(response.status, 400, "{bad}");
        assert!(body(&response).starts_with(r#"{"errors":[{"reason":"#), "{}", body(&response));
    }
    let json =
        send_request(&instance, &header(GuestRequest::new(Method::PUT, "/v1/token"), "accept", "application/json"));
    let list: Vec<String> = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(list.len(), 1);
    let get = send_request(&instance, &GuestRequest::new(Method::GET, "/v1/token"));
    assert_eq!(get.status, 405);
    let unknown = send_request(&instance, &GuestRequest::new(Method::GET, "/v1/nothing"));
    assert_eq!(unknown.status, 404);
}

#[test]
fn the_id_follows_rule_r1() {
    let decimal = parse(json!({"id": "123456"}));
    let doc: Value = serde_json::from_slice(&read(&decimal, "/v1/instance", true).body).unwrap();
    assert_eq!(doc["id"], 123_456);
    let overridden = parse(json!({"id": "web", "dialects": {"linode": {"id": "77", "type": "g6-nanode-1"}}}));
    let doc: Value = serde_json::from_slice(&read(&overridden, "/v1/instance", true).body).unwrap();
    assert_eq!((doc["id"].clone(), doc["type"].clone()), (json!(77), json!("g6-nanode-1")));
}
