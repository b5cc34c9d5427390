//! Checking what [`SigningKey`](crate::SigningKey) signed against certificates: the raw
//! `signature` of an identity document, a PKCS#7 SignedData (`pkcs7`, `rsa2048`) and an RS256
//! JWT. What `imds verify` runs; the same checks a relying party (Vault, SPIRE) makes.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use rsa::pkcs1v15;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier as _;
use rsa::RsaPublicKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The input is not what it claims to be (base64, DER, JWT layout).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// No certificate's key produced this signature.
    #[error("the signature does not verify against any of the {0} certificate(s)")]
    BadSignature(usize),
    /// The PKCS#7 message digest does not match its content.
    #[error("the PKCS#7 message digest does not match the attached document")]
    DigestMismatch,
}

fn public_key(certificate: &Certificate) -> Option<pkcs1v15::VerifyingKey<Sha256>> {
    let spki = certificate.tbs_certificate.subject_public_key_info.to_der().ok()?;
    let public = RsaPublicKey::from_public_key_der(&spki).ok()?;
    Some(pkcs1v15::VerifyingKey::<Sha256>::new(public))
}

/// Decodes base64 that may contain line breaks (EC2 serves signatures wrapped).
pub fn decode_base64_lines(text: &str) -> Result<Vec<u8>, VerifyError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|e| VerifyError::Malformed(format!("not base64: {e}")))
}

fn verify_with_any(certificates: &[Certificate], message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
    let signature = pkcs1v15::Signature::try_from(signature)
        .map_err(|e| VerifyError::Malformed(format!("not an RSA signature: {e}")))?;
    let verified = certificates.iter().filter_map(public_key).any(|key| key.verify(message, &signature).is_ok());
    if verified {
        Ok(())
    } else {
        Err(VerifyError::BadSignature(certificates.len()))
    }
}

/// Checks EC2's `signature` (base64, RSA PKCS#1 v1.5 SHA-256) over the exact `document` bytes.
pub fn signature(certificates: &[Certificate], document: &[u8], signature_base64: &str) -> Result<(), VerifyError> {
    verify_with_any(certificates, document, &decode_base64_lines(signature_base64)?)
}

/// Checks a PKCS#7 SignedData (base64, optionally wrapped; EC2's `pkcs7`/`rsa2048`) and
/// returns the attached document.
pub fn pkcs7(certificates: &[Certificate], pkcs7_base64: &str) -> Result<Vec<u8>, VerifyError> {
    let der = decode_base64_lines(pkcs7_base64)?;
    let malformed = |e: der::Error| VerifyError::Malformed(format!("not a PKCS#7 SignedData: {e}"));
    let info = ContentInfo::from_der(&der).map_err(malformed)?;
    let signed: SignedData = info.content.decode_as().map_err(malformed)?;
    let content = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| VerifyError::Malformed("no document attached".into()))?;
    let document = content.value().to_vec();
    let signer = signed.signer_infos.0.get(0).ok_or_else(|| VerifyError::Malformed("no signer".into()))?;
    let attributes =
        signer.signed_attrs.as_ref().ok_or_else(|| VerifyError::Malformed("no signed attributes".into()))?;
    let digest = attributes
        .iter()
        .find(|attr| attr.oid == const_oid::db::rfc5911::ID_MESSAGE_DIGEST)
        .and_then(|attr| attr.values.get(0))
        .ok_or_else(|| VerifyError::Malformed("no message-digest attribute".into()))?;
    if digest.value() != Sha256::digest(&document).as_slice() {
        return Err(VerifyError::DigestMismatch);
    }
    let signed_bytes = attributes.to_der().map_err(malformed)?;
    verify_with_any(certificates, &signed_bytes, signer.signature.as_bytes())?;
    Ok(document)
}

/// Checks an RS256 JWT's signature and returns its claims (expiry and audience are the
/// caller's to judge).
pub fn jwt(certificates: &[Certificate], token: &str) -> Result<Value, VerifyError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed("a JWT has three dot-separated parts".into()));
    };
    let decode =
        |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| VerifyError::Malformed(format!("not base64url: {e}")));
    let header: Value = serde_json::from_slice(&decode(header)?)
        .map_err(|e| VerifyError::Malformed(format!("header is not JSON: {e}")))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(VerifyError::Malformed("only RS256 tokens are checked".into()));
    }
    let signing_input = &token.trim()[..token.trim().len() - signature.len() - 1];
    verify_with_any(certificates, signing_input.as_bytes(), &decode(signature)?)?;
    serde_json::from_slice(&decode(claims)?).map_err(|e| VerifyError::Malformed(format!("claims are not JSON: {e}")))
}
