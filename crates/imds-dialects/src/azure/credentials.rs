//! The managed-identity token (`/metadata/identity/oauth2/token`) and the attested document
//! (`/metadata/attested/document`). Credentials come from [`Context::credentials`], the
//! signature from [`Context::signer`]; no I/O here.
//!
//! The instance's role is its user-assigned identity: its `client_id` and `object_id` are
//! UUIDv5s of the role name ([`client_id`], [`object_id`]) and its resource id ends in
//! `/userAssignedIdentities/<role>`. A request naming another identity gets `400 Identity not
//! found`, like a VM without one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::StatusCode;
use imds_model::Instance;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{document, error, json_ok, wire, Query};
use crate::credentials::CredentialState;
use crate::{Context, GuestResponse};

/// How long an attested document is valid after it was made, seconds (Azure: six hours).
const ATTESTED_LIFETIME: u64 = 6 * 3600;

/// The identity's `client_id`: UUIDv5 (URL name space) of `imds:azure/client/<role>`.
pub fn client_id(role: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("imds:azure/client/{role}").as_bytes()).hyphenated().to_string()
}

/// The identity's `object_id`: UUIDv5 (URL name space) of `imds:azure/object/<role>`.
pub fn object_id(role: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("imds:azure/object/{role}").as_bytes()).hyphenated().to_string()
}

/// An OAuth-shaped `400` (the token endpoint's errors).
pub(super) fn oauth(status: StatusCode, code: &str, description: &str) -> GuestResponse {
    let body = json!({"error": code, "error_description": description});
    GuestResponse::new(status, wire::JSON, body.to_string())
}

/// The token for `resource` once the headers and `api-version` have been checked.
pub(super) fn token(instance: &Instance, query: &Query<'_>, context: &Context<'_>) -> GuestResponse {
    let Some(resource) = query.get(wire::RESOURCE).map(str::to_owned).filter(|r| !r.is_empty()) else {
        return oauth(StatusCode::BAD_REQUEST, wire::OAUTH_INVALID_REQUEST, wire::IDENTITY_MISSING_RESOURCE);
    };
    let not_found = || oauth(StatusCode::BAD_REQUEST, wire::OAUTH_INVALID_REQUEST, wire::IDENTITY_NOT_FOUND);
    let Some(role) = instance.iam_role.as_ref().map(|r| r.as_str()) else {
        return not_found();
    };
    if !selects(query, role) {
        return not_found();
    }
    match context.credentials.credentials_for(role, instance.id.as_str(), context.now) {
        None => not_found(),
        Some(CredentialState::Unavailable { .. }) => {
            oauth(StatusCode::INTERNAL_SERVER_ERROR, wire::OAUTH_UNKNOWN_ERROR, wire::IDENTITY_NO_TOKEN)
        }
        Some(CredentialState::Ready(issued)) => {
            let expires_in = issued.expiration.saturating_sub(context.now);
            let body = render_token(
                &issued.token,
                &client_id(role),
                expires_in,
                issued.expiration,
                issued.last_updated,
                &resource,
            );
            GuestResponse::new(StatusCode::OK, wire::JSON, body)
        }
    }
}

/// Whether the identity the query selects (`client_id`, `object_id`, `msi_res_id` or
/// `mi_res_id`; none: the only one) is the role's.
fn selects(query: &Query<'_>, role: &str) -> bool {
    let asked = |name: &str| query.get(name);
    if let Some(id) = asked("client_id") {
        return id.eq_ignore_ascii_case(&client_id(role));
    }
    if let Some(id) = asked("object_id") {
        return id.eq_ignore_ascii_case(&object_id(role));
    }
    if let Some(id) = asked("msi_res_id").or_else(|| asked("mi_res_id")) {
        let suffix = format!("/userassignedidentities/{}", role.to_ascii_lowercase());
        return id.to_ascii_lowercase().trim_end_matches('/').ends_with(&suffix);
    }
    true
}

/// Azure's token JSON: compact, every number a string, keys in Azure's order.
pub(crate) fn render_token(
    access_token: &str,
    client_id: &str,
    expires_in: u64,
    expires_on: u64,
    not_before: u64,
    resource: &str,
) -> String {
    json!({
        "access_token": access_token,
        "client_id": client_id,
        "expires_in": expires_in.to_string(),
        "expires_on": expires_on.to_string(),
        "ext_expires_in": expires_in.to_string(),
        "not_before": not_before.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    })
    .to_string()
}

/// `/metadata/attested/document` once the headers and `api-version` have been checked.
pub(super) fn attested(instance: &Instance, query: &Query<'_>, context: &Context<'_>) -> GuestResponse {
    let nonce = match query.get(wire::NONCE) {
        Some(nonce) if !nonce.is_empty() && nonce.len() <= 10 && nonce.bytes().all(|b| b.is_ascii_digit()) => {
            nonce.to_owned()
        }
        Some(_) => return error(StatusCode::BAD_REQUEST, wire::BAD_NONCE),
        None => nonce_time(context.now),
    };
    let data = attested_data(instance, &nonce, context.now);
    match context.signer.and_then(|signer| signer.pkcs7(data.as_bytes())) {
        Some(pkcs7) => json_ok(&json!({"encoding": "pkcs7", "signature": STANDARD.encode(pkcs7)})),
        None => error(StatusCode::SERVICE_UNAVAILABLE, wire::NO_SIGNER),
    }
}

/// The signed JSON: `nonce`, `plan`, `timeStamp{createdOn,expiresOn}`, `vmId`, `licenseType`,
/// `subscriptionId`, `sku`, in Azure's order, from the instance document.
pub(crate) fn attested_data(instance: &Instance, nonce: &str, now: u64) -> String {
    let latest = wire::API_VERSIONS.last().copied().unwrap_or_default();
    let whole = document::render(instance, latest, false);
    let compute = &whole["compute"];
    let text = |key: &str| compute.get(key).cloned().unwrap_or_else(|| Value::from(""));
    json!({
        "nonce": nonce,
        "plan": text("plan"),
        "timeStamp": {"createdOn": stamp(now), "expiresOn": stamp(now + ATTESTED_LIFETIME)},
        "vmId": text("vmId"),
        "licenseType": text("licenseType"),
        "subscriptionId": text("subscriptionId"),
        "sku": text("sku"),
    })
    .to_string()
}

/// Azure's attested time form, `MM/DD/YY HH:MM:SS -0000`.
fn stamp(t: u64) -> String {
    let iso = crate::credentials::format_time(t); // YYYY-MM-DDTHH:MM:SSZ
    format!("{}/{}/{} {} -0000", &iso[5..7], &iso[8..10], &iso[2..4], &iso[11..19])
}

/// The nonce Azure uses when the request has none: the time as `YYYYMMDD-HHMMSS`.
fn nonce_time(t: u64) -> String {
    let iso = crate::credentials::format_time(t);
    format!("{}{}{}-{}{}{}", &iso[0..4], &iso[5..7], &iso[8..10], &iso[11..13], &iso[14..16], &iso[17..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_azures_attested_forms() {
        assert_eq!(stamp(1_632_174_146), "09/20/21 21:42:26 -0000");
        assert_eq!(nonce_time(1_632_174_146), "20210920-214226");
    }

    #[test]
    fn identity_ids_are_stable_uuids_per_role() {
        assert_eq!(client_id("app"), client_id("app"));
        assert_ne!(client_id("app"), client_id("other"));
        assert_ne!(client_id("app"), object_id("app"));
        assert_eq!(Uuid::try_parse(&client_id("app")).unwrap().get_version_num(), 5);
    }
}
