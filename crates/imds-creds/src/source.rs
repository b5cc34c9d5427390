//! Where a role's credentials come from: [`Source`] (the operator's description, stored with
//! the role) and [`fetch`], which obtains one set of [`Credentials`] from it.
//!
//! - `static`: an operator-supplied key triple and optional expiry;
//! - `sts`: AWS STS `AssumeRole` signed with base credentials (module [`sts`]);
//! - `process`: a command printing `credential_process` JSON (module [`process`]).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::{process, sts};
use imds_model::time::parse_rfc3339;

/// One set of temporary (or static) credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: Secret,
    /// `Token` (session token), if any.
    pub session_token: Option<Secret>,
    /// When they expire, Unix seconds; `None` for credentials that do not expire.
    pub expiration: Option<u64>,
}

/// Long-lived credentials that sign `AssumeRole` (write-only through the admin API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseCredentials {
    /// Access key id (`AKIA…`).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token, when the base credentials are temporary themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
}

/// Where a role's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A fixed key triple.
    Static {
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: Secret,
        /// Session token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<Secret>,
        /// Expiry, RFC 3339; absent: the credentials do not expire, and guests are given a
        /// rolling expiry one hour ahead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expiration: Option<String>,
    },
    /// `AssumeRole` against STS.
    Sts {
        /// The role to assume (`arn:aws:iam::123456789012:role/app`).
        role_arn: String,
        /// `RoleSessionName` (default `imds-<role name>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_name: Option<String>,
        /// STS endpoint URL (default `https://sts.<region>.amazonaws.com`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// Signing region (default `us-east-1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// `DurationSeconds`, 900 to 43200 (default 3600).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_seconds: Option<u32>,
        /// `ExternalId`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
        /// `true`: each instance with the role gets credentials of its own, assumed with
        /// `RoleSessionName` = its instance id ([`crate::sts::instance_session_name`]), for
        /// CloudTrail audit; not with `session_name`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_per_instance: Option<bool>,
    },
    /// An external command printing `credential_process` JSON on stdout.
    Process {
        /// Program and arguments (no shell).
        command: Vec<String>,
        /// Seconds the command may run (default 30, at most 300).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
    },
}

/// What is wrong with a source, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SourceInvalid {
    /// The field at fault (e.g. `source.role_arn`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> SourceInvalid {
    SourceInvalid { field: field.to_owned(), message: message.into() }
}

impl Source {
    /// Whether each instance with the role gets a session of its own (`sts`
    /// `session_per_instance`).
    pub fn session_per_instance(&self) -> bool {
        matches!(self, Source::Sts { session_per_instance: Some(true), .. })
    }

    /// This source for instance `id`'s own session: `RoleSessionName` = its instance id.
    pub fn for_instance(&self, id: &str) -> Source {
        let mut source = self.clone();
        if let Source::Sts { session_name, .. } = &mut source {
            *session_name = Some(crate::sts::instance_session_name(id));
        }
        source
    }

    /// The source's type name (`static`, `sts`, `process`).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Static { .. } => "static",
            Source::Sts { .. } => "sts",
            Source::Process { .. } => "process",
        }
    }

    /// Checks the fields a parse cannot.
    pub fn validate(&self) -> Result<(), SourceInvalid> {
        match self {
            Source::Static { access_key_id, secret_access_key, expiration, .. } => {
                if access_key_id.trim().is_empty() {
                    return Err(invalid("source.access_key_id", "must not be empty"));
                }
                if secret_access_key.is_empty() {
                    return Err(invalid("source.secret_access_key", "must not be empty"));
                }
                if let Some(at) = expiration {
                    if parse_rfc3339(at).is_none() {
                        return Err(invalid("source.expiration", "not an RFC 3339 time (2026-01-02T03:04:05Z)"));
                    }
                }
            }
            Source::Sts { role_arn, endpoint, duration_seconds, session_name, session_per_instance, .. } => {
                if *session_per_instance == Some(true) && session_name.is_some() {
                    return Err(invalid(
                        "source.session_per_instance",
                        "names each session after its instance; leave out session_name",
                    ));
                }
                if !role_arn.starts_with("arn:") || role_arn.split(':').count() < 6 {
                    return Err(invalid("source.role_arn", "not a role ARN (arn:aws:iam::<account>:role/<name>)"));
                }
                if let Some(url) = endpoint {
                    let parsed: Result<http::Uri, _> = url.parse();
                    match parsed {
                        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
                        _ => return Err(invalid("source.endpoint", "not an http(s) URL")),
                    }
                }
                if let Some(seconds) = duration_seconds {
                    if !(900..=43_200).contains(seconds) {
                        return Err(invalid("source.duration_seconds", "must be 900 to 43200"));
                    }
                }
                if let Some(name) = session_name {
                    let ok = (2..=64).contains(&name.len())
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || "=,.@-_".contains(c));
                    if !ok {
                        return Err(invalid("source.session_name", "2-64 characters of A-Z a-z 0-9 = , . @ - _"));
                    }
                }
            }
            Source::Process { command, timeout_seconds } => {
                if command.first().is_none_or(|program| program.is_empty()) {
                    return Err(invalid("source.command", "must name a program"));
                }
                if let Some(seconds) = timeout_seconds {
                    if !(1..=300).contains(seconds) {
                        return Err(invalid("source.timeout_seconds", "must be 1 to 300"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why a fetch failed. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// An `sts` role has no base credentials yet.
    #[error("no base credentials have been set for this role")]
    NoBaseCredentials,
    /// STS could not be reached or timed out (no underlying error to keep).
    #[error("cannot reach STS: {0}")]
    Unreachable(String),
    /// The request to STS could not be made, sent or answered: what was being done and the
    /// error that stopped it (the [`source`](std::error::Error::source)).
    #[error("cannot reach STS: {context}: {source}")]
    Request {
        /// What was being done (`signing`, the endpoint, …).
        context: String,
        /// Why it failed.
        #[source]
        source: Cause,
    },
    /// STS refused (its error code and message).
    #[error("STS refused AssumeRole: {code}: {message}")]
    Refused {
        /// STS's error code (`AccessDenied`, …).
        code: String,
        /// STS's message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("unexpected answer: {0}")]
    BadAnswer(String),
    /// The credential process failed.
    #[error("credential process: {0}")]
    Process(String),
}

/// The error under a [`FetchError`]: shared, so the error stays cloneable (role states keep
/// it), and two compare equal when they display the same. Displays as the error itself, and
/// its own [`source`](std::error::Error::source) is the error's.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Keeps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

impl FetchError {
    /// [`FetchError::Request`]: `context` failed because of `error`.
    pub fn request(context: impl Into<String>, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        FetchError::Request { context: context.into(), source: Cause::new(error) }
    }

    /// The `Code` EC2 puts in the credentials JSON when it cannot serve a role:
    /// EC2 answers `AssumeRoleUnauthorizedAccess` whatever kept it from assuming the role.
    pub fn code(&self) -> &'static str {
        "AssumeRoleUnauthorizedAccess"
    }
}

/// Obtains one set of credentials for role `role` from `source`.
pub async fn fetch(
    role: &str,
    source: &Source,
    base: Option<&BaseCredentials>,
    http: &sts::HttpClient,
    now: u64,
) -> Result<Credentials, FetchError> {
    match source {
        Source::Static { access_key_id, secret_access_key, session_token, expiration } => Ok(Credentials {
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
            session_token: session_token.clone(),
            expiration: expiration.as_deref().and_then(parse_rfc3339),
        }),
        Source::Sts { .. } => {
            let base = base.ok_or(FetchError::NoBaseCredentials)?;
            sts::assume_role(http, role, source, base, now).await
        }
        Source::Process { command, timeout_seconds } => {
            process::run(command, std::time::Duration::from_secs(timeout_seconds.unwrap_or(30))).await
        }
    }
}
