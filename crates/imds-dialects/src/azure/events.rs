//! `/metadata/scheduledevents`: the instance's runtime events as Azure's Scheduled Events
//! document, and guests' approvals (`POST {"StartRequests":[{"EventId":…}]}`).
//!
//! Which events show, and as what: a spot interruption is `Preempt`; scheduled maintenance is
//! `Freeze` (`system-maintenance`), `Reboot` (`instance-reboot`, `system-reboot`), `Redeploy`
//! (`instance-stop`) or `Terminate` (`instance-retirement`); rebalance recommendations and
//! lifecycle states have no Azure counterpart. An event shows from its notice, or earlier to
//! give Azure's minimum notice before `NotBefore` (Freeze and Reboot 15 minutes, Redeploy 10,
//! Terminate 5, Preempt 30 seconds), but never before it was created; it is `Scheduled` until its
//! time or a guest's approval, then `Started` (with an empty `NotBefore`, as Azure sends), and
//! leaves the document when it ends or is canceled. `DocumentIncarnation` counts every change
//! of the document ([`InstanceEvents::incarnation`]), so it grows by one when an event appears,
//! starts or leaves, whether the clock, an approval or the operator made the change.

use http::StatusCode;
use imds_model::event::{EventKind, MaintenanceCode};
use imds_model::{Event, EventId, Instance, InstanceEvents};
use serde_json::{json, Value};

use super::{error, json_ok, wire};
use crate::GuestResponse;

/// The Azure event type an event shows as, with Azure's minimum notice in seconds.
fn azure_type(event: &Event) -> Option<(&'static str, u64)> {
    match event.kind {
        EventKind::SpotInterruption { .. } => Some(("Preempt", 30)),
        EventKind::ScheduledMaintenance { code } => Some(match code {
            MaintenanceCode::SystemMaintenance => ("Freeze", 15 * 60),
            MaintenanceCode::InstanceReboot | MaintenanceCode::SystemReboot => ("Reboot", 15 * 60),
            MaintenanceCode::InstanceStop => ("Redeploy", 10 * 60),
            MaintenanceCode::InstanceRetirement => ("Terminate", 5 * 60),
        }),
        EventKind::RebalanceRecommendation | EventKind::TargetLifecycleState { .. } => None,
    }
}

/// When the event appears in the document (`u64::MAX`: never).
fn appear(event: &Event) -> u64 {
    match azure_type(event) {
        Some((_, notice)) => event.notice_at.min(event.not_before.saturating_sub(notice)).max(event.created_at),
        None => u64::MAX,
    }
}

/// The `EventId` Azure's document gives `event`: a GUID, as Azure's are, derived from the event's
/// own id (the UUIDv5 of `imds:event/<id>` in the URL name space), so every node shows the same.
fn azure_event_id(event: &Event) -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("imds:event/{}", event.id.as_str()).as_bytes())
}

/// The events shown at `now`.
fn shown(events: Option<&InstanceEvents>, now: u64) -> impl Iterator<Item = &Event> {
    events.into_iter().flat_map(|events| events.events.iter()).filter(move |event| {
        now >= appear(event) && event.end().is_none_or(|end| now < end) && event.canceled_at.is_none()
    })
}

/// `GET`: the document at `now`, with the fields API version `version` has.
pub(super) fn document(instance: &Instance, events: Option<&InstanceEvents>, version: &str, now: u64) -> GuestResponse {
    let resource = instance.name.as_deref().or(instance.hostname.as_deref()).unwrap_or(instance.id.as_str());
    let listed: Vec<Value> = shown(events, now)
        .filter_map(|event| {
            let (kind, _) = azure_type(event)?;
            // Preempt arrived with 2017-11-01; older documents do not show spot evictions.
            if kind == "Preempt" && version < "2017-11-01" {
                return None;
            }
            let started = now >= event.start();
            let mut object = json!({
                "EventId": azure_event_id(event).to_string(),
                "EventStatus": if started { "Started" } else { "Scheduled" },
                "EventType": kind,
                "ResourceType": "VirtualMachine",
                "Resources": [resource],
                "NotBefore": if started { String::new() } else { imds_model::time::format_rfc1123(event.not_before) },
            });
            let description = event.description.clone().unwrap_or_default();
            object["Description"] = description.into();
            if version >= "2019-08-01" {
                object["EventSource"] = "Platform".into();
            }
            if version >= "2020-07-01" {
                let duration = event.not_after.map_or(-1, |end| i64::try_from(end - event.not_before).unwrap_or(-1));
                object["DurationInSeconds"] = duration.into();
            }
            Some(object)
        })
        .collect();
    let incarnation = events.map_or(0, |events| events.incarnation(now, appear));
    json_ok(&json!({"DocumentIncarnation": incarnation, "Events": listed}))
}

/// `POST`: a guest starts the events it names; every id must be an event the document shows
/// now, else Azure's `400` and nothing is started.
pub(super) fn start(events: Option<&InstanceEvents>, body: &[u8], now: u64) -> GuestResponse {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, wire::BODY_NOT_OBJECT);
    };
    let requests = match object.get("StartRequests") {
        None => return GuestResponse::new(StatusCode::OK, wire::JSON, ""),
        Some(Value::Array(requests)) => requests,
        Some(_) => return error(StatusCode::BAD_REQUEST, wire::BAD_START_REQUEST),
    };
    let mut ids = Vec::new();
    for request in requests {
        let Some(text) = request.get("EventId").and_then(Value::as_str) else {
            return error(StatusCode::BAD_REQUEST, wire::BAD_START_REQUEST);
        };
        // The GUID the document shows; the event's own id (as the admin API names it) too.
        let guid = uuid::Uuid::parse_str(text).ok();
        let own = EventId::try_from(text).ok();
        let known = shown(events, now).find(|event| {
            azure_type(event).is_some()
                && (guid.is_some_and(|guid| guid == azure_event_id(event)) || own.as_ref() == Some(&event.id))
        });
        match known {
            Some(event) => ids.push(event.id.clone()),
            None => return error(StatusCode::BAD_REQUEST, wire::UNKNOWN_EVENT),
        }
    }
    GuestResponse::new(StatusCode::OK, wire::JSON, "").with_start_events(ids)
}
