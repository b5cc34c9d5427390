//! The admin API (control plane): REST + JSON under `/v1`, never reachable by guests.
//!
//! Endpoints:
//! - `PUT /v1/instances/{id}`: create (201) or replace (200) an instance
//! - `GET /v1/instances/{id}`: read one instance
//! - `PATCH /v1/instances/{id}`: RFC 7396 merge-patch (`application/merge-patch+json`)
//! - `DELETE /v1/instances/{id}`: delete (204)
//! - `GET /v1/instances?limit=&after=`: list, paged by id
//! - `POST /v1/instances`: bulk import from NDJSON, checked whole before the first write, then
//!   written in store transactions of many instances ([`import`])
//! - `GET|PUT|PATCH /v1/instances/{id}/mmds`, `PUT /v1/instances/{id}/mmds/config`: the
//!   instance's Firecracker MMDS ([`mmds`]; errors in Firecracker's `fault_message` shape)
//! - `GET /v1/instances/{id}/smbios?dialect=`: the SMBIOS values that make cloud-init pick a dialect
//! - `POST|GET /v1/instances/{id}/events`, `POST /v1/events` (a selector), `GET /v1/events?state=`,
//!   `GET|DELETE /v1/events/{event_id}`: runtime events ([`events`]; DELETE cancels)
//! - `POST|GET /v1/instances/{id}/container-tokens`, `DELETE …/container-tokens/{token}`: the
//!   tokens of the instance's workloads for the container credential endpoints ([`container`])
//! - `PUT|GET|DELETE /v1/roles/{name}`, `GET /v1/roles`: roles and their credential sources
//!   ([`roles`]; secrets are write-only), `PUT /v1/roles/{name}/base-credentials`,
//!   `POST /v1/roles/{name}/refresh`
//! - `GET /v1/signing/{keys,certificates,jwks}`, `POST /v1/signing/rotate`,
//!   `PUT /v1/signing/key`: the identity signing keys ([`signing`])
//! - `GET /v1/openapi.json`: this API's OpenAPI document, generated from the code
//! - `GET /metrics`: Prometheus metrics, OpenMetrics or classic text by `Accept` ([`crate::metrics`];
//!   bearer token as the rest of the API)
//! - `GET /healthz`: the process is up; `GET /readyz`: the view has been loaded, follows the
//!   store (503 `stale` while the store is away; `staleness_ms` either way), holds the signing
//!   key, and every role has had its first credential fetch; per-role health in the body
//!
//! Every response carrying a record has an `ETag` (its store revision) and `If-Match` is
//! honoured. Errors are `{"error": {"code", "message", "field"}}` and change nothing. A write
//! returns only once the view guests read contains it (bounded by `write_visibility_timeout`).
//! TCP listeners require a bearer token ([`auth`]). With the audit log on, every write
//! (`PUT`, `POST`, `PATCH`, `DELETE`, refused or not) is recorded ([`crate::audit`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use imds_store::{Scope, Store};
use serde_json::json;

use crate::view::View;

pub mod auth;
pub mod body;
pub mod compat;
pub mod container;
pub mod error;
pub mod events;
pub mod import;
pub mod instances;
pub mod mmds;
pub mod openapi;
pub mod platform;
pub mod roles;
pub mod signing;

pub use auth::Token;
pub use error::AdminError;

/// The admin plane's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TCP address to listen on, if any (requires `token` unless `allow_no_token`).
    pub listen: Option<SocketAddr>,
    /// Unix socket to listen on, if any (created with mode 0600).
    pub socket: Option<PathBuf>,
    /// The bearer token TCP clients must send.
    pub token: Option<Token>,
    /// How long a write waits for the guest view to contain it before answering anyway.
    pub write_visibility_timeout: Duration,
    /// How big a bulk import (`POST /v1/instances`) may be.
    pub import: import::Limits,
    /// The seeds' own endpoints ([`compat`]).
    pub compat: compat::Config,
}

impl Default for Config {
    /// A Unix socket at `/run/imds/admin.sock`, no TCP listener, 5 s visibility wait.
    fn default() -> Self {
        Self {
            listen: None,
            socket: Some(PathBuf::from("/run/imds/admin.sock")),
            token: None,
            write_visibility_timeout: Duration::from_secs(5),
            import: import::Limits::default(),
            compat: compat::Config::default(),
        }
    }
}

/// What the admin handlers share.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The source of truth.
    pub store: Arc<dyn Store>,
    /// The guest view (to wait for writes to become visible, and for readiness).
    pub view: View,
    /// The roles' credential caches (status and on-demand refresh).
    pub credentials: Arc<imds_creds::Manager>,
    /// Record size limits.
    pub limits: imds_model::Limits,
    /// How long a write waits for visibility.
    pub write_visibility_timeout: Duration,
    /// How big a bulk import may be.
    pub import: import::Limits,
    /// The guest plane's dialect settings (the NoCloud prefix the platform hints point at).
    pub dialects: imds_dialects::Settings,
    /// The part of the store this node serves: a write waits for the view only when this node
    /// serves the instance (before or after the write).
    pub scope: Scope,
    /// Set once `/readyz` has found the node ready (signing key, every role's first fetch):
    /// later changes to the roles do not make it unready again.
    pub started: Arc<std::sync::atomic::AtomicBool>,
    /// The seeds' own endpoints' settings.
    pub compat: compat::Config,
    /// `/metrics`.
    pub exporter: Arc<crate::metrics::Exporter>,
    /// The audit log, if on (admin writes are recorded).
    pub audit: Option<crate::audit::Log>,
}

/// The admin router. `token`: when set, TCP clients must present it.
pub fn router(state: AdminState, token: Option<Token>) -> Router {
    let api = Router::new()
        .route("/v1/instances", get(instances::list).post(import::import))
        .route(
            "/v1/instances/{id}",
            get(instances::get).put(instances::put).patch(instances::patch).delete(instances::delete),
        )
        .route("/v1/instances/{id}/mmds", get(mmds::get).put(mmds::put).patch(mmds::patch))
        .route("/v1/instances/{id}/mmds/config", axum::routing::put(mmds::put_config))
        .route("/v1/instances/{id}/smbios", get(platform::smbios))
        .route("/v1/instances/{id}/events", get(events::list_instance).post(events::add))
        .route("/v1/events", get(events::list).post(events::add_selected))
        .route("/v1/events/{event_id}", get(events::get).delete(events::cancel))
        .route("/v1/instances/{id}/container-tokens", get(container::list).post(container::issue))
        .route("/v1/instances/{id}/container-tokens/{token}", axum::routing::delete(container::revoke))
        .route("/v1/roles", get(roles::list))
        .route("/v1/roles/{name}", get(roles::get).put(roles::put).delete(roles::delete))
        .route("/v1/roles/{name}/base-credentials", axum::routing::put(roles::put_base))
        .route("/v1/roles/{name}/refresh", axum::routing::post(roles::refresh))
        .route("/v1/signing/keys", get(signing::keys))
        .route("/v1/signing/certificates", get(signing::certificates))
        .route("/v1/signing/jwks", get(signing::jwks))
        .route("/v1/signing/rotate", axum::routing::post(signing::rotate))
        .route("/v1/signing/key", axum::routing::put(signing::put_key))
        .route("/metrics", get(metrics))
        // The seeds' own interfaces (the Go mock's bootstrap, VMAN's metadata).
        .route("/bootstrap/creds", axum::routing::post(compat::bootstrap))
        .route(
            "/vms/{id}/metadata",
            get(compat::get_metadata).put(compat::put_metadata).delete(compat::delete_metadata),
        )
        .route_layer(axum::middleware::from_fn_with_state(token, auth::require_token));
    let audit = state.audit.clone();
    Router::new()
        .merge(api)
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/healthz", get(healthz))
        .route("/status", get(compat::status))
        .route("/readyz", get(readyz))
        .fallback(|uri: http::Uri| async move { AdminError::NoRoute(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(audit, audit_writes))
        .with_state(state)
}

/// `GET /metrics` on the admin listener (behind the bearer token).
async fn metrics(State(state): State<AdminState>, headers: http::HeaderMap) -> Response {
    crate::metrics::serve(State(state.exporter), headers).await
}

/// Middleware: records every write (any method but `GET`, `HEAD`, `OPTIONS`) in the audit log,
/// with its status, once answered.
async fn audit_writes(
    State(audit): State<Option<crate::audit::Log>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(log) = audit else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    if matches!(method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS) {
        return next.run(request).await;
    }
    let source = match request.extensions().get::<crate::listener::Peer>() {
        Some(crate::listener::Peer::Tcp { remote, .. }) => crate::audit::Source::Ip(remote.ip()),
        _ => crate::audit::Source::Unix,
    };
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let segments: Vec<&str> = path.split('/').collect();
    let instance = match segments.as_slice() {
        ["", "v1", "instances", id, ..] | ["", "vms", id, ..] if !id.is_empty() => Some((*id).to_owned()),
        _ => None,
    };
    log.record(crate::audit::Event {
        at_millis: log.now_millis(),
        plane: "admin",
        kind: None,
        instance,
        source,
        caller: None,
        dialect: None,
        method,
        path,
        status: response.status().as_u16(),
    });
    response
}

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: whether this node serves guests everything they ask for.
///
/// 200 once the view guests read has been loaded from the store and follows it, holds the
/// identity signing key, and every role configured at that moment has had its first credential
/// fetch (successful or not): from then on a guest asking for a signature or a role's
/// credentials gets what the node will keep answering, never a start-up 404 or 503. Readiness
/// is about the node: a role without valid credentials does not make it unready (it would take
/// every other instance out of service); each role's state is under `roles`, and those without
/// valid credentials are named under `roles_without_credentials`. Once ready, a role added later
/// does not make the node unready again while its first fetch runs.
///
/// `staleness_ms` is the time since the last change or progress notice from the store. While
/// the store is away the answer is 503 with `"status": "stale"`: guests are still served, from
/// the last view. Before the node is ready: 503 `"starting"`, `waiting_for` saying what for.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Serving from a loaded view that follows the store, with the signing key and every role's first fetch done; per-role health in the body"),
    (status = 503, description = "Still starting (`waiting_for` says what for) or the store is away (guests get the last view)")))]
pub async fn readyz(State(state): State<AdminState>) -> Response {
    use std::sync::atomic::Ordering;
    if !state.view.is_ready() {
        let body = json!({"status": "starting", "waiting_for": ["the first view of the store"]});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let snapshot = state.view.load();
    let rev = snapshot.rev().0;
    let health = state.view.health().status();
    let staleness_ms = health.staleness.map(|staleness| u64::try_from(staleness.as_millis()).unwrap_or(u64::MAX));
    let now = state.credentials.clock().now();
    let mut waiting = Vec::new();
    if snapshot.signer().is_none() {
        waiting.push("the identity signing key".to_owned());
    }
    let (mut roles, mut missing) = (serde_json::Map::new(), serde_json::Map::new());
    // What the credential manager refreshes: each role, or each instance's own session of it.
    let managed = crate::creds::managed(&snapshot);
    let mut names: Vec<&String> = managed.keys().collect();
    names.sort();
    for name in names {
        let (status, reason) = match state.credentials.state(name) {
            Some(role) if role.usable(now).is_some() => (crate::creds::status(&role, now), None),
            Some(role) => {
                if role.last_attempt.is_none() {
                    waiting.push(format!("role {name}'s first credentials"));
                }
                let reason = role.error.as_ref().map_or_else(|| "no credentials yet".to_owned(), ToString::to_string);
                (crate::creds::status(&role, now), Some(reason))
            }
            None => {
                waiting.push(format!("role {name}'s first credentials"));
                (json!({"valid": false, "error": "not started yet"}), Some("not started yet".to_owned()))
            }
        };
        roles.insert(name.clone(), status);
        if let Some(reason) = reason {
            missing.insert(name.clone(), reason.into());
        }
    }
    if !waiting.is_empty() && !state.started.load(Ordering::Acquire) {
        let body = json!({"status": "starting", "revision": rev, "waiting_for": waiting, "roles": roles});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    state.started.store(true, Ordering::Release);
    let mut body = json!({"status": "ready", "revision": rev, "staleness_ms": staleness_ms, "roles": roles});
    if !missing.is_empty() {
        body["roles_without_credentials"] = missing.into();
    }
    if !health.connected {
        body["status"] = "stale".into();
        body["error"] = health.error.into();
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    (StatusCode::OK, Json(body)).into_response()
}
