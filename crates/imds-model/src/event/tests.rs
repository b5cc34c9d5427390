use super::*;
use serde_json::json;

const NOW: u64 = 1_800_000_000;

fn spec(doc: Value) -> Result<EventSpec, Invalid> {
    EventSpec::parse(&doc, NOW, &[])
}

fn fields(result: Result<EventSpec, Invalid>) -> Vec<String> {
    result.unwrap_err().errors.into_iter().map(|e| e.field).collect()
}

fn event(doc: Value) -> Event {
    spec(doc).unwrap().into_event(EventId::from_random(7), NOW)
}

#[test]
fn a_spot_interruption_defaults_to_terminate_two_minutes_out_noticed_now() {
    let spot = spec(json!({"kind": "spot-interruption"})).unwrap();
    assert_eq!(spot.kind, EventKind::SpotInterruption { action: SpotAction::Terminate });
    assert_eq!((spot.notice_at, spot.not_before, spot.not_after), (NOW, NOW + 120, None));
    let later = spec(json!({"kind": "spot-interruption", "action": "stop", "in_seconds": 600})).unwrap();
    assert_eq!((later.notice_at, later.not_before), (NOW + 480, NOW + 600));
}

#[test]
fn every_problem_is_reported_with_its_field() {
    assert_eq!(fields(spec(json!({"kind": "meteor"}))), ["kind"]);
    assert_eq!(fields(spec(json!({}))), ["kind"]);
    assert_eq!(fields(spec(json!({"kind": "spot-interruption", "action": "explode"}))), ["action"]);
    assert_eq!(fields(spec(json!({"kind": "rebalance-recommendation", "action": "stop"}))), ["action"]);
    assert_eq!(
        fields(spec(json!({"kind": "spot-interruption", "not_before": "2020-01-01T00:00:00Z", "colour": 1}))),
        ["colour", "not_before"]
    );
    assert_eq!(fields(spec(json!({"kind": "spot-interruption", "in_seconds": -1}))), ["in_seconds"]);
    assert_eq!(fields(spec(json!({"kind": "spot-interruption", "in_seconds": 1, "not_before": "x"}))), ["not_before"]);
    assert_eq!(fields(spec(json!({"kind": "target-lifecycle-state"}))), ["lifecycle_state"]);
    assert_eq!(
        fields(spec(json!({"kind": "scheduled-maintenance", "code": "x", "duration_seconds": 0}))),
        ["code", "duration_seconds"]
    );
    assert!(spec(json!({"kind": "rebalance-recommendation", "not_before": "2020-01-01T00:00:00Z"})).is_ok());
    assert!(spec(json!([])).is_err());
    assert_eq!(fields(spec(json!({"kind": "spot-interruption", "action": null}))), ["action"]);
    assert_eq!(spec(json!({"kind": "rebalance-recommendation", "in_seconds": 30.0})).unwrap().not_before, NOW + 30);
}

#[test]
fn the_state_follows_the_clock_and_approval_and_cancellation() {
    let mut e = event(json!({"kind": "scheduled-maintenance", "in_seconds": 100, "duration_seconds": 50}));
    assert_eq!(e.notice_at, NOW);
    assert_eq!(e.state_at(NOW + 99), EventState::Scheduled);
    assert_eq!(e.state_at(NOW + 100), EventState::Active);
    assert_eq!(e.state_at(NOW + 150), EventState::Completed);
    assert_eq!(e.next_change(NOW), Some(NOW + 100));
    assert_eq!(e.next_change(NOW + 100), Some(NOW + 150));
    assert_eq!(e.next_change(NOW + 150), None);
    e.started_at = Some(NOW + 10);
    assert_eq!(e.state_at(NOW + 10), EventState::Active);
    e.canceled_at = Some(NOW + 20);
    assert_eq!(e.state_at(NOW + 20), EventState::Canceled);
    assert!(!e.live_at(NOW + 20));
}

#[test]
fn the_incarnation_counts_each_visible_change_once() {
    let mut list = InstanceEvents::default();
    list.push(event(json!({"kind": "scheduled-maintenance", "in_seconds": 100, "duration_seconds": 50})), NOW);
    let appear = |e: &Event| e.notice_at;
    assert_eq!(list.incarnation(NOW - 1, appear), 0);
    assert_eq!(list.incarnation(NOW, appear), 1);
    assert_eq!(list.incarnation(NOW + 100, appear), 2);
    assert_eq!(list.incarnation(NOW + 150, appear), 3);
    // Settling the stored state changes nothing guests see.
    assert!(list.settle(NOW + 200));
    assert_eq!(list.incarnation(NOW + 200, appear), 3);
    let stored = InstanceEvents::from_bytes(&list.to_bytes()).unwrap();
    assert_eq!(stored, list);
}

#[test]
fn a_full_list_retires_finished_events_and_keeps_counting() {
    let mut list = InstanceEvents::default();
    for _ in 0..MAX_EVENTS {
        list.push(event(json!({"kind": "rebalance-recommendation", "in_seconds": 0, "duration_seconds": 1})), NOW);
    }
    let before = list.incarnation(NOW + 5, |e| e.notice_at);
    assert!(list.push(event(json!({"kind": "rebalance-recommendation"})), NOW + 5));
    assert_eq!(list.events.len(), MAX_EVENTS);
    assert!(list.incarnation(NOW + 5, |e| e.notice_at) >= before);
    let mut busy = InstanceEvents::default();
    for _ in 0..MAX_EVENTS {
        busy.push(event(json!({"kind": "spot-interruption"})), NOW);
    }
    assert!(!busy.push(event(json!({"kind": "spot-interruption"})), NOW));
}

#[test]
fn event_ids_look_like_ec2s() {
    let id = EventId::from_random(u128::MAX);
    assert_eq!(id.as_str(), "instance-event-fffffffffffffffff");
    assert!(EventId::try_from("instance-event-0123456789abcdef0").is_ok());
    assert!(EventId::try_from("instance-event-0123").is_err());
    assert!(EventId::try_from("i-0123456789abcdef0").is_err());
}
