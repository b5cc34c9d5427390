//! The service-account leaves computed on request: `token` (the role's access token as
//! `{"access_token","expires_in","token_type"}`) and `identity?audience=…[&format=full]` (an
//! RS256 JWT signed with the deployment's identity key, whose public half the admin API
//! publishes as JWKS). Credentials come from [`Context::credentials`], signatures from
//! [`Context::signer`]; no I/O here.

use http::StatusCode;
use imds_model::Instance;
use serde_json::{json, Value};

use super::build::Names;
use super::tree::Credential;
use super::{error, ok, wire};
use crate::credentials::CredentialState;
use crate::ids::fnv1a;
use crate::{Context, GuestResponse};

/// How long an identity token is valid, seconds (Google's: one hour).
const IDENTITY_LIFETIME: u64 = 3600;

/// The answer for a credential leaf of the instance's service account.
pub(super) fn respond(
    what: &Credential,
    instance: &Instance,
    names: &Names,
    query: Option<&str>,
    path: &str,
    context: &Context<'_>,
) -> GuestResponse {
    match what {
        Credential::Token => token(instance, path, context),
        Credential::Identity { email } => identity(instance, names, email, query, context),
    }
}

/// `token`: the role's session token while the role has valid credentials; `404` when the
/// role is not configured (as for a missing service account); `503` while it has none.
fn token(instance: &Instance, path: &str, context: &Context<'_>) -> GuestResponse {
    let Some(role) = instance.iam_role.as_ref().map(|r| r.as_str()) else {
        return super::not_found(path);
    };
    match context.credentials.credentials_for(role, instance.id.as_str(), context.now) {
        None => super::not_found(path),
        Some(CredentialState::Unavailable { .. }) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            &format!("No access token is available for the service account of role {} now.", wire::escape(role)),
        ),
        Some(CredentialState::Ready(issued)) => {
            let body = render_token(&issued.token, issued.expiration.saturating_sub(context.now));
            ok(wire::JSON, body)
        }
    }
}

/// The token JSON exactly as GCE sends it: compact, `access_token`, `expires_in` (a number),
/// `token_type`.
pub(crate) fn render_token(access_token: &str, expires_in: u64) -> String {
    json!({"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"}).to_string()
}

/// The parameters of an `identity` request.
#[derive(Debug, Default)]
struct IdentityQuery {
    audience: Option<String>,
    full: bool,
}

fn identity_query(query: Option<&str>) -> Result<IdentityQuery, String> {
    let mut parsed = IdentityQuery::default();
    for (name, value) in crate::query::pairs(query) {
        match name.as_ref() {
            "audience" => parsed.audience = Some(value.into_owned()).filter(|a| !a.is_empty()),
            "format" => {
                parsed.full = match value.as_ref() {
                    "full" => true,
                    "standard" => false,
                    other => return Err(format!("Invalid format {}: expected standard or full.", wire::escape(other))),
                }
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// `identity`: a JWT for `audience`; `400` without one, `503` without a signing key.
fn identity(
    instance: &Instance,
    names: &Names,
    email: &str,
    query: Option<&str>,
    context: &Context<'_>,
) -> GuestResponse {
    let parsed = match identity_query(query) {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, "Bad Request", &message),
    };
    let Some(audience) = parsed.audience else {
        return error(StatusCode::BAD_REQUEST, "Bad Request", "non-empty audience parameter required");
    };
    let claims = identity_claims(instance, names, email, &audience, parsed.full, context.now);
    match context.signer.and_then(|signer| signer.jwt_rs256(&claims)) {
        Some(jwt) => ok(wire::TEXT, jwt),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "The identity signing key is not available yet.",
        ),
    }
}

/// The claims of an identity token: `aud`, `azp`, `email`, `email_verified`, `exp`, `iat`,
/// `iss`, `sub`, and with `full` the `google.compute_engine` instance claims.
pub(crate) fn identity_claims(
    instance: &Instance,
    names: &Names,
    email: &str,
    audience: &str,
    full: bool,
    now: u64,
) -> Value {
    let subject = service_account_id(email);
    let mut claims = json!({
        "aud": audience,
        "azp": subject,
        "email": email,
        "email_verified": true,
        "exp": now + IDENTITY_LIFETIME,
        "iat": now,
        "iss": wire::TOKEN_ISSUER,
        "sub": subject,
    });
    if full {
        let mut engine = json!({
            "instance_id": names.id.to_string(),
            "instance_name": names.name,
            "project_id": names.project_id,
            "project_number": names.project_number,
            "zone": names.zone,
        });
        if let Some(created) = instance.created_at.as_deref().and_then(imds_model::time::parse_rfc3339) {
            engine["instance_creation_timestamp"] = Value::from(created);
        }
        claims["google"] = json!({"compute_engine": engine});
    }
    claims
}

/// The service account's unique id: 21 decimal digits, derived from its e-mail.
pub(crate) fn service_account_id(email: &str) -> String {
    format!("1{:020}", fnv1a(&["gce-service-account", email]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_ids_are_21_digits_and_stable() {
        let id = service_account_id("app@p.iam.gserviceaccount.com");
        assert_eq!(id.len(), 21);
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(id, service_account_id("app@p.iam.gserviceaccount.com"));
        assert_ne!(id, service_account_id("other@p.iam.gserviceaccount.com"));
    }

    #[test]
    fn identity_queries_need_a_known_format() {
        let parsed = identity_query(Some("audience=https%3A%2F%2Fexample.com&format=full")).unwrap();
        assert_eq!(parsed.audience.as_deref(), Some("https://example.com"));
        assert!(parsed.full);
        assert!(identity_query(Some("audience=x&format=huge")).is_err());
        assert!(identity_query(Some("audience=")).unwrap().audience.is_none());
    }
}
