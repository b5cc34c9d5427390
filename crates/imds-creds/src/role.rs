//! [`Role`]: a named role (its [`Source`] and, for `sts`, its base credentials), and the view
//! of it that may be shown (no secret ever).
//!
//! Base credentials are kept apart from the role's record ([`Role::split`]): the record every
//! node follows carries only a [`BaseRef`] (that they are set, their access key id and a
//! version), and the credentials themselves live in a record of their own that only the
//! nodes that call the source read, at fetch time ([`Role::with_base`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::source::{BaseCredentials, Source, SourceInvalid};

/// A role (stored in collection `roles`, keyed by role name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Where its credentials come from.
    pub source: Source,
    /// For `sts`: the credentials that sign `AssumeRole` (write-only). Present in a role
    /// written through the API or read for a fetch; a role record of this build never holds
    /// them (an older build's may, until it is split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_credentials: Option<BaseCredentials>,
    /// For `sts`: base credentials are set and stored apart (set by [`Role::split`], never
    /// accepted from an API body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_credentials_stored: Option<BaseRef>,
}

/// What a role record says of base credentials stored apart: nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRef {
    /// Their access key id (not secret; shown by the admin API).
    pub access_key_id: String,
    /// A tag new with every write of the base credentials, so that the role's record (and
    /// what is bound to it, such as fleet-sealed credentials) changes with them.
    pub version: String,
}

impl Role {
    /// Parses and validates a role body (`{"source": {...}, "base_credentials": {...}}`).
    pub fn parse(value: &Value) -> Result<Self, SourceInvalid> {
        // serde's message for a mistyped field does not name it: name this one here.
        if value["source"].get("session_per_instance").is_some_and(|flag| !flag.is_boolean()) {
            return Err(SourceInvalid {
                field: "source.session_per_instance".into(),
                message: "must be true or false".into(),
            });
        }
        let role: Role = serde_json::from_value(value.clone()).map_err(|e| {
            // serde names the unknown or missing field in its message; it never echoes values
            // of string fields it accepted.
            let message = e.to_string();
            let field = ["source", "base_credentials"].into_iter().find(|f| message.contains(f)).unwrap_or("source");
            SourceInvalid { field: field.to_owned(), message }
        })?;
        if role.base_credentials_stored.is_some() {
            return Err(SourceInvalid {
                field: "base_credentials_stored".into(),
                message: "is set by the server; send base_credentials".into(),
            });
        }
        role.source.validate()?;
        if role.base_credentials.is_some() && !matches!(role.source, Source::Sts { .. }) {
            return Err(SourceInvalid {
                field: "base_credentials".into(),
                message: "only an sts source uses base credentials".into(),
            });
        }
        if let Some(base) = &role.base_credentials {
            validate_base(base)?;
        }
        Ok(role)
    }

    /// Whether base credentials are set (held here or stored apart).
    pub fn has_base(&self) -> bool {
        self.base_credentials.is_some() || self.base_credentials_stored.is_some()
    }

    /// The role record to store and the base credentials to store apart: base credentials
    /// held here move out, replaced by a [`BaseRef`] tagged `version`; a role whose base
    /// credentials are already apart (or that has none) is returned as it is, with `None`.
    pub fn split(&self, version: &str) -> (Role, Option<BaseCredentials>) {
        let mut record = self.clone();
        let base = record.base_credentials.take();
        if let Some(base) = &base {
            record.base_credentials_stored =
                Some(BaseRef { access_key_id: base.access_key_id.clone(), version: version.to_owned() });
        }
        (record, base)
    }

    /// This role holding `base` (read from their own record for one fetch).
    pub fn with_base(&self, base: BaseCredentials) -> Role {
        Role { base_credentials: Some(base), ..self.clone() }
    }

    /// The stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a role serializes")
    }

    /// Reads stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// What may be shown of the role: the source without its secrets, and whether base
    /// credentials are set (with their access key id, which is not secret).
    pub fn public_view(&self) -> Value {
        let mut source = serde_json::to_value(&self.source).unwrap_or(Value::Null);
        if let Some(object) = source.as_object_mut() {
            for secret in ["secret_access_key", "session_token"] {
                if object.remove(secret).is_some() {
                    object.insert(format!("{secret}_set"), Value::Bool(true));
                }
            }
        }
        let key_id = match (&self.base_credentials, &self.base_credentials_stored) {
            (Some(base), _) => Some(&base.access_key_id),
            (None, Some(stored)) => Some(&stored.access_key_id),
            (None, None) => None,
        };
        let base = match key_id {
            Some(key_id) => json!({"set": true, "access_key_id": key_id}),
            None => json!({"set": false}),
        };
        let mut view = json!({"source": source});
        if matches!(self.source, Source::Sts { .. }) {
            view["base_credentials"] = base;
        }
        view
    }
}

/// Checks base credentials posted alone or inside a role.
pub fn validate_base(base: &BaseCredentials) -> Result<(), SourceInvalid> {
    if base.access_key_id.trim().is_empty() {
        return Err(SourceInvalid { field: "access_key_id".into(), message: "must not be empty".into() });
    }
    if base.secret_access_key.is_empty() {
        return Err(SourceInvalid { field: "secret_access_key".into(), message: "must not be empty".into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts_with_base() -> Value {
        json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app"},
               "base_credentials": {"access_key_id": "AKIABASE", "secret_access_key": "base-secret"}})
    }

    #[test]
    fn split_moves_base_credentials_out_of_the_record_and_keeps_what_may_be_shown() {
        let role = Role::parse(&sts_with_base()).unwrap();
        let (record, base) = role.split("v1");
        let base = base.expect("the base credentials move out");
        assert_eq!(base.secret_access_key.expose(), "base-secret");
        let stored = String::from_utf8(record.to_bytes()).unwrap();
        assert!(!stored.contains("base-secret"), "{stored}");
        assert_eq!(
            record.base_credentials_stored,
            Some(BaseRef { access_key_id: "AKIABASE".into(), version: "v1".into() })
        );
        assert_eq!(record.public_view(), role.public_view(), "shown the same before and after");
        assert_eq!(record.public_view()["base_credentials"], json!({"set": true, "access_key_id": "AKIABASE"}));
        // Already split: nothing more moves, and the record reads back the same.
        assert_eq!(record.split("v2"), (record.clone(), None));
        assert_eq!(Role::from_bytes(&record.to_bytes()).unwrap(), record);
        // For a fetch, the credentials are put back.
        assert_eq!(record.with_base(base).base_credentials, role.base_credentials);
    }

    #[test]
    fn an_old_record_with_base_credentials_inside_still_reads() {
        let old = serde_json::to_vec(&sts_with_base()).unwrap();
        let role = Role::from_bytes(&old).unwrap();
        assert!(role.has_base() && role.base_credentials_stored.is_none());
        assert_eq!(role.base_credentials.as_ref().unwrap().access_key_id, "AKIABASE");
    }

    #[test]
    fn a_session_per_instance_is_a_boolean_without_a_session_name() {
        let with = |extra: Value| {
            let mut body = json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app"}});
            body["source"].as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            Role::parse(&body)
        };
        let role = with(json!({"session_per_instance": true})).unwrap();
        assert!(role.source.session_per_instance());
        let Source::Sts { session_name, .. } = role.source.for_instance("i-0abc") else { panic!() };
        assert_eq!(session_name.as_deref(), Some("i-0abc"));
        assert!(!with(json!({"session_per_instance": false})).unwrap().source.session_per_instance());
        for bad in [json!({"session_per_instance": "yes"}), json!({"session_per_instance": true, "session_name": "x1"})]
        {
            assert_eq!(with(bad).unwrap_err().field, "source.session_per_instance");
        }
    }

    #[test]
    fn a_body_cannot_claim_stored_base_credentials() {
        let body = json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app"},
                          "base_credentials_stored": {"access_key_id": "AKIA", "version": "x"}});
        let err = Role::parse(&body).unwrap_err();
        assert_eq!(err.field, "base_credentials_stored");
    }
}
