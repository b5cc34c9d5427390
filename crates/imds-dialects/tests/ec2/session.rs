//! IMDSv2 at the dialect level: the token PUT, the token gate, tokens required, endpoint off.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use imds_dialects::ec2::wire::{TOKEN_HEADER, TTL_HEADER};
use imds_dialects::token::TokenKey;
use imds_dialects::{ec2, Context, GuestRequest, GuestResponse};
use imds_model::{EndpointMode, Instance, Limits, TokenMode};
use serde_json::json;

const NOW: u64 = 1_800_000_000;

fn key() -> TokenKey {
    TokenKey::from_bytes([3; 32])
}

fn instance(id: &str) -> Instance {
    Instance::parse(&json!({"id": id, "ipv4": ["10.0.0.5"], "imds": {"hop_limit": 2}}), &Limits::default()).unwrap()
}

fn request(
    method: Method,
    path: &str,
    headers: &[(&'static str, &str)],
    now: u64,
    instance: &Instance,
) -> GuestResponse {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let key = key();
    ec2::respond(instance, &GuestRequest { headers: map, ..GuestRequest::new(method, path) }, &Context::new(&key, now))
}

fn header<'a>(response: &'a GuestResponse, name: &str) -> Option<&'a str> {
    response.headers.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.to_str().ok())
}

fn title(response: &GuestResponse) -> String {
    let body = std::str::from_utf8(&response.body).unwrap();
    body.split("<title>").nth(1).and_then(|rest| rest.split("</title>").next()).unwrap_or("").to_owned()
}

fn mint(instance: &Instance, ttl: &str) -> String {
    let response = request(Method::PUT, "/latest/api/token", &[(TTL_HEADER, ttl)], NOW, instance);
    assert_eq!(response.status, StatusCode::OK);
    String::from_utf8(response.body.to_vec()).unwrap()
}

#[test]
fn the_token_put_mints_a_token_that_leaves_with_the_hop_limit() {
    let vm = instance("i-a");
    let response = request(Method::PUT, "/latest/api/token", &[(TTL_HEADER, "21600")], NOW, &vm);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&response, "content-type"), Some("text/plain"));
    assert_eq!(header(&response, TTL_HEADER), Some("21600"));
    assert_eq!(response.hop_limit, Some(2));
    assert_eq!(response.body.len(), 55);
    // Trailing slash and the token's use with a GET.
    assert_eq!(request(Method::PUT, "/latest/api/token/", &[(TTL_HEADER, "1")], NOW, &vm).status, StatusCode::OK);
    let token = mint(&vm, "60");
    let get = request(Method::GET, "/latest/meta-data/instance-id", &[(TOKEN_HEADER, &token)], NOW + 10, &vm);
    assert_eq!((get.status, get.body.as_ref()), (StatusCode::OK, b"i-a".as_ref()));
    assert_eq!(header(&get, TTL_HEADER), Some("50"), "GETs with a token say how long it has left");
    assert_eq!(get.hop_limit, None, "only token replies are hop-limited");
}

#[test]
fn bad_token_puts_are_refused_like_ec2() {
    let vm = instance("i-a");
    type Case<'a> = (&'a str, &'a [(&'static str, &'a str)], StatusCode, &'a str);
    let cases: &[Case<'_>] = &[
        ("/latest/api/token", &[], StatusCode::BAD_REQUEST, "400 - Missing or Invalid Parameters"),
        ("/latest/api/token", &[(TTL_HEADER, "")], StatusCode::BAD_REQUEST, "400 - Missing or Invalid Parameters"),
        ("/latest/api/token", &[(TTL_HEADER, "0")], StatusCode::BAD_REQUEST, "400 - Missing or Invalid Parameters"),
        ("/latest/api/token", &[(TTL_HEADER, "21601")], StatusCode::BAD_REQUEST, "400 - Missing or Invalid Parameters"),
        ("/latest/api/token", &[(TTL_HEADER, "ten")], StatusCode::BAD_REQUEST, "400 - Missing or Invalid Parameters"),
        (
            "/latest/api/token",
            &[(TTL_HEADER, "60"), ("x-forwarded-for", "10.0.0.9")],
            StatusCode::FORBIDDEN,
            "403 - Forbidden",
        ),
        ("/2021-03-23/api/token", &[(TTL_HEADER, "60")], StatusCode::FORBIDDEN, "403 - Forbidden"),
    ];
    for (path, headers, status, expected_title) in cases {
        let response = request(Method::PUT, path, headers, NOW, &vm);
        assert_eq!(response.status, *status, "{path} {headers:?}");
        assert_eq!(header(&response, "content-type"), Some("text/html"));
        assert_eq!(title(&response), *expected_title);
        assert_eq!(response.hop_limit, None);
    }
    let get = request(Method::GET, "/latest/api/token", &[], NOW, &vm);
    assert_eq!((get.status, header(&get, "allow")), (StatusCode::METHOD_NOT_ALLOWED, Some("PUT")));
    assert_eq!(
        request(Method::PUT, "/1999-01-01/api/token", &[(TTL_HEADER, "60")], NOW, &vm).status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn an_invalid_foreign_or_expired_token_is_401_even_when_tokens_are_optional() {
    let vm = instance("i-a");
    let other = instance("i-b");
    let token = mint(&vm, "60");
    for (token, now, why) in [
        ("garbage", NOW, "garbage"),
        (mint(&other, "60").as_str(), NOW, "minted for another instance"),
        (token.as_str(), NOW + 60, "expired"),
    ] {
        let response = request(Method::GET, "/latest/meta-data/", &[(TOKEN_HEADER, token)], now, &vm);
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(title(&response), "401 - Unauthorized");
    }
    assert_eq!(request(Method::GET, "/latest/meta-data/", &[], NOW, &vm).status, StatusCode::OK, "v1 still works");
}

#[test]
fn required_tokens_gate_every_path_and_a_disabled_endpoint_answers_403() {
    let mut vm = instance("i-a");
    vm.imds.tokens = TokenMode::Required;
    let token = mint(&vm, "60");
    for path in [
        "/",
        "/latest",
        "/latest/meta-data/",
        "/latest/meta-data/instance-id",
        "/latest/dynamic/",
        "/2009-04-04/meta-data/",
    ] {
        assert_eq!(request(Method::GET, path, &[], NOW, &vm).status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(request(Method::HEAD, path, &[], NOW, &vm).status, StatusCode::UNAUTHORIZED, "HEAD {path}");
        assert_eq!(request(Method::GET, path, &[(TOKEN_HEADER, &token)], NOW, &vm).status, StatusCode::OK, "{path}");
    }
    vm.imds.endpoint = EndpointMode::Disabled;
    for (method, path) in [(Method::GET, "/latest/meta-data/"), (Method::PUT, "/latest/api/token"), (Method::GET, "/")]
    {
        let response = request(method.clone(), path, &[(TOKEN_HEADER, &token), (TTL_HEADER, "60")], NOW, &vm);
        assert_eq!(
            (response.status, title(&response).as_str()),
            (StatusCode::FORBIDDEN, "403 - Forbidden"),
            "{method} {path}"
        );
    }
}

#[test]
fn metadata_answers_carry_accept_ranges_none_like_ec2() {
    let vm = instance("i-a");
    for path in
        ["/", "/latest/meta-data/", "/latest/meta-data/instance-id", "/latest/dynamic/instance-identity/document"]
    {
        assert_eq!(header(&request(Method::GET, path, &[], NOW, &vm), "accept-ranges"), Some("none"), "{path}");
    }
    let missing = request(Method::GET, "/latest/meta-data/nope", &[], NOW, &vm);
    assert_eq!(header(&missing, "accept-ranges"), None, "error pages do not");
}
