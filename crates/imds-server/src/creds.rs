//! Role credentials on the server: the [`imds_creds::Manager`] kept in step with the roles in
//! the view ([`follow`]), and its face towards the dialects ([`Credentials`], an
//! `imds_dialects::credentials::RoleCredentials`). Guests read the cache with one atomic
//! load per role; refreshes run in the manager's tasks, never on the guest path. Base
//! credentials are read from their own record at fetch time ([`WithStoredBase`]); role records
//! of an older build that hold them inside are split at start ([`split_stored_roles`]).

use std::collections::HashMap;
use std::sync::Arc;

use imds_creds::{Fetch, FetchError, Manager, RoleState};
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

    fn credentials_for(&self, role: &str, instance: &str, now: u64) -> Option<CredentialState> {
        // A role with a session per instance is managed only under its instances' names
        // ([`managed`]), so the role's own name answers every other role without building one.
        let state = self.0.state(role).or_else(|| self.0.state(&instance_key(role, instance)))?;
        Some(issue(&state, now))
    }
}

/// The manager's name for instance `instance`'s own session of role `role` (a role with
/// `session_per_instance`): `<role>#<instance>` (`#` is in no role name).
pub fn instance_key(role: &str, instance: &str) -> String {
    format!("{role}#{instance}")
}

/// The role a manager name belongs to: `role` itself, or the role of an [`instance_key`].
pub fn role_of(name: &str) -> &str {
    name.split_once('#').map_or(name, |(role, _)| role)
}

/// The roles the manager refreshes for `snapshot`: every role by its name, except that a role
/// with a session per instance is refreshed once per instance of the view that names it in
/// `iam_role` ([`instance_key`]), each with `RoleSessionName` = the instance id.
pub fn managed(snapshot: &crate::view::Snapshot) -> HashMap<String, (imds_creds::Role, u64)> {
    let mut roles = HashMap::new();
    let mut per_instance = HashMap::new();
    for (name, (role, rev)) in snapshot.roles() {
        if role.source.session_per_instance() {
            per_instance.insert(name.as_str(), (role, rev.0));
        } else {
            roles.insert(name.clone(), ((**role).clone(), rev.0));
        }
    }
    if !per_instance.is_empty() {
        for entry in snapshot.entries() {
            let Some(name) = entry.instance.iam_role.as_ref() else { continue };
            if let Some((role, rev)) = per_instance.get(name.as_str()) {
                let id = entry.instance.id.as_str();
                let role = imds_creds::Role { source: role.source.for_instance(id), ..imds_creds::Role::clone(role) };
                roles.insert(instance_key(name.as_str(), id), (role, *rev));
            }
        }
    }
    roles
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
        let roles = managed(&snapshot);
        let versions: HashMap<String, u64> = roles.iter().map(|(name, (_, rev))| (name.clone(), *rev)).collect();
        if applied.as_ref() != Some(&versions) {
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
    use imds_store::Expect;
    let key = crate::records::role(name);
    let key_ref = &key;
    let updated = update(&**store, &key, || async move {
        let current = store.get(key_ref).await?;
        let mut role = role.clone();
        let expect = match &current {
            Some(record) => {
                if let Ok(stored) = crate::records::decode_role(record) {
                    let sts = matches!(role.source, imds_creds::Source::Sts { .. });
                    if role.base_credentials.is_none() && sts {
                        role.base_credentials = stored.base_credentials.clone();
                        role.base_credentials_stored = stored.base_credentials_stored.clone();
                    }
                    if same_as_stored(store, name, &role, &stored).await? {
                        return Ok(Step::Done(()));
                    }
                }
                Expect::Revision(record.rev)
            }
            None => Expect::Absent,
        };
        let ops = crate::records::put_role(name, &role, expect)?;
        Ok(Step::Commit(Plan::new(()).guarded_all(ops)))
    })
    .await?;
    if updated.committed.is_none() {
        return Ok(());
    }
    tracing::info!(role = name, source = role.source.kind(), "role written from the configuration");
    Ok(())
}

/// Whether `role` (from the configuration, with what it keeps of the stored role) is what
/// the store holds as `stored`. The stored base credentials are read only when the configured
/// role names some (this process has them already).
async fn same_as_stored(
    store: &Arc<dyn imds_store::Store>,
    name: &str,
    role: &imds_creds::Role,
    stored: &imds_creds::Role,
) -> Result<bool, imds_store::StoreError> {
    if role.source != stored.source {
        return Ok(false);
    }
    match (&role.base_credentials, &stored.base_credentials_stored) {
        // An older build's record with them inside: equal only when split already.
        _ if stored.base_credentials.is_some() => Ok(false),
        (None, _) => Ok(role.base_credentials_stored == stored.base_credentials_stored),
        (Some(_), None) => Ok(false),
        (Some(base), Some(_)) => {
            let record = store.get(&crate::records::role_secrets(name)).await?;
            Ok(record.and_then(|record| crate::records::decode_base(&record).ok()).as_ref() == Some(base))
        }
    }
}

/// A [`Fetch`] that gives each `sts` role its base credentials, read from their own record
/// ([`crate::records::role_secrets`]) with `get` at fetch time and dropped with the fetch: the
/// servers that call the sources (scope `all`, fleet refreshers) wrap the real sources in it.
/// A role still holding them inside its record (an older build's) uses those.
#[derive(Debug)]
pub struct WithStoredBase {
    inner: Arc<dyn Fetch>,
    store: Arc<dyn imds_store::Store>,
}

impl WithStoredBase {
    /// `inner` (the real sources), given base credentials read from `store`.
    pub fn new(inner: Arc<dyn Fetch>, store: Arc<dyn imds_store::Store>) -> Self {
        Self { inner, store }
    }

    async fn fetch_with_base(
        &self,
        name: &str,
        role: &imds_creds::Role,
        now: u64,
    ) -> Result<imds_creds::Credentials, FetchError> {
        let record = self
            .store
            .get(&crate::records::role_secrets(role_of(name)))
            .await
            .map_err(|err| FetchError::Unreachable(format!("store: {err}")))?;
        let role = match record {
            Some(record) => {
                let base =
                    crate::records::decode_base(&record).map_err(|err| FetchError::BadAnswer(err.to_string()))?;
                role.with_base(base)
            }
            // Not written yet (the role's record is newer than what this node read): none.
            None => role.clone(),
        };
        self.inner.fetch(name, &role, now).await
    }
}

impl Fetch for WithStoredBase {
    fn fetch<'a>(&'a self, name: &'a str, role: &'a imds_creds::Role, now: u64) -> imds_creds::Fetching<'a> {
        if role.base_credentials.is_none() && role.base_credentials_stored.is_some() {
            Box::pin(self.fetch_with_base(name, role, now))
        } else {
            self.inner.fetch(name, role, now)
        }
    }
}

/// Splits every role record of an older build that holds base credentials inside: each is
/// rewritten as a record without them plus their own record, in one commit guarded by the
/// revision read (a role written meanwhile was split by that write). Run at start by the
/// servers that may read base credentials. Returns how many roles were split.
pub async fn split_stored_roles(store: &Arc<dyn imds_store::Store>) -> Result<usize, imds_store::StoreError> {
    let mut split = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store.list(crate::records::ROLES, after.as_deref(), 1000).await?;
        for record in &page.records {
            let Ok(role) = crate::records::decode_role(record) else { continue };
            if role.base_credentials.is_none() {
                continue;
            }
            let ops = crate::records::put_role(&record.key.id, &role, imds_store::Expect::Revision(record.rev))?;
            match store.commit(ops).await {
                Ok(_) => split += 1,
                Err(imds_store::StoreError::RevisionMismatch { .. } | imds_store::StoreError::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if split > 0 {
        tracing::info!(roles = split, "moved base credentials out of role records");
    }
    Ok(split)
}
