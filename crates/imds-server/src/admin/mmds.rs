//! `/v1/instances/{id}/mmds`: an instance's Firecracker MMDS document and configuration, with
//! Firecracker's `/mmds` semantics and its error shape (`{"fault_message": "..."}`).
//!
//! - `PUT /v1/instances/{id}/mmds`: replace the document (any JSON value) → 204
//! - `PATCH /v1/instances/{id}/mmds`: RFC 7396 merge patch on a copy, then swap → 204; 400
//!   before the first `PUT`
//! - `GET /v1/instances/{id}/mmds`: the document as compact JSON (`{}` before the first `PUT`)
//! - `PUT /v1/instances/{id}/mmds/config`: `version` (`V1`|`V2`) and `imds_compat` → 204
//!
//! A write whose resulting document is larger than `Limits::max_mmds` bytes of compact JSON
//! gets 413 and changes nothing. Writes need the instance to exist (404) and answer once the
//! guest view contains them, so guests see the old document or the new one, never a mix.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use imds_dialects::mmds::render;
use imds_model::{merge_patch, InstanceId, Mmds, MmdsVersion};
use imds_store::update::{Plan, Step};
use imds_store::{Expect, Op, Put, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::Param;
use super::instances::wait_visible;
use super::AdminState;
use crate::records;

/// Why an MMDS request failed: rendered as Firecracker renders API faults. Changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MmdsError {
    /// `PATCH` before the first `PUT`.
    #[error("MMDS error: The MMDS data store is not initialized.")]
    NotInitialized,
    /// The resulting document exceeds the size limit.
    #[error("MMDS limit exceeded error: The MMDS patch request doesn't fit.")]
    LimitExceeded,
    /// The body is not JSON, or not a valid configuration.
    #[error("An error occurred when deserializing the json body of a request: {0}.")]
    InvalidBody(String),
    /// The instance id in the path is malformed.
    #[error("invalid instance id: {0}")]
    InvalidId(String),
    /// No such instance.
    #[error("instance {0} does not exist")]
    NotFound(String),
    /// A stored record is unreadable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store failed, or the record kept changing; the store's error is the source.
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Firecracker's API error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FaultMessage {
    /// What went wrong.
    pub fault_message: String,
}

impl IntoResponse for MmdsError {
    fn into_response(self) -> Response {
        let status = match self {
            MmdsError::NotInitialized | MmdsError::InvalidBody(_) | MmdsError::InvalidId(_) => StatusCode::BAD_REQUEST,
            MmdsError::LimitExceeded => StatusCode::PAYLOAD_TOO_LARGE,
            MmdsError::NotFound(_) => StatusCode::NOT_FOUND,
            MmdsError::Unavailable(_) | MmdsError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "MMDS admin request failed");
        }
        (status, Json(FaultMessage { fault_message: self.to_string() })).into_response()
    }
}

/// The body of `PUT /v1/instances/{id}/mmds/config` (Firecracker's `MmdsConfig`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MmdsConfig {
    /// `V1` (tokens optional, the default) or `V2` (tokens required).
    #[serde(default)]
    #[schema(value_type = String, pattern = "^V[12]$", required = false)]
    pub version: MmdsVersion,
    /// Always answer in IMDS text format, whatever the guest's `Accept` header.
    #[serde(default)]
    pub imds_compat: bool,
    /// Accepted for compatibility with Firecracker configurations and ignored: imds knows a
    /// guest by its source address.
    #[serde(default)]
    pub network_interfaces: Option<Vec<String>>,
    /// Accepted for compatibility and ignored: imds answers on its guest listeners.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Ipv4)]
    pub ipv4_address: Option<std::net::Ipv4Addr>,
}

/// `GET /v1/instances/{id}/mmds`
#[utoipa::path(get, path = "/v1/instances/{id}/mmds", tag = "mmds",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 200, description = "The document as compact JSON; `{}` before the first PUT", body = super::openapi::AnyValue),
              (status = 404, description = "No such instance", body = FaultMessage)))]
pub async fn get(State(state): State<AdminState>, Param(id): Param) -> Result<Response, MmdsError> {
    let id = parse_id(&id)?;
    ensure_instance(&state, &id).await?;
    let mmds = load(&state, &id).await?.map(|(mmds, _)| mmds).unwrap_or_default();
    let body = match &mmds.data {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(document) => render::json(document),
    };
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// `PUT /v1/instances/{id}/mmds`
#[utoipa::path(put, path = "/v1/instances/{id}/mmds", tag = "mmds",
    params(("id" = String, Path, description = "Instance id")),
    request_body(content = super::openapi::AnyValue, content_type = "application/json", description = "The whole document: any JSON value"),
    responses((status = 204, description = "Replaced"),
              (status = 400, description = "Not JSON", body = FaultMessage),
              (status = 404, description = "No such instance", body = FaultMessage),
              (status = 413, description = "The document exceeds the size limit", body = FaultMessage)))]
pub async fn put(State(state): State<AdminState>, Param(id): Param, body: Body) -> Result<Response, MmdsError> {
    let id = parse_id(&id)?;
    let document = read_json(&state, body).await?;
    check_size(&state, &document)?;
    update(&state, &id, |mmds| Ok(Mmds { data: Some(document.clone()), ..mmds.unwrap_or_default() })).await?;
    tracing::info!(action = "mmds_put", %id, "MMDS document replaced");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /v1/instances/{id}/mmds`
#[utoipa::path(patch, path = "/v1/instances/{id}/mmds", tag = "mmds",
    params(("id" = String, Path, description = "Instance id")),
    request_body(content = super::openapi::AnyValue, content_type = "application/json",
                 description = "RFC 7396 merge patch: members replace, `null` deletes, objects merge"),
    responses((status = 204, description = "Patched"),
              (status = 400, description = "Not JSON, or no document yet (PUT one first)", body = FaultMessage),
              (status = 404, description = "No such instance", body = FaultMessage),
              (status = 413, description = "The patched document exceeds the size limit", body = FaultMessage)))]
pub async fn patch(State(state): State<AdminState>, Param(id): Param, body: Body) -> Result<Response, MmdsError> {
    let id = parse_id(&id)?;
    let patch = read_json(&state, body).await?;
    update(&state, &id, |mmds| {
        let mmds = mmds.ok_or(MmdsError::NotInitialized)?;
        let mut document = mmds.data.clone().ok_or(MmdsError::NotInitialized)?;
        merge_patch(&mut document, &patch);
        check_size(&state, &document)?;
        Ok(Mmds { data: Some(document), ..mmds })
    })
    .await?;
    tracing::info!(action = "mmds_patch", %id, "MMDS document patched");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /v1/instances/{id}/mmds/config`
#[utoipa::path(put, path = "/v1/instances/{id}/mmds/config", tag = "mmds",
    params(("id" = String, Path, description = "Instance id")),
    request_body(content = MmdsConfig, content_type = "application/json"),
    responses((status = 204, description = "Configured; the instance's guest paths are MMDS's from now on"),
              (status = 400, description = "Invalid configuration", body = FaultMessage),
              (status = 404, description = "No such instance", body = FaultMessage)))]
pub async fn put_config(State(state): State<AdminState>, Param(id): Param, body: Body) -> Result<Response, MmdsError> {
    let id = parse_id(&id)?;
    let config: MmdsConfig = serde_json::from_value(read_json(&state, body).await?)
        .map_err(|error| MmdsError::InvalidBody(error.to_string()))?;
    update(&state, &id, |mmds| {
        Ok(Mmds { version: config.version, imds_compat: config.imds_compat, ..mmds.unwrap_or_default() })
    })
    .await?;
    tracing::info!(action = "mmds_config", %id, version = ?config.version, imds_compat = config.imds_compat, "MMDS configured");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if config.version == MmdsVersion::V1 {
        // Firecracker marks V1 as deprecated on this reply.
        response.headers_mut().insert("deprecation", HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn parse_id(id: &str) -> Result<InstanceId, MmdsError> {
    InstanceId::try_from(id).map_err(|error| MmdsError::InvalidId(error.to_string()))
}

/// The body as JSON. The read is bounded by a multiple of the document limit (pretty-printed
/// input is larger than its compact form); a larger body cannot fit.
async fn read_json(state: &AdminState, body: Body) -> Result<Value, MmdsError> {
    let limit = state.limits.max_mmds.saturating_mul(4).saturating_add(64 * 1024);
    let bytes = super::body::read(body, limit).await.map_err(|error| match error {
        super::body::BodyError::TooLarge => MmdsError::LimitExceeded,
        super::body::BodyError::Malformed(message) => MmdsError::InvalidBody(message),
    })?;
    super::body::parse_json(&bytes).map_err(|error| MmdsError::InvalidBody(error.to_string()))
}

/// Firecracker's rule: the compact JSON of the result must be at most the limit.
fn check_size(state: &AdminState, document: &Value) -> Result<(), MmdsError> {
    let size = serde_json::to_vec(document).map_or(usize::MAX, |bytes| bytes.len());
    if size > state.limits.max_mmds {
        return Err(MmdsError::LimitExceeded);
    }
    Ok(())
}

/// The instance's node placement (its MMDS record lives on the same node) and revision, or 404.
async fn ensure_instance(
    state: &AdminState,
    id: &InstanceId,
) -> Result<(Option<String>, imds_store::Revision), MmdsError> {
    match state.store.get(&records::instance(id)).await? {
        Some(record) => Ok((record.node, record.rev)),
        None => Err(MmdsError::NotFound(id.to_string())),
    }
}

async fn load(state: &AdminState, id: &InstanceId) -> Result<Option<(Mmds, imds_store::Revision)>, MmdsError> {
    let Some(record) = state.store.get(&records::mmds(id)).await? else {
        return Ok(None);
    };
    let mmds = records::decode_mmds(&record).map_err(|error| MmdsError::Unavailable(error.to_string()))?;
    Ok(Some((mmds, record.rev)))
}

/// Reads the instance's MMDS record, computes the new one with `change` and commits it
/// guarded by both revisions read: the record's, and the instance's (so a document is never
/// written for an instance deleted or moved meanwhile); a lost race starts over. Then waits
/// until guests see it.
async fn update(
    state: &AdminState,
    id: &InstanceId,
    change: impl Fn(Option<Mmds>) -> Result<Mmds, MmdsError>,
) -> Result<(), MmdsError> {
    let key = records::mmds(id);
    let change = &change;
    let updated = state
        .view
        .writers()
        .update(id.as_str(), &*state.store, &key, || async {
            let (node, instance_rev) = ensure_instance(state, id).await?;
            let current = load(state, id).await?;
            let expect = current.as_ref().map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev));
            let next = change(current.map(|(mmds, _)| mmds))?;
            let put = Put { key: key.clone(), node, claims: Vec::new(), value: next.to_bytes(), expect };
            let unchanged = records::instance_unchanged(id, instance_rev);
            Ok::<_, MmdsError>(Step::Commit(Plan::new(()).guarded(unchanged).guarded(Op::Put(put))))
        })
        .await?;
    if let Some(committed) = updated.committed {
        wait_visible(state, committed.rev).await;
    }
    Ok(())
}
