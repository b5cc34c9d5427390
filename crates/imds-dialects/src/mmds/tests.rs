//! The pipeline without sockets, and the laws of pointers and listings (`proptest`). The
//! request → response table of the spec runs over real sockets in
//! `crates/imds-server/tests/mmds.rs`.

use http::{HeaderName, HeaderValue, Method, StatusCode};
use imds_model::{Instance, Limits, Mmds, MmdsVersion};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::token::TokenKey;

const NOW: u64 = 1_800_000_000;

fn instance(id: &str) -> Instance {
    Instance::parse(&json!({"id": id}), &Limits::default()).unwrap()
}

fn ask(mmds: &Mmds, request: GuestRequest) -> GuestResponse {
    let instance = instance("i-mmds");
    let subject = Subject { mmds: Some(mmds), ..Subject::new(&instance) };
    let key = TokenKey::from_bytes([3; 32]);
    respond(&subject, &request, &Context::new(&key, NOW))
}

fn header(request: GuestRequest, name: &'static str, value: &str) -> GuestRequest {
    request.with_header(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap())
}

fn text(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).unwrap()
}

#[test]
fn the_pipeline_refuses_in_firecracker_order() {
    let v2 = Mmds { version: MmdsVersion::V2, imds_compat: false, data: Some(json!({"a": "b"})) };
    // Unknown methods before the body check, the body check before 405, 405 before the token.
    let post = header(GuestRequest::new(Method::POST, "/a"), "content-length", "3");
    assert_eq!(ask(&v2, post).status, StatusCode::NOT_IMPLEMENTED);
    let patch = header(GuestRequest::new(Method::PATCH, "/a"), "content-length", "3");
    assert_eq!(text(&ask(&v2, patch)), wire::INVALID_REQUEST);
    let delete = ask(&v2, GuestRequest::new(Method::DELETE, "/a"));
    assert_eq!((delete.status, text(&delete)), (StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED));
    assert_eq!(delete.header(&http::header::ALLOW).unwrap(), "GET, PUT");
    // The token gate comes before the lookup.
    assert_eq!(text(&ask(&v2, GuestRequest::new(Method::GET, "/nonexistent"))), wire::NO_TOKEN);
}

#[test]
fn a_token_from_the_put_opens_v2_under_either_header() {
    let v2 = Mmds { version: MmdsVersion::V2, imds_compat: false, data: Some(json!({"a": "b"})) };
    let minted = ask(&v2, header(GuestRequest::new(Method::PUT, "/latest/api/token"), wire::AWS_TTL_HEADER, "60"));
    assert_eq!(minted.status, StatusCode::OK);
    assert_eq!(minted.header(&HeaderName::from_static(wire::AWS_TTL_HEADER)).unwrap(), "60");
    let token = text(&minted).to_owned();
    for name in [wire::TOKEN_HEADER, wire::AWS_TOKEN_HEADER] {
        let got = ask(&v2, header(GuestRequest::new(Method::GET, "/a"), name, &token));
        assert_eq!((got.status, text(&got)), (StatusCode::OK, "b"), "{name}");
    }
}

#[test]
fn json_output_sorts_keys_whatever_the_stored_order() {
    let document: Value = serde_json::from_str(r#"{"z":1,"a":{"y":[true,null,"x\n"],"b":-2.5}}"#).unwrap();
    assert_eq!(render::json(&document), r#"{"a":{"b":-2.5,"y":[true,null,"x\n"]},"z":1}"#);
}

/// Keys of any characters, `/` and `~` included (the empty key cannot be reached: `//` collapses).
fn key() -> impl Strategy<Value = String> {
    "[a-c/~01?%]{1,6}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Quarters: exact in binary, so parsing the rendering gives the same number back.
        (-4_000_000i32..4_000_000).prop_map(|n| json!(f64::from(n) / 4.0)),
        "\\PC{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::vec(("\\PC{0,3}", inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The admin API measures the limit on serde's compact form; guests and the admin GET get the
    /// sorted form. Both must be the same JSON with the same byte length.
    #[test]
    fn the_sorted_rendering_is_the_same_compact_json(value in json_value()) {
        let sorted = render::json(&value);
        prop_assert_eq!(serde_json::from_str::<Value>(&sorted).unwrap(), value.clone());
        prop_assert_eq!(sorted.len(), serde_json::to_vec(&value).unwrap().len());
    }

    /// A merge patch applied twice gives what it gives once (RFC 7396), as guests see it.
    #[test]
    fn a_merge_patch_is_idempotent(document in json_value(), patch in json_value()) {
        let mut once = document;
        imds_model::merge_patch(&mut once, &patch);
        let mut twice = once.clone();
        imds_model::merge_patch(&mut twice, &patch);
        prop_assert_eq!(render::json(&twice), render::json(&once));
    }

    #[test]
    fn an_escaped_key_resolves_to_its_value(keys in proptest::collection::vec(key(), 1..4), leaf in "[a-z]{0,5}") {
        let mut document = Value::String(leaf.clone());
        for key in keys.iter().rev() {
            let mut map = Map::new();
            map.insert(key.clone(), document);
            document = Value::Object(map);
        }
        let path: String = keys.iter().map(|key| format!("/{}", pointer::escape(key))).collect();
        prop_assert_eq!(pointer::resolve(&document, &pointer::for_get(&path)), Some(&Value::String(leaf)));
        for key in &keys {
            prop_assert_eq!(pointer::unescape(&pointer::escape(key)), key.clone());
        }
    }

    #[test]
    fn a_listing_is_the_sorted_keys_with_a_slash_for_objects(
        members in proptest::collection::btree_map("[A-Za-z0-9_.-]{1,8}", 0u8..3, 0..8)
    ) {
        let object: Map<String, Value> = members
            .iter()
            .rev()
            .map(|(key, kind)| (key.clone(), match kind { 0 => json!("s"), 1 => json!({}), _ => json!([1]) }))
            .collect();
        let listing = render::imds(&Value::Object(object)).unwrap();
        let expected: Vec<String> =
            members.iter().map(|(key, kind)| if *kind == 1 { format!("{key}/") } else { key.clone() }).collect();
        prop_assert_eq!(listing, expected.join("\n"));
    }

    #[test]
    fn collapsing_leaves_no_double_slash_and_is_idempotent(path in "[/a]{0,12}") {
        let once = pointer::collapse(&path);
        prop_assert!(!once.contains("//"));
        prop_assert_eq!(pointer::collapse(&once), once.clone());
        prop_assert_eq!(once.replace('/', ""), path.replace('/', ""));
    }
}
