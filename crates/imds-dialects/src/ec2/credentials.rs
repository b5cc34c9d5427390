//! EC2's credential and signature leaves (docs/credentials.md): `iam/info` (its `LastUpdated` the role's),
//! `iam/security-credentials/<role>` (or its error form), `identity-credentials/ec2/*`, and the
//! identity document's `signature`, `pkcs7` and `rsa2048`. Credentials come from
//! [`Context::credentials`], signatures from [`Context::signer`]; no I/O here.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use imds_model::Instance;

use super::identity::render_flat;
use super::tree::{Entry, Node};
use super::{derived, wire};
use crate::credentials::{format_time, CredentialState, IssuedCredentials};
use crate::Context;

/// How long one set of instance-identity credentials is issued for.
const IDENTITY_PERIOD: u64 = 6 * 3600;
/// How long they stay valid after their period ends (served `Expiration` is always at least
/// this far ahead; the next set is served from the period's end).
const IDENTITY_GRACE: u64 = 15 * 60;

/// `iam/`: `info` and `security-credentials/<role>` when a role is attached.
pub(crate) fn iam(instance: &Instance) -> Entry {
    let Some(role) = instance.iam_role.as_ref().map(|role| role.as_str()) else {
        return Entry::dir("iam", "2012-01-12", Vec::new());
    };
    Entry::dir(
        "iam",
        "2012-01-12",
        vec![
            computed("info", "2012-01-12", Computed::IamInfo),
            Entry::dir(
                "security-credentials",
                "2012-01-12",
                vec![computed(role, "2012-01-12", Computed::RoleCredentials)],
            ),
        ],
    )
}

fn computed(name: &str, since: &'static str, what: Computed) -> Entry {
    Entry { name: name.to_owned(), label: None, since, node: Node::Computed(what) }
}

/// The body of `iam/security-credentials/<role>`: the credentials, or EC2's error form when
/// the role has none to serve (a 200 with `Code` other than `Success`; clients do not retry).
fn role_credentials(role: &str, state: Option<CredentialState>, now: u64) -> String {
    match state {
        Some(CredentialState::Ready(issued)) => render_credentials(&issued),
        Some(CredentialState::Unavailable { last_updated }) => error_form(role, last_updated),
        None => error_form(role, now),
    }
}

/// EC2's credentials JSON: `Code`, `LastUpdated`, `Type`, `AccessKeyId`, `SecretAccessKey`,
/// `Token`, `Expiration`, in that order, 2-space pretty, `" : "`.
pub(crate) fn render_credentials(issued: &IssuedCredentials) -> String {
    render_flat(&[
        ("Code", Value::from("Success")),
        ("LastUpdated", Value::from(format_time(issued.last_updated))),
        ("Type", Value::from("AWS-HMAC")),
        ("AccessKeyId", Value::from(issued.access_key_id.as_str())),
        ("SecretAccessKey", Value::from(issued.secret_access_key.as_str())),
        ("Token", Value::from(issued.token.as_str())),
        ("Expiration", Value::from(format_time(issued.expiration))),
    ])
}

/// What EC2 serves when it cannot assume the instance's role.
fn error_form(role: &str, last_updated: u64) -> String {
    render_flat(&[
        ("Code", Value::from(wire::ASSUME_ROLE_FAILED)),
        ("Message", Value::from(format!("EC2 cannot assume the role {role}.  {}", wire::ROLE_HELP))),
        ("LastUpdated", Value::from(format_time(last_updated))),
    ])
}

/// `identity-credentials/ec2/`: `info` and `security-credentials/ec2-instance`, present with
/// or without a role. The credentials are derived from the deployment's key, the instance id
/// and the current six-hour period, so every node serves the same set; they authenticate the
/// instance to whoever holds the key, not to AWS.
pub(crate) fn identity_credentials() -> Entry {
    let since = "2018-05-23";
    Entry::dir(
        "identity-credentials",
        since,
        vec![Entry::dir(
            "ec2",
            since,
            vec![
                computed("info", since, Computed::IdentityInfo),
                Entry::dir(
                    "security-credentials",
                    since,
                    vec![computed("ec2-instance", since, Computed::InstanceCredentials)],
                ),
            ],
        )],
    )
}

fn identity_role_credentials(instance: &Instance, context: &Context<'_>) -> IssuedCredentials {
    let period_start = context.now - context.now % IDENTITY_PERIOD;
    let mut seed = instance.id.as_str().as_bytes().to_vec();
    seed.extend_from_slice(&period_start.to_be_bytes());
    let derive = |label: &str| context.tokens.derive(label, &seed);
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let key_bytes = derive("ec2-instance/access-key-id");
    let access_key_id: String =
        key_bytes.iter().take(16).map(|b| char::from(BASE32[usize::from(*b) % BASE32.len()])).collect();
    let secret = derive("ec2-instance/secret-access-key");
    let token: Vec<u8> =
        [derive("ec2-instance/token-1"), derive("ec2-instance/token-2"), derive("ec2-instance/token-3")].concat();
    IssuedCredentials {
        access_key_id: format!("ASIA{access_key_id}"),
        secret_access_key: STANDARD.encode(&secret[..30]),
        token: STANDARD.encode(token),
        expiration: period_start + IDENTITY_PERIOD + IDENTITY_GRACE,
        last_updated: period_start,
    }
}

/// A leaf computed on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Computed {
    /// `iam/info`: its `LastUpdated` is the role's credentials'.
    IamInfo,
    /// `iam/security-credentials/<role>` of the instance's role.
    RoleCredentials,
    /// `identity-credentials/ec2/security-credentials/ec2-instance`.
    InstanceCredentials,
    /// A signature of the identity document.
    Signature(Signature),
    /// `identity-credentials/ec2/info`: its `LastUpdated` follows the credentials' period.
    IdentityInfo,
}

/// The body of a computed leaf; `None` serves a 404 (a signature without a signer).
pub(crate) fn compute(what: Computed, instance: &Instance, document: &str, context: &Context<'_>) -> Option<String> {
    match what {
        Computed::IamInfo => {
            let role = instance.iam_role.as_ref()?.as_str();
            // EC2 updates the profile's `LastUpdated` with its credentials; before the role's
            // first fetch, the instance's launch.
            let last_updated = match context.credentials.credentials_for(role, instance.id.as_str(), context.now) {
                Some(CredentialState::Ready(issued)) => format_time(issued.last_updated),
                Some(CredentialState::Unavailable { last_updated }) => format_time(last_updated),
                None => derived::created(instance),
            };
            Some(super::identity::iam_info(instance, role, &last_updated))
        }
        Computed::RoleCredentials => {
            let role = instance.iam_role.as_ref()?.as_str();
            Some(role_credentials(
                role,
                context.credentials.credentials_for(role, instance.id.as_str(), context.now),
                context.now,
            ))
        }
        Computed::InstanceCredentials => Some(render_credentials(&identity_role_credentials(instance, context))),
        Computed::IdentityInfo => {
            let period_start = context.now - context.now % IDENTITY_PERIOD;
            Some(render_flat(&[
                ("Code", Value::from("Success")),
                ("LastUpdated", Value::from(format_time(period_start))),
                ("AccountId", Value::from(derived::account_id(instance))),
            ]))
        }
        Computed::Signature(kind) => sign(kind, document, context),
    }
}

/// Which signature of the identity document a leaf serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signature {
    /// `signature`: RSA SHA-256 over the document bytes.
    Raw,
    /// `pkcs7` and `rsa2048`: PKCS#7 SignedData with the document attached.
    Pkcs7,
}

/// The body of a signature leaf for `document`: base64 wrapped at 64 characters, as EC2
/// serves it. `None` without a signer (the leaf is then absent).
fn sign(kind: Signature, document: &str, context: &Context<'_>) -> Option<String> {
    let signer = context.signer?;
    let bytes = match kind {
        Signature::Raw => signer.rsa_sha256(document.as_bytes())?,
        Signature::Pkcs7 => signer.pkcs7(document.as_bytes())?,
    };
    let text = STANDARD.encode(bytes);
    let lines: Vec<&str> = text.as_bytes().chunks(64).filter_map(|chunk| std::str::from_utf8(chunk).ok()).collect();
    Some(lines.join("\n"))
}
