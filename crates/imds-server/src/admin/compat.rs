//! The seeds' own admin interfaces, so their users can switch to imds without rewriting
//! scripts. Each maps onto the core admin API; nothing here is on the guest path.
//!
//! - The Go mock metadata service: `GET /status` answers the JSON boolean "the default role
//!   has valid credentials now" (no token needed, like `/healthz`); `POST /bootstrap/creds` with
//!   `{"AccessKeyId", "SecretAccessKey", "Token"?}` (`Token` optional or empty) sets the base
//!   credentials of the configured default role ([`Config::default_role`]), as
//!   `PUT /v1/roles/{name}/base-credentials` does.
//! - VMAN: `PUT|GET|DELETE /vms/{id}/metadata` with `{"hostname", "user_data", "ssh_keys"}`
//!   (`ssh_keys` one key per line) on the instance record `id`: a PUT sets the three fields
//!   (an absent or `null` one is removed) and, with `mac` or `ip`, the record's first MAC and
//!   address, creating the instance if it does not exist; a DELETE removes the three fields and
//!   keeps the instance; a GET shows them. See docs/compat.md.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use super::error::AdminError;
use super::AdminState;

/// Settings of the compatibility endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The role `/status` reports on and `/bootstrap/creds` bootstraps (the Go mock's one role).
    pub default_role: Option<String>,
}

/// `GET /status`: whether the default role has valid credentials now (`false` without one).
#[utoipa::path(get, path = "/status", tag = "compat", security(()),
    responses((status = 200, description = "`true` when the default role (`admin.default_role`) has valid credentials now", body = bool, content_type = "application/json")))]
pub async fn status(State(state): State<AdminState>) -> Json<bool> {
    let now = state.credentials.clock().now();
    let valid = state
        .compat
        .default_role
        .as_deref()
        .and_then(|role| state.credentials.state(role))
        .is_some_and(|role| role.usable(now).is_some());
    Json(valid)
}

/// `POST /bootstrap/creds`: the default role's base credentials.
#[utoipa::path(post, path = "/bootstrap/creds", tag = "compat",
    request_body(content = Object, content_type = "application/json",
                 description = "`{\"AccessKeyId\", \"SecretAccessKey\", \"Token\"?}` (`Token` may be absent or empty)"),
    responses((status = 204, description = "Stored as the default role's base credentials; the role re-assumes at once"),
              (status = 400, description = "Invalid credentials, no default role configured, or not an sts role", body = super::error::ErrorBody),
              (status = 404, description = "The default role does not exist", body = super::error::ErrorBody)))]
pub async fn bootstrap(State(state): State<AdminState>, body: Body) -> Result<Response, AdminError> {
    let Some(role) = state.compat.default_role.clone() else {
        return Err(AdminError::BadRequest {
            field: "admin.default_role".into(),
            message: "no default role is configured (set admin.default_role to the role to bootstrap)".into(),
        });
    };
    super::roles::put_base(State(state), super::body::Param(role), body).await
}

/// The VMAN fields and where they go in the record.
const FIELDS: [&str; 5] = ["hostname", "user_data", "ssh_keys", "mac", "ip"];

/// `PUT /vms/{id}/metadata`
#[utoipa::path(put, path = "/vms/{id}/metadata", tag = "compat",
    params(("id" = String, Path, description = "Instance id")),
    request_body(content = super::openapi::VmanMetadata, content_type = "application/json",
                 description = "`{\"hostname\"?, \"user_data\"?, \"ssh_keys\"? (one key per line), \"mac\"?, \"ip\"?}`"),
    responses((status = 200, description = "The metadata as stored", body = Object),
              (status = 400, description = "An unknown or ill-typed field, or an invalid record", body = super::error::ErrorBody),
              (status = 409, description = "An address belongs to another instance", body = super::error::ErrorBody)))]
pub async fn put_metadata(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| AdminError::BadRequest { field: String::new(), message: format!("not JSON: {e}") })?;
    let Value::Object(vman) = parsed else {
        return Err(bad("", "expected a JSON object with hostname, user_data and ssh_keys"));
    };
    if let Some(unknown) = vman.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(bad(unknown, &format!("unknown field; expected one of {}", FIELDS.join(", "))));
    }
    let mut patch = Map::new();
    for field in ["hostname", "user_data"] {
        match vman.get(field) {
            None | Some(Value::Null) => patch.insert(field.into(), Value::Null),
            Some(Value::String(text)) => patch.insert(field.into(), json!(text)),
            Some(_) => return Err(bad(field, "must be a string or null")),
        };
    }
    match vman.get("ssh_keys") {
        None | Some(Value::Null) => patch.insert("ssh_keys".into(), Value::Null),
        Some(Value::String(lines)) => {
            let keys: Vec<&str> = lines.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
            patch.insert("ssh_keys".into(), json!(keys))
        }
        Some(_) => return Err(bad("ssh_keys", "must be a string of keys, one per line, or null")),
    };
    match vman.get("mac") {
        None | Some(Value::Null) => {}
        Some(Value::String(mac)) => {
            patch.insert("mac".into(), json!([mac]));
        }
        Some(_) => return Err(bad("mac", "must be a string")),
    }
    match vman.get("ip") {
        None | Some(Value::Null) => {}
        Some(Value::String(ip)) => {
            let family = if ip.contains(':') { "ipv6" } else { "ipv4" };
            patch.insert(family.into(), json!([ip]));
        }
        Some(_) => return Err(bad("ip", "must be a string")),
    }
    write(&state, &id, Value::Object(patch)).await?;
    get_metadata(State(state), Path(id)).await
}

/// `GET /vms/{id}/metadata`
#[utoipa::path(get, path = "/vms/{id}/metadata", tag = "compat",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 200, description = "`{\"hostname\", \"user_data\", \"ssh_keys\"}`", body = Object),
              (status = 404, description = "No such instance", body = super::error::ErrorBody)))]
pub async fn get_metadata(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, AdminError> {
    let id = super::instances::parse_id(&id)?;
    let (instance, _) = super::instances::load(&state, &id).await?;
    let doc = instance.to_json();
    let user_data = match doc.get("user_data") {
        Some(Value::String(text)) => json!(text),
        Some(_) => json!(instance.user_data.as_ref().map(|data| String::from_utf8_lossy(data.as_bytes()).into_owned())),
        None => Value::Null,
    };
    let keys: Vec<&str> = instance.ssh_keys.iter().map(|key| key.key.as_str()).collect();
    let body = json!({
        "hostname": instance.hostname,
        "user_data": user_data,
        "ssh_keys": if keys.is_empty() { Value::Null } else { json!(keys.join("\n")) },
    });
    Ok(Json(body).into_response())
}

/// `DELETE /vms/{id}/metadata`: removes the three fields; the instance stays.
#[utoipa::path(delete, path = "/vms/{id}/metadata", tag = "compat",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 204, description = "Cleared"),
              (status = 404, description = "No such instance", body = super::error::ErrorBody)))]
pub async fn delete_metadata(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, AdminError> {
    let patch = json!({"hostname": null, "user_data": null, "ssh_keys": null});
    let id = super::instances::parse_id(&id)?;
    super::instances::load(&state, &id).await?;
    write(&state, id.as_str(), patch).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Merge-patches instance `id`, or creates it from the patch when it does not exist.
async fn write(state: &AdminState, id: &str, patch: Value) -> Result<(), AdminError> {
    let body = Body::from(patch.to_string());
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/merge-patch+json"));
    match super::instances::patch(State(state.clone()), super::body::Param(id.to_owned()), headers, body).await {
        Ok(_) => Ok(()),
        Err(AdminError::NotFound(_)) => {
            let mut doc = patch;
            if let Value::Object(object) = &mut doc {
                object.retain(|_, value| !value.is_null());
            }
            let body = Body::from(doc.to_string());
            let mut headers = HeaderMap::new();
            headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
            super::instances::put(State(state.clone()), super::body::Param(id.to_owned()), headers, body)
                .await
                .map(|_| ())
        }
        Err(error) => Err(error),
    }
}

fn bad(field: &str, message: &str) -> AdminError {
    AdminError::BadRequest { field: field.to_owned(), message: message.to_owned() }
}
