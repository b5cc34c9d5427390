//! `/v1/signing`: the identity signing keys. Public material only: certificates (PEM, for
//! `openssl` and Vault), a JWKS (for JWT verifiers), the key list; rotation and operator-supplied
//! keys. The private key is write-only.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::CONTENT_TYPE;
use http::HeaderValue;
use imds_sign::{Keyring, SigningKey};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AdminError;
use super::AdminState;

/// The keyring guests are signed with, or 503 while the first one is being created.
async fn keyring(state: &AdminState) -> Result<Keyring, AdminError> {
    if let Some(signer) = state.view.load().signer() {
        return Ok(signer.keyring().clone());
    }
    crate::sign::load_or_create(&state.store).await.map_err(AdminError::from)
}

fn keys_view(keyring: &Keyring) -> Value {
    let keys: Vec<Value> = keyring
        .keys()
        .iter()
        .enumerate()
        .map(|(index, key)| json!({"kid": key.kid(), "active": index == 0, "certificate": key.certificate_pem()}))
        .collect();
    json!({ "keys": keys })
}

/// `GET /v1/signing/keys`
#[utoipa::path(get, path = "/v1/signing/keys", tag = "signing",
    responses((status = 200, description = "`{\"keys\": [{\"kid\", \"active\", \"certificate\"}]}`, active first")))]
pub async fn keys(State(state): State<AdminState>) -> Result<Response, AdminError> {
    Ok(Json(keys_view(&keyring(&state).await?)).into_response())
}

/// `GET /v1/signing/certificates`
#[utoipa::path(get, path = "/v1/signing/certificates", tag = "signing",
    responses((status = 200, description = "Every published certificate, PEM, active first", content_type = "application/x-pem-file", body = String)))]
pub async fn certificates(State(state): State<AdminState>) -> Result<Response, AdminError> {
    let pem = keyring(&state).await?.certificates_pem();
    let mut response = pem.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    Ok(response)
}

/// `GET /v1/signing/jwks`
#[utoipa::path(get, path = "/v1/signing/jwks", tag = "signing",
    responses((status = 200, description = "The public keys as a JSON Web Key Set (RS256)")))]
pub async fn jwks(State(state): State<AdminState>) -> Result<Response, AdminError> {
    Ok(Json(keyring(&state).await?.jwks()).into_response())
}

async fn install(state: &AdminState, key: SigningKey) -> Result<Response, AdminError> {
    let kid = key.kid().to_owned();
    let (keyring, rev) = crate::sign::replace(&state.store, key).await?;
    super::instances::wait_visible(state, rev).await;
    tracing::info!(action = "signing-key", %kid, "identity signing key installed");
    Ok(Json(keys_view(&keyring)).into_response())
}

/// `POST /v1/signing/rotate`
#[utoipa::path(post, path = "/v1/signing/rotate", tag = "signing",
    responses((status = 200, description = "A new key signs from now on; the previous ones stay published")))]
pub async fn rotate(State(state): State<AdminState>) -> Result<Response, AdminError> {
    let key = tokio::task::spawn_blocking(SigningKey::generate)
        .await
        .map_err(|e| AdminError::Unavailable(e.to_string()))?
        .map_err(|e| AdminError::Unavailable(e.to_string()))?;
    install(&state, key).await
}

/// An operator-supplied key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppliedKey {
    private_key_pem: String,
    #[serde(default)]
    certificate_pem: Option<String>,
}

/// `PUT /v1/signing/key`
#[utoipa::path(put, path = "/v1/signing/key", tag = "signing",
    request_body(content = super::openapi::SigningKeyBody, content_type = "application/json",
        description = "`{\"private_key_pem\": RSA ≥2048 bits, PKCS#8 or PKCS#1 PEM, \"certificate_pem\"?: its certificate (else self-signed)}`"),
    responses((status = 200, description = "The key signs from now on"),
              (status = 400, description = "Not a usable key or certificate", body = super::error::ErrorBody)))]
pub async fn put_key(State(state): State<AdminState>, body: Body) -> Result<Response, AdminError> {
    let bytes: Bytes = super::body::read(body, 256 * 1024).await.map_err(|error| error.into_admin(256 * 1024))?;
    // Not echoing serde's message: it could quote part of the private key.
    let supplied: SuppliedKey = serde_json::from_slice(&bytes).map_err(|_| AdminError::BadRequest {
        field: "private_key_pem".into(),
        message: "expected {\"private_key_pem\": \"...\", \"certificate_pem\"?: \"...\"}".into(),
    })?;
    let key = SigningKey::from_pem(&supplied.private_key_pem, supplied.certificate_pem.as_deref()).map_err(|e| {
        let field =
            if matches!(e, imds_sign::SignError::Certificate(_)) { "certificate_pem" } else { "private_key_pem" };
        AdminError::BadRequest { field: field.into(), message: e.to_string() }
    })?;
    install(&state, key).await
}
