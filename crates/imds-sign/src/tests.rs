use serde_json::json;

use super::*;

fn key() -> SigningKey {
    // One key for the whole module: generation is the slow part.
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap()).clone()
}

fn certs(key: &SigningKey) -> Vec<Certificate> {
    parse_certificates(&key.certificate_pem()).unwrap()
}

#[test]
fn signatures_verify_against_the_certificate_and_fail_on_other_bytes() {
    let key = key();
    let document = b"{\n  \"instanceId\" : \"i-0123\"\n}";
    let signature = base64_lines(&key.sign_rsa_sha256(document));
    assert!(signature.lines().all(|line| line.len() <= 64));
    verify::signature(&certs(&key), document, &signature).unwrap();
    let err = verify::signature(&certs(&key), b"{}", &signature).unwrap_err();
    assert_eq!(err, verify::VerifyError::BadSignature(1));
}

#[test]
fn pkcs7_carries_the_document_and_verifies() {
    let key = key();
    let document = b"{\n  \"instanceId\" : \"i-0123\"\n}";
    let pkcs7 = base64_lines(&key.pkcs7(document).unwrap());
    let attached = verify::pkcs7(&certs(&key), &pkcs7).unwrap();
    assert_eq!(attached, document);
    let other = SigningKey::generate().unwrap();
    assert_eq!(verify::pkcs7(&certs(&other), &pkcs7).unwrap_err(), verify::VerifyError::BadSignature(1));
}

#[test]
fn jwts_verify_and_name_their_key() {
    let key = key();
    let token = key.jwt_rs256(&json!({"aud": "vault", "sub": "123"}));
    let claims = verify::jwt(&certs(&key), &token).unwrap();
    assert_eq!(claims, json!({"aud": "vault", "sub": "123"}));
    let jwk = key.jwk();
    assert_eq!(jwk["kid"], key.kid());
    assert_eq!(jwk["e"], "AQAB");
    let mut tampered = token.clone();
    tampered.insert(tampered.find('.').unwrap() + 2, 'x');
    assert!(verify::jwt(&certs(&key), &tampered).is_err());
}

#[test]
fn keyrings_round_trip_rotate_and_never_show_private_keys() {
    let mut ring = Keyring { keys: vec![key()] };
    let stored = ring.to_bytes().unwrap();
    let read = Keyring::from_bytes(&stored).unwrap();
    assert_eq!(read.active().kid(), ring.active().kid());
    let old = ring.active().kid().to_owned();
    ring.install(SigningKey::generate().unwrap());
    assert_ne!(ring.active().kid(), old);
    assert_eq!(ring.keys().len(), 2, "the retired key stays published");
    assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
    assert_eq!(parse_certificates(&ring.certificates_pem()).unwrap().len(), 2);
    let debug = format!("{ring:?}");
    assert!(!debug.contains("PRIVATE") && debug.contains("<redacted>"), "{debug}");
}

#[test]
fn operator_keys_are_checked() {
    let key = key();
    let pem = key.private_pem().unwrap();
    let supplied = SigningKey::from_pem(&pem, Some(&key.certificate_pem())).unwrap();
    assert_eq!(supplied.kid(), key.kid());
    let other = SigningKey::generate().unwrap();
    let err = SigningKey::from_pem(&pem, Some(&other.certificate_pem())).unwrap_err();
    assert!(err.to_string().contains("not for this private key"), "{err}");
    assert!(SigningKey::from_pem("garbage", None).is_err());
}
