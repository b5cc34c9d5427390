//! Runtime events in the store: the one read-modify-write of an instance's event list
//! ([`modify`]), guests starting events early ([`start`], Azure's approval), and the timer that
//! records each event's state changes as they happen ([`run`]).
//!
//! What guests see is rendered from the events and the clock, so it is right at the very
//! second; the timer's writes make the stored `state` agree (for the admin API, other nodes and
//! every long poll, which the write wakes). The timer sleeps until the next change any event of
//! this node's view has (no polling), wakes early when the view changes, and writes only the
//! instances its view holds: exactly the instances this node serves. After a restart it writes
//! at once whatever changed while it was down.

use std::sync::Arc;
use std::time::Duration;

use imds_creds::Clock;
use imds_model::{EventId, InstanceEvents, InstanceId};
use imds_store::update::{Lanes, Plan, Step};
use imds_store::{Expect, Op, Put, Revision, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::records;
use crate::view::View;

/// How an event-list change ended.
#[derive(Debug)]
pub enum Modified<T> {
    /// Written at this revision; `T` is what the change returned.
    Written(Revision, T),
    /// Nothing to write.
    Unchanged(T),
}

/// Reads instance `id`'s event list, lets `change` edit it, and writes it back guarded by the
/// revision read (retried when another write got there first), placed on the instance's node
/// as the store has it and guarded by the instance's revision too: a write racing a move or a
/// delete of the instance starts over, so the list never lands on the node the instance left
/// (nor is created for an instance that is gone: `StoreError::NotFound` of the instance).
/// `change` returns `Err` to write nothing, and whether it changed anything with its value.
/// `extra` adds operations to the same commit. The update takes the instance's turn among
/// `writers`.
pub async fn modify<T, E, F>(
    store: &Arc<dyn Store>,
    writers: &Lanes,
    id: &InstanceId,
    extra: impl Fn() -> Vec<Op>,
    change: F,
) -> Result<Modified<T>, E>
where
    F: Fn(&mut InstanceEvents) -> Result<(bool, T), E>,
    E: From<StoreError>,
{
    let key = records::events(id);
    let key_ref = &key;
    let change = &change;
    let updated = writers
        .update(id.as_str(), &**store, &key, || {
            let extra = extra();
            async move {
                let instance_key = records::instance(id);
                let instance = store.get(&instance_key).await.map_err(E::from)?;
                let current = store.get(key_ref).await.map_err(E::from)?;
                let (mut list, expect) = match &current {
                    Some(record) => match records::decode_events(record) {
                        Ok(list) => (list, Expect::Revision(record.rev)),
                        Err(error) => return Err(E::from(StoreError::unavailable(error.to_string()))),
                    },
                    None => (InstanceEvents::default(), Expect::Absent),
                };
                let (changed, value) = change(&mut list)?;
                if !changed {
                    return Ok(Step::Done(Modified::Unchanged(value)));
                }
                // With its instance, as the store has it now; the check makes a racing move or
                // delete (which moves or deletes the list in its own commit) send this one round again.
                let Some(instance) = instance else {
                    return Err(E::from(StoreError::NotFound { key: instance_key }));
                };
                let unmoved = Op::Check { key: instance_key, expect: Expect::Revision(instance.rev) };
                let put = Op::Put(Put {
                    key: key_ref.clone(),
                    node: instance.node,
                    claims: Vec::new(),
                    value: list.to_bytes(),
                    expect,
                });
                let plan = Plan::new(Modified::Unchanged(value)).guarded(unmoved).guarded(put).guarded_all(extra);
                Ok::<_, E>(Step::Commit(plan))
            }
        })
        .await?;
    Ok(match (updated.committed, updated.value) {
        (Some(committed), Modified::Unchanged(value)) => Modified::Written(committed.rev, value),
        (_, value) => value,
    })
}

/// A fresh event id from the operating system's randomness.
pub fn random_id() -> EventId {
    let mut bytes = [0u8; 16];
    // Without OS randomness, the clock's nanoseconds (ids then only need to differ).
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        bytes = nanos.to_le_bytes();
    }
    EventId::from_random(u128::from_le_bytes(bytes))
}

/// Starts instance `id`'s events `ids` now (a guest's approval): each one still scheduled gets
/// `started_at`. Returns the revision written, if anything was.
pub async fn start(
    store: &Arc<dyn Store>,
    writers: &Lanes,
    id: &InstanceId,
    ids: &[EventId],
    now: u64,
) -> Result<Option<Revision>, StoreError> {
    let modified = modify(store, writers, id, Vec::new, |list: &mut InstanceEvents| {
        let mut changed = false;
        for event in list.events.iter_mut().filter(|event| ids.contains(&event.id)) {
            if event.state_at(now) == imds_model::EventState::Scheduled {
                event.started_at = Some(now);
                changed = true;
            }
        }
        changed |= list.settle(now);
        Ok::<_, StoreError>((changed, ()))
    })
    .await?;
    tracing::info!(%id, events = ?ids, "guest started events");
    Ok(match modified {
        Modified::Written(rev, ()) => Some(rev),
        Modified::Unchanged(()) => None,
    })
}

/// The timer: records every event's state change when it happens, for the instances `view`
/// holds, until `shutdown`.
pub async fn run(store: Arc<dyn Store>, view: View, clock: Clock, shutdown: CancellationToken) {
    let mut revisions = view.subscribe();
    tokio::select! {
        () = view.ready() => {}
        () = shutdown.cancelled() => return,
    }
    loop {
        let now = clock.now();
        let snapshot = view.load();
        let mut next: Option<u64> = None;
        for events in snapshot.all_events() {
            let stale = events.list.events.iter().any(|event| event.state != event.state_at(now));
            if stale {
                if snapshot.get(&events.id).is_none() {
                    // The instance is being moved or deleted: its new owner settles the list.
                    continue;
                }
                // Placed with the instance as the store has it (not this view's, which a move
                // may have overtaken).
                let settled = modify(&store, view.writers(), &events.id, Vec::new, |list: &mut InstanceEvents| {
                    Ok::<_, StoreError>((list.settle(now), ()))
                })
                .await;
                match settled {
                    Ok(Modified::Written(rev, ())) => tracing::info!(id = %events.id, %rev, "event states recorded"),
                    Ok(Modified::Unchanged(())) => {}
                    Err(error) => {
                        tracing::warn!(id = %events.id, %error, "cannot record event states; retrying");
                        next = Some(next.map_or(now + 1, |n| n.min(now + 1)));
                    }
                }
            }
            if let Some(at) = events.list.next_change(now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(clock.instant_at(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = revisions.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sleep => {}
        }
        // A burst of writes wakes the timer once.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
