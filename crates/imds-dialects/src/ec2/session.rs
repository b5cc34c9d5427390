//! IMDSv2: the token endpoint and the token gate in front of every other path.
//!
//! `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 1..21600` mints a token
//! bound to the instance (see [`crate::token`]) and leaves with the instance's hop limit. A
//! request carrying `X-Forwarded-For` is refused (403): a proxy on the VM must not fetch tokens
//! for others. A dated version's token path is 403, as on EC2. Every other request passes the
//! gate: a token, when sent, must be valid for this instance (else 401, even when tokens are
//! optional); without one, `tokens: required` answers 401. Pure: key and clock come in the
//! [`Context`].

use http::{header, HeaderValue, Method, StatusCode};
use imds_model::{Instance, TokenMode};

use super::wire;
use crate::{Context, GuestRequest, GuestResponse};

/// EC2's HTML error response for `status`, titled as EC2 titles it.
pub(super) fn error(status: StatusCode, title: &str) -> GuestResponse {
    GuestResponse::new(status, wire::TEXT_HTML, wire::error_page(title))
}

fn unauthorized() -> GuestResponse {
    error(StatusCode::UNAUTHORIZED, "401 - Unauthorized")
}

/// Answers a request for `<version>/api/token`.
pub(super) fn token_request(
    instance: &Instance,
    request: &GuestRequest,
    context: &Context<'_>,
    version: &str,
) -> GuestResponse {
    if request.method != Method::PUT {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT_PLAIN, "")
            .with_header(header::ALLOW, HeaderValue::from_static("PUT"));
    }
    if version != wire::LATEST || request.headers.contains_key("x-forwarded-for") {
        return error(StatusCode::FORBIDDEN, "403 - Forbidden");
    }
    let ttl =
        request.headers.get(wire::TTL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let minted = ttl.ok_or(crate::token::TokenError::BadTtl).and_then(|ttl| {
        context.tokens.mint(instance.id.as_str(), context.now, ttl, context.nonce).map(|token| (token, ttl))
    });
    match minted {
        Ok((token, ttl)) => {
            let mut response = GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, token)
                .with_header(header::HeaderName::from_static(wire::TTL_HEADER), HeaderValue::from(ttl));
            response.hop_limit = Some(instance.imds.hop_limit);
            response
        }
        Err(_) => error(StatusCode::BAD_REQUEST, "400 - Missing or Invalid Parameters"),
    }
}

/// The token gate: `Ok(Some(seconds left))` for a valid token, `Ok(None)` for an allowed
/// token-less request, or the refusal to send.
pub(super) fn check(
    instance: &Instance,
    request: &GuestRequest,
    context: &Context<'_>,
) -> Result<Option<u64>, GuestResponse> {
    match request.headers.get(&wire::TOKEN_NAME) {
        Some(token) => {
            let token = token.to_str().map_err(|_| unauthorized())?;
            context.tokens.verify(token, instance.id.as_str(), context.now).map(Some).map_err(|_| unauthorized())
        }
        None if instance.imds.tokens == TokenMode::Required => Err(unauthorized()),
        None => Ok(None),
    }
}
