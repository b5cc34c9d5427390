//! Admin errors and their one mapping to HTTP: a 4xx/5xx with
//! `{"error": {"code", "message", "field"}}`, plus `details` when several fields are at fault.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use imds_model::{split_claim, FieldError, Invalid};
use imds_store::StoreError;

use crate::records::{noun, ROLES};
use serde::Serialize;

/// Why an admin request failed. Every variant leaves the store unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A JSON object of the body repeats a key (`field` is its path).
    #[error("request body repeats the key {field}: each key may appear once per object")]
    DuplicateKey {
        /// The repeated key's path.
        field: String,
    },
    /// The record is invalid; every problem is listed.
    #[error("{0}")]
    Invalid(Invalid),
    /// A query parameter or header is malformed.
    #[error("{message}")]
    BadRequest {
        /// The field (parameter or header) at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such record.
    #[error("instance {0} does not exist")]
    NotFound(String),
    /// No such role.
    #[error("role {0} does not exist")]
    RoleNotFound(String),
    /// An event request is invalid; every problem is listed.
    #[error("{0}")]
    InvalidEvent(Invalid),
    /// No such event.
    #[error("event {0} does not exist")]
    EventNotFound(String),
    /// The event cannot change that way (already over, or its instance has too many pending).
    #[error("{message}")]
    EventConflict {
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No such endpoint.
    #[error("no endpoint {0}")]
    NoRoute(String),
    /// The method is not supported on this path.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// `If-Match` / `If-None-Match` did not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// An address of the record belongs to another instance.
    #[error("{kind} {value} is already used by instance {holder}")]
    AddressConflict {
        /// `ipv4`, `ipv6` or `mac`.
        kind: String,
        /// The contested address.
        value: String,
        /// The instance that has it.
        holder: String,
    },
    /// The body is larger than allowed.
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body's media type is not accepted.
    #[error("content type must be {expected}")]
    UnsupportedMediaType {
        /// What is accepted.
        expected: &'static str,
    },
    /// Missing or wrong bearer token.
    #[error("missing or invalid bearer token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The store failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store failed; the store's error is the source.
    #[error("store unavailable: {0}")]
    Store(#[source] StoreError),
    /// A line of an import is at fault; the field names the line.
    #[error("line {line}: {error}")]
    Line {
        /// 1-based line number in the body.
        line: usize,
        /// What is wrong with it.
        error: Box<AdminError>,
    },
    /// Two instances of one import claim the same address.
    #[error("{kind} {value} is claimed by instance {holder} (line {holder_line}) and instance {id}")]
    DuplicateAddress {
        /// `ipv4`, `ipv6` or `mac`.
        kind: String,
        /// The contested address.
        value: String,
        /// The later instance.
        id: String,
        /// The earlier instance.
        holder: String,
        /// The earlier instance's line.
        holder_line: usize,
    },
    /// An import has more instance lines than allowed.
    #[error("import has more than {limit} instances; split it into several requests")]
    TooManyLines {
        /// The limit.
        limit: usize,
    },
    /// An import failed after some of its chunks were committed (a concurrent write won a race);
    /// those stay written.
    #[error("{error} ({committed} instances were imported before this failure and stay)")]
    ImportIncomplete {
        /// How many instances were committed.
        committed: usize,
        /// Why the next chunk failed.
        error: Box<AdminError>,
    },
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { key } if key.collection == ROLES => AdminError::RoleNotFound(key.id),
            StoreError::NotFound { key } => AdminError::NotFound(key.id),
            StoreError::AlreadyExists { key, actual } => {
                AdminError::PreconditionFailed(format!("{} already exists (revision {actual})", noun(&key)))
            }
            StoreError::RevisionMismatch { key, expected, actual } => {
                AdminError::PreconditionFailed(format!("{} is at revision {actual}, not {expected}", noun(&key)))
            }
            StoreError::ClaimConflict { claim, holder } => {
                let (kind, value) = split_claim(&claim).unwrap_or(("address", claim.as_str()));
                AdminError::AddressConflict { kind: kind.to_owned(), value: value.to_owned(), holder: holder.id }
            }
            StoreError::DuplicateKey { key } => AdminError::BadRequest {
                field: "id".into(),
                message: format!("instance {} appears more than once", key.id),
            },
            StoreError::TooLarge { size, limit } => AdminError::Invalid(Invalid {
                errors: vec![FieldError {
                    field: String::new(),
                    message: format!("record of {size} bytes exceeds the store's limit of {limit} bytes"),
                }],
            }),
            other => AdminError::Store(other),
        }
    }
}

/// The JSON error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `invalid_instance`, `conflict`, `not_found`.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// The field at fault (a path like `network.interfaces[0].mac`; empty for the whole body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every problem, when the body had several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<FieldError>,
    /// The instance that holds a contested address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicting_instance: Option<String>,
    /// For an import that failed part way: how many instances were written before (and stay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed: Option<usize>,
}

impl AdminError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::InvalidJson(_) | AdminError::DuplicateKey { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            AdminError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_instance"),
            AdminError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            AdminError::NotFound(_)
            | AdminError::RoleNotFound(_)
            | AdminError::EventNotFound(_)
            | AdminError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::InvalidEvent(_) => (StatusCode::BAD_REQUEST, "invalid_event"),
            AdminError::EventConflict { .. } => (StatusCode::CONFLICT, "event_conflict"),
            AdminError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AdminError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            AdminError::AddressConflict { .. } => (StatusCode::CONFLICT, "address_conflict"),
            AdminError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AdminError::UnsupportedMediaType { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::Unavailable(_) | AdminError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            AdminError::Line { error, .. } | AdminError::ImportIncomplete { error, .. } => error.status_and_code(),
            AdminError::DuplicateAddress { .. } => (StatusCode::CONFLICT, "address_conflict"),
            AdminError::TooManyLines { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        }
    }

    fn detail(&self) -> ErrorDetail {
        let (_, code) = self.status_and_code();
        let mut detail = ErrorDetail {
            code,
            message: self.to_string(),
            field: None,
            details: Vec::new(),
            conflicting_instance: None,
            committed: None,
        };
        match self {
            AdminError::InvalidJson(_) | AdminError::BodyTooLarge { .. } => detail.field = Some(String::new()),
            AdminError::Invalid(invalid) | AdminError::InvalidEvent(invalid) => {
                detail.field = invalid.errors.first().map(|e| e.field.clone());
                detail.details = invalid.errors.clone();
            }
            AdminError::EventNotFound(_) => detail.field = Some("event_id".into()),
            AdminError::EventConflict { field, .. } => detail.field = Some(field.clone()),
            AdminError::BadRequest { field, .. } | AdminError::DuplicateKey { field } => {
                detail.field = Some(field.clone());
            }
            AdminError::NotFound(_) => detail.field = Some("id".into()),
            AdminError::RoleNotFound(_) => detail.field = Some("name".into()),
            AdminError::AddressConflict { kind, holder, .. } => {
                detail.field = Some(kind.clone());
                detail.conflicting_instance = Some(holder.clone());
            }
            AdminError::PreconditionFailed(_) => detail.field = Some("If-Match".into()),
            AdminError::UnsupportedMediaType { .. } => detail.field = Some("Content-Type".into()),
            AdminError::Unauthorized => detail.field = Some("Authorization".into()),
            AdminError::NoRoute(_)
            | AdminError::MethodNotAllowed
            | AdminError::Unavailable(_)
            | AdminError::Store(_) => {}
            AdminError::Line { line, error } => {
                let inner = error.detail();
                let at = |field: &str| format!("line {line}: {field}");
                detail.field = Some(at(inner.field.as_deref().unwrap_or("")).trim_end().to_owned());
                detail.details = inner
                    .details
                    .into_iter()
                    .map(|error| FieldError { field: at(&error.field).trim_end().to_owned(), ..error })
                    .collect();
                detail.conflicting_instance = inner.conflicting_instance;
            }
            AdminError::DuplicateAddress { kind, holder, .. } => {
                detail.field = Some(kind.clone());
                detail.conflicting_instance = Some(holder.clone());
            }
            AdminError::TooManyLines { .. } => detail.field = Some(String::new()),
            AdminError::ImportIncomplete { committed, error } => {
                let inner = error.detail();
                detail.field = inner.field;
                detail.details = inner.details;
                detail.conflicting_instance = inner.conflicting_instance;
                detail.committed = Some(*committed);
            }
        }
        detail
    }
}

/// The whole HTTP/1.1 response refusing a request whose framing the listener rejects before it
/// reaches a handler ([`crate::listener::framing`]): a 400 with the JSON error body, and the
/// connection closed after it.
pub fn refusal(field: &str, message: &str) -> Vec<u8> {
    let error = AdminError::BadRequest { field: field.to_owned(), message: message.to_owned() };
    let body = serde_json::to_vec(&ErrorBody { error: error.detail() }).unwrap_or_default();
    let mut response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "admin request failed");
        }
        let mut response = (status, Json(ErrorBody { error: self.detail() })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod source_tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_store_failure_keeps_its_cause_and_its_message() {
        let io = std::io::Error::other("disk on fire");
        let error = AdminError::from(StoreError::unavailable_from("sqlite: committing revision 7", io));
        let message = error.to_string();
        assert!(message.contains("sqlite: committing revision 7: disk on fire"), "{message}");
        assert_eq!(error.status_and_code(), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"));
        let store = error.source().expect("the store error is the source");
        let cause = store.source().and_then(|unavailable| unavailable.source()).expect("and the I/O error under it");
        assert_eq!(cause.to_string(), "disk on fire");
    }

    #[test]
    fn a_precondition_names_the_collection() {
        let key = imds_store::Key::new(ROLES, "app");
        let error = AdminError::from(StoreError::RevisionMismatch {
            key,
            expected: imds_store::Revision(5),
            actual: imds_store::Revision(7),
        });
        assert_eq!(error.to_string(), "role app is at revision 7, not 5");
    }
}
