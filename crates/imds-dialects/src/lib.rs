//! The metadata dialects imds speaks, as pure functions.
//!
//! A dialect turns `(&Instance, &GuestRequest)` into a [`GuestResponse`] value: the exact status,
//! headers and body bytes the real cloud would send. It never fetches, awaits or opens a
//! socket: whatever it needs (the instance record, later a signer or a clock) comes in as an
//! argument. The server identifies the caller, picks the instance from its in-memory view,
//! calls [`route`], and writes the bytes.
//!
//! Dialects: [`ec2`] (the full EC2 metadata tree, every dated API version; tokens and credentials
//! come later).

#![forbid(unsafe_code)]

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use imds_model::Instance;

pub mod ec2;

/// What a dialect sees of a guest's HTTP request.
#[derive(Debug, Clone)]
pub struct GuestRequest {
    /// The request method.
    pub method: Method,
    /// The raw path, without the query string, exactly as sent (no percent-decoding).
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
}

/// What a dialect answers: sent to the guest as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResponse {
    /// The status code.
    pub status: StatusCode,
    /// Headers, `Content-Type` included; `Content-Length` is added by the server.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body bytes.
    pub body: Bytes,
}

impl GuestResponse {
    /// A response with one `Content-Type` header.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Answers a request from a known instance with the dialect its path belongs to.
///
/// Paths no dialect claims get EC2's not-found page: the listener's root is EC2's, and EC2 is
/// what an unknown client most likely speaks.
pub fn route(instance: &Instance, request: &GuestRequest) -> GuestResponse {
    ec2::respond(instance, request)
}

/// Answers a request whose source address matches no instance: no instance's data, ever.
///
/// A 404 with EC2's not-found page would make a misconfigured guest believe it runs outside any
/// cloud; a 403 whose body names the address tells the operator what to register.
pub fn unknown_caller(caller: std::net::IpAddr) -> GuestResponse {
    GuestResponse::new(
        StatusCode::FORBIDDEN,
        "text/plain; charset=utf-8",
        format!("imds: no instance is registered for source address {caller}\n"),
    )
}
