//! GCE and Azure credentials through the dialects' public API, with a fake credential cache and
//! a fake signer standing in for the server's: GCE `token` and `identity`, Azure's managed
//! identity token and attested document.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use imds_dialects::{azure, route, Context, GuestRequest, GuestResponse, Subject};
use imds_model::{GuestState, Instance, Limits};
use serde_json::{json, Value};

#[path = "support/fakes.rs"]
mod fakes;

use fakes::{key, FakeSigner, Roles, NOW};

const ROLES: Roles =
    Roles { access_key_id: "AKIAEXAMPLE", secret_access_key: "secret", token: "ya29.example-token", lifetime: 3000 };

fn instance(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).unwrap()
}

fn send(instance: &Instance, request: GuestRequest, signer: bool) -> GuestResponse {
    let mut context = Context::new(key(), NOW);
    context.credentials = &ROLES;
    if signer {
        context.signer = Some(&FakeSigner);
    }
    let state = GuestState::default();
    route(&Subject { instance, mmds: None, state: &state, events: None, cache: None }, &request, &context)
}

fn gce(instance: &Instance, target: &str, signer: bool) -> GuestResponse {
    let request = GuestRequest::new(Method::GET, target)
        .with_header(HeaderName::from_static("metadata-flavor"), HeaderValue::from_static("Google"));
    send(instance, request, signer)
}

fn azure_get(instance: &Instance, target: &str, signer: bool) -> GuestResponse {
    let request = GuestRequest::new(Method::GET, target)
        .with_header(HeaderName::from_static("metadata"), HeaderValue::from_static("true"));
    send(instance, request, signer)
}

fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).unwrap()
}

fn content_type(response: &GuestResponse) -> &str {
    response.header(&http::header::CONTENT_TYPE).unwrap().to_str().unwrap()
}

fn gce_instance(role: &str) -> Instance {
    instance(json!({"id": "4815162342", "name": "web-1", "zone": "europe-west1-b",
        "account": {"id": "123456789012", "name": "acme-prod"}, "iam_role": role,
        "created_at": "2026-01-02T03:04:05Z"}))
}

const SA: &str = "/computeMetadata/v1/instance/service-accounts";

#[test]
fn gce_token_is_the_roles_session_token_as_compact_json() {
    let web = gce_instance("app-role");
    for account in ["default", "app-role@acme-prod.iam.gserviceaccount.com"] {
        let response = gce(&web, &format!("{SA}/{account}/token?scopes=x,y"), false);
        assert_eq!(response.status, StatusCode::OK, "{}", body(&response));
        assert_eq!(content_type(&response), "application/json");
        assert_eq!(body(&response), r#"{"access_token":"ya29.example-token","expires_in":3000,"token_type":"Bearer"}"#);
        assert_eq!(response.header(&HeaderName::from_static("metadata-flavor")).unwrap(), "Google");
    }
    // Not recursive: the token never shows in the service account's recursive JSON.
    let recursive = gce(&web, &format!("{SA}/default/?recursive=true"), false);
    assert!(!body(&recursive).contains("ya29"), "{}", body(&recursive));
}

#[test]
fn gce_token_errors_without_credentials() {
    let broken = gce(&gce_instance("broken-role"), &format!("{SA}/default/token"), false);
    assert_eq!(broken.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body(&broken).contains("broken-role"));
    let unknown = gce(&gce_instance("nobody"), &format!("{SA}/default/token"), false);
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let none = gce(&instance(json!({"id": "i-1"})), &format!("{SA}/default/token"), false);
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(body(&gce(&instance(json!({"id": "i-1"})), &format!("{SA}/"), false)), "");
}

fn claims(response: &GuestResponse) -> Value {
    serde_json::from_str(body(response).strip_prefix("jwt:").unwrap()).unwrap()
}

#[test]
fn gce_identity_signs_googles_claims() {
    let web = gce_instance("app-role");
    let standard = gce(&web, &format!("{SA}/default/identity?audience=https%3A%2F%2Fapi.example.com"), true);
    assert_eq!(standard.status, StatusCode::OK, "{}", body(&standard));
    assert_eq!(content_type(&standard), "application/text");
    let claims_standard = claims(&standard);
    let keys: Vec<&String> = claims_standard.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"]);
    assert_eq!(claims_standard["aud"], "https://api.example.com");
    assert_eq!(claims_standard["iss"], "https://accounts.google.com");
    assert_eq!(claims_standard["email"], "app-role@acme-prod.iam.gserviceaccount.com");
    assert_eq!(claims_standard["iat"], NOW);
    assert_eq!(claims_standard["exp"], NOW + 3600);
    let sub = claims_standard["sub"].as_str().unwrap();
    assert!(sub.len() == 21 && sub.bytes().all(|b| b.is_ascii_digit()), "{sub}");
    assert_eq!(claims_standard["azp"], sub);

    let full = claims(&gce(&web, &format!("{SA}/default/identity?audience=aud&format=full"), true));
    assert_eq!(
        full["google"]["compute_engine"],
        json!({"instance_id": "4815162342", "instance_name": "web-1", "project_id": "acme-prod",
               "project_number": 123_456_789_012_u64, "zone": "europe-west1-b",
               "instance_creation_timestamp": 1_767_323_045})
    );
    assert_eq!(full["sub"], sub, "same account, same subject");
}

#[test]
fn gce_identity_needs_an_audience_and_a_signer() {
    let web = gce_instance("app-role");
    for query in ["", "?format=full", "?audience="] {
        let response = gce(&web, &format!("{SA}/default/identity{query}"), true);
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
    }
    let bad_format = gce(&web, &format!("{SA}/default/identity?audience=a&format=huge"), true);
    assert_eq!(bad_format.status, StatusCode::BAD_REQUEST);
    let unsigned = gce(&web, &format!("{SA}/default/identity?audience=a"), false);
    assert_eq!(unsigned.status, StatusCode::SERVICE_UNAVAILABLE);
}

fn azure_instance(role: Option<&str>) -> Instance {
    let mut doc = json!({"id": "i-azure", "name": "vm-1", "account": {"id": "sub-1"},
        "dialects": {"azure": {"sku": "22_04-lts", "plan": {"name": "p", "product": "prod", "publisher": "pub"}}}});
    if let Some(role) = role {
        doc["iam_role"] = role.into();
    }
    instance(doc)
}

const TOKEN: &str =
    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";

#[test]
fn azure_token_is_the_roles_token_in_azures_shape() {
    let vm = azure_instance(Some("app-role"));
    let response = azure_get(&vm, TOKEN, false);
    assert_eq!(response.status, StatusCode::OK, "{}", body(&response));
    assert_eq!(content_type(&response), "application/json; charset=utf-8");
    let client = azure::client_id("app-role");
    assert_eq!(
        body(&response),
        format!(
            r#"{{"access_token":"ya29.example-token","client_id":"{client}","expires_in":"3000","expires_on":"{}","ext_expires_in":"3000","not_before":"{}","resource":"https://management.azure.com/","token_type":"Bearer"}}"#,
            NOW + 3000,
            NOW - 60
        )
    );
    // Selecting the instance's identity works; another one is not found.
    let object = azure::object_id("app-role");
    for selector in [
        format!("client_id={client}"),
        format!("object_id={}", object.to_uppercase()),
        "msi_res_id=/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-role"
            .to_owned(),
    ] {
        let selected = azure_get(&vm, &format!("{TOKEN}&{selector}"), false);
        assert_eq!(selected.status, StatusCode::OK, "{selector}: {}", body(&selected));
    }
    for selector in [format!("client_id={}", azure::client_id("other")), "mi_res_id=/x/userAssignedIdentities/b".into()]
    {
        let refused = azure_get(&vm, &format!("{TOKEN}&{selector}"), false);
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{selector}");
        assert_eq!(body(&refused), r#"{"error":"invalid_request","error_description":"Identity not found"}"#);
    }
}

#[test]
fn azure_token_errors() {
    let not_found = r#"{"error":"invalid_request","error_description":"Identity not found"}"#;
    for vm in [azure_instance(None), azure_instance(Some("nobody"))] {
        let response = azure_get(&vm, TOKEN, false);
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert_eq!(body(&response), not_found);
    }
    let broken = azure_get(&azure_instance(Some("broken-role")), TOKEN, false);
    assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(serde_json::from_str::<Value>(body(&broken)).unwrap()["error"], "unknown_error");
    let vm = azure_instance(Some("app-role"));
    let no_resource = azure_get(&vm, "/metadata/identity/oauth2/token?api-version=2018-02-01", false);
    assert_eq!(no_resource.status, StatusCode::BAD_REQUEST);
    assert!(body(&no_resource).contains("'resource'"), "{}", body(&no_resource));
    let no_version = azure_get(&vm, "/metadata/identity/oauth2/token?resource=x", false);
    assert_eq!(no_version.status, StatusCode::BAD_REQUEST);
    let bare = send(&vm, GuestRequest::new(Method::GET, TOKEN), false);
    assert_eq!(bare.status, StatusCode::BAD_REQUEST);
    assert_eq!(serde_json::from_str::<Value>(body(&bare)).unwrap()["error"], "bad_request_102");
}

#[test]
fn azure_attested_document_signs_azures_json() {
    let vm = azure_instance(None);
    let response = azure_get(&vm, "/metadata/attested/document?api-version=2020-09-01&nonce=1234567890", true);
    assert_eq!(response.status, StatusCode::OK, "{}", body(&response));
    let json: Value = serde_json::from_str(body(&response)).unwrap();
    assert_eq!(json["encoding"], "pkcs7");
    let signature = json["signature"].as_str().unwrap();
    assert!(!signature.contains('\n'));
    let signed = STANDARD.decode(signature).unwrap();
    let data = std::str::from_utf8(signed.strip_prefix(b"P7:").unwrap()).unwrap();
    assert_eq!(
        data,
        format!(
            r#"{{"nonce":"1234567890","plan":{{"name":"p","product":"prod","publisher":"pub"}},"timeStamp":{{"createdOn":"01/15/27 08:00:00 -0000","expiresOn":"01/15/27 14:00:00 -0000"}},"vmId":"{}","licenseType":"","subscriptionId":"sub-1","sku":"22_04-lts"}}"#,
            azure::vm_id(&vm)
        )
    );
    // Without a nonce: the time; a bad nonce, no api-version or no signer: refused.
    let timed = azure_get(&vm, "/metadata/attested/document?api-version=2020-09-01", true);
    let signed = STANDARD.decode(serde_json::from_str::<Value>(body(&timed)).unwrap()["signature"].as_str().unwrap());
    assert!(String::from_utf8(signed.unwrap()).unwrap().contains(r#""nonce":"20270115-080000""#));
    for (target, status) in [
        ("/metadata/attested/document?api-version=2020-09-01&nonce=12345678901", StatusCode::BAD_REQUEST),
        ("/metadata/attested/document?api-version=2020-09-01&nonce=abc", StatusCode::BAD_REQUEST),
        ("/metadata/attested/document", StatusCode::BAD_REQUEST),
        ("/metadata/attested/other?api-version=2020-09-01", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(azure_get(&vm, target, true).status, status, "{target}");
    }
    let unsigned = azure_get(&vm, "/metadata/attested/document?api-version=2020-09-01", false);
    assert_eq!(unsigned.status, StatusCode::SERVICE_UNAVAILABLE);
}
