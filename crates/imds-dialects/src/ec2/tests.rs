use http::{HeaderMap, Method, StatusCode};
use imds_model::{Instance, Limits};
use serde_json::json;

use super::*;

fn instance(doc: serde_json::Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).expect("fixture is valid")
}

fn get(instance: &Instance, path: &str) -> GuestResponse {
    respond(instance, &GuestRequest { method: Method::GET, path: path.to_owned(), headers: HeaderMap::new() })
}

fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).expect("utf-8 body")
}

#[test]
fn not_found_page_is_the_339_bytes_ec2_sends() {
    assert_eq!(wire::NOT_FOUND_PAGE.len(), 339);
    assert!(wire::NOT_FOUND_PAGE.starts_with("<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"));
    assert!(wire::NOT_FOUND_PAGE.contains("\n\t\t \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n"));
    assert!(wire::NOT_FOUND_PAGE.contains("  <title>404 - Not Found</title>\n"));
    assert!(wire::NOT_FOUND_PAGE.ends_with("</html>\n"));
}

#[test]
fn skeleton_paths_answer_like_ec2() {
    let web = instance(json!({
        "id": "i-0abc", "hostname": "web-1", "domain": "example.internal",
        "ipv4": ["10.0.0.11"], "user_data": "#cloud-config\n"
    }));
    let bare = instance(json!({"id": "i-bare", "ipv4": ["10.1.2.3"], "region": "eu-west-1"}));
    let cases: &[(&Instance, &str, StatusCode, &str, &str)] = &[
        (&web, "/", StatusCode::OK, "text/plain", "latest"),
        (&web, "/latest", StatusCode::OK, "text/plain", "dynamic\nmeta-data\nuser-data"),
        (&web, "/latest/", StatusCode::OK, "text/plain", "dynamic\nmeta-data\nuser-data"),
        (&bare, "/latest/", StatusCode::OK, "text/plain", "dynamic\nmeta-data"),
        (&web, "/latest/meta-data/", StatusCode::OK, "text/plain", "hostname\ninstance-id\nlocal-hostname\nlocal-ipv4"),
        (&web, "/latest/meta-data", StatusCode::OK, "text/plain", "hostname\ninstance-id\nlocal-hostname\nlocal-ipv4"),
        (&web, "/latest/meta-data/instance-id", StatusCode::OK, "text/plain", "i-0abc"),
        (&web, "/latest/meta-data/instance-id/", StatusCode::OK, "text/plain", "i-0abc"),
        (&web, "/latest/meta-data/hostname", StatusCode::OK, "text/plain", "web-1.example.internal"),
        (&bare, "/latest/meta-data/hostname", StatusCode::OK, "text/plain", "ip-10-1-2-3.eu-west-1.compute.internal"),
        (&web, "/latest/meta-data/local-ipv4", StatusCode::OK, "text/plain", "10.0.0.11"),
        (&web, "/latest/user-data", StatusCode::OK, "application/octet-stream", "#cloud-config\n"),
        (&bare, "/latest/user-data", StatusCode::NOT_FOUND, "text/html", wire::NOT_FOUND_PAGE),
        (&web, "/latest/meta-data/nope", StatusCode::NOT_FOUND, "text/html", wire::NOT_FOUND_PAGE),
    ];
    for (instance, path, status, content_type, expected) in cases {
        let response = get(instance, path);
        assert_eq!(response.status, *status, "{path}");
        assert_eq!(response.headers[0].1, *content_type, "{path}");
        assert_eq!(body(&response), *expected, "{path}");
    }
}

#[test]
fn listing_only_names_leaves_that_answer() {
    let no_ip = instance(json!({"id": "i-noip", "ipv6": ["fd00::5"]}));
    let listing = get(&no_ip, "/latest/meta-data/");
    assert_eq!(body(&listing), "hostname\ninstance-id\nlocal-hostname");
    for leaf in body(&listing).lines() {
        assert_eq!(get(&no_ip, &format!("/latest/meta-data/{leaf}")).status, StatusCode::OK, "{leaf}");
    }
}

#[test]
fn user_data_is_returned_byte_for_byte() {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut inst = instance(json!({"id": "i-bin"}));
    inst.user_data = Some(imds_model::UserData::from(all_bytes.clone()));
    let response = get(&inst, "/latest/user-data");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body.as_ref(), all_bytes.as_slice());
}

#[test]
fn other_methods_get_405_with_allow() {
    let inst = instance(json!({"id": "i-m"}));
    let response = respond(
        &inst,
        &GuestRequest { method: Method::POST, path: "/latest/meta-data/".into(), headers: HeaderMap::new() },
    );
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers.iter().any(|(name, value)| name == http::header::ALLOW && value == "GET, HEAD"));
}
