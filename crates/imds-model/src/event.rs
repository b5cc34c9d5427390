//! Runtime events: spot interruptions, rebalance recommendations, scheduled maintenance and
//! Auto Scaling lifecycle changes, one list per instance ([`InstanceEvents`], its own record).
//!
//! An [`Event`] has a kind ([`EventKind`]), the time it becomes visible to guests
//! (`notice_at`), the time it takes effect (`not_before`), an optional end (`not_after`), and
//! a state ([`EventState`]). The state is a function of the event and the time
//! ([`Event::state_at`]): `scheduled` until `not_before` (or until a guest approves it early,
//! `started_at`), `active` until `not_after`, then `completed`; `canceled` once canceled. The
//! stored `state` is what the server last wrote; readers never trust it over the clock, so
//! guests see the right thing at the very second even before the state-change write lands.
//!
//! Admin requests are parsed by [`EventSpec::parse`], which reports every problem with its
//! field path, like [`crate::Instance::parse`]. No clock here: callers pass `now`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{FieldError, Invalid};

/// The most events one instance keeps; the oldest finished ones are retired to make room.
pub const MAX_EVENTS: usize = 32;
/// How long before a spot interruption guests see its notice by default (AWS: two minutes).
pub const SPOT_NOTICE_SECS: u64 = 120;
/// The longest `description` accepted, in bytes.
pub const MAX_DESCRIPTION: usize = 1024;
/// The furthest in the future an event may be scheduled (a year), in seconds.
pub const MAX_AHEAD_SECS: u64 = 366 * 24 * 3600;

/// An event id: `instance-event-` and 17 lower-case hex digits, as EC2 names its events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

/// The prefix of every event id.
pub const EVENT_ID_PREFIX: &str = "instance-event-";

impl EventId {
    /// The id whose hex part is the low 68 bits of `random` (17 hex digits).
    pub fn from_random(random: u128) -> Self {
        Self(format!("{EVENT_ID_PREFIX}{:017x}", random & ((1u128 << 68) - 1)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for EventId {
    type Error = String;
    fn try_from(text: &str) -> Result<Self, String> {
        let hex = text.strip_prefix(EVENT_ID_PREFIX).unwrap_or_default();
        if hex.len() == 17 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!("an event id is {EVENT_ID_PREFIX} and 17 lower-case hex digits"))
        }
    }
}

impl TryFrom<String> for EventId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::try_from(text.as_str())
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value with wire name `text`.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }

            /// Every wire name, comma separated (for error messages).
            pub fn names() -> String {
                Self::ALL.iter().map(|value| value.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

wire_enum!(
    /// What a spot interruption does to the instance (EC2's `action`).
    SpotAction {
        /// The instance is terminated.
        Terminate = "terminate",
        /// The instance is stopped.
        Stop = "stop",
        /// The instance is hibernated.
        Hibernate = "hibernate",
    }
);

wire_enum!(
    /// EC2's scheduled-event codes.
    MaintenanceCode {
        /// The instance is rebooted.
        InstanceReboot = "instance-reboot",
        /// The host is rebooted.
        SystemReboot = "system-reboot",
        /// The host is maintained (network or power); the instance may be paused.
        SystemMaintenance = "system-maintenance",
        /// The instance is retired (stopped or terminated for good).
        InstanceRetirement = "instance-retirement",
        /// The instance is stopped.
        InstanceStop = "instance-stop",
    }
);

wire_enum!(
    /// Auto Scaling target lifecycle states (`autoscaling/target-lifecycle-state`).
    LifecycleState {
        /// In service.
        InService = "InService",
        /// Being terminated.
        Terminated = "Terminated",
        /// Moving to a stopped warm pool.
        WarmedStopped = "Warmed:Stopped",
        /// Moving to a running warm pool.
        WarmedRunning = "Warmed:Running",
        /// Moving to a hibernated warm pool.
        WarmedHibernated = "Warmed:Hibernated",
        /// Warm pool instance being terminated.
        WarmedTerminated = "Warmed:Terminated",
    }
);

wire_enum!(
    /// Where an event is in its life.
    EventState {
        /// Visible or not yet, not in effect.
        Scheduled = "scheduled",
        /// In effect (its time came, or a guest started it early).
        Active = "active",
        /// Over.
        Completed = "completed",
        /// Canceled by the operator.
        Canceled = "canceled",
    }
);

wire_enum!(
    /// The kinds of event, by their admin-API names.
    KindName {
        /// A spot interruption.
        SpotInterruption = "spot-interruption",
        /// An EC2 rebalance recommendation.
        RebalanceRecommendation = "rebalance-recommendation",
        /// Scheduled maintenance.
        ScheduledMaintenance = "scheduled-maintenance",
        /// An Auto Scaling target lifecycle state change.
        TargetLifecycleState = "target-lifecycle-state",
    }
);

/// An event's kind and the detail that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// A spot interruption.
    SpotInterruption {
        /// What happens at the time.
        action: SpotAction,
    },
    /// A rebalance recommendation (visible from its time on).
    RebalanceRecommendation,
    /// Scheduled maintenance.
    ScheduledMaintenance {
        /// EC2's event code.
        code: MaintenanceCode,
    },
    /// The Auto Scaling group's target lifecycle state for the instance, from its time on.
    TargetLifecycleState {
        /// The state.
        lifecycle_state: LifecycleState,
    },
}

impl EventKind {
    /// The admin-API name of the kind.
    pub fn name(&self) -> KindName {
        match self {
            EventKind::SpotInterruption { .. } => KindName::SpotInterruption,
            EventKind::RebalanceRecommendation => KindName::RebalanceRecommendation,
            EventKind::ScheduledMaintenance { .. } => KindName::ScheduledMaintenance,
            EventKind::TargetLifecycleState { .. } => KindName::TargetLifecycleState,
        }
    }
}

/// One event of one instance. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique over the deployment.
    pub id: EventId,
    /// What it is.
    #[serde(flatten)]
    pub kind: EventKind,
    /// From when guests see it.
    pub notice_at: u64,
    /// When it takes effect.
    pub not_before: u64,
    /// When it is over, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
    /// The operator's description (EC2 `Description`, Azure `Description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub created_at: u64,
    /// When a guest started it early (Azure's approval), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// When the operator canceled it, if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled_at: Option<u64>,
    /// The state the server last wrote (see [`Event::state_at`] for the true one).
    pub state: EventState,
}

impl Event {
    /// The event's state at `now`.
    pub fn state_at(&self, now: u64) -> EventState {
        if self.canceled_at.is_some() {
            EventState::Canceled
        } else if self.state == EventState::Completed || self.not_after.is_some_and(|end| now >= end) {
            EventState::Completed
        } else if now >= self.start() {
            EventState::Active
        } else {
            EventState::Scheduled
        }
    }

    /// When it took or takes effect: `not_before`, or earlier when a guest started it.
    pub fn start(&self) -> u64 {
        self.started_at.map_or(self.not_before, |started| started.min(self.not_before))
    }

    /// When it stops being shown as pending or in effect: its end or its cancellation.
    pub fn end(&self) -> Option<u64> {
        match (self.not_after, self.canceled_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether guests see it as pending or in effect at `now` (noticed, not over).
    pub fn live_at(&self, now: u64) -> bool {
        now >= self.notice_at && matches!(self.state_at(now), EventState::Scheduled | EventState::Active)
    }

    /// The first time after `now` at which what guests see of it changes.
    pub fn next_change(&self, now: u64) -> Option<u64> {
        if self.canceled_at.is_some() || self.state == EventState::Completed {
            return None;
        }
        [Some(self.notice_at), Some(self.start()), self.not_after].into_iter().flatten().filter(|t| *t > now).min()
    }

    /// How many times this event's status in a list that shows it from `appear` on (hidden,
    /// then scheduled, then started, then hidden again at its end) changed up to `now`: what
    /// Azure's `DocumentIncarnation` counts. Times are whole seconds, so changes within one
    /// second each count: it appeared if it was not over before it appeared; it started (as a
    /// change of its own) if a guest started it, or its time came after it appeared, before
    /// its end; it left at its end if it had appeared.
    pub fn changes_until(&self, appear: u64, now: u64) -> u64 {
        let end = self.end().unwrap_or(u64::MAX);
        let appeared = now >= appear && appear <= end;
        let start = self.start();
        let started = appeared && now >= start && start <= end && (start > appear || self.started_at.is_some());
        let ended = appeared && now >= end;
        u64::from(appeared) + u64::from(started) + u64::from(ended)
    }

    /// The admin API's JSON form, its state and times as of `now`.
    pub fn to_json(&self, instance: &str, now: u64) -> Value {
        let time = |t: u64| Value::String(crate::time::format_rfc3339(t));
        let mut out = Map::new();
        out.insert("id".into(), self.id.as_str().into());
        out.insert("instance".into(), instance.into());
        out.insert("kind".into(), self.kind.name().as_str().into());
        match self.kind {
            EventKind::SpotInterruption { action } => {
                out.insert("action".into(), action.as_str().into());
            }
            EventKind::ScheduledMaintenance { code } => {
                out.insert("code".into(), code.as_str().into());
            }
            EventKind::TargetLifecycleState { lifecycle_state } => {
                out.insert("lifecycle_state".into(), lifecycle_state.as_str().into());
            }
            EventKind::RebalanceRecommendation => {}
        }
        out.insert("state".into(), self.state_at(now).as_str().into());
        out.insert("notice_at".into(), time(self.notice_at));
        out.insert("not_before".into(), time(self.not_before));
        if let Some(end) = self.not_after {
            out.insert("not_after".into(), time(end));
        }
        if let Some(description) = &self.description {
            out.insert("description".into(), description.clone().into());
        }
        out.insert("created_at".into(), time(self.created_at));
        if let Some(started) = self.started_at {
            out.insert("started_at".into(), time(started));
        }
        if let Some(canceled) = self.canceled_at {
            out.insert("canceled_at".into(), time(canceled));
        }
        Value::Object(out)
    }
}

/// Every event of one instance (collection `events`, keyed by instance id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEvents {
    /// The events, in creation order.
    pub events: Vec<Event>,
    /// The status changes of events retired to make room, so that counts over the list
    /// ([`InstanceEvents::incarnation`]) never go back.
    #[serde(default)]
    pub retired_changes: u64,
}

impl InstanceEvents {
    /// Decodes the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Invalid> {
        serde_json::from_slice(bytes).map_err(|error| Invalid::one("", format!("corrupt event list: {error}")))
    }

    /// The stored form: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event list always serializes")
    }

    /// The event with id `id`.
    pub fn get(&self, id: &EventId) -> Option<&Event> {
        self.events.iter().find(|event| &event.id == id)
    }

    /// The spot interruption guests see at `now`: the earliest pending or in-effect one that is
    /// noticed, as `(not_before, action)`. Every dialect's spot leaves show this one.
    pub fn spot_interruption(&self, now: u64) -> Option<(u64, SpotAction)> {
        self.events
            .iter()
            .filter(|event| event.live_at(now))
            .filter_map(|event| match event.kind {
                EventKind::SpotInterruption { action } => Some((event.not_before, action)),
                _ => None,
            })
            .min_by_key(|(time, _)| *time)
    }

    /// The first time after `now` at which what guests see of any event changes.
    pub fn next_change(&self, now: u64) -> Option<u64> {
        self.events.iter().filter_map(|event| event.next_change(now)).min()
    }

    /// A count that grows by one on every change, up to `now`, of a list that shows each event
    /// from `appear(event)` until its end: Azure's `DocumentIncarnation`.
    pub fn incarnation(&self, now: u64, appear: impl Fn(&Event) -> u64) -> u64 {
        self.retired_changes + self.events.iter().map(|event| event.changes_until(appear(event), now)).sum::<u64>()
    }

    /// Adds `event`, retiring the oldest finished events beyond [`MAX_EVENTS`]; `false` when
    /// the list is full of events still pending or in effect.
    pub fn push(&mut self, event: Event, now: u64) -> bool {
        while self.events.len() >= MAX_EVENTS {
            let finished = self
                .events
                .iter()
                .position(|event| matches!(event.state_at(now), EventState::Completed | EventState::Canceled));
            let Some(index) = finished else { return false };
            let old = self.events.remove(index);
            // Whatever list showed it has seen all its changes: count them at the end of time.
            self.retired_changes += old.changes_until(old.notice_at, u64::MAX).max(old.changes_until(0, u64::MAX));
        }
        self.events.push(event);
        true
    }

    /// Sets every event's stored state to its state at `now`; whether anything changed.
    pub fn settle(&mut self, now: u64) -> bool {
        let mut changed = false;
        for event in &mut self.events {
            let state = event.state_at(now);
            if event.state != state {
                event.state = state;
                changed = true;
            }
        }
        changed
    }
}

/// What an admin asks for when creating events: everything but the id and the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// The kind and its detail.
    pub kind: EventKind,
    /// When it takes effect.
    pub not_before: u64,
    /// How long before `not_before` guests see it.
    pub notice_at: u64,
    /// When it ends.
    pub not_after: Option<u64>,
    /// The description.
    pub description: Option<String>,
}

/// The request members [`EventSpec::parse`] reads; callers may allow more (a selector).
pub const SPEC_FIELDS: &[&str] = &[
    "kind",
    "action",
    "code",
    "lifecycle_state",
    "in_seconds",
    "not_before",
    "notice_seconds",
    "duration_seconds",
    "description",
];

impl EventSpec {
    /// Reads an admin request (`{"kind", "in_seconds" | "not_before", …}`) at time `now`.
    /// `extra` names members the caller reads itself. Every problem is reported, with its
    /// field.
    pub fn parse(doc: &Value, now: u64, extra: &[&str]) -> Result<Self, Invalid> {
        let mut errors = Vec::new();
        let Some(object) = doc.as_object() else {
            return Err(Invalid::one("", "expected a JSON object"));
        };
        for key in object.keys() {
            if !SPEC_FIELDS.contains(&key.as_str()) && !extra.contains(&key.as_str()) {
                errors.push(FieldError::new(key.clone(), "unknown field"));
            }
        }
        let mut error = |field: &str, message: String| errors.push(FieldError::new(field, message));
        let text = |field: &str, error: &mut dyn FnMut(&str, String)| match object.get(field) {
            None => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                error(field, "must be a string".into());
                None
            }
        };
        let seconds = |field: &str, error: &mut dyn FnMut(&str, String)| match object.get(field) {
            None => None,
            // JSON has one number type: 120.0 is the integer 120.
            Some(value) => match value
                .as_u64()
                .or_else(|| value.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 1e15).map(|f| f as u64))
                .filter(|n| *n <= MAX_AHEAD_SECS)
            {
                Some(n) => Some(n),
                None => {
                    error(field, format!("must be a whole number of seconds from 0 to {MAX_AHEAD_SECS}"));
                    None
                }
            },
        };
        let kind_name = match text("kind", &mut error) {
            None => {
                error("kind", format!("required: one of {}", KindName::names()));
                None
            }
            Some(name) => {
                let kind = KindName::parse(&name);
                if kind.is_none() {
                    error("kind", format!("unknown kind {name:?}: one of {}", KindName::names()));
                }
                kind
            }
        };
        let action = text("action", &mut error);
        let code = text("code", &mut error);
        let lifecycle = text("lifecycle_state", &mut error);
        let only = |field: &str, present: bool, kind: KindName, error: &mut dyn FnMut(&str, String)| {
            if present && kind_name.is_some_and(|name| name != kind) {
                error(field, format!("only a {} event has this field", kind.as_str()));
            }
        };
        only("action", action.is_some(), KindName::SpotInterruption, &mut error);
        only("code", code.is_some(), KindName::ScheduledMaintenance, &mut error);
        only("lifecycle_state", lifecycle.is_some(), KindName::TargetLifecycleState, &mut error);
        let kind = match kind_name {
            Some(KindName::SpotInterruption) => {
                match action.as_deref().map_or(Some(SpotAction::Terminate), SpotAction::parse) {
                    Some(action) => Some(EventKind::SpotInterruption { action }),
                    None => {
                        error("action", format!("unknown action: one of {}", SpotAction::names()));
                        None
                    }
                }
            }
            Some(KindName::RebalanceRecommendation) => Some(EventKind::RebalanceRecommendation),
            Some(KindName::ScheduledMaintenance) => {
                match code.as_deref().map_or(Some(MaintenanceCode::SystemReboot), MaintenanceCode::parse) {
                    Some(code) => Some(EventKind::ScheduledMaintenance { code }),
                    None => {
                        error("code", format!("unknown code: one of {}", MaintenanceCode::names()));
                        None
                    }
                }
            }
            Some(KindName::TargetLifecycleState) => match lifecycle.as_deref().map(LifecycleState::parse) {
                Some(Some(lifecycle_state)) => Some(EventKind::TargetLifecycleState { lifecycle_state }),
                Some(None) => {
                    error("lifecycle_state", format!("unknown state: one of {}", LifecycleState::names()));
                    None
                }
                None => {
                    error("lifecycle_state", format!("required: one of {}", LifecycleState::names()));
                    None
                }
            },
            None => None,
        };
        let in_seconds = seconds("in_seconds", &mut error);
        let at = text("not_before", &mut error);
        let not_before = match (in_seconds, at) {
            (Some(_), Some(_)) => {
                error("not_before", "give in_seconds or not_before, not both".into());
                None
            }
            (Some(n), None) => Some(now + n),
            (None, Some(at)) => match crate::time::parse_rfc3339(&at) {
                None => {
                    error("not_before", format!("not an RFC 3339 time: {at:?}"));
                    None
                }
                Some(t) if t > now + MAX_AHEAD_SECS => {
                    error("not_before", "must be within a year from now".into());
                    None
                }
                Some(t) if t < now && !matches!(kind_name, Some(k) if k.may_be_past()) => {
                    error(
                        "not_before",
                        format!(
                            "{at} is in the past; a {} event must lie ahead",
                            kind_name.map_or("", KindName::as_str)
                        ),
                    );
                    None
                }
                Some(t) => Some(t),
            },
            // A spot interruption comes two minutes after its notice by default, like AWS's.
            (None, None) => {
                Some(now + if kind_name == Some(KindName::SpotInterruption) { SPOT_NOTICE_SECS } else { 0 })
            }
        };
        let notice = seconds("notice_seconds", &mut error);
        let duration = seconds("duration_seconds", &mut error);
        if duration == Some(0) {
            error("duration_seconds", "must be at least 1".into());
        }
        let description = text("description", &mut error);
        if description.as_ref().is_some_and(|d| d.len() > MAX_DESCRIPTION || d.chars().any(char::is_control)) {
            error("description", format!("at most {MAX_DESCRIPTION} bytes without control characters"));
        }
        match (kind, not_before, errors.is_empty()) {
            (Some(kind), Some(not_before), true) => {
                let notice_at = match (notice, kind) {
                    (Some(notice), _) => not_before.saturating_sub(notice),
                    (None, EventKind::SpotInterruption { .. }) => not_before.saturating_sub(SPOT_NOTICE_SECS),
                    // Maintenance is announced at once; the other kinds appear at their time.
                    (None, EventKind::ScheduledMaintenance { .. }) => now.min(not_before),
                    (None, _) => not_before,
                };
                Ok(Self {
                    kind,
                    not_before,
                    notice_at: notice_at.max(now.min(not_before)),
                    not_after: duration.map(|d| not_before + d),
                    description,
                })
            }
            _ => Err(Invalid { errors }),
        }
    }

    /// The event this spec makes, with id `id`, created at `now`.
    pub fn into_event(self, id: EventId, now: u64) -> Event {
        Event {
            id,
            kind: self.kind,
            notice_at: self.notice_at,
            not_before: self.not_before,
            not_after: self.not_after,
            description: self.description,
            created_at: now,
            started_at: None,
            canceled_at: None,
            state: EventState::Scheduled,
        }
    }
}

impl KindName {
    /// Whether an event of this kind may be created with a time already past (it reports
    /// something that happened rather than announcing something to come).
    pub fn may_be_past(self) -> bool {
        matches!(self, KindName::RebalanceRecommendation | KindName::TargetLifecycleState)
    }
}

#[cfg(test)]
mod tests;
