//! The store's schema as the server uses it: collection names, typed keys and each record
//! type's codec, in one place.
//!
//! Every record the server writes or reads lives under a key built here ([`instance`],
//! [`mmds`], [`state`], [`events`], [`container_tokens`], [`role`], [`role_secrets`],
//! [`signing_keys`], [`token_key`]); no other module spells a
//! collection name. [`decode`] turns any stored record into its typed [`Value`], which is how
//! the view indexes a feed batch; [`noun`] names a key in an error message. The records an
//! instance owns besides its own ([`attachments`]) are deleted and moved with it.

use imds_creds::{BaseCredentials, Role};
use imds_model::{ContainerTokens, GuestState, Instance, InstanceEvents, InstanceId, Mmds};
use imds_sign::Keyring;
use imds_store::{Expect, Key, Op, Put, Record, Revision};

/// The store collection that holds instance records, keyed by instance id.
pub const INSTANCES: &str = "instances";
/// The store collection that holds each instance's MMDS configuration and document.
pub const MMDS: &str = "mmds";
/// The store collection that holds what each instance's guests wrote.
pub const STATE: &str = "state";
/// The store collection that holds each instance's runtime events (one list per instance).
pub const EVENTS: &str = "events";
/// The store collection that holds each instance's container credential tokens.
pub const CONTAINER_TOKENS: &str = "container-tokens";
/// The store collection that holds roles and their credential sources, keyed by role name.
pub const ROLES: &str = "roles";
/// The store collection of `sts` roles' base credentials, keyed by role name: placed on no
/// node and not in [`SHARED`], so node-scoped servers never follow it; read with `get` at
/// fetch time by the servers that call the sources (scope `all`, fleet refreshers).
pub const ROLE_SECRETS: &str = "role-secrets";
/// The store collection of deployment secrets (session-token key, signing keys).
pub const SECRETS: &str = "secrets";
/// The store collection of fleet-refreshed role credentials, sealed with the deployment key,
/// keyed by role name (read by each node's refresh, not held in the view).
pub const FLEET_CREDENTIALS: &str = "fleet-credentials";
/// The namespace of the refresher leases ([`imds_store::Store::acquire`], not records), keyed by
/// role name.
pub const REFRESHERS: &str = "refreshers";
/// The record of [`SECRETS`] holding the identity signing keys.
pub const SIGNING_KEYS: &str = "signing-keys";
/// The record of [`SECRETS`] holding the guest session-token key.
pub const TOKEN_KEY: &str = "guest-token-key";

/// The collections whose records are placed on no node and followed by every node (a node's
/// roles, signing keys and token key come from here).
pub const SHARED: [&str; 2] = [ROLES, SECRETS];

/// The key of instance `id`'s record.
pub fn instance(id: &InstanceId) -> Key {
    Key::new(INSTANCES, id.as_str())
}

/// The guard that instance `id` is still at `rev` (not deleted or moved since): what is
/// written for the instance commits only with it.
pub fn instance_unchanged(id: &InstanceId, rev: Revision) -> Op {
    Op::Check { key: instance(id), expect: Expect::Revision(rev) }
}

/// The key of instance `id`'s MMDS record.
pub fn mmds(id: &InstanceId) -> Key {
    Key::new(MMDS, id.as_str())
}

/// The key of instance `id`'s guest state.
pub fn state(id: &InstanceId) -> Key {
    Key::new(STATE, id.as_str())
}

/// The key of instance `id`'s event list.
pub fn events(id: &InstanceId) -> Key {
    Key::new(EVENTS, id.as_str())
}

/// The key of instance `id`'s container credential tokens.
pub fn container_tokens(id: &InstanceId) -> Key {
    Key::new(CONTAINER_TOKENS, id.as_str())
}

/// The records instance `id` owns besides its own: placed on its node, moved and deleted with
/// it in the same commit.
pub fn attachments(id: &InstanceId) -> [Key; 4] {
    [mmds(id), state(id), events(id), container_tokens(id)]
}

/// The collections keyed by instance id whose records belong to that instance.
pub const PER_INSTANCE: [&str; 5] = [INSTANCES, MMDS, STATE, EVENTS, CONTAINER_TOKENS];

/// The key of the role named `name`.
pub fn role(name: &str) -> Key {
    Key::new(ROLES, name)
}

/// The key of role `name`'s base credentials.
pub fn role_secrets(name: &str) -> Key {
    Key::new(ROLE_SECRETS, name)
}

/// The operations writing role `name` as `role`, guarded by `expect` on its record: the
/// record without base credentials ([`Role::split`]) and, in the same commit, the base
/// credentials in their own record when `role` holds them, or their removal when `role` has
/// none left (another source, or none set). Base credentials stored apart before and still
/// referred to by `role` are left as they are.
pub fn put_role(name: &str, role: &Role, expect: Expect) -> Result<Vec<Op>, imds_store::StoreError> {
    let mut version = [0u8; 8];
    getrandom::fill(&mut version)
        .map_err(|e| imds_store::StoreError::unavailable_from("no randomness for a role version", e))?;
    let version: String = version.iter().map(|b| format!("{b:02x}")).collect();
    let (record, base) = role.split(&version);
    let put =
        |key: Key, value: Vec<u8>, expect: Expect| Op::Put(Put { key, node: None, claims: Vec::new(), value, expect });
    let mut ops = vec![put(self::role(name), record.to_bytes(), expect)];
    match base {
        Some(base) => {
            let value = serde_json::to_vec(&base).expect("base credentials serialize");
            ops.push(put(role_secrets(name), value, Expect::Any));
        }
        None if record.base_credentials_stored.is_none() => {
            ops.push(Op::Delete { key: role_secrets(name), expect: Expect::Any });
        }
        None => {}
    }
    Ok(ops)
}

/// The operations deleting role `name` (which must exist) and its base credentials, in one
/// commit.
pub fn delete_role(name: &str) -> Vec<Op> {
    vec![
        Op::Delete { key: role(name), expect: Expect::Present },
        Op::Delete { key: role_secrets(name), expect: Expect::Any },
    ]
}

/// The key of role `name`'s sealed fleet-refreshed credentials.
pub fn fleet_credentials(name: &str) -> Key {
    Key::new(FLEET_CREDENTIALS, name)
}

/// The key of role `name`'s refresher lease (a store lease, not a record).
pub fn refresher(name: &str) -> Key {
    Key::new(REFRESHERS, name)
}

/// The key of the deployment's identity signing keys.
pub fn signing_keys() -> Key {
    Key::new(SECRETS, SIGNING_KEYS)
}

/// The key of the deployment's guest session-token key.
pub fn token_key() -> Key {
    Key::new(SECRETS, TOKEN_KEY)
}

/// What a key names, for an error message: the record's kind and id.
pub fn noun(key: &Key) -> String {
    match key.collection.as_str() {
        INSTANCES => format!("instance {}", key.id),
        ROLES => format!("role {}", key.id),
        ROLE_SECRETS => format!("the base credentials of role {}", key.id),
        MMDS => format!("the MMDS document of instance {}", key.id),
        STATE => format!("the guest state of instance {}", key.id),
        EVENTS => format!("the events of instance {}", key.id),
        CONTAINER_TOKENS => format!("the container tokens of instance {}", key.id),
        _ => format!("record {key}"),
    }
}

/// A stored record, decoded by its collection.
#[derive(Debug)]
pub enum Value {
    /// An instance record (boxed: it is by far the largest).
    Instance(Box<Instance>),
    /// An instance's MMDS record.
    Mmds(InstanceId, Mmds),
    /// An instance's guest state.
    State(InstanceId, GuestState),
    /// An instance's runtime events.
    Events(InstanceId, InstanceEvents),
    /// An instance's container credential tokens.
    ContainerTokens(InstanceId, ContainerTokens),
    /// A role.
    Role(Role),
    /// The identity signing keys.
    SigningKeys(Keyring),
}

/// Why a stored record could not be decoded: its key, and the decode error as the
/// [`source`](std::error::Error::source) (its text is part of the message).
#[derive(Debug, thiserror::Error)]
#[error("stored record {key} is unreadable: {source}")]
pub struct Unreadable {
    /// The record's key.
    pub key: Key,
    /// What is wrong with it.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl Unreadable {
    /// `record` could not be decoded because of `source`.
    fn of(record: &Record, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Unreadable { key: record.key.clone(), source: source.into() }
    }
}

/// Decodes a stored record; `Ok(None)` for a record the view does not hold (the token key,
/// collections of a newer build).
pub fn decode(record: &Record) -> Result<Option<Value>, Unreadable> {
    let attached = || InstanceId::try_from(record.key.id.as_str()).map_err(|e| Unreadable::of(record, e));
    let value = match record.key.collection.as_str() {
        INSTANCES => Value::Instance(Box::new(decode_instance(record)?)),
        MMDS => Value::Mmds(attached()?, Mmds::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))?),
        STATE => {
            Value::State(attached()?, GuestState::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))?)
        }
        EVENTS => Value::Events(attached()?, decode_events(record)?),
        CONTAINER_TOKENS => Value::ContainerTokens(
            attached()?,
            ContainerTokens::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))?,
        ),
        ROLES => Value::Role(Role::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))?),
        SECRETS if record.key.id == SIGNING_KEYS => {
            Value::SigningKeys(Keyring::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))?)
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// Decodes an instance record.
pub fn decode_instance(record: &Record) -> Result<Instance, Unreadable> {
    Instance::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))
}

/// Decodes an MMDS record.
pub fn decode_mmds(record: &Record) -> Result<Mmds, Unreadable> {
    Mmds::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))
}

/// Decodes a role record.
pub fn decode_role(record: &Record) -> Result<Role, Unreadable> {
    Role::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))
}

/// Decodes a base-credentials record.
pub fn decode_base(record: &Record) -> Result<BaseCredentials, Unreadable> {
    serde_json::from_slice(&record.value).map_err(|e| Unreadable::of(record, e))
}

/// Decodes a guest-state record.
pub fn decode_state(record: &Record) -> Result<GuestState, Unreadable> {
    GuestState::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))
}

/// Decodes an event-list record.
pub fn decode_events(record: &Record) -> Result<InstanceEvents, Unreadable> {
    InstanceEvents::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))
}

/// Decodes a container-tokens record.
pub fn decode_container_tokens(record: &Record) -> Result<ContainerTokens, Unreadable> {
    ContainerTokens::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))
}

/// Decodes the signing-keys record.
pub fn decode_keyring(record: &Record) -> Result<Keyring, Unreadable> {
    Keyring::from_bytes(&record.value).map_err(|e| Unreadable::of(record, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_collection_and_id() {
        let id = InstanceId::try_from("i-a").unwrap();
        assert_eq!(instance(&id), Key::new("instances", "i-a"));
        assert_eq!(
            attachments(&id),
            [
                Key::new("mmds", "i-a"),
                Key::new("state", "i-a"),
                Key::new("events", "i-a"),
                Key::new("container-tokens", "i-a")
            ]
        );
        assert_eq!(role("app"), Key::new("roles", "app"));
        assert_eq!(token_key(), Key::new("secrets", "guest-token-key"));
        assert_eq!(noun(&role("app")), "role app");
        assert_eq!(noun(&mmds(&id)), "the MMDS document of instance i-a");
    }

    #[test]
    fn a_role_write_keeps_base_credentials_in_their_own_record() {
        let with_base: Role = serde_json::from_value(serde_json::json!({
            "source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app"},
            "base_credentials": {"access_key_id": "AKIABASE", "secret_access_key": "base-secret"}}))
        .unwrap();
        let ops = put_role("app", &with_base, Expect::Absent).unwrap();
        let [Op::Put(record), Op::Put(apart)] = ops.as_slice() else { panic!("{ops:?}") };
        assert_eq!((&record.key, record.expect), (&role("app"), Expect::Absent));
        assert!(!String::from_utf8_lossy(&record.value).contains("base-secret"));
        assert_eq!(apart.key, role_secrets("app"));
        assert_eq!(
            decode_base(&Record {
                key: apart.key.clone(),
                node: None,
                claims: vec![],
                value: apart.value.clone(),
                rev: imds_store::Revision(1)
            })
            .unwrap(),
            with_base.base_credentials.clone().unwrap()
        );
        // Stored apart already: only the role record is written; without any: they are removed.
        let split = Role::from_bytes(&record.value).unwrap();
        assert!(matches!(put_role("app", &split, Expect::Any).unwrap().as_slice(), [Op::Put(_)]));
        let none = Role { base_credentials: None, base_credentials_stored: None, ..split };
        let ops = put_role("app", &none, Expect::Any).unwrap();
        assert!(
            matches!(ops.as_slice(), [Op::Put(_), Op::Delete { key, expect: Expect::Any }] if *key == role_secrets("app"))
        );
        assert!(matches!(delete_role("app").as_slice(),
            [Op::Delete { key: a, expect: Expect::Present }, Op::Delete { key: b, expect: Expect::Any }]
            if *a == role("app") && *b == role_secrets("app")));
        assert_eq!(noun(&role_secrets("app")), "the base credentials of role app");
    }

    #[test]
    fn decode_types_records_and_skips_what_the_view_does_not_hold() {
        let id = InstanceId::try_from("i-a").unwrap();
        let record = |key: Key, value: &[u8]| Record {
            key,
            node: None,
            claims: Vec::new(),
            value: value.to_vec(),
            rev: imds_store::Revision(1),
        };
        let state = GuestState::default();
        assert!(
            matches!(decode(&record(self::state(&id), &state.to_bytes())), Ok(Some(Value::State(got, _))) if got == id)
        );
        assert!(matches!(decode(&record(token_key(), &[0; 32])), Ok(None)));
        let err = decode(&record(instance(&id), b"not json")).unwrap_err();
        assert_eq!(err.key, instance(&id));
        // The decode error is kept as the source, and its text stays in the message.
        let cause = Instance::from_bytes(b"not json").unwrap_err().to_string();
        let source = std::error::Error::source(&err).expect("the decode error is the source");
        assert_eq!(source.to_string(), cause);
        assert_eq!(err.to_string(), format!("stored record {} is unreadable: {cause}", instance(&id)));
        // A malformed instance id under an attached collection: the id's error is the source.
        let bad = decode(&record(Key::new(MMDS, "not an id!"), b"{}")).unwrap_err();
        let id_error = InstanceId::try_from("not an id!").unwrap_err().to_string();
        assert_eq!(std::error::Error::source(&bad).map(ToString::to_string), Some(id_error));
    }
}
