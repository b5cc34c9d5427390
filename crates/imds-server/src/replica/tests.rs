use std::sync::Arc;
use std::time::Duration;

use imds_model::{Instance, Limits};
use imds_store::memory::MemoryStore;
use imds_store::unreliable::Unreliable;
use imds_store::{Expect, Key, Put, Scope, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::view::{View, INSTANCES};

fn put_for(n: u32) -> Put {
    let doc = json!({"id": format!("i-{n}"), "ipv4": [format!("10.1.{}.{}", n / 250, n % 250 + 1)]});
    let instance = Instance::parse(&doc, &Limits::default()).unwrap();
    Put {
        key: Key::new(INSTANCES, instance.id.as_str()),
        node: None,
        claims: instance.claims(),
        value: instance.to_bytes(),
        expect: Expect::Any,
    }
}

fn fast() -> Backoff {
    Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(20) }
}

#[tokio::test]
async fn view_follows_writes_made_before_and_after_start() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store.put(put_for(1)).await.unwrap();
    let view = View::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(Arc::clone(&store), Scope::All, view.clone(), fast(), shutdown.clone()));
    let written = store.put(put_for(2)).await.unwrap();
    assert!(view.wait_for(written.rev, Duration::from_secs(10)).await);
    assert_eq!(view.load().len(), 2);
    let deleted = store.delete(&Key::new(INSTANCES, "i-1"), Expect::Any).await.unwrap();
    assert!(view.wait_for(deleted.max(written.rev), Duration::from_secs(10)).await);
    assert_eq!(view.load().len(), 1);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn view_survives_store_faults_without_missing_a_change() {
    let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let flaky = Arc::new(Unreliable::new(Arc::clone(&inner)));
    // The first calls fail (the snapshot is retried), and every feed breaks after 3 events.
    flaky.fail_next(3);
    flaky.break_feeds_after(3);
    let view = View::new();
    let shutdown = CancellationToken::new();
    let store: Arc<dyn Store> = flaky.clone();
    let task = tokio::spawn(run(store, Scope::All, view.clone(), fast(), shutdown.clone()));
    let mut last = imds_store::Revision(0);
    for n in 0..40 {
        last = inner.put(put_for(n)).await.unwrap().rev;
        if n % 7 == 0 {
            flaky.fail_next(2);
        }
    }
    assert!(view.wait_for(last, Duration::from_secs(20)).await, "view caught up through the faults");
    let snapshot = view.load();
    assert_eq!(snapshot.len(), 40);
    for n in 0..40 {
        assert!(snapshot.get(&format!("i-{n}").as_str().try_into().unwrap()).is_some(), "i-{n} missing");
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn view_catches_up_when_the_log_is_compacted_past_it() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let view = View::new();
    let shutdown = CancellationToken::new();
    let flaky = Arc::new(Unreliable::new(Arc::clone(&store)));
    flaky.break_feeds_after(1);
    let follower: Arc<dyn Store> = flaky.clone();
    let task = tokio::spawn(run(follower, Scope::All, view.clone(), fast(), shutdown.clone()));
    assert!(view.wait_for(imds_store::Revision(0), Duration::from_secs(10)).await);
    // While the feed is broken and retried, the log is compacted beyond the view's revision.
    flaky.fail_next(5);
    let mut last = imds_store::Revision(0);
    for n in 0..10 {
        last = store.put(put_for(n)).await.unwrap().rev;
    }
    store.compact(last).await.unwrap();
    assert!(view.wait_for(last, Duration::from_secs(20)).await);
    assert_eq!(view.load().len(), 10);
    shutdown.cancel();
    task.await.unwrap();
}
