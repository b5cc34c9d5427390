//! imds's signing keys and what is signed with them.
//!
//! A [`SigningKey`] is an RSA-2048 key with a self-signed X.509 certificate (generated, or
//! supplied by the operator). It signs:
//! - EC2's identity document three ways ([`SigningKey::sign_rsa_sha256`] for `signature`,
//!   [`SigningKey::pkcs7`] for `pkcs7` and `rsa2048`: a PKCS#7 SignedData with the document
//!   attached, SHA-256, signer identified by issuer and serial, certificate not embedded, as
//!   AWS does);
//! - RS256 JWTs ([`SigningKey::jwt_rs256`], GCE identity tokens), whose keys are published as
//!   a JWKS ([`Keyring::jwks`]).
//!
//! A [`Keyring`] is the deployment's keys: the active one signs, retired ones stay published
//! so that what they signed still verifies. It is stored as bytes ([`Keyring::to_bytes`]) in
//! the server's store. [`verify`] checks signatures against certificates (`imds verify`).
//!
//! Private keys never appear in `Debug` output. RustCrypto throughout (`rsa`, `x509-cert`,
//! `cms`): one crypto stack, pure Rust, no system OpenSSL.

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use der::{Decode, DecodePem, Encode, EncodePem};
use rsa::pkcs1v15;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;
use x509_cert::Certificate;

pub mod verify;

/// Bits of every generated key.
pub const KEY_BITS: usize = 2048;
/// Subject of generated certificates.
pub const DEFAULT_SUBJECT: &str = "CN=imds instance identity";
/// How long a generated certificate is valid.
const CERT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How many retired keys a keyring keeps publishing.
pub const RETIRED_KEPT: usize = 3;

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The private key is not a PKCS#8 or PKCS#1 PEM RSA key.
    #[error("private key: {0}")]
    Key(#[source] Cause),
    /// The certificate is not a PEM X.509 certificate, or not for this key.
    #[error("certificate: {0}")]
    Certificate(#[source] Cause),
    /// Generating or signing failed.
    #[error("signing failed: {0}")]
    Signing(#[source] Cause),
    /// The stored keyring is unreadable.
    #[error("keyring: {0}")]
    Keyring(#[source] Cause),
}

/// What a [`SignError`] comes from: the cryptography or encoding library's own error (kept as
/// the error's `source()`), or a message saying what was wrong.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// One RSA signing key with its certificate. `Debug` shows only the key id.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    private: RsaPrivateKey,
    signer: pkcs1v15::SigningKey<Sha256>,
    certificate: Certificate,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("private", &"<redacted>").finish()
    }
}

/// The key id of a public key: hex of the first 16 bytes of SHA-256 over its SubjectPublicKeyInfo.
fn key_id(public: &RsaPublicKey) -> Result<String, SignError> {
    let spki = public.to_public_key_der().map_err(|e| SignError::Key(e.into()))?;
    let digest = Sha256::digest(spki.as_bytes());
    Ok(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key and a self-signed certificate for it.
    pub fn generate() -> Result<Self, SignError> {
        let private = RsaPrivateKey::new(&mut rand_core::OsRng, KEY_BITS)
            .map_err(|e| SignError::Signing(format!("generating an RSA key: {e}").into()))?;
        Self::with_self_signed(private, DEFAULT_SUBJECT)
    }

    /// An operator-supplied key (PKCS#8 or PKCS#1 PEM), with its certificate (PEM) or, when
    /// `certificate_pem` is `None`, a self-signed one.
    pub fn from_pem(private_key_pem: &str, certificate_pem: Option<&str>) -> Result<Self, SignError> {
        let private = RsaPrivateKey::from_pkcs8_pem(private_key_pem)
            .or_else(|_| {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                RsaPrivateKey::from_pkcs1_pem(private_key_pem)
            })
            .map_err(|e| SignError::Key(format!("not a PEM RSA private key (PKCS#8 or PKCS#1): {e}").into()))?;
        if private.size() * 8 < 2048 {
            return Err(SignError::Key(
                format!("{}-bit keys are too short; use at least 2048 bits", private.size() * 8).into(),
            ));
        }
        match certificate_pem {
            None => Self::with_self_signed(private, DEFAULT_SUBJECT),
            Some(pem) => {
                let certificate = Certificate::from_pem(pem.trim().as_bytes())
                    .map_err(|e| SignError::Certificate(format!("not a PEM X.509 certificate: {e}").into()))?;
                let public = RsaPublicKey::from(&private);
                let spki_der = public.to_public_key_der().map_err(|e| SignError::Key(e.into()))?;
                let cert_spki = certificate
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(|e| SignError::Certificate(e.into()))?;
                if spki_der.as_bytes() != cert_spki.as_slice() {
                    return Err(SignError::Certificate("the certificate is not for this private key".into()));
                }
                Self::assemble(private, certificate)
            }
        }
    }

    fn with_self_signed(private: RsaPrivateKey, subject: &str) -> Result<Self, SignError> {
        let signer = pkcs1v15::SigningKey::<Sha256>::new(private.clone());
        let public = RsaPublicKey::from(&private);
        let spki = SubjectPublicKeyInfoOwned::from_key(public.clone()).map_err(|e| SignError::Key(e.into()))?;
        let mut serial = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
        serial[0] &= 0x7f; // a positive INTEGER
        serial[0] |= 0x01; // and no leading zero byte
        let serial = SerialNumber::new(&serial).map_err(|e| SignError::Certificate(e.into()))?;
        let validity = Validity::from_now(CERT_VALIDITY).map_err(|e| SignError::Certificate(e.into()))?;
        let subject = Name::from_str(subject).map_err(|e| SignError::Certificate(e.into()))?;
        let builder = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer)
            .map_err(|e| SignError::Certificate(e.into()))?;
        let certificate = builder.build::<pkcs1v15::Signature>().map_err(|e| SignError::Certificate(e.into()))?;
        Self::assemble(private, certificate)
    }

    fn assemble(private: RsaPrivateKey, certificate: Certificate) -> Result<Self, SignError> {
        let kid = key_id(&RsaPublicKey::from(&private))?;
        let signer = pkcs1v15::SigningKey::<Sha256>::new(private.clone());
        Ok(Self { kid, private, signer, certificate })
    }

    /// The key id (`kid` of JWTs and the JWKS).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.certificate.to_pem(LineEnding::LF).unwrap_or_default()
    }

    /// The private key, PKCS#8 PEM (for the store only; never logged or served).
    fn private_pem(&self) -> Result<String, SignError> {
        Ok(self.private.to_pkcs8_pem(LineEnding::LF).map_err(|e| SignError::Key(e.into()))?.to_string())
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `data` (EC2's `signature`), raw bytes.
    pub fn sign_rsa_sha256(&self, data: &[u8]) -> Vec<u8> {
        self.signer.sign(data).to_vec()
    }

    /// DER PKCS#7 SignedData with `data` attached (EC2's `pkcs7` and `rsa2048`): SHA-256,
    /// content-type and message-digest signed attributes, signer identified by the
    /// certificate's issuer and serial; the certificate is not embedded (AWS does not embed it
    /// either: verifiers pass it with `-certfile`).
    pub fn pkcs7(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
        use cms::cert::IssuerAndSerialNumber;
        use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
        use spki::AlgorithmIdentifierOwned;
        let fail = |e: &dyn fmt::Display| SignError::Signing(format!("PKCS#7: {e}").into());
        let content = der::Any::new(der::Tag::OctetString, data).map_err(|e| fail(&e))?;
        let encapsulated =
            EncapsulatedContentInfo { econtent_type: const_oid::db::rfc5911::ID_DATA, econtent: Some(content) };
        let digest = AlgorithmIdentifierOwned { oid: const_oid::db::rfc5912::ID_SHA_256, parameters: None };
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: self.certificate.tbs_certificate.issuer.clone(),
            serial_number: self.certificate.tbs_certificate.serial_number.clone(),
        });
        let signer_info =
            SignerInfoBuilder::new(&self.signer, sid, digest.clone(), &encapsulated, None).map_err(|e| fail(&e))?;
        let content_info = SignedDataBuilder::new(&encapsulated)
            .add_digest_algorithm(digest)
            .map_err(|e| fail(&e))?
            .add_signer_info::<_, pkcs1v15::Signature>(signer_info)
            .map_err(|e| fail(&e))?
            .build()
            .map_err(|e| fail(&e))?;
        content_info.to_der().map_err(|e| fail(&e))
    }

    /// A compact RS256 JWT of `claims`, with this key's `kid` in the header.
    pub fn jwt_rs256(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.sign_rsa_sha256(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The public key as a JWK (`kty`, `alg`, `use`, `kid`, `n`, `e`).
    pub fn jwk(&self) -> Value {
        let public = RsaPublicKey::from(&self.private);
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }
}

/// Base64 (standard alphabet) wrapped at 64 characters per line, no final newline: how EC2
/// serves `signature`, `pkcs7` and `rsa2048`.
pub fn base64_lines(bytes: &[u8]) -> String {
    let text = STANDARD.encode(bytes);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|chunk| std::str::from_utf8(chunk).unwrap_or("")).collect();
    lines.join("\n")
}

/// The deployment's keys: the active one first, then retired ones (newest first).
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

/// The stored form of one key.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    private_key_pem: String,
    certificate_pem: String,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    keys: Vec<StoredKey>,
}

impl Keyring {
    /// A keyring holding one freshly generated key.
    pub fn generate() -> Result<Self, SignError> {
        Ok(Self { keys: vec![SigningKey::generate()?] })
    }

    /// The key that signs.
    pub fn active(&self) -> &SigningKey {
        self.keys.first().expect("a keyring always holds its active key")
    }

    /// Every published key, active first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Makes `key` the active key; the previous active key is retired (still published).
    /// At most [`RETIRED_KEPT`] retired keys are kept.
    pub fn install(&mut self, key: SigningKey) {
        self.keys.retain(|old| old.kid != key.kid);
        self.keys.insert(0, key);
        self.keys.truncate(RETIRED_KEPT + 1);
    }

    /// The public keys as a JWKS document (`{"keys": [...]}`), active first.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(SigningKey::jwk).collect::<Vec<_>>()})
    }

    /// Every certificate, PEM, active first.
    pub fn certificates_pem(&self) -> String {
        self.keys.iter().map(SigningKey::certificate_pem).collect()
    }

    /// The stored form: JSON with each key's PKCS#8 PEM and certificate.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SignError> {
        let keys = self
            .keys
            .iter()
            .map(|key| {
                Ok(StoredKey {
                    kid: key.kid.clone(),
                    private_key_pem: key.private_pem()?,
                    certificate_pem: key.certificate_pem(),
                })
            })
            .collect::<Result<Vec<_>, SignError>>()?;
        serde_json::to_vec(&StoredKeyring { keys }).map_err(|e| SignError::Keyring(e.into()))
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignError> {
        let stored: StoredKeyring = serde_json::from_slice(bytes).map_err(|e| SignError::Keyring(e.into()))?;
        let keys = stored
            .keys
            .iter()
            .map(|key| SigningKey::from_pem(&key.private_key_pem, Some(&key.certificate_pem)))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SignError::Keyring("no keys".into()));
        }
        Ok(Self { keys })
    }
}

/// Parses a PEM bundle into its certificates.
pub fn parse_certificates(pem: &str) -> Result<Vec<Certificate>, SignError> {
    let certificates = Certificate::load_pem_chain(pem.as_bytes())
        .map_err(|e| SignError::Certificate(format!("not a PEM certificate bundle: {e}").into()))?;
    if certificates.is_empty() {
        return Err(SignError::Certificate("no certificate in the bundle".into()));
    }
    Ok(certificates)
}

/// The DER of a certificate (for callers that need the raw bytes).
pub fn certificate_der(certificate: &Certificate) -> Result<Vec<u8>, SignError> {
    certificate.to_der().map_err(|e| SignError::Certificate(e.into()))
}

/// Reads a DER certificate.
pub fn certificate_from_der(der: &[u8]) -> Result<Certificate, SignError> {
    Certificate::from_der(der).map_err(|e| SignError::Certificate(e.into()))
}

#[cfg(test)]
mod tests;
