//! The Azure dialect through `route`: request checks and their exact error bodies, route
//! filtering and formats, version filtering, overrides, and golden files for whole documents.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod cases;
mod fixtures;
mod golden;

use http::{HeaderName, HeaderValue, Method};
use imds_dialects::token::TokenKey;
use imds_dialects::{route, Context, GuestRequest, GuestResponse, Subject};
use imds_model::Instance;

/// A fixed key and clock: rendering is a pure function of them.
fn context() -> Context<'static> {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(|| TokenKey::from_bytes([7; 32]));
    Context::new(&KEY, 1_800_000_000)
}

/// Sends `method target` with `headers` through the router.
fn send(instance: &Instance, method: Method, target: &str, headers: &[(&'static str, &str)]) -> GuestResponse {
    let mut request = GuestRequest::new(method, target);
    for (name, value) in headers {
        request = request.with_header(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
    }
    route(&Subject::new(instance), &request, &context())
}

/// `GET target` with `Metadata: true`, as every Azure client sends it.
fn get(instance: &Instance, target: &str) -> GuestResponse {
    send(instance, Method::GET, target, &[("metadata", "true")])
}

/// The body as text.
fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).expect("utf-8 body")
}

/// The body as JSON.
fn json(response: &GuestResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", body(response)))
}

/// The `Content-Type` header.
fn content_type(response: &GuestResponse) -> &str {
    response.header(&http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).expect("a content type")
}
