//! Guest writes: a dialect's [`GuestWrite`] applied to the instance's guest state in the store.
//!
//! The state record ([`records::state`], keyed by instance id) is read, changed and written
//! back through [`imds_store::update`]: guarded by the revision read, retried when another
//! write got there first, so two
//! guests' writes never lose each other and a write-once value is set exactly once. The
//! response goes out only once the view guests read contains the write, so a guest that reads
//! right after its write sees it.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use imds_dialects::{GuestResponse, GuestWrite};
use imds_model::{GuestState, InstanceId, StateWriteError};
use imds_store::update::{Plan, Step};
use imds_store::{Expect, Op, Put, Scope, Store, StoreError};

use crate::records;
use crate::view::View;

/// The largest guest state one instance may hold, in bytes of compact JSON.
pub const MAX_STATE: usize = 256 * 1024;

/// Why one attempt of a guest write stopped short of a commit.
enum Stop {
    /// The store failed.
    Store(StoreError),
    /// The guest gets this answer (write-once conflict, bad path, full or unreadable state).
    Answer(GuestResponse),
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Stop::Store(error)
    }
}

/// Applies `guest_write` to instance `id`'s guest state, placed on the instance's node as the
/// store has it and guarded by the instance's revision (a write racing a move or a delete of
/// the instance starts over, so the state never stays behind on the node the instance left);
/// answers `done` when it is applied (and visible, waiting at most `visibility` when it lands in
/// `scope`, the part of the store this node's view follows: a write racing a move away from
/// this node lands on the new node, whose view this one never sees), the write's
/// conflict response when a write-once value is already set, and a plain-text error when the
/// state cannot be written.
pub async fn apply(
    store: &Arc<dyn Store>,
    view: &View,
    scope: &Scope,
    visibility: Duration,
    id: &InstanceId,
    guest_write: GuestWrite,
    done: GuestResponse,
) -> GuestResponse {
    let key = records::state(id);
    let (key_ref, guest_write_ref) = (&key, &guest_write);
    let updated = view
        .writers()
        .update(id.as_str(), &**store, &key, || async move {
            let Some(instance) = store.get(&records::instance(id)).await? else {
                return Err(Stop::Answer(error_response(StatusCode::NOT_FOUND, "the instance no longer exists")));
            };
            let (node, instance_rev) = (instance.node, instance.rev);
            let current = store.get(key_ref).await?;
            let (mut state, expect) = match &current {
                Some(record) => match records::decode_state(record) {
                    Ok(state) => (state, Expect::Revision(record.rev)),
                    Err(error) => {
                        tracing::error!(%id, %error, "guest state is unreadable; refusing the guest's write");
                        return Err(Stop::Answer(error_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "guest state is unreadable",
                        )));
                    }
                },
                None => (GuestState::default(), Expect::Absent),
            };
            match state.apply(&guest_write_ref.write) {
                Ok(()) => {}
                Err(StateWriteError::AlreadySet) => return Err(Stop::Answer(guest_write_ref.conflict.clone())),
                Err(StateWriteError::BadPath) => {
                    return Err(Stop::Answer(error_response(
                        StatusCode::CONFLICT,
                        "the value's path runs through another value",
                    )))
                }
            }
            let op = if state.is_empty() {
                match current {
                    Some(_) => Op::Delete { key: key_ref.clone(), expect },
                    None => return Ok(Step::Done(node)),
                }
            } else {
                let value = state.to_bytes();
                if value.len() > MAX_STATE {
                    return Err(Stop::Answer(error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the instance's guest state is full",
                    )));
                }
                Op::Put(Put { key: key_ref.clone(), node: node.clone(), claims: Vec::new(), value, expect })
            };
            let unmoved = records::instance_unchanged(id, instance_rev);
            Ok(Step::Commit(Plan::new(node).guarded(unmoved).guarded(op)))
        })
        .await;
    match updated {
        Ok(updated) => {
            if let Some(committed) = updated.committed {
                let rev = committed.rev;
                tracing::info!(%id, dialect = %guest_write.write.dialect, %rev, "guest state written");
                if scope.contains(updated.value.as_deref()) {
                    view.wait_visible(rev, visibility).await;
                }
            }
            done
        }
        Err(Stop::Answer(answer)) => answer,
        Err(Stop::Store(StoreError::Contended { .. })) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent writes; try again")
        }
        Err(Stop::Store(error)) => unavailable(id, &error),
    }
}

fn unavailable(id: &InstanceId, error: &StoreError) -> GuestResponse {
    tracing::warn!(%id, %error, "cannot write guest state");
    error_response(StatusCode::SERVICE_UNAVAILABLE, "the metadata store is unavailable; try again")
}

fn error_response(status: StatusCode, message: &str) -> GuestResponse {
    GuestResponse::new(status, "text/plain; charset=utf-8", format!("{message}\n"))
}
