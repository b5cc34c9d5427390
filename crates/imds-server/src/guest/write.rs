//! Guest writes: a dialect's [`GuestWrite`] applied to the instance's guest state in the store.
//!
//! The state record (collection [`STATE`], keyed by instance id) is read, changed and written
//! back with a revision precondition, retried when another write got there first, so two
//! guests' writes never lose each other and a write-once value is set exactly once. The
//! response goes out only once the view guests read contains the write, so a guest that reads
//! right after its write sees it.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use imds_dialects::{GuestResponse, GuestWrite};
use imds_model::{GuestState, InstanceId, StateWriteError};
use imds_store::{Expect, Key, Put, Store, StoreError};

use crate::view::{View, STATE};

/// The largest guest state one instance may hold, in bytes of compact JSON.
pub const MAX_STATE: usize = 256 * 1024;
/// How often a write is retried when a concurrent write to the same state wins.
const ATTEMPTS: usize = 8;
/// How long a write waits for the view to contain it.
const VISIBILITY: Duration = Duration::from_secs(5);

/// Applies `guest_write` to instance `id`'s guest state, placed on the instance's `node`;
/// answers `done` when it is applied, the write's conflict response when a write-once value is
/// already set, and a plain-text error when the state cannot be written.
pub async fn apply(
    store: &Arc<dyn Store>,
    view: &View,
    id: &InstanceId,
    node: Option<String>,
    guest_write: GuestWrite,
    done: GuestResponse,
) -> GuestResponse {
    let key = Key::new(STATE, id.as_str());
    for _ in 0..ATTEMPTS {
        let current = match store.get(&key).await {
            Ok(current) => current,
            Err(error) => return unavailable(id, &error),
        };
        let (mut state, expect) = match &current {
            Some(record) => match GuestState::from_bytes(&record.value) {
                Ok(state) => (state, Expect::Revision(record.rev)),
                Err(error) => {
                    tracing::error!(%id, %error, "guest state is unreadable; refusing the guest's write");
                    return error_response(StatusCode::INTERNAL_SERVER_ERROR, "guest state is unreadable");
                }
            },
            None => (GuestState::default(), Expect::Absent),
        };
        match state.apply(&guest_write.write) {
            Ok(()) => {}
            Err(StateWriteError::AlreadySet) => return guest_write.conflict,
            Err(StateWriteError::BadPath) => {
                return error_response(StatusCode::CONFLICT, "the value's path runs through another value")
            }
        }
        let written = if state.is_empty() {
            match current {
                Some(_) => store.delete(&key, expect).await,
                None => return done,
            }
        } else {
            let value = state.to_bytes();
            if value.len() > MAX_STATE {
                return error_response(StatusCode::PAYLOAD_TOO_LARGE, "the instance's guest state is full");
            }
            store
                .put(Put { key: key.clone(), node: node.clone(), claims: Vec::new(), value, expect })
                .await
                .map(|w| w.rev)
        };
        match written {
            Ok(rev) => {
                tracing::info!(%id, dialect = %guest_write.write.dialect, %rev, "guest state written");
                if !view.wait_for(rev, VISIBILITY).await {
                    tracing::warn!(%id, %rev, "guest write not yet visible in the view");
                }
                return done;
            }
            Err(
                StoreError::RevisionMismatch { .. } | StoreError::AlreadyExists { .. } | StoreError::NotFound { .. },
            ) => continue,
            Err(error) => return unavailable(id, &error),
        }
    }
    error_response(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent writes; try again")
}

fn unavailable(id: &InstanceId, error: &StoreError) -> GuestResponse {
    tracing::warn!(%id, %error, "cannot write guest state");
    error_response(StatusCode::SERVICE_UNAVAILABLE, "the metadata store is unavailable; try again")
}

fn error_response(status: StatusCode, message: &str) -> GuestResponse {
    GuestResponse::new(status, "text/plain; charset=utf-8", format!("{message}\n"))
}
