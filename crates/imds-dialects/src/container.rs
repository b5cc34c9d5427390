//! The AWS container credential endpoints (ECS task roles, EKS Pod Identity): what the SDKs'
//! container credential providers read, on a listener bound to `container` (`169.254.170.2`,
//! `169.254.170.23`, `[fd00:ec2::23]`; docs/dialects.md "Routing").
//!
//! - `GET /v1/credentials` with `Authorization: <token>` (EKS Pod Identity: the SDKs send
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]` for `AWS_CONTAINER_CREDENTIALS_FULL_URI`);
//! - `GET /v2/credentials/<token>` (an ECS relative URI, `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
//!
//! The token must be one the operator issued for the calling instance (the admin API's
//! container tokens, [`ContainerTokens`](imds_model::ContainerTokens), matched by SHA-256): a
//! token of another instance is refused like a forged one. The answer is the credentials of the
//! token's role (else the instance's `iam_role`) as the container endpoints send them:
//! `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`.

use http::{header, HeaderValue, Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::credentials::{format_time, CredentialState};
use crate::{Context, GuestRequest, GuestResponse, Subject};

pub mod wire;

/// Answers one container credentials request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    if request.method != Method::GET && request.method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "only GET is served")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let path = request.path.trim_end_matches('/');
    let (presented, relative) = if path == wire::POD_IDENTITY_PATH {
        match request.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            Some(token) => (token, false),
            None => {
                return error(StatusCode::BAD_REQUEST, "MissingAuthorization", "the Authorization header is required")
            }
        }
    } else if let Some(token) = path.strip_prefix(wire::RELATIVE_PREFIX).filter(|t| !t.is_empty() && !t.contains('/')) {
        (token, true)
    } else {
        return not_found();
    };
    let hash = hex_sha256(presented.trim());
    let Some(token) = subject.container_tokens.and_then(|tokens| tokens.by_hash(&hash)) else {
        return if relative {
            error(StatusCode::BAD_REQUEST, wire::INVALID_ID, wire::CREDENTIALS_NOT_FOUND)
        } else {
            error(StatusCode::FORBIDDEN, wire::ACCESS_DENIED, "the authorization token is not valid for this caller")
        };
    };
    let Some(role) = token.role.as_ref().or(subject.instance.iam_role.as_ref()) else {
        return error(StatusCode::NOT_FOUND, "NoRole", "no role is attached to this workload");
    };
    match context.credentials.credentials_for(role.as_str(), subject.instance.id.as_str(), context.now) {
        Some(CredentialState::Ready(issued)) => {
            let body = json!({
                "AccessKeyId": issued.access_key_id,
                "SecretAccessKey": issued.secret_access_key,
                "Token": issued.token,
                "Expiration": format_time(issued.expiration),
            });
            GuestResponse::new(StatusCode::OK, wire::JSON, body.to_string())
        }
        Some(CredentialState::Unavailable { .. }) | None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            &format!("credentials for role {role} are not available yet"),
        ),
    }
}

/// Lower-case hex SHA-256 of `text` (how issued tokens are stored).
pub fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// An error in the container endpoints' JSON shape.
pub fn error(status: StatusCode, code: &str, message: &str) -> GuestResponse {
    GuestResponse::new(status, wire::JSON, json!({"code": code, "message": message}).to_string())
}

/// A path the endpoints do not serve.
pub fn not_found() -> GuestResponse {
    error(StatusCode::NOT_FOUND, "NotFound", "no such endpoint")
}
