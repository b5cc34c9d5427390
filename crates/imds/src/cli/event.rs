//! `imds event add|ls|get|cancel`: runtime events (spot interruptions, rebalance
//! recommendations, scheduled maintenance, Auto Scaling lifecycle states) through the admin
//! API, found as for `imds instance`.

use clap::{Subcommand, ValueEnum};
use http::Method;
use serde_json::{json, Value};

use super::common::{call, emit, encode, Columns, Failure, Format, Global};
use super::out::{errln, outln};

/// `imds event ...`
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Schedule an event for one instance, or for every instance a selector matches now.
    /// Prints each new event's id.
    Add {
        /// The instance id (or give --selector).
        #[arg(required_unless_present = "selector", conflicts_with = "selector")]
        id: Option<String>,
        /// Every instance matching now: tag:KEY=VALUE or node:NAME.
        #[arg(long, value_name = "SELECTOR")]
        selector: Option<String>,
        /// What happens.
        #[arg(long, value_enum)]
        kind: Kind,
        /// spot-interruption: terminate (default), stop or hibernate.
        #[arg(long)]
        action: Option<String>,
        /// scheduled-maintenance: instance-reboot, system-reboot (default), system-maintenance,
        /// instance-retirement or instance-stop.
        #[arg(long)]
        code: Option<String>,
        /// target-lifecycle-state: InService, Terminated, Warmed:Stopped, ….
        #[arg(long)]
        lifecycle_state: Option<String>,
        /// Takes effect this long from now: 90, 90s, 2m, 1h (default: 2m for a spot
        /// interruption, now for the others).
        #[arg(long = "in", value_name = "DURATION", value_parser = parse_duration, conflicts_with = "at")]
        in_: Option<u64>,
        /// Takes effect at this RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Guests see it this long before it takes effect.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        notice: Option<u64>,
        /// It ends this long after it takes effect.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        duration: Option<u64>,
        /// Shown to guests (EC2's and Azure's Description).
        #[arg(long)]
        description: Option<String>,
    },
    /// List events: one instance's, or everyone's.
    #[command(alias = "list")]
    Ls {
        /// Only this instance's events.
        id: Option<String>,
        /// Only events in this state now.
        #[arg(long, value_enum)]
        state: Option<State>,
    },
    /// Print one event.
    Get {
        /// The event id (instance-event-…).
        event: String,
    },
    /// Cancel an event: guests stop seeing it (EC2 lists it in the maintenance history).
    #[command(alias = "rm")]
    Cancel {
        /// The event id (instance-event-…).
        event: String,
    },
}

/// The kinds of event.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// EC2 spot/instance-action, GCE preempted, Azure Preempt.
    SpotInterruption,
    /// EC2 events/recommendations/rebalance.
    RebalanceRecommendation,
    /// EC2 events/maintenance, GCE maintenance-event, Azure Freeze/Reboot/Redeploy/Terminate.
    ScheduledMaintenance,
    /// EC2 autoscaling/target-lifecycle-state.
    TargetLifecycleState,
}

/// Event states, for `ls --state`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum State {
    /// Not in effect yet.
    Scheduled,
    /// In effect.
    Active,
    /// Over.
    Completed,
    /// Canceled.
    Canceled,
}

/// The columns of `event ls` and `event get -o table`.
const EVENT_COLUMNS: Columns<'static> = Columns {
    headings: &["ID", "INSTANCE", "KIND", "DETAIL", "STATE", "NOT_BEFORE"],
    pointers: &["/id", "/instance", "/kind", "/detail", "/state", "/not_before"],
};

/// Runs one command.
pub async fn run(command: EventCommand, global: &Global) -> Result<(), Failure> {
    let client = global.client()?;
    let headers = [("content-type", "application/json")];
    match command {
        EventCommand::Add {
            id,
            selector,
            kind,
            action,
            code,
            lifecycle_state,
            in_,
            at,
            notice,
            duration,
            description,
        } => {
            let mut body = json!({"kind": value_name(kind)});
            let members = [
                ("action", action.map(Value::from)),
                ("code", code.map(Value::from)),
                ("lifecycle_state", lifecycle_state.map(Value::from)),
                ("in_seconds", in_.map(Value::from)),
                ("not_before", at.map(Value::from)),
                ("notice_seconds", notice.map(Value::from)),
                ("duration_seconds", duration.map(Value::from)),
                ("description", description.map(Value::from)),
            ];
            for (key, value) in members {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            let events = match (id, selector) {
                (Some(id), _) => {
                    let path = format!("/v1/instances/{}/events", encode(&id));
                    vec![call(&client, Method::POST, &path, &headers, body.to_string()).await?.json()]
                }
                (None, Some(selector)) => {
                    body["selector"] = selector.into();
                    let created = call(&client, Method::POST, "/v1/events", &headers, body.to_string()).await?.json();
                    created.get("events").and_then(Value::as_array).cloned().unwrap_or_default()
                }
                (None, None) => return Err(Failure::usage("give an instance id or --selector")),
            };
            for event in &events {
                outln!("{}", text(event, "id"));
                errln!(
                    "scheduled {} for instance {}: not before {} (guests see it from {})",
                    text(event, "kind"),
                    text(event, "instance"),
                    text(event, "not_before"),
                    text(event, "notice_at")
                );
            }
            if events.is_empty() {
                errln!("no instance matches the selector: no event created");
            }
        }
        EventCommand::Ls { id, state } => {
            let mut path = match &id {
                Some(id) => format!("/v1/instances/{}/events", encode(id)),
                None => "/v1/events".to_owned(),
            };
            if let Some(state) = state {
                if id.is_none() {
                    path.push_str(&format!("?state={}", value_name(state)));
                }
            }
            let listed = call(&client, Method::GET, &path, &[], String::new()).await?.json();
            let mut events = listed.get("events").and_then(Value::as_array).cloned().unwrap_or_default();
            if let (Some(state), Some(_)) = (state, &id) {
                events.retain(|event| event.get("state").and_then(Value::as_str) == Some(value_name(state).as_str()));
            }
            let rows: Vec<Value> = events.iter().map(with_detail).collect();
            emit(&Value::Array(events), global.format(Format::Table), Some((&rows, EVENT_COLUMNS)));
        }
        EventCommand::Get { event } => {
            let path = format!("/v1/events/{}", encode(&event));
            let event = call(&client, Method::GET, &path, &[], String::new()).await?.json();
            emit(&event, global.format(Format::Json), Some((&[with_detail(&event)], EVENT_COLUMNS)));
        }
        EventCommand::Cancel { event } => {
            let path = format!("/v1/events/{}", encode(&event));
            let canceled = call(&client, Method::DELETE, &path, &[], String::new()).await?.json();
            errln!("canceled {} of instance {}", text(&canceled, "id"), text(&canceled, "instance"));
        }
    }
    Ok(())
}

/// The kebab-case name clap gives a value.
fn value_name(value: impl ValueEnum) -> String {
    value.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
}

fn text(event: &Value, key: &str) -> String {
    event.get(key).and_then(Value::as_str).unwrap_or("-").to_owned()
}

/// `90`, `90s`, `2m`, `1h`, `1d` as seconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: a duration is a whole number with s, m, h or d (90s, 2m, 1h)")),
    };
    let number: u64 = number.parse().map_err(|_| format!("{text:?}: a duration starts with a whole number"))?;
    number.checked_mul(scale).ok_or_else(|| format!("{text:?} is too long"))
}

/// `event` with a `detail` member for the table: its action, code or lifecycle state.
fn with_detail(event: &Value) -> Value {
    let detail = ["action", "code", "lifecycle_state"].iter().find_map(|key| event.get(*key)).cloned();
    let mut row = event.clone();
    if let (Some(object), Some(detail)) = (row.as_object_mut(), detail) {
        object.insert("detail".to_owned(), detail);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("2m"), Ok(120));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("2 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
