//! Validated identifier newtypes: [`InstanceId`] and [`RoleName`].
//!
//! Both are checked once, in `TryFrom`, and then passed around as types: an `InstanceId` is safe
//! to use as a store key and a URL path segment, a `RoleName` follows AWS's IAM role name rules.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest instance id, in characters.
const MAX_ID_LEN: usize = 128;
/// Longest IAM role name, in characters (AWS's limit).
const MAX_ROLE_LEN: usize = 64;

/// Why a string is not a valid [`InstanceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceIdError {
    /// The id was the empty string.
    #[error("instance id must not be empty")]
    Empty,
    /// The id was longer than 128 characters.
    #[error("instance id is {len} characters; the limit is 128")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// The id contained a character outside `[A-Za-z0-9._:-]`.
    #[error("instance id contains {ch:?}; allowed are A-Z a-z 0-9 . _ : -")]
    BadChar {
        /// The first offending character.
        ch: char,
    },
    /// The id started with a dot (which would allow `.` and `..` path segments).
    #[error("instance id must not start with '.'")]
    LeadingDot,
}

/// The primary key of an instance record: 1 to 128 characters of `[A-Za-z0-9._:-]`, not
/// starting with `.`. Copies share one allocation: the guest view keys several indexes by it,
/// and copying an index shard must not allocate per instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn check(s: &str) -> Result<(), InstanceIdError> {
        let len = s.chars().count();
        if len == 0 {
            return Err(InstanceIdError::Empty);
        }
        if len > MAX_ID_LEN {
            return Err(InstanceIdError::TooLong { len });
        }
        if let Some(ch) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))) {
            return Err(InstanceIdError::BadChar { ch });
        }
        if s.starts_with('.') {
            return Err(InstanceIdError::LeadingDot);
        }
        Ok(())
    }
}

impl TryFrom<&str> for InstanceId {
    type Error = InstanceIdError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::check(s)?;
        Ok(Self(Arc::from(s)))
    }
}

impl TryFrom<String> for InstanceId {
    type Error = InstanceIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::check(&s)?;
        Ok(Self(Arc::from(s)))
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for InstanceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::try_from(s).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not a valid [`RoleName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleNameError {
    /// The name was the empty string.
    #[error("role name must not be empty")]
    Empty,
    /// The name was longer than 64 characters.
    #[error("role name is {len} characters; the limit is 64")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// The name contained a character outside `[A-Za-z0-9+=,.@_-]`.
    #[error("role name contains {ch:?}; allowed are A-Z a-z 0-9 + = , . @ _ -")]
    BadChar {
        /// The first offending character.
        ch: char,
    },
}

/// An IAM role name, following AWS's rules: 1 to 64 characters of `[A-Za-z0-9+=,.@_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn check(s: &str) -> Result<(), RoleNameError> {
        let len = s.chars().count();
        if len == 0 {
            return Err(RoleNameError::Empty);
        }
        if len > MAX_ROLE_LEN {
            return Err(RoleNameError::TooLong { len });
        }
        if let Some(ch) =
            s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '=' | ',' | '.' | '@' | '_' | '-')))
        {
            return Err(RoleNameError::BadChar { ch });
        }
        Ok(())
    }
}

impl TryFrom<&str> for RoleName {
    type Error = RoleNameError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::check(s)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for RoleName {
    type Error = RoleNameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::check(&s)?;
        Ok(Self(s))
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoleName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for RoleName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::try_from(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids() {
        let long = "a".repeat(128);
        let too_long = "a".repeat(129);
        let cases: &[(&str, Result<(), InstanceIdError>)] = &[
            ("i-0abc", Ok(())),
            ("web_1.example:prod", Ok(())),
            (&long, Ok(())),
            ("a..b", Ok(())),
            ("", Err(InstanceIdError::Empty)),
            (&too_long, Err(InstanceIdError::TooLong { len: 129 })),
            ("a/b", Err(InstanceIdError::BadChar { ch: '/' })),
            ("a b", Err(InstanceIdError::BadChar { ch: ' ' })),
            ("é", Err(InstanceIdError::BadChar { ch: 'é' })),
            (".", Err(InstanceIdError::LeadingDot)),
            ("..", Err(InstanceIdError::LeadingDot)),
            (".hidden", Err(InstanceIdError::LeadingDot)),
        ];
        for (input, expected) in cases {
            let got = InstanceId::try_from(*input).map(|id| assert_eq!(id.as_str(), *input));
            assert_eq!(&got, expected, "{input:?}");
            assert_eq!(InstanceId::try_from(input.to_string()).is_ok(), expected.is_ok());
        }
    }

    #[test]
    fn instance_id_serde_validates() {
        let id: InstanceId = serde_json::from_str("\"i-1\"").unwrap();
        assert_eq!(id.to_string(), "i-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"i-1\"");
        assert!(serde_json::from_str::<InstanceId>("\"../x\"").is_err());
    }

    #[test]
    fn role_names() {
        let long = "r".repeat(64);
        let too_long = "r".repeat(65);
        let cases: &[(&str, Result<(), RoleNameError>)] = &[
            ("app-role", Ok(())),
            ("a+b=c,d.e@f_g-h", Ok(())),
            (&long, Ok(())),
            ("", Err(RoleNameError::Empty)),
            (&too_long, Err(RoleNameError::TooLong { len: 65 })),
            ("a/b", Err(RoleNameError::BadChar { ch: '/' })),
            ("a:b", Err(RoleNameError::BadChar { ch: ':' })),
        ];
        for (input, expected) in cases {
            let got = RoleName::try_from(*input).map(|_| ());
            assert_eq!(&got, expected, "{input:?}");
        }
        let role: RoleName = serde_json::from_str("\"app\"").unwrap();
        assert_eq!(serde_json::to_string(&role).unwrap(), "\"app\"");
    }
}
