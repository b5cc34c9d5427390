//! Exoscale (CloudStack): the EC2-shaped tree at `/1.0/` and `/latest/`, and the password
//! server on the listener bound to it.

use http::{HeaderName, HeaderValue, Method};
use imds_dialects::{route, Dialect, GuestRequest, GuestResponse, Subject};
use imds_model::{GuestState, Instance};
use serde_json::json;

use super::{body, content_type, context, enabling, full_doc, get, golden, ok_body, parse, ED, RSA, USER_DATA};

fn exoscale() -> Instance {
    enabling(full_doc(), &["exoscale"])
}

#[test]
fn the_tree_at_both_versions() {
    let instance = exoscale();
    assert_eq!(ok_body(&instance, "/"), "1.0\nlatest");
    golden("exoscale", "meta-data.txt", &ok_body(&instance, "/1.0/meta-data/"));
    assert_eq!(ok_body(&instance, "/latest/meta-data"), ok_body(&instance, "/1.0/meta-data/"));
    assert_eq!(ok_body(&instance, "/1.0/"), "meta-data/\nuser-data");
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"imds:instance/web-1-prod").to_string();
    assert_eq!(ok_body(&instance, "/1.0/meta-data/instance-id"), uuid);
    assert_eq!(ok_body(&instance, "/1.0/meta-data/vm-id"), uuid);
    assert_eq!(ok_body(&instance, "/1.0/meta-data/local-hostname"), "web-1.example.internal");
    assert_eq!(ok_body(&instance, "/1.0/meta-data/public-keys"), format!("{ED}\n{RSA}"));
    let data = get(&instance, "/1.0/user-data");
    assert_eq!((body(&data), content_type(&data)), (USER_DATA, "application/octet-stream"));
    for path in ["/2.0/meta-data/", "/1.0/meta-data/nope", "/2009-04-04/meta-data/"] {
        let response = get(&instance, path);
        assert_eq!(response.status, 404, "{path}");
        assert!(body(&response).contains("<title>404 Not Found</title>"), "{path}");
    }
    // Without user data: 404 (cloud-init then takes it as empty), unlisted.
    let bare = enabling(json!({"id": "bare"}), &["exoscale"]);
    assert_eq!(get(&bare, "/1.0/user-data").status, 404);
    assert_eq!(ok_body(&bare, "/1.0/"), "meta-data/");
    // The record's `imds` options are EC2's alone: tokens required does not gate Exoscale.
    let mut doc = full_doc();
    doc["imds"] = json!({"tokens": "required"});
    assert_eq!(get(&enabling(doc, &["exoscale"]), "/1.0/meta-data/instance-id").status, 200);
}

#[test]
fn overrides_replace_add_and_remove_leaves() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"enabled": ["exoscale"], "exoscale": {"service-offering": "standard.medium", "cloud-identifier": null, "password": "p"}});
    let listing = ok_body(&parse(doc.clone()), "/1.0/meta-data/");
    assert!(!listing.contains("cloud-identifier") && !listing.contains("password"), "{listing}");
    assert_eq!(ok_body(&parse(doc), "/1.0/meta-data/service-offering"), "standard.medium");
}

fn password_request(instance: &Instance, state: &GuestState, ask: Option<&str>) -> GuestResponse {
    let mut request = GuestRequest::new(Method::GET, "/1.0/").on_listener_of(Dialect::Exoscale);
    if let Some(ask) = ask {
        request = request.with_header(HeaderName::from_static("domu_request"), HeaderValue::from_str(ask).unwrap());
    }
    let subject = Subject { state, ..Subject::new(instance) };
    route(&subject, &request, &context())
}

fn with_password(password: &str) -> Instance {
    let mut doc = full_doc();
    doc["dialects"] = json!({"exoscale": {"password": password}});
    parse(doc)
}

#[test]
fn the_password_is_served_until_it_is_acknowledged() {
    let instance = with_password("s3cret pass");
    let mut state = GuestState::default();
    let first = password_request(&instance, &state, Some("send_my_password"));
    assert_eq!((first.status.as_u16(), body(&first)), (200, "s3cret pass"));
    assert!(first.write.is_none());
    // Asking again before acknowledging: still served.
    assert_eq!(body(&password_request(&instance, &state, Some("send_my_password"))), "s3cret pass");
    let ack = password_request(&instance, &state, Some("saved_password"));
    assert_eq!(body(&ack), "saved_password");
    let write = ack.write.expect("the acknowledgement is a guest write");
    assert_eq!(write.write.dialect, "exoscale");
    // The state keeps a digest, never the password.
    let stored = write.write.value.clone().unwrap();
    assert!(!stored.to_string().contains("s3cret"), "{stored}");
    state.apply(&write.write).unwrap();
    let after = password_request(&instance, &state, Some("send_my_password"));
    assert_eq!(body(&after), "saved_password");
    assert!(password_request(&instance, &state, Some("saved_password")).write.is_none());
    // A new password from the operator is served again.
    let changed = with_password("another one");
    assert_eq!(body(&password_request(&changed, &state, Some("send_my_password"))), "another one");
}

#[test]
fn no_password_or_a_bad_request() {
    let state = GuestState::default();
    let none = parse(full_doc());
    assert_eq!(body(&password_request(&none, &state, Some("send_my_password"))), "saved_password");
    assert_eq!(body(&password_request(&with_password(""), &state, Some("send_my_password"))), "saved_password");
    assert_eq!(body(&password_request(&none, &state, Some("saved_password"))), "saved_password");
    assert!(password_request(&none, &state, Some("saved_password")).write.is_none());
    let instance = with_password("p");
    assert_eq!(body(&password_request(&instance, &state, None)), "bad_request");
    assert_eq!(body(&password_request(&instance, &state, Some("give_me_everything"))), "bad_request");
    // The password is never on the shared listener, whatever the header.
    let shared = GuestRequest::new(Method::GET, "/1.0/")
        .with_header(HeaderName::from_static("domu_request"), HeaderValue::from_static("send_my_password"));
    let listing = route(&Subject::new(&instance), &shared, &context());
    assert_eq!(body(&listing), "meta-data\nuser-data"); // EC2's 1.0 listing
}
