//! The `meta-data/` leaves an instance's runtime events put up at one moment (module doc of
//! [`imds_model::event`]): spot notices, rebalance recommendations, scheduled maintenance, the
//! Auto Scaling target lifecycle state and the instance's life cycle. Pure: the caller passes
//! the time.
//!
//! Bodies, as EC2 sends them and aws-node-termination-handler reads them:
//! - `spot/instance-action`: `{"action": "terminate", "time": "2017-09-18T08:22:00Z"}` from the
//!   notice until the event ends or is canceled, the earliest pending interruption when there
//!   are several; `spot/termination-time`: the bare time, for `terminate` only.
//! - `events/recommendations/rebalance`: `{"noticeTime": "…Z"}` from the event's time on.
//! - `events/maintenance/scheduled` and `history`: a pretty-printed JSON array (AWS's
//!   `" : "` layout) of `NotBefore`, `Code`, `Description`, `EventId`, `NotAfter`, `State`,
//!   times as `21 Jan 2019 09:00:43 GMT`; pending and active events are `scheduled` with
//!   `State` `active`, completed and canceled ones are `history` with `State` `completed` or
//!   `canceled` and the description prefixed `[Completed] ` or `[Canceled] `.
//! - `autoscaling/target-lifecycle-state`: the state of the latest lifecycle event in effect.
//! - `instance-life-cycle`: `spot` once the instance has a spot interruption.

use imds_model::event::{EventKind, EventState, MaintenanceCode};
use imds_model::{Event, InstanceEvents};

/// `(path under meta-data/, body)` for every leaf the events set at `now`.
pub(crate) fn leaves(events: &InstanceEvents, now: u64) -> Vec<(&'static str, String)> {
    let mut leaves = Vec::new();
    let live: Vec<&Event> = events.events.iter().filter(|event| event.live_at(now)).collect();
    if let Some((time, action)) = events.spot_interruption(now) {
        let time = imds_model::time::format_rfc3339(time);
        leaves.push(("spot/instance-action", format!("{{\"action\": \"{}\", \"time\": \"{time}\"}}", action.as_str())));
        if action == imds_model::event::SpotAction::Terminate {
            leaves.push(("spot/termination-time", time));
        }
    }
    let rebalance = live
        .iter()
        .filter(|event| event.kind == EventKind::RebalanceRecommendation && now >= event.not_before)
        .map(|event| event.not_before)
        .min();
    if let Some(time) = rebalance {
        let time = imds_model::time::format_rfc3339(time);
        leaves.push(("events/recommendations/rebalance", format!("{{\"noticeTime\": \"{time}\"}}")));
    }
    let maintenance: Vec<(&Event, MaintenanceCode)> = events
        .events
        .iter()
        .filter(|event| now >= event.notice_at)
        .filter_map(|event| match event.kind {
            EventKind::ScheduledMaintenance { code } => Some((event, code)),
            _ => None,
        })
        .collect();
    if !maintenance.is_empty() {
        let (history, scheduled): (Vec<_>, Vec<_>) = maintenance
            .into_iter()
            .partition(|(event, _)| matches!(event.state_at(now), EventState::Completed | EventState::Canceled));
        leaves.push(("events/maintenance/scheduled", render_maintenance(&scheduled, now)));
        leaves.push(("events/maintenance/history", render_maintenance(&history, now)));
    }
    let lifecycle = events
        .events
        .iter()
        .filter(|event| event.state_at(now) == EventState::Active)
        .filter_map(|event| match event.kind {
            EventKind::TargetLifecycleState { lifecycle_state } => Some((event.start(), lifecycle_state)),
            _ => None,
        })
        .max_by_key(|(time, _)| *time);
    if let Some((_, state)) = lifecycle {
        leaves.push(("autoscaling/target-lifecycle-state", state.as_str().to_owned()));
    }
    if events.events.iter().any(|event| matches!(event.kind, EventKind::SpotInterruption { .. })) {
        leaves.push(("instance-life-cycle", "spot".to_owned()));
    }
    leaves
}

/// The JSON array of scheduled or past maintenance events, in AWS's layout.
fn render_maintenance(events: &[(&Event, MaintenanceCode)], now: u64) -> String {
    if events.is_empty() {
        return super::wire::NO_EVENTS.to_owned();
    }
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let objects: Vec<String> = events
        .iter()
        .map(|&(event, code)| {
            let state = match event.state_at(now) {
                EventState::Completed => "completed",
                EventState::Canceled => "canceled",
                EventState::Scheduled | EventState::Active => "active",
            };
            let prefix = match state {
                "completed" => "[Completed] ",
                "canceled" => "[Canceled] ",
                _ => "",
            };
            let description = format!("{prefix}{}", event.description.as_deref().unwrap_or(default_description(code)));
            let mut fields = vec![
                ("NotBefore", quote(&imds_model::time::format_ec2_event(event.not_before))),
                ("Code", quote(code.as_str())),
                ("Description", quote(&description)),
                ("EventId", quote(event.id.as_str())),
            ];
            if let Some(end) = event.not_after {
                fields.push(("NotAfter", quote(&imds_model::time::format_ec2_event(end))));
            }
            fields.push(("State", quote(state)));
            let body: Vec<String> = fields.iter().map(|(key, value)| format!("  \"{key}\" : {value}")).collect();
            format!("{{\n{}\n}}", body.join(",\n"))
        })
        .collect();
    format!("[ {} ]", objects.join(", "))
}

/// EC2's wording when the operator gave none.
fn default_description(code: MaintenanceCode) -> &'static str {
    match code {
        MaintenanceCode::InstanceReboot => "scheduled reboot",
        MaintenanceCode::SystemReboot => "scheduled reboot",
        MaintenanceCode::SystemMaintenance => "scheduled system maintenance",
        MaintenanceCode::InstanceRetirement => "The instance is running on degraded hardware",
        MaintenanceCode::InstanceStop => "The instance is running on degraded hardware",
    }
}
