//! Role credentials on the server: the [`imds_creds::Manager`] kept in step with the roles in
//! the view ([`follow`]), and its face towards the dialects ([`Credentials`], an
//! `imds_dialects::credentials::RoleCredentials`). Guests read the cache with one atomic
//! load per role; refreshes run in the manager's tasks, never on the guest path.

use std::collections::HashMap;
use std::sync::Arc;

use imds_creds::{Manager, RoleState};
use imds_dialects::credentials::{CredentialState, IssuedCredentials, RoleCredentials};
use tokio_util::sync::CancellationToken;

use crate::view::View;

/// The credential cache as dialects see it.
#[derive(Debug, Clone)]
pub struct Credentials(pub Arc<Manager>);

impl RoleCredentials for Credentials {
    fn credentials(&self, role: &str, now: u64) -> Option<CredentialState> {
        let state = self.0.state(role)?;
        Some(issue(&state, now))
    }
}

/// What a role's state lets a guest have at `now`.
pub fn issue(state: &RoleState, now: u64) -> CredentialState {
    match state.usable(now) {
        Some(served) => CredentialState::Ready(IssuedCredentials {
            access_key_id: served.credentials.access_key_id.clone(),
            secret_access_key: served.credentials.secret_access_key.expose().to_owned(),
            token: served.credentials.session_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default(),
            expiration: served.expiration,
            last_updated: served.last_updated,
        }),
        None => CredentialState::Unavailable { last_updated: state.last_attempt.unwrap_or(now) },
    }
}

/// The JSON status of a role (admin API, `/readyz`): never a secret.
pub fn status(state: &RoleState, now: u64) -> serde_json::Value {
    let usable = state.usable(now);
    let mut status = serde_json::json!({ "valid": usable.is_some() });
    if let Some(served) = &state.served {
        status["access_key_id"] = served.credentials.access_key_id.clone().into();
        status["expiration"] = imds_model::time::format_rfc3339(served.expiration).into();
        status["last_updated"] = imds_model::time::format_rfc3339(served.last_updated).into();
    }
    if let Some(error) = &state.error {
        status["error"] = error.to_string().into();
    }
    if let Some(at) = state.last_attempt {
        status["last_attempt"] = imds_model::time::format_rfc3339(at).into();
    }
    status
}

/// Keeps `manager`'s roles equal to the view's until `shutdown`.
pub async fn follow(view: View, manager: Arc<Manager>, shutdown: CancellationToken) {
    let mut reached = view.subscribe();
    let mut applied: Option<HashMap<String, u64>> = None;
    loop {
        let snapshot = view.load();
        let versions: HashMap<String, u64> =
            snapshot.roles().iter().map(|(name, (_, rev))| (name.clone(), rev.0)).collect();
        if applied.as_ref() != Some(&versions) {
            let roles =
                snapshot.roles().iter().map(|(name, (role, rev))| (name.clone(), ((**role).clone(), rev.0))).collect();
            manager.apply(&roles);
            applied = Some(versions);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = reached.changed() => if changed.is_err() { return },
        }
    }
}

/// Writes a role from the configuration file to the store, unless the stored one is the same.
/// Base credentials set through the admin API are kept when the configured role has none.
pub async fn put_configured(
    store: &Arc<dyn imds_store::Store>,
    name: &str,
    role: &imds_creds::Role,
) -> Result<(), imds_store::StoreError> {
    use imds_store::update::{update, Plan, Step};
    use imds_store::{Expect, Op, Put};
    let key = crate::records::role(name);
    let key_ref = &key;
    let updated = update(&**store, &key, || async move {
        let current = store.get(key_ref).await?;
        let mut role = role.clone();
        let expect = match &current {
            Some(record) => {
                if let Ok(stored) = crate::records::decode_role(record) {
                    if role.base_credentials.is_none() && matches!(role.source, imds_creds::Source::Sts { .. }) {
                        role.base_credentials = stored.base_credentials.clone();
                    }
                    if stored == role {
                        return Ok(Step::Done(()));
                    }
                }
                Expect::Revision(record.rev)
            }
            None => Expect::Absent,
        };
        let put = Put { key: key_ref.clone(), node: None, claims: Vec::new(), value: role.to_bytes(), expect };
        Ok(Step::Commit(Plan::new(()).guarded(Op::Put(put))))
    })
    .await?;
    if updated.committed.is_none() {
        return Ok(());
    }
    tracing::info!(role = name, source = role.source.kind(), "role written from the configuration");
    Ok(())
}
