//! [`Role`]: a named role's stored form (its [`Source`] and, for `sts`, its base credentials),
//! and the view of it that may be shown (no secret ever).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::source::{BaseCredentials, Source, SourceInvalid};

/// A role as stored (collection `roles`, keyed by role name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Where its credentials come from.
    pub source: Source,
    /// For `sts`: the credentials that sign `AssumeRole` (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_credentials: Option<BaseCredentials>,
}

impl Role {
    /// Parses and validates a role body (`{"source": {...}, "base_credentials": {...}}`).
    pub fn parse(value: &Value) -> Result<Self, SourceInvalid> {
        let role: Role = serde_json::from_value(value.clone()).map_err(|e| {
            // serde names the unknown or missing field in its message; it never echoes values
            // of string fields it accepted.
            let message = e.to_string();
            let field = ["source", "base_credentials"].into_iter().find(|f| message.contains(f)).unwrap_or("source");
            SourceInvalid { field: field.to_owned(), message }
        })?;
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
        let base = match &self.base_credentials {
            Some(base) => json!({"set": true, "access_key_id": base.access_key_id}),
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
