//! `/v1/instances/{id}/container-tokens`: the tokens an instance's workloads (ECS task
//! containers, EKS pods) present to the container credential endpoints (the `container`
//! dialect).
//!
//! - `POST /v1/instances/{id}/container-tokens` with `{"workload": "web", "role"?: "app"}`
//!   issues a token (201): the answer carries the secret once (`token`), with the two ways a
//!   workload uses it (`AWS_CONTAINER_AUTHORIZATION_TOKEN` for the full URI `/v1/credentials`,
//!   or the relative URI `/v2/credentials/<token>`). Only its SHA-256 is stored.
//! - `GET /v1/instances/{id}/container-tokens`: the issued tokens, without secrets.
//! - `DELETE /v1/instances/{id}/container-tokens/{token}`: revokes one (204).
//!
//! The tokens are one record per instance (collection `container-tokens`), written guarded by
//! the instance's revision, moved and deleted with the instance. A write answers once guests
//! see it.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::request::Parts;
use http::StatusCode;
use imds_model::{ContainerToken, ContainerTokens, FieldError, InstanceId, Invalid, RoleName};
use imds_store::update::{Plan, Step};
use imds_store::{Expect, Op, Put};
use serde::{Deserialize, Serialize};

use super::body::Param;
use super::instances::{parse_id, wait_visible};
use super::{AdminError, AdminState};
use crate::records;

/// The most tokens one instance may hold.
pub const MAX_TOKENS: usize = 256;
/// The longest workload name.
const MAX_WORKLOAD: usize = 255;

/// The body of `POST /v1/instances/{id}/container-tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// The workload the token is for (a container or pod name): 1-255 printable characters.
    pub workload: String,
    /// The role whose credentials the token gets; default: the instance's `iam_role`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub role: Option<String>,
}

/// One issued token, as listed (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// The token's id (what `DELETE` takes).
    pub id: String,
    /// The workload it was issued for.
    pub workload: String,
    /// Its role, when it names one (else the instance's `iam_role` applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// When it was issued (RFC 3339).
    pub created: String,
}

/// What issuing a token answers: the token, shown only here, and how a workload uses it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// The token as listed.
    #[serde(flatten)]
    pub token: TokenView,
    /// The secret: `AWS_CONTAINER_AUTHORIZATION_TOKEN` (with the full URI
    /// `http://169.254.170.23/v1/credentials`), or the last segment of the relative URI.
    #[serde(rename = "token")]
    pub secret: String,
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` for the same token.
    pub relative_uri: String,
}

/// The tokens of one instance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// In issue order.
    pub tokens: Vec<TokenView>,
}

fn view(token: &ContainerToken) -> TokenView {
    TokenView {
        id: token.id.clone(),
        workload: token.workload.clone(),
        role: token.role.as_ref().map(|role| role.as_str().to_owned()),
        created: token.created.clone(),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid(Invalid { errors: vec![FieldError { field: field.into(), message: message.into() }] })
}

/// Random bytes from the operating system.
fn random<const N: usize>() -> Result<[u8; N], AdminError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| AdminError::Unavailable(format!("no randomness: {error}")))?;
    Ok(bytes)
}

/// `POST /v1/instances/{id}/container-tokens`
#[utoipa::path(post, path = "/v1/instances/{id}/container-tokens", tag = "instances",
    params(("id" = String, Path, description = "Instance id")),
    request_body(content = IssueBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Issued; the secret is in this answer only", body = IssuedToken),
        (status = 400, description = "Invalid body (the field is named), or the instance holds the most tokens", body = super::error::ErrorBody),
        (status = 404, description = "No such instance", body = super::error::ErrorBody)))]
pub async fn issue(State(state): State<AdminState>, Param(id): Param, body: Body) -> Result<Response, AdminError> {
    let id = parse_id(&id)?;
    let doc = super::body::read_json(body, 64 * 1024).await?;
    let body: IssueBody = serde_json::from_value(doc).map_err(|error| invalid("", error.to_string()))?;
    let workload = body.workload.trim().to_owned();
    if workload.is_empty() || workload.len() > MAX_WORKLOAD || workload.chars().any(char::is_control) {
        return Err(invalid("workload", format!("must be 1-{MAX_WORKLOAD} characters without control characters")));
    }
    let role = match body.role.as_deref() {
        Some(name) => Some(RoleName::try_from(name).map_err(|error| invalid("role", error.to_string()))?),
        None => None,
    };
    let secret = URL_SAFE_NO_PAD.encode(random::<32>()?);
    let token = ContainerToken {
        id: format!("ct-{}", random::<8>()?.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        workload,
        role,
        sha256: imds_dialects::container::hex_sha256(&secret),
        created: imds_model::time::format_rfc3339(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        ),
    };
    update(&state, &id, |mut tokens| {
        if tokens.tokens.len() >= MAX_TOKENS {
            return Err(AdminError::BadRequest {
                field: "workload".into(),
                message: format!("instance {id} holds {MAX_TOKENS} tokens already; delete one first"),
            });
        }
        tokens.tokens.push(token.clone());
        Ok(tokens)
    })
    .await?;
    tracing::info!(action = "container_token_issue", %id, token = %token.id, workload = %token.workload, "container token issued");
    let relative_uri = format!("{}{secret}", imds_dialects::container::wire::RELATIVE_PREFIX);
    Ok((StatusCode::CREATED, Json(IssuedToken { token: view(&token), secret, relative_uri })).into_response())
}

/// `GET /v1/instances/{id}/container-tokens`
#[utoipa::path(get, path = "/v1/instances/{id}/container-tokens", tag = "instances",
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The issued tokens, without secrets", body = TokenList),
        (status = 404, description = "No such instance", body = super::error::ErrorBody)))]
pub async fn list(State(state): State<AdminState>, Param(id): Param) -> Result<Json<TokenList>, AdminError> {
    let id = parse_id(&id)?;
    ensure_instance(&state, &id).await?;
    let tokens = load(&state, &id).await?.map(|(tokens, _)| tokens).unwrap_or_default();
    Ok(Json(TokenList { tokens: tokens.tokens.iter().map(view).collect() }))
}

/// `DELETE /v1/instances/{id}/container-tokens/{token}`
#[utoipa::path(delete, path = "/v1/instances/{id}/container-tokens/{token}", tag = "instances",
    params(("id" = String, Path, description = "Instance id"), ("token" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked: the token gets no credentials from now on"),
        (status = 404, description = "No such instance or token", body = super::error::ErrorBody)))]
pub async fn revoke(State(state): State<AdminState>, TokenPath(id, token): TokenPath) -> Result<Response, AdminError> {
    let id = parse_id(&id)?;
    update(&state, &id, |mut tokens| {
        let before = tokens.tokens.len();
        tokens.tokens.retain(|t| t.id != token);
        if tokens.tokens.len() == before {
            return Err(AdminError::TokenNotFound(token.clone()));
        }
        Ok(tokens)
    })
    .await?;
    tracing::info!(action = "container_token_revoke", %id, %token, "container token revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `{id}` and `{token}` path parameters, the rejection a JSON [`AdminError`].
#[derive(Debug)]
pub struct TokenPath(String, String);

impl<S: Send + Sync> FromRequestParts<S> for TokenPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path((id, token))) => Ok(TokenPath(id, token)),
            Err(rejection) => Err(AdminError::BadRequest {
                field: "token".to_owned(),
                message: format!("path parameter is not valid: {}", rejection.body_text()),
            }),
        }
    }
}

/// The instance's node and revision, or 404.
async fn ensure_instance(
    state: &AdminState,
    id: &InstanceId,
) -> Result<(Option<String>, imds_store::Revision), AdminError> {
    match state.store.get(&records::instance(id)).await? {
        Some(record) => Ok((record.node, record.rev)),
        None => Err(AdminError::NotFound(id.to_string())),
    }
}

async fn load(
    state: &AdminState,
    id: &InstanceId,
) -> Result<Option<(ContainerTokens, imds_store::Revision)>, AdminError> {
    let Some(record) = state.store.get(&records::container_tokens(id)).await? else {
        return Ok(None);
    };
    let tokens =
        records::decode_container_tokens(&record).map_err(|error| AdminError::Unavailable(error.to_string()))?;
    Ok(Some((tokens, record.rev)))
}

/// Reads the instance's tokens, computes the new ones with `change` and commits them guarded
/// by both revisions read (the record's and the instance's); then waits until guests see it.
async fn update(
    state: &AdminState,
    id: &InstanceId,
    change: impl Fn(ContainerTokens) -> Result<ContainerTokens, AdminError>,
) -> Result<(), AdminError> {
    let key = records::container_tokens(id);
    let change = &change;
    let updated = state
        .view
        .writers()
        .update(id.as_str(), &*state.store, &key, || async {
            let (node, instance_rev) = ensure_instance(state, id).await?;
            let current = load(state, id).await?;
            let expect = current.as_ref().map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev));
            let next = change(current.map(|(tokens, _)| tokens).unwrap_or_default())?;
            let put = Put { key: key.clone(), node, claims: Vec::new(), value: next.to_bytes(), expect };
            let unchanged = records::instance_unchanged(id, instance_rev);
            Ok::<_, AdminError>(Step::Commit(Plan::new(()).guarded(unchanged).guarded(Op::Put(put))))
        })
        .await?;
    if let Some(committed) = updated.committed {
        wait_visible(state, committed.rev).await;
    }
    Ok(())
}
