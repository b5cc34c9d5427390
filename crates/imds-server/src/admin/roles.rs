//! `/v1/roles`: roles and their credential sources; base credentials (write-only); status and
//! on-demand refresh of each role's cached credentials.
//!
//! A role is stored in collection `roles` under its name; the credential manager follows it
//! through the view. An `sts` role's base credentials are written in the same commit to a
//! record of their own (`records::role_secrets`), which no node-scoped server follows; the
//! role record says only that they are set ([`records::put_role`]). No response ever carries a secret: sources are shown without their
//! secret fields (`secret_access_key_set: true` instead) and base credentials only as
//! `{"set": true, "access_key_id": …}`.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use imds_creds::{BaseCredentials, Role};
use imds_model::{FieldError, Invalid, RoleName};
use imds_store::update::{update, Plan, Step};
use imds_store::{Expect, Revision};
use serde::Serialize;
use serde_json::{json, Value};

use super::body::Param;
use super::error::AdminError;
use super::instances::wait_visible;
use super::AdminState;
use crate::records;

/// The largest role body accepted.
const MAX_BODY: usize = 64 * 1024;

/// A role as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    /// The role name (what instances name in `iam_role`).
    pub name: String,
    /// The credential source, without secrets.
    #[schema(value_type = Object)]
    pub source: Value,
    /// For `sts`: `{"set": bool, "access_key_id"?}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub base_credentials: Option<Value>,
    /// The cache: `valid`, `access_key_id`, `expiration`, `last_updated`, `error`, `last_attempt`;
    /// for a role assumed per instance, `valid` (every instance's), `session_per_instance`,
    /// `instances`.
    #[schema(value_type = Object)]
    pub status: Value,
}

/// All roles.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleList {
    /// Roles by name.
    pub roles: Vec<RoleView>,
}

fn invalid(field: &str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid(Invalid { errors: vec![FieldError { field: field.into(), message: message.into() }] })
}

fn parse_name(name: &str) -> Result<RoleName, AdminError> {
    RoleName::try_from(name).map_err(|error| invalid("name", error.to_string()))
}

async fn read_json(body: Body) -> Result<Value, AdminError> {
    super::body::read_json(body, MAX_BODY).await
}

fn view(state: &AdminState, name: &str, role: &Role) -> RoleView {
    let shown = role.public_view();
    let now = state.credentials.clock().now();
    let status = match state.credentials.state(name) {
        Some(role_state) => crate::creds::status(&role_state, now),
        None if role.source.session_per_instance() => {
            let prefix = crate::creds::instance_key(name, "");
            let states: Vec<_> =
                state.credentials.states().into_iter().filter(|(key, _)| key.starts_with(&prefix)).collect();
            let valid = !states.is_empty() && states.iter().all(|(_, role_state)| role_state.usable(now).is_some());
            json!({"valid": valid, "session_per_instance": true, "instances": states.len()})
        }
        None => json!({"valid": false, "error": "not started yet"}),
    };
    RoleView {
        name: name.to_owned(),
        source: shown["source"].clone(),
        base_credentials: shown.get("base_credentials").cloned(),
        status,
    }
}

async fn load(state: &AdminState, name: &RoleName) -> Result<Option<(Role, Revision)>, AdminError> {
    let Some(record) = state.store.get(&records::role(name.as_str())).await? else {
        return Ok(None);
    };
    let role = records::decode_role(&record).map_err(|error| AdminError::Unavailable(error.to_string()))?;
    Ok(Some((role, record.rev)))
}

/// Reads the role, changes it with `change` (given the stored role and its revision, if any)
/// and writes it back guarded by the revision read (a concurrent write makes it start over);
/// waits until the view has it. Returns the role written and whether it was created.
async fn update_role(
    state: &AdminState,
    name: &RoleName,
    change: impl Fn(Option<Role>) -> Result<Role, AdminError>,
) -> Result<(Role, bool), AdminError> {
    let key = records::role(name.as_str());
    let (key_ref, change) = (&key, &change);
    let updated = update(&*state.store, &key, || async move {
        let previous = load(state, name).await?;
        let expect = previous.as_ref().map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev));
        let role = change(previous.map(|(role, _)| role))?;
        let ops = records::put_role(key_ref.id.as_str(), &role, expect)?;
        Ok::<_, AdminError>(Step::Commit(Plan::new(role).guarded_all(ops)))
    })
    .await?;
    let committed = updated.committed.expect("a role write always commits");
    wait_visible(state, committed.rev).await;
    Ok((updated.value, committed.before.first().is_some_and(Option::is_none)))
}

/// `PUT /v1/roles/{name}`
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "Role name (IAM rules: 1-64 of A-Z a-z 0-9 + = , . @ _ -)")),
    request_body(content = super::openapi::RoleBody, content_type = "application/json", description =
        "`{\"source\": {\"type\": \"static\"|\"sts\"|\"process\", ...}, \"base_credentials\"?: {...}}`. \
         static: access_key_id, secret_access_key, session_token?, expiration? (RFC 3339). \
         sts: role_arn, session_name?, endpoint?, region?, duration_seconds?, external_id?, session_per_instance?. \
         process: command (array), timeout_seconds?. Base credentials already set are kept when the body has none."),
    responses(
        (status = 201, description = "Created", body = RoleView),
        (status = 200, description = "Replaced", body = RoleView),
        (status = 400, description = "Invalid role", body = super::error::ErrorBody)))]
pub async fn put(State(state): State<AdminState>, Param(name): Param, body: Body) -> Result<Response, AdminError> {
    let name = parse_name(&name)?;
    let doc = read_json(body).await?;
    let parsed = Role::parse(&doc).map_err(|e| invalid(&e.field, e.message))?;
    let (role, created) = update_role(&state, &name, |previous| {
        let mut role = parsed.clone();
        if role.base_credentials.is_none() && matches!(role.source, imds_creds::Source::Sts { .. }) {
            // Kept as they are: inside an older build's record (split by this write) or apart.
            if let Some(old) = previous {
                role.base_credentials = old.base_credentials;
                role.base_credentials_stored = old.base_credentials_stored;
            }
        }
        Ok(role)
    })
    .await?;
    tracing::info!(action = "put", role = %name, source = role.source.kind(), created, "role written");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view(&state, name.as_str(), &role))).into_response())
}

/// `GET /v1/roles/{name}`
#[utoipa::path(get, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "Role name")),
    responses((status = 200, description = "The role, without secrets", body = RoleView),
              (status = 404, description = "No such role", body = super::error::ErrorBody)))]
pub async fn get(State(state): State<AdminState>, Param(name): Param) -> Result<Response, AdminError> {
    let name = parse_name(&name)?;
    let (role, _) = load(&state, &name).await?.ok_or_else(|| AdminError::RoleNotFound(name.to_string()))?;
    Ok(Json(view(&state, name.as_str(), &role)).into_response())
}

/// `GET /v1/roles`
#[utoipa::path(get, path = "/v1/roles", tag = "roles",
    responses((status = 200, description = "Every role, by name, without secrets", body = RoleList)))]
pub async fn list(State(state): State<AdminState>) -> Result<Response, AdminError> {
    let mut roles = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.store.list(records::ROLES, after.as_deref(), 1000).await?;
        for record in &page.records {
            match Role::from_bytes(&record.value) {
                Ok(role) => roles.push(view(&state, &record.key.id, &role)),
                Err(error) => tracing::error!(key = %record.key, %error, "skipping unreadable role"),
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(Json(RoleList { roles }).into_response())
}

/// `DELETE /v1/roles/{name}`
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "Role name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such role", body = super::error::ErrorBody)))]
pub async fn delete(State(state): State<AdminState>, Param(name): Param) -> Result<Response, AdminError> {
    let name = parse_name(&name)?;
    let rev = state.store.commit(records::delete_role(name.as_str())).await.map_err(|error| match error {
        imds_store::StoreError::NotFound { .. } => AdminError::RoleNotFound(name.to_string()),
        other => other.into(),
    })?;
    let rev = rev.rev;
    wait_visible(&state, rev).await;
    tracing::info!(action = "delete", role = %name, "role deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /v1/roles/{name}/base-credentials`: write-only; also accepts the AWS key names
/// (`AccessKeyId`, `SecretAccessKey`, `Token`), as the bootstrap endpoint of the EC2 mock
/// did.
#[utoipa::path(put, path = "/v1/roles/{name}/base-credentials", tag = "roles",
    params(("name" = String, Path, description = "Role name (an sts role)")),
    request_body(content = super::openapi::BaseCredentialsBody, content_type = "application/json",
        description = "`{\"access_key_id\", \"secret_access_key\", \"session_token\"?}` (or AccessKeyId, SecretAccessKey, Token)"),
    responses((status = 204, description = "Stored; the role re-assumes at once"),
              (status = 400, description = "Invalid credentials, or not an sts role", body = super::error::ErrorBody),
              (status = 404, description = "No such role", body = super::error::ErrorBody)))]
pub async fn put_base(State(state): State<AdminState>, Param(name): Param, body: Body) -> Result<Response, AdminError> {
    let name = parse_name(&name)?;
    let mut doc = read_json(body).await?;
    if let Some(object) = doc.as_object_mut() {
        for (aws, ours) in
            [("AccessKeyId", "access_key_id"), ("SecretAccessKey", "secret_access_key"), ("Token", "session_token")]
        {
            if let Some(value) = object.remove(aws) {
                object.insert(ours.to_owned(), value);
            }
        }
        if object.get("session_token").is_some_and(|t| t.as_str() == Some("")) {
            object.remove("session_token");
        }
    }
    let base: BaseCredentials = serde_json::from_value(doc).map_err(|e| {
        let message = e.to_string();
        let field = ["access_key_id", "secret_access_key", "session_token"]
            .into_iter()
            .find(|f| message.contains(f))
            .unwrap_or("");
        invalid(field, message)
    })?;
    imds_creds::role::validate_base(&base).map_err(|e| invalid(&e.field, e.message))?;
    update_role(&state, &name, |previous| {
        let mut role = previous.ok_or_else(|| AdminError::RoleNotFound(name.to_string()))?;
        if !matches!(role.source, imds_creds::Source::Sts { .. }) {
            return Err(invalid(
                "name",
                format!("role {name} has a {} source; only sts roles use base credentials", role.source.kind()),
            ));
        }
        role.base_credentials = Some(base.clone());
        role.base_credentials_stored = None;
        Ok(role)
    })
    .await?;
    tracing::info!(action = "base-credentials", role = %name, "base credentials set");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/roles/{name}/refresh`: fetch new credentials now (rotation on demand).
#[utoipa::path(post, path = "/v1/roles/{name}/refresh", tag = "roles",
    params(("name" = String, Path, description = "Role name")),
    responses((status = 202, description = "A refresh was started"),
              (status = 404, description = "No such role", body = super::error::ErrorBody)))]
pub async fn refresh(State(state): State<AdminState>, Param(name): Param) -> Result<Response, AdminError> {
    let name = parse_name(&name)?;
    // A role assumed per instance: each instance's session.
    let prefix = crate::creds::instance_key(name.as_str(), "");
    let sessions = state.credentials.states().into_iter().filter(|(key, _)| key.starts_with(&prefix));
    let per_instance = sessions.fold(false, |any, (key, _)| state.credentials.refresh(&key) || any);
    if state.credentials.refresh(name.as_str()) || per_instance {
        Ok((StatusCode::ACCEPTED, Json(json!({"refreshing": name.as_str()}))).into_response())
    } else {
        Err(AdminError::RoleNotFound(name.to_string()))
    }
}
