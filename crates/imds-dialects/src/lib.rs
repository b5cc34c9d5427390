//! The metadata dialects imds speaks, as pure functions.
//!
//! A dialect turns `(&Instance, &GuestRequest, &Context)` into a [`GuestResponse`] value: the
//! exact status, headers and body bytes the real cloud would send. It never fetches, awaits or
//! opens a socket: whatever it needs (the record, the session-token key, the clock) comes in as
//! an argument. The server identifies the caller, picks the instance from its in-memory view,
//! calls [`route`], and writes the bytes.
//!
//! Dialects: [`ec2`] (the full EC2 metadata tree, every dated API version, IMDSv2 session
//! tokens; credentials come later). [`token`]: the session tokens every dialect shares.

#![forbid(unsafe_code)]

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use imds_model::Instance;

pub mod ec2;
pub mod token;

/// What a dialect needs from the world besides the record and the request.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The deployment's session-token key.
    pub tokens: &'a token::TokenKey,
    /// The current time, Unix seconds.
    pub now: u64,
}

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
    /// The IP TTL (IPv6 hop limit) the response must leave with; `None` for the system default.
    /// EC2 limits its token replies this way so that they die one hop too far from the VM.
    pub hop_limit: Option<u8>,
}

impl GuestResponse {
    /// A response with one `Content-Type` header.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body: body.into(),
            hop_limit: None,
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
pub fn route(instance: &Instance, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    ec2::respond(instance, request, context)
}

/// Answers a request over its instance's request budget: `429 Too Many Requests`, as EC2
/// throttles, in EC2's error-page layout.
pub fn throttled() -> GuestResponse {
    GuestResponse::new(
        StatusCode::TOO_MANY_REQUESTS,
        ec2::wire::TEXT_HTML,
        ec2::wire::error_page("429 - Too Many Requests"),
    )
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
