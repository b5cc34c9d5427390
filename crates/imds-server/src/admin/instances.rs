//! `/v1/instances`: create, replace, read, merge-patch, delete and list instance records.
//!
//! Each handler parses its request into a typed write or read, makes one store call, waits
//! for the guest view to contain a write, and renders the record with its `ETag`.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};
use imds_model::{merge_patch, FieldError, Instance, InstanceId, Invalid};
use imds_store::update::{Plan, Step, Updated};
use imds_store::{Expect, Op, Put, Record, Revision, StoreError, Written};
use serde::{Deserialize, Serialize};

use super::body::Param;
use super::error::AdminError;
use super::AdminState;
use crate::records;

/// A page of instances.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InstanceList {
    /// The instances of this page, ascending by id.
    #[schema(value_type = Vec<Object>)]
    pub instances: Vec<serde_json::Value>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// Query parameters of the list endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<String>,
    /// Return instances whose id sorts after this one.
    pub after: Option<String>,
}

const MEDIA_MERGE_PATCH: &str = "application/merge-patch+json";
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// `PUT /v1/instances/{id}`
#[utoipa::path(put, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id"),
           ("If-Match" = Option<String>, Header, description = "Replace only if the current ETag matches"),
           ("If-None-Match" = Option<String>, Header, description = "`*`: create only")),
    request_body(content = super::openapi::InstanceSchema, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = super::openapi::InstanceSchema),
        (status = 200, description = "Replaced", body = super::openapi::InstanceSchema),
        (status = 400, description = "Invalid record", body = super::error::ErrorBody),
        (status = 409, description = "An address belongs to another instance", body = super::error::ErrorBody),
        (status = 412, description = "Precondition failed", body = super::error::ErrorBody),
        (status = 413, description = "Body too large", body = super::error::ErrorBody)))]
pub async fn put(
    State(state): State<AdminState>,
    Param(id): Param,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminError> {
    let id = parse_id(&id)?;
    let mut doc = read_json(&state, body).await?;
    match doc.as_object_mut() {
        Some(object) => match object.get("id") {
            None => {
                object.insert("id".into(), serde_json::Value::String(id.as_str().to_owned()));
            }
            Some(serde_json::Value::String(body_id)) if body_id == id.as_str() => {}
            Some(other) => {
                return Err(AdminError::BadRequest {
                    field: "id".into(),
                    message: format!("body id {other} does not match the id in the path ({id})"),
                })
            }
        },
        None => return Err(invalid("", "expected a JSON object")),
    }
    let mut instance = parse(&state, &doc)?;
    let expect = precondition(&headers)?;
    if instance.created_at.is_none() {
        let current = match load(&state, &id).await {
            Ok((current, _)) => Some(current),
            Err(AdminError::NotFound(_)) => None,
            Err(error) => return Err(error),
        };
        instance.created_at = Some(launch_time(&state, current.as_ref()));
    }
    let (instance, written) = write(&state, instance, expect).await?;
    tracing::info!(action = "put", id = %id, rev = %written.rev, created = written.created, "instance written");
    let status = if written.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(render(status, &instance, written.rev))
}

/// `GET /v1/instances/{id}`
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 200, description = "The instance", body = super::openapi::InstanceSchema),
              (status = 404, description = "No such instance", body = super::error::ErrorBody)))]
pub async fn get(State(state): State<AdminState>, Param(id): Param) -> Result<Response, AdminError> {
    let id = parse_id(&id)?;
    let (instance, rev) = load(&state, &id).await?;
    Ok(render(StatusCode::OK, &instance, rev))
}

/// `PATCH /v1/instances/{id}`
#[utoipa::path(patch, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id"),
           ("If-Match" = Option<String>, Header, description = "Patch only if the current ETag matches")),
    request_body(content = Object, content_type = "application/merge-patch+json",
                 description = "RFC 7396 merge patch: members replace, `null` deletes, objects merge"),
    responses((status = 200, description = "Patched", body = super::openapi::InstanceSchema),
              (status = 400, description = "The patched record is invalid", body = super::error::ErrorBody),
              (status = 404, description = "No such instance", body = super::error::ErrorBody),
              (status = 409, description = "An address belongs to another instance", body = super::error::ErrorBody),
              (status = 412, description = "Precondition failed", body = super::error::ErrorBody),
              (status = 415, description = "Not a merge patch", body = super::error::ErrorBody)))]
pub async fn patch(
    State(state): State<AdminState>,
    Param(id): Param,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AdminError> {
    let id = parse_id(&id)?;
    let media = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(MEDIA_MERGE_PATCH) && !media.eq_ignore_ascii_case("application/json") {
        return Err(AdminError::UnsupportedMediaType { expected: MEDIA_MERGE_PATCH });
    }
    let patch = read_json(&state, body).await?;
    let wanted = match precondition(&headers)? {
        Expect::Revision(rev) => Some(rev),
        Expect::Any | Expect::Present => None,
        Expect::Absent => {
            return Err(AdminError::BadRequest {
                field: "If-None-Match".into(),
                message: "a patch needs an existing instance".into(),
            })
        }
    };
    let key = records::instance(&id);
    let updated = state
        .view
        .writers()
        .update(id.as_str(), &*state.store, &key, || async {
            let (current, rev) = load(&state, &id).await?;
            if let Some(wanted) = wanted.filter(|wanted| *wanted != rev) {
                return Err(AdminError::PreconditionFailed(format!(
                    "instance {id} is at revision {rev}, not {wanted}"
                )));
            }
            let mut doc = current.to_json();
            merge_patch(&mut doc, &patch);
            if doc.get("id") != Some(&serde_json::Value::String(id.as_str().to_owned())) {
                return Err(invalid("id", "the id of an instance cannot be changed or removed"));
            }
            let mut patched = parse(&state, &doc)?;
            if patched.created_at.is_none() {
                patched.created_at = Some(launch_time(&state, Some(&current)));
            }
            // Without If-Match, a write in between is a lost race: patch the newer version.
            Ok(Step::Commit(plan_write(&state, patched, Expect::Revision(rev), wanted.is_none()).await?))
        })
        .await?;
    let (patched, written) = finish_write(&state, updated).await;
    tracing::info!(action = "patch", id = %id, rev = %written.rev, "instance patched");
    Ok(render(StatusCode::OK, &patched, written.rev))
}

/// `DELETE /v1/instances/{id}`
#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id"),
           ("If-Match" = Option<String>, Header, description = "Delete only if the current ETag matches")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such instance", body = super::error::ErrorBody),
              (status = 412, description = "Precondition failed", body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AdminState>,
    Param(id): Param,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let id = parse_id(&id)?;
    let expect = match precondition(&headers)? {
        Expect::Absent => {
            return Err(AdminError::BadRequest {
                field: "If-None-Match".into(),
                message: "cannot delete an absent instance".into(),
            })
        }
        Expect::Any => Expect::Present,
        other => other,
    };
    // The instance's MMDS document and guest state go with it, in one commit: a guest sees
    // all of it or none, and a failed precondition deletes nothing.
    let mut ops: Vec<Op> =
        records::attachments(&id).into_iter().map(|key| Op::Delete { key, expect: Expect::Any }).collect();
    ops.push(Op::Delete { key: records::instance(&id), expect });
    let committed = state.store.commit(ops).await.map_err(|error| match error {
        StoreError::NotFound { .. } if matches!(expect, Expect::Revision(_)) => {
            AdminError::PreconditionFailed(format!("instance {id} does not exist"))
        }
        other => AdminError::from(other),
    })?;
    let rev = committed.rev;
    if state.serves(&id, None) {
        wait_visible(&state, rev).await;
    }
    tracing::info!(action = "delete", id = %id, rev = %rev, "instance deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/instances?limit=&after=`
#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(ListQuery),
    responses((status = 200, description = "A page of instances", body = InstanceList),
              (status = 400, description = "Bad query", body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    super::body::QueryParams(query): super::body::QueryParams<ListQuery>,
) -> Result<Json<InstanceList>, AdminError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => {
            text.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| AdminError::BadRequest {
                field: "limit".into(),
                message: format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            })?
        }
    };
    let page = state.store.list(records::INSTANCES, query.after.as_deref(), limit).await?;
    let instances = page.records.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(InstanceList {
        instances: instances.iter().map(|(i, _)| i.to_json()).collect(),
        next_after: page.next_after,
    }))
}

/// Validates a record document, its dialect override blocks included.
pub(super) fn parse(state: &AdminState, doc: &serde_json::Value) -> Result<Instance, AdminError> {
    let instance = Instance::parse(doc, &state.limits).map_err(AdminError::Invalid)?;
    imds_dialects::check_overrides(&instance).map_err(AdminError::Invalid)?;
    Ok(instance)
}

/// The `created_at` of a record written without one: the launch time of the instance it
/// replaces, else now. EC2 serves it as the identity document's `pendingTime`, so an instance
/// keeps the time it was first written across replaces and patches that do not name one.
pub(super) fn launch_time(state: &AdminState, current: Option<&Instance>) -> String {
    current
        .and_then(|current| current.created_at.clone())
        .unwrap_or_else(|| imds_model::time::format_rfc3339(state.credentials.clock().now()))
}

pub(crate) fn parse_id(id: &str) -> Result<InstanceId, AdminError> {
    InstanceId::try_from(id).map_err(|error| invalid("id", &error.to_string()))
}

fn invalid(field: &str, message: &str) -> AdminError {
    AdminError::Invalid(Invalid { errors: vec![FieldError { field: field.into(), message: message.into() }] })
}

async fn read_json(state: &AdminState, body: Body) -> Result<serde_json::Value, AdminError> {
    // Room for a maximal record with its user-data in base64 (4/3) and JSON escaping.
    super::body::read_json(body, state.limits.max_record.saturating_mul(2)).await
}

/// `If-Match: "<rev>"` / `If-Match: *` / `If-None-Match: *` as a store precondition.
fn precondition(headers: &HeaderMap) -> Result<Expect, AdminError> {
    if let Some(value) = headers.get(IF_MATCH) {
        let text = value.to_str().unwrap_or("").trim();
        if text == "*" {
            return Ok(Expect::Present);
        }
        let rev = parse_etag(text).ok_or_else(|| AdminError::BadRequest {
            field: "If-Match".into(),
            message: format!("If-Match must be an ETag this API returned, like \"42\", or *; got {text:?}"),
        })?;
        return Ok(Expect::Revision(rev));
    }
    if let Some(value) = headers.get(IF_NONE_MATCH) {
        if value.to_str().unwrap_or("").trim() == "*" {
            return Ok(Expect::Absent);
        }
        return Err(AdminError::BadRequest {
            field: "If-None-Match".into(),
            message: "only If-None-Match: * is supported".into(),
        });
    }
    Ok(Expect::Any)
}

fn parse_etag(text: &str) -> Option<Revision> {
    let text = text.strip_prefix("W/").unwrap_or(text);
    text.strip_prefix('"')?.strip_suffix('"')?.parse().ok().map(Revision)
}

fn etag(rev: Revision) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{rev}\"")).expect("a decimal number in quotes is a valid header value")
}

pub(crate) async fn load(state: &AdminState, id: &InstanceId) -> Result<(Instance, Revision), AdminError> {
    let record = state.store.get(&records::instance(id)).await?.ok_or_else(|| AdminError::NotFound(id.to_string()))?;
    decode(&record)
}

fn decode(record: &Record) -> Result<(Instance, Revision), AdminError> {
    let instance = records::decode_instance(record).map_err(|error| AdminError::Unavailable(error.to_string()))?;
    Ok((instance, record.rev))
}

/// Writes `instance` under the caller's precondition `expect`, its MMDS document and guest
/// state following it to its node in the same commit, and waits until guests can see it.
pub(super) async fn write(
    state: &AdminState,
    instance: Instance,
    expect: Expect,
) -> Result<(Instance, Written), AdminError> {
    let key = records::instance(&instance.id);
    let id = instance.id.clone();
    let instance = &instance;
    let updated = state
        .view
        .writers()
        .update(id.as_str(), &*state.store, &key, || async {
            Ok(Step::Commit(plan_write(state, instance.clone(), expect, false).await?))
        })
        .await
        .map_err(|error| write_error(error, &id, expect))?;
    Ok(finish_write(state, updated).await)
}

/// The commit writing `instance` with precondition `expect` (guarded: a lost race starts the
/// update over; else the caller's own precondition), plus [`follow_node`]'s moves.
async fn plan_write(
    state: &AdminState,
    instance: Instance,
    expect: Expect,
    guarded: bool,
) -> Result<Plan<Instance>, AdminError> {
    let follow = follow_node(state, &instance, true).await?;
    let key = records::instance(&instance.id);
    let put = Op::Put(Put {
        key,
        node: instance.node.clone(),
        claims: instance.claims(),
        value: instance.to_bytes(),
        expect,
    });
    let plan = Plan::new(instance);
    let plan = if guarded { plan.guarded(put) } else { plan.fixed(put) };
    Ok(plan.guarded_all(follow))
}

/// Waits until guests can read a committed instance write; returns the instance and what was
/// written.
async fn finish_write(state: &AdminState, updated: Updated<Instance>) -> (Instance, Written) {
    let instance = updated.value;
    let committed = updated.committed.expect("an instance write always commits");
    let written = Written { rev: committed.rev, created: committed.before.first().is_some_and(Option::is_none) };
    if state.serves(&instance.id, instance.node.as_deref()) {
        wait_visible(state, written.rev).await;
    }
    (instance, written)
}

/// An instance write's error: a missing instance the caller expected is a failed
/// precondition, not a 404.
fn write_error(error: AdminError, id: &InstanceId, expect: Expect) -> AdminError {
    match error {
        AdminError::NotFound(_) if matches!(expect, Expect::Revision(_) | Expect::Present) => {
            AdminError::PreconditionFailed(format!("instance {id} does not exist"))
        }
        other => other,
    }
}

/// The operations that keep the instance's MMDS record and guest state on the instance's node,
/// committed with the instance's own write (one revision: a guest of either node sees the
/// instance and its documents move together). A record on another node is moved; one already
/// there is checked, so that a concurrent write moving it elsewhere makes this write start
/// over (`check_unmoved`; an import, which does not retry, moves only). Each is guarded by the
/// revision read.
pub(super) async fn follow_node(
    state: &AdminState,
    instance: &Instance,
    check_unmoved: bool,
) -> Result<Vec<Op>, AdminError> {
    let mut ops = Vec::new();
    for key in records::attachments(&instance.id) {
        let Some(record) = state.store.get(&key).await? else { continue };
        let expect = Expect::Revision(record.rev);
        if record.node == instance.node {
            if check_unmoved {
                ops.push(Op::Check { key, expect });
            }
        } else {
            ops.push(Op::Put(Put {
                key,
                node: instance.node.clone(),
                claims: Vec::new(),
                value: record.value,
                expect,
            }));
        }
    }
    Ok(ops)
}

impl AdminState {
    /// Whether this node's guests read the instance `id`, now placed on `node`: it is in this
    /// node's scope, or this node's view holds it (it is moving away or being deleted). Only
    /// then can a write wait for this node's view; the owner of an instance on another node
    /// applies the write from its own feed.
    pub(super) fn serves(&self, id: &InstanceId, node: Option<&str>) -> bool {
        self.scope.contains(node) || self.view.load().get(id).is_some()
    }
}

/// Read-your-writes: answer only once guests can read what was written (bounded wait).
pub(super) async fn wait_visible(state: &AdminState, rev: Revision) {
    state.view.wait_visible(rev, state.write_visibility_timeout).await;
}

fn render(status: StatusCode, instance: &Instance, rev: Revision) -> Response {
    let mut response = (status, Json(instance.to_json())).into_response();
    response.headers_mut().insert(ETAG, etag(rev));
    response
}
