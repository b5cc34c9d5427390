//! Request checks, route filtering, formats, versions and the other endpoints.

use http::{Method, StatusCode};
use imds_model::Instance;
use serde_json::json;

use super::{body, content_type, fixtures, get, json, send};

const BAD_VERSION: &str = "Bad request. api-version is invalid or was not specified in the request. \
For more information refer to aka.ms/azureimds";

#[track_caller]
fn assert_error(response: &imds_dialects::GuestResponse, status: StatusCode, expected: serde_json::Value) {
    assert_eq!(response.status, status, "{}", body(response));
    assert_eq!(content_type(response), "application/json; charset=utf-8");
    assert_eq!(json(response), expected);
}

#[test]
fn the_metadata_header_is_required_on_every_endpoint() {
    let instance = fixtures::full();
    let missing = json!({"error": "Bad request. Required metadata header not specified"});
    for target in [
        "/metadata/instance?api-version=2021-02-01",
        "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text",
        "/metadata/versions",
        "/metadata/scheduledevents?api-version=2020-07-01",
        "/metadata/attested/document?api-version=2021-02-01",
    ] {
        assert_error(&send(&instance, Method::GET, target, &[]), StatusCode::BAD_REQUEST, missing.clone());
        let wrong = send(&instance, Method::GET, target, &[("metadata", "false")]);
        assert_error(&wrong, StatusCode::BAD_REQUEST, missing.clone());
        // Azure's own samples send `Metadata:True`.
        let capital = send(&instance, Method::GET, target, &[("metadata", "True")]);
        assert_ne!(capital.status, StatusCode::BAD_REQUEST, "{target}: {}", body(&capital));
    }
}

#[test]
fn forwarded_requests_are_refused_even_with_the_header() {
    let instance = fixtures::full();
    let response = send(
        &instance,
        Method::GET,
        "/metadata/instance?api-version=2021-02-01",
        &[("metadata", "true"), ("x-forwarded-for", "203.0.113.9")],
    );
    assert_error(
        &response,
        StatusCode::BAD_REQUEST,
        json!({"error": "Bad request. Request contains an X-Forwarded-For header"}),
    );
    assert!(!body(&response).contains("web-1"));
}

#[test]
fn api_version_is_required_and_must_be_supported() {
    let instance = fixtures::full();
    let bad = json!({"error": BAD_VERSION, "newest-versions": ["2025-04-07", "2024-07-17", "2024-03-15"]});
    for target in [
        "/metadata/instance",
        "/metadata/instance?api-version=",
        "/metadata/instance?api-version=2099-01-01",
        "/metadata/instance?api-version=latest",
        "/metadata/instance/compute/vmId?format=text",
        "/metadata/attested/document",
    ] {
        assert_error(&get(&instance, target), StatusCode::BAD_REQUEST, bad.clone());
    }
    let events = json!({"error": BAD_VERSION, "newest-versions": ["2020-07-01", "2019-08-01", "2019-01-01"]});
    assert_error(&get(&instance, "/metadata/scheduledevents?api-version=2021-02-01"), StatusCode::BAD_REQUEST, events);
    let repeated = get(&instance, "/metadata/instance?api-version=2021-02-01&api-version=2021-02-01");
    assert_error(
        &repeated,
        StatusCode::BAD_REQUEST,
        json!({"error": "Bad request. Query parameters must not be repeated"}),
    );
}

#[test]
fn versions_lists_every_supported_api_version() {
    let response = get(&fixtures::minimal(), "/metadata/versions");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(content_type(&response), "application/json; charset=utf-8");
    let listed = json(&response)["apiVersions"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 35);
    assert_eq!(listed.first(), Some(&json!("2017-03-01")));
    assert_eq!(listed.last(), Some(&json!("2025-04-07")));
    // Every listed version is accepted.
    for version in &listed {
        let target = format!("/metadata/instance?api-version={}", version.as_str().unwrap());
        assert_eq!(get(&fixtures::minimal(), &target).status, StatusCode::OK, "{target}");
    }
}

#[test]
fn leaves_answer_as_text_and_only_as_text() {
    let instance = fixtures::full();
    let cases = [
        ("compute/vmId", "f9542f39-afe1-52ee-8453-97566d982bf5"),
        ("compute/name", "web-1"),
        ("compute/location", "westeurope"),
        ("compute/zone", "2"),
        ("compute/vmSize", "Standard_D2s_v5"),
        ("compute/osProfile/adminUsername", "azureuser"),
        ("compute/osProfile/disablePasswordAuthentication", "true"),
        ("compute/tags", "env:prod;team:platform"),
        ("compute/tagsList/1/value", "platform"),
        ("compute/publicKeys/1/path", "/home/deploy/.ssh/authorized_keys"),
        ("compute/userData", "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6IFt0cnVlXQo="),
        ("network/interface/0/macAddress", "000D3A00000B"),
        ("network/interface/0/ipv4/ipAddress/0/publicIpAddress", "203.0.113.7"),
        ("network/interface/0/ipv4/ipAddress/1/publicIpAddress", ""),
        ("network/interface/1/ipv4/subnet/0/address", "10.0.0.0"),
        ("network/interface/1/ipv4/subnet/0/prefix", "20"),
        ("network/interface/0/ipv6/ipAddress/0/privateIpAddress", "2001:db8:1::11"),
    ];
    for (path, expected) in cases {
        let response = get(&instance, &format!("/metadata/instance/{path}?api-version=2021-02-01&format=text"));
        assert_eq!((response.status, body(&response)), (StatusCode::OK, expected), "{path}");
        assert_eq!(content_type(&response), "text/plain; charset=utf-8", "{path}");
        let as_json = get(&instance, &format!("/metadata/instance/{path}?api-version=2021-02-01"));
        assert_eq!(as_json.status, StatusCode::BAD_REQUEST, "{path} as JSON");
        assert_eq!(json(&as_json)["error"], "Bad request. Leaf nodes must be queried with format=text");
    }
}

#[test]
fn inner_nodes_answer_json_and_refuse_text() {
    let instance = fixtures::full();
    let nic =
        get(&instance, "/metadata/instance/network/interface/0/ipv4/ipAddress/?api-version=2021-02-01&format=json");
    assert_eq!(nic.status, StatusCode::OK);
    assert_eq!(
        json(&nic),
        json!([
            {"privateIpAddress": "10.0.0.11", "publicIpAddress": "203.0.113.7"},
            {"privateIpAddress": "10.0.0.12", "publicIpAddress": ""}
        ])
    );
    let text = get(&instance, "/metadata/instance/compute?api-version=2021-02-01&format=text");
    assert_eq!(text.status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&text)["error"], "Bad request. format=text is only supported on leaf nodes");
    let odd = get(&instance, "/metadata/instance/compute?api-version=2021-02-01&format=xml");
    assert_eq!(
        (odd.status, json(&odd)["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Bad request. format must be json or text"))
    );
}

#[test]
fn paths_that_name_nothing_are_404() {
    let instance = fixtures::full();
    for path in ["compute/nope", "network/interface/2", "network/interface/x", "compute/vmId/more", "Compute"] {
        let response = get(&instance, &format!("/metadata/instance/{path}?api-version=2021-02-01&format=text"));
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json(&response), json!({"error": "Not found"}));
    }
    assert_eq!(get(&instance, "/metadata/versions/2021-02-01").status, StatusCode::NOT_FOUND);
}

#[test]
fn fields_newer_than_the_api_version_are_left_out() {
    let instance = fixtures::full();
    let at = |version: &str| json(&get(&instance, &format!("/metadata/instance/compute?api-version={version}")));
    let old = at("2017-04-02");
    assert_eq!(old["vmId"], "f9542f39-afe1-52ee-8453-97566d982bf5");
    for newer in ["publicKeys", "tagsList", "osProfile", "userData", "subscriptionId", "zone", "storageProfile"] {
        assert!(old.get(newer).is_none(), "{newer} must not be in 2017-04-02");
    }
    assert!(at("2019-06-04").get("tagsList").is_some());
    assert!(at("2019-06-01").get("tagsList").is_none());
    assert!(at("2020-07-15")["osProfile"].get("disablePasswordAuthentication").is_none());
    assert_eq!(at("2020-10-01")["osProfile"]["disablePasswordAuthentication"], "true");
    assert!(at("2020-12-01").get("userData").is_none());
    assert!(at("2021-01-01").get("userData").is_some());
    // `extended` only from 2021-03-01, and only when asked for.
    let extended = |query: &str| json(&get(&instance, &format!("/metadata/instance?{query}"))).get("extended").cloned();
    assert_eq!(
        extended("api-version=2021-03-01&extended=true"),
        Some(json!({"compute": {"hasCustomData": "false", "ppsType": "None"}}))
    );
    assert_eq!(extended("api-version=2021-02-01&extended=true"), None);
    assert_eq!(extended("api-version=2021-08-01"), None);
}

#[test]
fn every_primitive_is_a_string() {
    fn walk(value: &serde_json::Value, path: &str) {
        match value {
            serde_json::Value::String(_) => {}
            serde_json::Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{path}/{i}")))
            }
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, &format!("{path}/{k}"))),
            other => panic!("{path} is {other}, not a string"),
        }
    }
    for instance in [fixtures::full(), fixtures::minimal(), fixtures::overridden()] {
        walk(&json(&get(&instance, "/metadata/instance?api-version=2025-04-07&extended=true")), "");
    }
}

#[test]
fn without_a_network_the_nic_comes_from_the_identifying_addresses() {
    let instance = fixtures::parse(json!({"id": "i-r2", "ipv4": ["192.0.2.44"], "mac": ["02:00:00:00:00:2c"]}));
    let network = json(&get(&instance, "/metadata/instance/network?api-version=2021-02-01"));
    assert_eq!(
        network,
        json!({"interface": [{
            "ipv4": {"ipAddress": [{"privateIpAddress": "192.0.2.44", "publicIpAddress": ""}], "subnet": []},
            "ipv6": {"ipAddress": []},
            "macAddress": "02000000002C"
        }]})
    );
    let bare = json(&get(&fixtures::minimal(), "/metadata/instance/network?api-version=2021-02-01"));
    assert_eq!(bare, json!({"interface": []}));
}

#[test]
fn scheduled_events_list_the_events_and_approvals_name_a_shown_one() {
    let instance = fixtures::full();
    let events = get(&instance, "/metadata/scheduledevents?api-version=2020-07-01");
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(json(&events), json!({"DocumentIncarnation": 0, "Events": []}));
    let headers = [("metadata", "true")];
    let target = "/metadata/scheduledevents?api-version=2020-07-01";
    let now = super::context().now;
    let spec = imds_model::EventSpec::parse(&json!({"kind": "spot-interruption", "in_seconds": 10}), now, &[]).unwrap();
    let id = imds_model::EventId::from_random(0xabc);
    let list = imds_model::InstanceEvents { events: vec![spec.into_event(id.clone(), now)], retired_changes: 0 };
    let subject = imds_dialects::Subject { events: Some(&list), ..imds_dialects::Subject::new(&instance) };
    let approve = |event: &str| {
        let mut request = imds_dialects::GuestRequest::new(Method::POST, target)
            .with_body(format!(r#"{{"StartRequests":[{{"EventId":"{event}"}}]}}"#));
        for (name, value) in headers {
            request = request.with_header(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
        }
        request
    };
    let approved = imds_dialects::route(&subject, &approve(id.as_str()), &super::context());
    assert_eq!(approved.status, StatusCode::OK);
    assert_eq!(approved.start_events, std::slice::from_ref(&id), "the server records the approval");
    // The document names the event by a GUID, as Azure does; approving by it starts the event.
    let mut get = imds_dialects::GuestRequest::new(Method::GET, target);
    for (name, value) in headers {
        get = get.with_header(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
    }
    let shown = json(&imds_dialects::route(&subject, &get, &super::context()));
    let guid = shown["Events"][0]["EventId"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&guid).is_ok(), "{guid}");
    let by_guid = imds_dialects::route(&subject, &approve(&guid), &super::context());
    assert_eq!(by_guid.status, StatusCode::OK);
    assert_eq!(by_guid.start_events, std::slice::from_ref(&id));
    let unknown = imds_dialects::route(&subject, &approve("f020ba2e-3bc0-4c40-a10b-86575a9eabd5"), &super::context());
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.start_events.is_empty());
    let garbage = approve(id.as_str()).with_body("not json");
    let refused = imds_dialects::route(&subject, &garbage, &super::context());
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    // Preempt arrived with 2017-11-01; EventSource with 2019-08-01.
    let old = imds_dialects::GuestRequest::new(Method::GET, "/metadata/scheduledevents?api-version=2017-08-01")
        .with_header(http::HeaderName::from_static("metadata"), http::HeaderValue::from_static("true"));
    assert_eq!(json(&imds_dialects::route(&subject, &old, &super::context()))["Events"], json!([]));
    let mid = imds_dialects::GuestRequest::new(Method::GET, "/metadata/scheduledevents?api-version=2019-01-01")
        .with_header(http::HeaderName::from_static("metadata"), http::HeaderValue::from_static("true"));
    let shown = json(&imds_dialects::route(&subject, &mid, &super::context()));
    assert_eq!(shown["Events"][0]["EventType"], "Preempt");
    assert!(shown["Events"][0].get("EventSource").is_none());
    assert_eq!(send(&instance, Method::DELETE, target, &headers).status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn identity_answers_as_a_vm_without_a_managed_identity() {
    let instance = fixtures::full();
    let token = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    // azure-identity's probe: no Metadata header.
    assert_error(
        &send(&instance, Method::GET, token, &[]),
        StatusCode::BAD_REQUEST,
        json!({"error": "bad_request_102", "error_description": "Required metadata header not specified"}),
    );
    assert_error(
        &get(&instance, token),
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "error_description": "Identity not found"}),
    );
    assert_error(
        &get(&instance, "/metadata/identity/oauth2/token?resource=x"),
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing or invalid"}),
    );
    assert_eq!(get(&instance, "/metadata/identity/other?api-version=2018-02-01").status, StatusCode::NOT_FOUND);
}

#[test]
fn load_balancer_and_reprovisioning_are_not_available() {
    let instance = fixtures::full();
    // The attested document needs the signing key (tests/tokens.rs); without one: 503.
    let unsigned = get(&instance, "/metadata/attested/document?api-version=2021-02-01&nonce=1234567890");
    assert_eq!(unsigned.status, StatusCode::SERVICE_UNAVAILABLE);
    for target in ["/metadata/loadbalancer?api-version=2020-10-01", "/metadata/reprovisiondata?api-version=2019-06-01"]
    {
        let response = get(&instance, target);
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{target}");
        assert!(json(&response)["error"].is_string(), "{target}");
    }
}

#[test]
fn only_get_reads_the_instance_document() {
    let instance = fixtures::full();
    let response = send(&instance, Method::POST, "/metadata/instance?api-version=2021-02-01", &[("metadata", "true")]);
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn a_disabled_azure_dialect_answers_ec2_not_found() {
    let instance = fixtures::parse(json!({"id": "i-1", "dialects": {"enabled": ["ec2"]}}));
    let response = get(&instance, "/metadata/instance?api-version=2021-02-01");
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(body(&response).contains("404 - Not Found"));
}

#[test]
fn uuid_ids_are_the_vm_id() {
    let instance: Instance = fixtures::parse(json!({"id": "02AAB8A4-74EF-476E-8182-F6D2BA4166A6"}));
    let response = get(&instance, "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text");
    assert_eq!(body(&response), "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
}
