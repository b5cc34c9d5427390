//! Oracle OCI: the instance document and VNICs cloud-init reads, members by path, the
//! `Bearer Oracle` header, v1 and its switch, forwarding headers refused.

use http::{Method, StatusCode};
use imds_dialects::{route, Context, GuestRequest, Subject};
use serde_json::{json, Value};

use super::{body, content_type, full, golden, minimal, parse};

const BEARER: (&str, &str) = ("authorization", "Bearer Oracle");

/// `GET target` on the main listener (OCI shares 169.254.169.254) with `headers`.
fn get(instance: &imds_model::Instance, target: &str, headers: &[(&str, &str)]) -> imds_dialects::GuestResponse {
    let mut request = GuestRequest::new(Method::GET, target);
    for (name, value) in headers {
        request = request.with_header(http::HeaderName::try_from(*name).unwrap(), value.parse().unwrap());
    }
    route(&Subject::new(instance), &request, &Context::new(super::fakes::key(), super::fakes::NOW))
}

#[test]
fn the_instance_document_and_vnics_are_ocis() {
    let mut doc = super::full_doc();
    doc["created_at"] = json!("2026-11-30T12:00:00Z");
    let instance = parse(doc);
    let document = get(&instance, "/opc/v2/instance/", &[BEARER]);
    assert_eq!((document.status, content_type(&document)), (StatusCode::OK, "application/json"));
    golden("oracle", "instance.json", body(&document));
    golden("oracle", "vnics.json", body(&get(&instance, "/opc/v2/vnics/", &[BEARER])));
    golden("oracle", "instance-minimal.json", body(&get(&minimal(), "/opc/v2/instance", &[BEARER])));
    let parsed: Value = serde_json::from_slice(&document.body).unwrap();
    use base64::Engine as _;
    let user_data =
        base64::engine::general_purpose::STANDARD.decode(parsed["metadata"]["user_data"].as_str().unwrap()).unwrap();
    assert_eq!(user_data, super::USER_DATA.as_bytes());
}

#[test]
fn members_answer_by_path_strings_as_text() {
    let id = get(&full(), "/opc/v2/instance/id", &[BEARER]);
    assert_eq!((id.status, content_type(&id), body(&id)), (StatusCode::OK, "text/plain", "i-bp67acfmxazb4p1"));
    assert_eq!(body(&get(&full(), "/opc/v2/vnics/1/privateIp", &[BEARER])), "10.0.0.11");
    let metadata = get(&full(), "/opc/v2/instance/metadata", &[BEARER]);
    assert_eq!(content_type(&metadata), "application/json");
    for missing in
        ["/opc/v2/instance/nothing", "/opc/v2/vnics/7", "/opc/v2/identity/cert.pem", "/opc/v3/instance/", "/opc/"]
    {
        let response = get(&full(), missing, &[BEARER]);
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(content_type(&response), "application/json");
    }
}

#[test]
fn v2_needs_the_header_and_forwarded_requests_are_refused() {
    let refused = get(&full(), "/opc/v2/instance/", &[]);
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(!body(&refused).contains("cloud-config"));
    assert_eq!(
        get(&full(), "/opc/v2/instance/", &[("authorization", "Bearer Other")]).status,
        StatusCode::UNAUTHORIZED
    );
    for header in ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"] {
        let forwarded = get(&full(), "/opc/v2/instance/", &[BEARER, (header, "192.0.2.1")]);
        assert_eq!(forwarded.status, StatusCode::FORBIDDEN, "{header}");
        assert!(!body(&forwarded).contains("i-bp67"));
    }
}

#[test]
fn v1_answers_without_the_header_until_the_record_switches_it_off() {
    let v1 = get(&full(), "/opc/v1/instance/", &[]);
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.body, get(&full(), "/opc/v2/instance/", &[BEARER]).body);
    let mut off = super::full_doc();
    off["dialects"] = json!({"oracle": {"v1": false, "shape": "VM.Standard.E4.Flex", "metadata": {"extra": "x"}}});
    let off = parse(off);
    assert_eq!(get(&off, "/opc/v1/instance/", &[]).status, StatusCode::NOT_FOUND);
    assert_eq!(body(&get(&off, "/opc/v2/instance/shape", &[BEARER])), "VM.Standard.E4.Flex");
    assert_eq!(body(&get(&off, "/opc/v2/instance/metadata/extra", &[BEARER])), "x");
    let mut bad = super::full_doc();
    bad["dialects"] = json!({"oracle": {"v1": "no"}});
    assert_eq!(imds_dialects::check_overrides(&parse(bad)).unwrap_err().errors[0].field, "dialects.oracle.v1");
    let mut shut = super::full_doc();
    shut["imds"] = json!({"endpoint": "disabled"});
    assert_eq!(get(&parse(shut), "/opc/v2/instance/", &[BEARER]).status, StatusCode::FORBIDDEN);
    let mut ec2_only = super::full_doc();
    ec2_only["dialects"] = json!({"enabled": ["ec2"]});
    assert_eq!(get(&parse(ec2_only), "/opc/v2/instance/", &[BEARER]).status, StatusCode::NOT_FOUND);
}
