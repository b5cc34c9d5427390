//! Per-instance change signals: how a long-polling guest request (GCE's `wait_for_change`)
//! learns that its instance changed, without polling.
//!
//! A waiter [`subscribe`](Changes::subscribe)s to its instance *before* it renders its first
//! answer; the replica [`notify`](Changes::notify)s the instances a batch touched (record, MMDS
//! document or guest state) *after* it swapped the new snapshot in. So a waiter either rendered
//! from the new snapshot already or is woken to render again: no change is missed. A signal
//! carries no data; the waiter re-renders from the current snapshot and decides itself whether
//! what it serves changed.
//!
//! Only instances someone waits on have a channel: the channel is created by the first
//! subscriber and removed when the last one is dropped (a guest that disconnects drops its
//! request future, and with it its [`Subscription`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use imds_model::InstanceId;
use tokio::sync::watch;

/// The signals of every instance someone waits on.
#[derive(Debug, Default)]
pub struct Changes {
    channels: Mutex<HashMap<InstanceId, watch::Sender<()>>>,
}

/// One waiter's subscription to one instance's changes; unsubscribes when dropped.
#[derive(Debug)]
pub struct Subscription {
    changes: Arc<Changes>,
    id: InstanceId,
    receiver: Option<watch::Receiver<()>>,
}

impl Changes {
    fn channels(&self) -> MutexGuard<'_, HashMap<InstanceId, watch::Sender<()>>> {
        // The map is consistent between statements, so a panic elsewhere cannot corrupt it.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes to instance `id`'s changes from now on.
    pub fn subscribe(self: &Arc<Self>, id: &InstanceId) -> Subscription {
        let receiver = self.channels().entry(id.clone()).or_insert_with(|| watch::channel(()).0).subscribe();
        Subscription { changes: Arc::clone(self), id: id.clone(), receiver: Some(receiver) }
    }

    /// Wakes every waiter of the instances in `ids`.
    pub fn notify<'a>(&self, ids: impl IntoIterator<Item = &'a InstanceId>) {
        let channels = self.channels();
        if channels.is_empty() {
            return;
        }
        for id in ids {
            if let Some(sender) = channels.get(id) {
                sender.send_replace(());
            }
        }
    }

    /// Wakes every waiter (after the whole view was reloaded).
    pub fn notify_all(&self) {
        for sender in self.channels().values() {
            sender.send_replace(());
        }
    }

    /// How many subscriptions are alive.
    pub fn waiters(&self) -> usize {
        self.channels().values().map(watch::Sender::receiver_count).sum()
    }

    /// How many instances have at least one waiter.
    pub fn watched(&self) -> usize {
        self.channels().len()
    }
}

impl Subscription {
    /// Waits for the next change of the instance after the last one this waiter saw.
    pub async fn changed(&mut self) {
        match self.receiver.as_mut() {
            // The sender stays in the map while this receiver lives, so `changed` cannot fail;
            // if it did, waiting forever would be wrong, so report a change.
            Some(receiver) => {
                let _ = receiver.changed().await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut channels = self.changes.channels();
        if channels.get(&self.id).is_some_and(|sender| sender.receiver_count() == 0) {
            channels.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn only_the_notified_instance_wakes_and_dropping_unsubscribes() {
        let changes = Arc::new(Changes::default());
        let (a, b) = (InstanceId::try_from("i-a").unwrap(), InstanceId::try_from("i-b").unwrap());
        let mut on_a = changes.subscribe(&a);
        let mut on_b = changes.subscribe(&b);
        assert_eq!((changes.waiters(), changes.watched()), (2, 2));
        changes.notify([&a]);
        tokio::time::timeout(Duration::from_secs(5), on_a.changed()).await.expect("a wakes");
        assert!(tokio::time::timeout(Duration::from_millis(50), on_b.changed()).await.is_err(), "b sleeps");
        drop(on_a);
        assert_eq!((changes.waiters(), changes.watched()), (1, 1));
        drop(on_b);
        assert_eq!((changes.waiters(), changes.watched()), (0, 0));
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_not_lost() {
        let changes = Arc::new(Changes::default());
        let a = InstanceId::try_from("i-a").unwrap();
        let mut sub = changes.subscribe(&a);
        changes.notify([&a]);
        tokio::time::timeout(Duration::from_secs(5), sub.changed()).await.expect("the earlier change counts");
    }
}
