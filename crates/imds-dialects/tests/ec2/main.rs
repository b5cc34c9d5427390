//! The EC2 dialect end to end through its public API: table-driven cases, a crawl of the whole
//! tree at several versions (listings closed under crawling) and golden files for long bodies.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod cases;
mod crawl;
mod credentials;
#[path = "../support/fakes.rs"]
mod fakes;
mod fixtures;
mod golden;
mod session;

use http::{Method, StatusCode};
use imds_dialects::token::TokenKey;
use imds_dialects::{ec2, Context, GuestRequest, GuestResponse};
use imds_model::Instance;

/// Sends `method path` to the EC2 dialect.
fn send(instance: &Instance, method: Method, path: &str) -> GuestResponse {
    ec2::respond(instance, &GuestRequest::new(method, path), &context())
}

/// A fixed key and clock: rendering is a pure function of them.
fn context() -> Context<'static> {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(|| TokenKey::from_bytes([7; 32]));
    Context::new(&KEY, 1_800_000_000)
}

/// `GET path`.
fn get(instance: &Instance, path: &str) -> GuestResponse {
    send(instance, Method::GET, path)
}

/// The body as text (every EC2 body the tests read is UTF-8).
fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).expect("utf-8 body")
}

/// The `Content-Type` header.
fn content_type(response: &GuestResponse) -> &str {
    response
        .headers
        .iter()
        .find(|(name, _)| name == http::header::CONTENT_TYPE)
        .and_then(|(_, value)| value.to_str().ok())
        .expect("every response has a content type")
}

/// Asserts two texts are equal, printing both sides line by line when they are not.
#[track_caller]
fn assert_text_eq(what: &str, expected: &str, actual: &str) {
    if expected != actual {
        panic!(
            "{what}: bodies differ\n--- expected ({} bytes) ---\n{expected}\n--- actual ({} bytes) ---\n{actual}\n--- end ---\n\
             expected {expected:?}\nactual   {actual:?}",
            expected.len(),
            actual.len()
        );
    }
}

/// Whether `status` is 200 (for readable assertions).
fn ok(response: &GuestResponse) -> bool {
    response.status == StatusCode::OK
}
