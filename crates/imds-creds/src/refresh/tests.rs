//! Rotation with a paused tokio clock: no sleeps, time moves by `advance`.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::secret::Secret;
use crate::source::Source;

const START: u64 = 1_800_000_000;

/// A fetcher that answers from a script: `Ok(lifetime)` issues key `K<n>` expiring `lifetime`
/// seconds after the fetch; `Err` fails. The last entry repeats.
#[derive(Debug)]
struct Script {
    steps: Mutex<VecDeque<Result<u64, ()>>>,
    calls: Mutex<u32>,
}

impl Script {
    fn new(steps: &[Result<u64, ()>]) -> Arc<Self> {
        Arc::new(Self { steps: Mutex::new(steps.iter().copied().collect()), calls: Mutex::new(0) })
    }
    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }
}

impl Fetch for Script {
    fn fetch<'a>(&'a self, _name: &'a str, _role: &'a Role, now: u64) -> super::Fetching<'a> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        let n = *calls;
        let mut steps = self.steps.lock().unwrap();
        let step = if steps.len() > 1 { steps.pop_front().unwrap() } else { *steps.front().unwrap() };
        Box::pin(async move {
            match step {
                Ok(lifetime) => Ok(Credentials {
                    access_key_id: format!("K{n}"),
                    secret_access_key: Secret::new(format!("secret-{n}")),
                    session_token: Some(Secret::new("token")),
                    expiration: Some(now + lifetime),
                }),
                Err(()) => Err(FetchError::Unreachable("sts is down".into())),
            }
        })
    }
}

fn role() -> Role {
    Role {
        source: Source::Static {
            access_key_id: "AKIA".into(),
            secret_access_key: Secret::new("s"),
            session_token: None,
            expiration: None,
        },
        base_credentials: None,
        base_credentials_stored: None,
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn manager(script: &Arc<Script>) -> Manager {
    let manager = Manager::new(Arc::clone(script) as Arc<dyn Fetch>, Clock::starting_at(START));
    manager.apply(&HashMap::from([("app".to_owned(), (role(), 1))]));
    manager
}

fn key(manager: &Manager, now: u64) -> Option<String> {
    manager.state("app")?.usable(now).map(|served| served.credentials.access_key_id.clone())
}

#[tokio::test(start_paused = true)]
async fn credentials_rotate_fifteen_minutes_before_expiry_and_always_have_five_left() {
    let script = Script::new(&[Ok(3600)]);
    let manager = manager(&script);
    settle().await;
    let clock = manager.clock();
    assert_eq!(key(&manager, clock.now()).as_deref(), Some("K1"));
    let mut seen = vec!["K1".to_owned()];
    // Three hours, minute by minute: every served set has at least five minutes left.
    for _ in 0..180 {
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        let now = clock.now();
        let state = manager.state("app").unwrap();
        let served = state.usable(now).expect("credentials are served at every moment");
        assert!(served.expiration >= now + MIN_REMAINING);
        if seen.last() != Some(&served.credentials.access_key_id) {
            // A rotation happens once 15 minutes or less remain of the previous set.
            assert_eq!(served.last_updated, now - (now - START) % 60, "rotated at a minute boundary");
            seen.push(served.credentials.access_key_id.clone());
        }
    }
    assert_eq!(seen, ["K1", "K2", "K3", "K4", "K5"], "one rotation every 45 minutes");
    assert_eq!(script.calls(), 5);
}

/// Advances the paused clock second by second, letting the refresh task run at each step.
async fn walk(seconds: u64) {
    for _ in 0..seconds {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_serving_valid_credentials_then_recovers() {
    // First fetch works; the next four fail (STS down); then it works again.
    let script = Script::new(&[Ok(1200), Err(()), Err(()), Err(()), Err(()), Ok(3600)]);
    let manager = manager(&script);
    settle().await;
    let clock = manager.clock();
    assert_eq!(key(&manager, clock.now()).as_deref(), Some("K1"));
    // Refresh 15 minutes before expiry (after 300 s), which fails.
    walk(300).await;
    assert_eq!(script.calls(), 2);
    let state = manager.state("app").unwrap();
    assert!(state.error.is_some(), "the failure is visible");
    assert_eq!(key(&manager, clock.now()).as_deref(), Some("K1"), "still-valid credentials keep being served");
    // Retries back off 5, 10, 20 s, all failing.
    walk(5 + 10 + 20).await;
    assert_eq!(script.calls(), 5);
    assert!(manager.state("app").unwrap().error.is_some());
    assert_eq!(key(&manager, clock.now()).as_deref(), Some("K1"));
    // Recovery on the next retry, 40 s later.
    walk(40).await;
    assert_eq!(script.calls(), 6);
    let state = manager.state("app").unwrap();
    assert!(state.error.is_none());
    assert_eq!(key(&manager, clock.now()).as_deref(), Some("K6"));
}

#[tokio::test(start_paused = true)]
async fn credentials_near_expiry_are_not_served_while_the_source_is_down() {
    let script = Script::new(&[Ok(900), Err(())]);
    let manager = manager(&script);
    settle().await;
    let clock = manager.clock();
    assert_eq!(key(&manager, clock.now()).as_deref(), Some("K1"));
    tokio::time::advance(Duration::from_secs(900 - MIN_REMAINING + 1)).await;
    settle().await;
    assert_eq!(key(&manager, clock.now()), None, "less than five minutes left: not served");
    assert!(manager.state("app").unwrap().error.is_some());
}

#[tokio::test(start_paused = true)]
async fn refresh_on_demand_and_role_changes() {
    let script = Script::new(&[Ok(3600)]);
    let manager = manager(&script);
    settle().await;
    assert!(manager.refresh("app"));
    settle().await;
    let now = manager.clock().now();
    assert_eq!(key(&manager, now).as_deref(), Some("K2"));
    assert!(!manager.refresh("nope"));
    // Same version: untouched. New version: restarted (fresh fetch). Absent: stopped.
    manager.apply(&HashMap::from([("app".to_owned(), (role(), 1))]));
    settle().await;
    assert_eq!(script.calls(), 2);
    manager.apply(&HashMap::from([("app".to_owned(), (role(), 2))]));
    assert_eq!(key(&manager, now).as_deref(), Some("K2"), "same source: the cache is kept while it refetches");
    settle().await;
    assert_eq!(script.calls(), 3);
    let mut other = role();
    other.source = Source::Process { command: vec!["true".into()], timeout_seconds: None };
    manager.apply(&HashMap::from([("app".to_owned(), (other, 3))]));
    assert_eq!(key(&manager, now), None, "another source: the old credentials are not served");
    settle().await;
    assert_eq!(script.calls(), 4);
    manager.apply(&HashMap::new());
    settle().await;
    assert!(manager.state("app").is_none());
    tokio::time::advance(Duration::from_secs(7200)).await;
    settle().await;
    assert_eq!(script.calls(), 4, "a removed role's task is stopped");
}

#[test]
fn the_refresh_schedule() {
    assert_eq!(next_refresh(0, 3600), 3600 - ROTATE_BEFORE);
    assert_eq!(next_refresh(0, 1200), 300);
    assert_eq!(next_refresh(0, 920), 460, "short-lived credentials refresh halfway");
    assert_eq!(next_refresh(0, 10), MIN_INTERVAL);
    assert_eq!(retry_delay(1), 5);
    assert_eq!(retry_delay(3), 20);
    assert_eq!(retry_delay(30), 60);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let state = RoleState {
        served: Some(Served {
            credentials: Credentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI"),
                session_token: Some(Secret::new("FwoGZXIvYXdzEJr")),
                expiration: Some(1),
            },
            expiration: 1,
            last_updated: 0,
        }),
        ..RoleState::default()
    };
    let debug = format!("{state:?}");
    assert!(debug.contains("ASIAEXAMPLE"));
    assert!(!debug.contains("wJalrXUtnFEMI") && !debug.contains("FwoGZXIvYXdzEJr"), "{debug}");
    let role = Role {
        source: Source::Sts {
            role_arn: "arn:aws:iam::123456789012:role/app".into(),
            session_name: None,
            endpoint: None,
            region: None,
            duration_seconds: None,
            external_id: None,
            session_per_instance: None,
        },
        base_credentials: Some(crate::BaseCredentials {
            access_key_id: "AKIABASE".into(),
            secret_access_key: Secret::new("base-secret"),
            session_token: None,
        }),
        base_credentials_stored: None,
    };
    let shown = role.public_view().to_string();
    assert!(!shown.contains("base-secret") && shown.contains("AKIABASE"), "{shown}");
    assert!(!format!("{role:?}").contains("base-secret"));
}
