//! Firecracker's microVM Metadata Service (MMDS): the instance's free-form JSON document, served
//! to its guest with Firecracker's exact semantics (docs/dialects/mmds.md).
//!
//! [`respond`] runs Firecracker's pipeline in its order: request-level refusals (unknown
//! method 501, a declared body 400), then `PATCH`/`DELETE` 405 (before any token check), then
//! for `GET` the V2 token gate, the JSON-pointer lookup ([`mod@pointer`]) and the output format
//! ([`render`]: IMDS text, or compact JSON on `Accept: application/json` unless `imds_compat`);
//! for `PUT` the `X-Forwarded-For` refusal, the exact token path and the TTL header. Tokens are
//! the deployment's stateless tokens ([`crate::token`]), under Firecracker's two header families.
//! Wire strings are in [`wire`]. Pure: no I/O; the clock comes in the [`Context`].

use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use imds_model::{Mmds, MmdsVersion};
use serde_json::Value;

use crate::{Context, GuestRequest, GuestResponse, Subject};

pub mod pointer;
pub mod render;
pub mod wire;

#[cfg(test)]
mod tests;

/// Answers one MMDS request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let raw = raw_target(request);
    let Some(mmds) = subject.mmds else {
        // The router sends only instances with an MMDS record here.
        return error(StatusCode::NOT_FOUND, wire::not_found(&raw));
    };
    let known = [Method::GET, Method::PUT, Method::PATCH, Method::DELETE];
    if !known.contains(&request.method) {
        return error(StatusCode::NOT_IMPLEMENTED, wire::UNSUPPORTED_METHOD);
    }
    if declares_body(request) {
        return error(StatusCode::BAD_REQUEST, wire::INVALID_REQUEST);
    }
    if raw.is_empty() {
        return error(StatusCode::BAD_REQUEST, wire::INVALID_URI);
    }
    match request.method {
        Method::GET => get(subject, mmds, request, context, &raw),
        Method::PUT => put(subject, request, context, &raw),
        _ => error(StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED)
            .with_header(header::ALLOW, HeaderValue::from_static(wire::ALLOW)),
    }
}

/// The request target as Firecracker sees it: the raw path with the raw query string, if any.
fn raw_target(request: &GuestRequest) -> String {
    match &request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.clone(),
    }
}

/// Whether the request declares a body (Firecracker refuses every request with one).
fn declares_body(request: &GuestRequest) -> bool {
    let length = request.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    !request.body.is_empty()
        || request.headers.contains_key(header::TRANSFER_ENCODING)
        || length.is_some_and(|length| length.trim().parse::<u64>().map_or(true, |n| n > 0))
}

fn get(subject: &Subject<'_>, mmds: &Mmds, request: &GuestRequest, context: &Context<'_>, raw: &str) -> GuestResponse {
    if mmds.version == MmdsVersion::V2 {
        let token = [wire::TOKEN_HEADER, wire::AWS_TOKEN_HEADER].into_iter().find_map(|name| request.headers.get(name));
        let Some(token) = token else {
            return error(StatusCode::UNAUTHORIZED, wire::NO_TOKEN);
        };
        let valid = token
            .to_str()
            .ok()
            .is_some_and(|token| context.tokens.verify(token, subject.instance.id.as_str(), context.now).is_ok());
        if !valid {
            return error(StatusCode::UNAUTHORIZED, wire::BAD_TOKEN);
        }
    }
    let document = mmds.data.as_ref().unwrap_or(&Value::Null);
    let Some(value) = pointer::resolve(document, &pointer::for_get(raw)) else {
        return error(StatusCode::NOT_FOUND, wire::not_found(raw));
    };
    // The format follows `Accept` (exact match), unless `imds_compat`; the content type
    // follows `Accept` alone, as in Firecracker.
    let wants_json = request
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.trim() == wire::APPLICATION_JSON);
    let content_type = if wants_json { wire::APPLICATION_JSON } else { wire::TEXT_PLAIN };
    if wants_json && !mmds.imds_compat {
        return GuestResponse::new(StatusCode::OK, content_type, render::json(value));
    }
    match render::imds(value) {
        Some(text) => GuestResponse::new(StatusCode::OK, content_type, text),
        None => error(StatusCode::NOT_IMPLEMENTED, wire::UNSUPPORTED_TYPE),
    }
}

fn put(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>, raw: &str) -> GuestResponse {
    if request.headers.contains_key(wire::FORWARDED_FOR) {
        return error(StatusCode::BAD_REQUEST, wire::forwarded_for(wire::FORWARDED_FOR_SPELLED));
    }
    if pointer::collapse(raw) != wire::TOKEN_PATH {
        return error(StatusCode::NOT_FOUND, wire::not_found(raw));
    }
    let families = [(wire::TTL_HEADER, wire::TTL_HEADER_SPELLED), (wire::AWS_TTL_HEADER, wire::AWS_TTL_HEADER_SPELLED)];
    let Some((name, spelled, value)) =
        families.into_iter().find_map(|(name, spelled)| request.headers.get(name).map(|value| (name, spelled, value)))
    else {
        return error(StatusCode::BAD_REQUEST, wire::NO_TTL);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let Ok(ttl) = text.parse::<u32>() else {
        return error(StatusCode::BAD_REQUEST, wire::ttl_unparsable(spelled, &text));
    };
    match context.tokens.mint(subject.instance.id.as_str(), context.now, u64::from(ttl), context.nonce) {
        Ok(token) => GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, token)
            .with_header(HeaderName::from_static(name), HeaderValue::from(ttl)),
        Err(_) => error(StatusCode::BAD_REQUEST, wire::ttl_out_of_range(ttl)),
    }
}

/// An MMDS error: plain text, no trailing newline.
fn error(status: StatusCode, body: impl Into<bytes::Bytes>) -> GuestResponse {
    GuestResponse::new(status, wire::TEXT_PLAIN, body)
}
