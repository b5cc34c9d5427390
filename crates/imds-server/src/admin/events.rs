//! Runtime events: `POST|GET /v1/instances/{id}/events`, `POST|GET /v1/events` (selectors,
//! listing by state), `GET|DELETE /v1/events/{event_id}` (DELETE cancels).
//!
//! An event request is parsed whole by [`EventSpec::parse`] (every problem named by field,
//! nothing written). Creating events reads each target instance and its event list and commits
//! every new event, with a check that each instance is still where it was read, in ONE commit:
//! a selector creates its events on all matching instances or on none. The event list follows
//! its instance (placed on its node, moved and deleted with it: `records::attachments`).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use imds_model::event::EventSpec;
use imds_model::{EventId, EventState, Instance, InstanceEvents, InstanceId};
use imds_store::update::{update, Plan, Step};
use imds_store::{Expect, Op, Put, Record, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::{Param, QueryParams};
use super::error::AdminError;
use super::AdminState;
use crate::records;

pub mod schema;

/// The largest event request body.
const MAX_BODY: usize = 64 * 1024;

/// A list of events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// The events, by `not_before`, then id.
    #[schema(value_type = Vec<schema::EventSchema>)]
    pub events: Vec<Value>,
}

/// Query parameters of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// Only events in this state now: `scheduled`, `active`, `completed` or `canceled`.
    pub state: Option<String>,
}

/// `POST /v1/instances/{id}/events`
#[utoipa::path(post, path = "/v1/instances/{id}/events", tag = "events",
    params(("id" = String, Path, description = "Instance id")),
    request_body(content = schema::EventRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = schema::EventSchema),
        (status = 400, description = "Invalid request; nothing written", body = super::error::ErrorBody),
        (status = 404, description = "No such instance", body = super::error::ErrorBody),
        (status = 409, description = "The instance has too many pending events", body = super::error::ErrorBody),
        (status = 413, description = "Body too large", body = super::error::ErrorBody)))]
pub async fn add(State(state): State<AdminState>, Param(id): Param, body: Body) -> Result<Response, AdminError> {
    let id = super::instances::parse_id(&id)?;
    let doc = super::body::read_json(body, MAX_BODY).await?;
    let now = state.credentials.clock().now();
    let spec = EventSpec::parse(&doc, now, &[]).map_err(AdminError::InvalidEvent)?;
    let mut created = create(&state, vec![id], spec, now, true).await?;
    let (id, event) = created.pop().expect("one instance, one event");
    Ok((StatusCode::CREATED, Json(event.to_json(id.as_str(), now))).into_response())
}

/// `POST /v1/events`
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = schema::SelectorRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "One event per instance the selector matched (possibly none)", body = EventList),
        (status = 400, description = "Invalid request; nothing written", body = super::error::ErrorBody),
        (status = 404, description = "A listed instance does not exist", body = super::error::ErrorBody),
        (status = 409, description = "An instance has too many pending events", body = super::error::ErrorBody),
        (status = 413, description = "Body too large", body = super::error::ErrorBody)))]
pub async fn add_selected(State(state): State<AdminState>, body: Body) -> Result<Response, AdminError> {
    let doc = super::body::read_json(body, MAX_BODY).await?;
    let now = state.credentials.clock().now();
    let selector = Selector::parse(&doc);
    let spec = EventSpec::parse(&doc, now, &["selector", "instances"]);
    let (selector, spec) = match (selector, spec) {
        (Ok(selector), Ok(spec)) => (selector, spec),
        (selector, spec) => {
            let mut errors = selector.err().map(|e| e.errors).unwrap_or_default();
            errors.extend(spec.err().map(|e| e.errors).unwrap_or_default());
            return Err(AdminError::InvalidEvent(imds_model::Invalid { errors }));
        }
    };
    let (ids, must_exist) = match selector {
        Selector::Ids(ids) => (ids, true),
        other => (matching(&state, &other).await?, false),
    };
    let limit = state.store.max_batch() / 2;
    if ids.len() > limit {
        return Err(AdminError::BadRequest {
            field: "selector".into(),
            message: format!("the selector matches {} instances; at most {limit} at once", ids.len()),
        });
    }
    let created = if ids.is_empty() { Vec::new() } else { create(&state, ids, spec, now, must_exist).await? };
    let events = created.iter().map(|(id, event)| event.to_json(id.as_str(), now)).collect();
    Ok((StatusCode::CREATED, Json(EventList { events })).into_response())
}

/// `GET /v1/instances/{id}/events`
#[utoipa::path(get, path = "/v1/instances/{id}/events", tag = "events",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 200, description = "The instance's events", body = EventList),
              (status = 404, description = "No such instance", body = super::error::ErrorBody)))]
pub async fn list_instance(State(state): State<AdminState>, Param(id): Param) -> Result<Json<EventList>, AdminError> {
    let id = super::instances::parse_id(&id)?;
    super::instances::load(&state, &id).await?;
    let now = state.credentials.clock().now();
    let list = match state.store.get(&records::events(&id)).await? {
        Some(record) => decode(&record)?,
        None => InstanceEvents::default(),
    };
    Ok(Json(render_list(list.events.iter().map(|event| (&id, event)), now, None)))
}

/// `GET /v1/events?state=`
#[utoipa::path(get, path = "/v1/events", tag = "events", params(StateQuery),
    responses((status = 200, description = "Every event (in the state asked for)", body = EventList),
              (status = 400, description = "Unknown state", body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    QueryParams(query): QueryParams<StateQuery>,
) -> Result<Json<EventList>, AdminError> {
    let wanted = match query.state.as_deref() {
        None => None,
        Some(text) => Some(EventState::parse(text).ok_or_else(|| AdminError::BadRequest {
            field: "state".into(),
            message: format!("unknown state {text:?}: one of {}", EventState::names()),
        })?),
    };
    let now = state.credentials.clock().now();
    if matches!(state.scope, Scope::All) {
        // This node's view holds every instance's events: no store scan.
        let snapshot = state.view.load();
        let all = snapshot.all_events().flat_map(|events| events.list.events.iter().map(move |e| (&events.id, e)));
        return Ok(Json(render_list(all, now, wanted)));
    }
    let lists = scan(&state).await?;
    let all = lists.iter().flat_map(|(id, list)| list.events.iter().map(move |e| (id, e)));
    Ok(Json(render_list(all, now, wanted)))
}

/// `GET /v1/events/{event_id}`
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path, description = "Event id (`instance-event-…`)")),
    responses((status = 200, description = "The event", body = schema::EventSchema),
              (status = 400, description = "Not an event id", body = super::error::ErrorBody),
              (status = 404, description = "No such event", body = super::error::ErrorBody)))]
pub async fn get(State(state): State<AdminState>, Param(event_id): Param) -> Result<Json<Value>, AdminError> {
    let event_id = parse_event_id(&event_id)?;
    let (id, list) = locate(&state, &event_id).await?;
    let now = state.credentials.clock().now();
    let event = list.get(&event_id).ok_or_else(|| AdminError::EventNotFound(event_id.to_string()))?;
    Ok(Json(event.to_json(id.as_str(), now)))
}

/// `DELETE /v1/events/{event_id}`: cancels the event (it stays, `canceled`, for the history).
#[utoipa::path(delete, path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path, description = "Event id (`instance-event-…`)")),
    responses((status = 200, description = "Canceled", body = schema::EventSchema),
              (status = 400, description = "Not an event id", body = super::error::ErrorBody),
              (status = 404, description = "No such event", body = super::error::ErrorBody),
              (status = 409, description = "The event is already over", body = super::error::ErrorBody)))]
pub async fn cancel(State(state): State<AdminState>, Param(event_id): Param) -> Result<Json<Value>, AdminError> {
    let event_id = parse_event_id(&event_id)?;
    let (id, _) = locate(&state, &event_id).await?;
    let now = state.credentials.clock().now();
    let modified =
        crate::events::modify(&state.store, state.view.writers(), &id, Vec::new, |list: &mut InstanceEvents| {
            let event = list
                .events
                .iter_mut()
                .find(|event| event.id == event_id)
                .ok_or_else(|| AdminError::EventNotFound(event_id.to_string()))?;
            match event.state_at(now) {
                EventState::Scheduled | EventState::Active => event.canceled_at = Some(now),
                over => {
                    return Err(AdminError::EventConflict {
                        field: "event_id".into(),
                        message: format!("event {event_id} is already {}", over.as_str()),
                    })
                }
            }
            list.settle(now);
            let event = list.get(&event_id).cloned().expect("just found");
            Ok((true, event))
        })
        .await?;
    let event = match modified {
        crate::events::Modified::Written(rev, event) => {
            if state.serves(&id, None) {
                super::instances::wait_visible(&state, rev).await;
            }
            event
        }
        crate::events::Modified::Unchanged(event) => event,
    };
    tracing::info!(action = "cancel", %id, event = %event_id, "event canceled");
    Ok(Json(event.to_json(id.as_str(), now)))
}

/// Which instances a `POST /v1/events` targets.
enum Selector {
    /// Instances with tag `key` = `value`.
    Tag(String, String),
    /// Instances placed on node `n`.
    Node(String),
    /// These instances (each must exist).
    Ids(Vec<InstanceId>),
}

impl Selector {
    fn parse(doc: &Value) -> Result<Self, imds_model::Invalid> {
        let invalid = |field: &str, message: &str| imds_model::Invalid::one(field, message);
        match (doc.get("selector"), doc.get("instances")) {
            (Some(_), Some(_)) => Err(invalid("selector", "give selector or instances, not both")),
            (None, None) => {
                Err(invalid("selector", "required: `tag:KEY=VALUE` or `node:NAME` (or an `instances` list)"))
            }
            (Some(Value::String(text)), None) => {
                if let Some(tag) = text.strip_prefix("tag:") {
                    match tag.split_once('=') {
                        Some((key, value)) if !key.is_empty() => Ok(Selector::Tag(key.to_owned(), value.to_owned())),
                        _ => Err(invalid("selector", "a tag selector is `tag:KEY=VALUE`")),
                    }
                } else if let Some(node) = text.strip_prefix("node:").filter(|node| !node.is_empty()) {
                    Ok(Selector::Node(node.to_owned()))
                } else {
                    Err(invalid("selector", "a selector is `tag:KEY=VALUE` or `node:NAME`"))
                }
            }
            (Some(_), None) => Err(invalid("selector", "must be a string")),
            (None, Some(Value::Array(items))) if !items.is_empty() => {
                let mut ids = Vec::new();
                let mut errors = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    match item.as_str().map(InstanceId::try_from) {
                        Some(Ok(id)) if !ids.contains(&id) => ids.push(id),
                        Some(Ok(id)) => errors.push(imds_model::FieldError::new(
                            format!("instances[{index}]"),
                            format!("instance {id} is listed twice"),
                        )),
                        Some(Err(error)) => {
                            errors.push(imds_model::FieldError::new(format!("instances[{index}]"), error.to_string()))
                        }
                        None => {
                            errors.push(imds_model::FieldError::new(format!("instances[{index}]"), "must be a string"))
                        }
                    }
                }
                if errors.is_empty() {
                    Ok(Selector::Ids(ids))
                } else {
                    Err(imds_model::Invalid { errors })
                }
            }
            (None, Some(_)) => Err(invalid("instances", "must be a non-empty list of instance ids")),
        }
    }

    fn matches(&self, instance: &Instance) -> bool {
        match self {
            Selector::Tag(key, value) => instance.tags.get(key) == Some(value),
            Selector::Node(node) => instance.node.as_deref() == Some(node.as_str()),
            Selector::Ids(ids) => ids.contains(&instance.id),
        }
    }
}

/// The instances a tag or node selector matches now (read from the store, page by page).
async fn matching(state: &AdminState, selector: &Selector) -> Result<Vec<InstanceId>, AdminError> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.store.list(records::INSTANCES, after.as_deref(), 1000).await?;
        for record in &page.records {
            let instance =
                records::decode_instance(record).map_err(|error| AdminError::Unavailable(error.to_string()))?;
            if selector.matches(&instance) {
                ids.push(instance.id);
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(ids),
        }
    }
}

/// Creates one event from `spec` on every instance of `ids`, in one commit. An instance that
/// no longer exists is a 404 when `must_exist`, else skipped.
async fn create(
    state: &AdminState,
    ids: Vec<InstanceId>,
    spec: EventSpec,
    now: u64,
    must_exist: bool,
) -> Result<Vec<(InstanceId, imds_model::Event)>, AdminError> {
    // Ids are drawn once, so that a retried attempt creates the same events.
    let events: Vec<(InstanceId, imds_model::Event)> =
        ids.into_iter().map(|id| (id, spec.clone().into_event(crate::events::random_id(), now))).collect();
    let events = &events;
    let first = records::events(&events[0].0);
    let updated = update(&*state.store, &first, || async move {
        let mut plan_ops = Vec::new();
        let mut created = Vec::new();
        for (id, event) in events {
            let Some(instance_record) = state.store.get(&records::instance(id)).await? else {
                if must_exist {
                    return Err(AdminError::NotFound(id.to_string()));
                }
                continue;
            };
            let key = records::events(id);
            let (mut list, expect) = match state.store.get(&key).await? {
                Some(record) => (decode(&record)?, Expect::Revision(record.rev)),
                None => (InstanceEvents::default(), Expect::Absent),
            };
            if !list.push(event.clone(), now) {
                return Err(AdminError::EventConflict {
                    field: "kind".into(),
                    message: format!(
                        "instance {id} has {} events pending or in effect; cancel some first",
                        imds_model::event::MAX_EVENTS
                    ),
                });
            }
            list.settle(now);
            plan_ops.push(Op::Put(Put {
                key,
                node: instance_record.node.clone(),
                claims: Vec::new(),
                value: list.to_bytes(),
                expect,
            }));
            // The instance must still be there, on that node, when the events land.
            plan_ops.push(records::instance_unchanged(id, instance_record.rev));
            created.push((id.clone(), instance_record.node.clone(), event.clone()));
        }
        if created.is_empty() {
            return Ok(Step::Done(created));
        }
        Ok(Step::Commit(Plan::new(created).guarded_all(plan_ops)))
    })
    .await?;
    let created = updated.value;
    if let Some(committed) = updated.committed {
        if created.iter().any(|(id, node, _)| state.serves(id, node.as_deref())) {
            super::instances::wait_visible(state, committed.rev).await;
        }
        for (id, _, event) in &created {
            tracing::info!(action = "add", %id, event = %event.id, kind = event.kind.name().as_str(), rev = %committed.rev, "event created");
        }
    }
    Ok(created.into_iter().map(|(id, _, event)| (id, event)).collect())
}

/// The instance that holds event `event_id`, and its current list (read from the store).
async fn locate(state: &AdminState, event_id: &EventId) -> Result<(InstanceId, InstanceEvents), AdminError> {
    let owner = state.view.load().event_owner(event_id).cloned();
    if let Some(id) = owner {
        if let Some(record) = state.store.get(&records::events(&id)).await? {
            let list = decode(&record)?;
            if list.get(event_id).is_some() {
                return Ok((id, list));
            }
        }
    }
    if !matches!(state.scope, Scope::All) {
        // This node's view holds only its own instances' events: look at everyone's.
        for (id, list) in scan(state).await? {
            if list.get(event_id).is_some() {
                return Ok((id, list));
            }
        }
    }
    Err(AdminError::EventNotFound(event_id.to_string()))
}

/// Every instance's event list, from the store.
async fn scan(state: &AdminState) -> Result<Vec<(InstanceId, InstanceEvents)>, AdminError> {
    let mut lists = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.store.list(records::EVENTS, after.as_deref(), 1000).await?;
        for record in &page.records {
            let Ok(id) = InstanceId::try_from(record.key.id.as_str()) else { continue };
            lists.push((id, decode(record)?));
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(lists),
        }
    }
}

fn decode(record: &Record) -> Result<InstanceEvents, AdminError> {
    records::decode_events(record).map_err(|error| AdminError::Unavailable(error.to_string()))
}

fn parse_event_id(text: &str) -> Result<EventId, AdminError> {
    EventId::try_from(text).map_err(|message| AdminError::BadRequest { field: "event_id".into(), message })
}

fn render_list<'a>(
    events: impl Iterator<Item = (&'a InstanceId, &'a imds_model::Event)>,
    now: u64,
    wanted: Option<EventState>,
) -> EventList {
    let mut events: Vec<_> =
        events.filter(|(_, event)| wanted.is_none_or(|state| event.state_at(now) == state)).collect();
    events.sort_by(|a, b| (a.1.not_before, &a.1.id).cmp(&(b.1.not_before, &b.1.id)));
    EventList { events: events.into_iter().map(|(id, event)| event.to_json(id.as_str(), now)).collect() }
}
