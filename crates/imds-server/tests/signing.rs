//! The identity document's signatures checked by `openssl` against the certificates the admin
//! API exports, before and after a key rotation, on a real daemon over loopback.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::Client;
use imds_server::test_util::TestServer;
use serde_json::json;

async fn get_text(client: &Client, path: &str) -> (StatusCode, String) {
    let response = client.send(Method::GET, path, &[], "").await.unwrap();
    (response.status, response.text())
}

/// Runs openssl; fails loudly when it is missing (scripts/test installs it).
fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run openssl ({e}): install it (Debian: apt-get install openssl); scripts/test does")
    })
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Checks all three signatures of `document` with openssl against `cert_pem`; returns whether
/// each verified.
fn openssl_verifies(
    dir: &Path,
    cert_pem: &str,
    document: &str,
    signature: &str,
    pkcs7: &str,
    rsa2048: &str,
) -> [bool; 3] {
    use base64::Engine as _;
    let cert = write(dir, "cert.pem", cert_pem);
    let doc = write(dir, "document", document);
    let pubkey = openssl(&["x509", "-in", &cert, "-pubkey", "-noout"]);
    assert!(pubkey.status.success(), "{}", String::from_utf8_lossy(&pubkey.stderr));
    let pubkey = write(dir, "pub.pem", pubkey.stdout);
    let raw = base64::engine::general_purpose::STANDARD.decode(signature.replace('\n', "")).unwrap();
    let sig = write(dir, "signature.bin", raw);
    let dgst = openssl(&["dgst", "-sha256", "-verify", &pubkey, "-signature", &sig, &doc]);
    let raw_ok = dgst.status.success() && String::from_utf8_lossy(&dgst.stdout).contains("Verified OK");
    let smime = |name: &str, body: &str| {
        let p7 = write(dir, name, format!("-----BEGIN PKCS7-----\n{body}\n-----END PKCS7-----\n"));
        // AWS's documented command: the signer certificate is passed in, chain not checked.
        let out = openssl(&["smime", "-verify", "-in", &p7, "-inform", "PEM", "-certfile", &cert, "-noverify"]);
        out.status.success() && out.stdout == document.as_bytes()
    };
    [raw_ok, smime("pkcs7.pem", pkcs7), smime("rsa2048.pem", rsa2048)]
}

async fn signatures(guest: &Client) -> (String, String, String, String) {
    let base = "/latest/dynamic/instance-identity";
    let (_, document) = get_text(guest, &format!("{base}/document")).await;
    let (status, signature) = get_text(guest, &format!("{base}/signature")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, pkcs7) = get_text(guest, &format!("{base}/pkcs7")).await;
    let (_, rsa2048) = get_text(guest, &format!("{base}/rsa2048")).await;
    (document, signature, pkcs7, rsa2048)
}

#[tokio::test]
async fn openssl_verifies_every_signature_against_the_exported_certificate_across_a_rotation() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-signed", "ipv4": ["127.0.41.1"], "region": "eu-west-1"})).await;
    let guest = server.guest_from("127.0.41.1");
    // The first key is generated at start; the listing shows the signatures once it is loaded.
    let mut listing = String::new();
    for _ in 0..400 {
        listing = get_text(&guest, "/latest/dynamic/instance-identity/").await.1;
        if listing.contains("signature") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listing, "rsa2048\npkcs7\ndocument\nsignature");
    let dir = tempfile::tempdir().unwrap();
    let (status, certs) = get_text(&server.admin(), "/v1/signing/certificates").await;
    assert_eq!(status, StatusCode::OK);
    let (document, signature, pkcs7, rsa2048) = signatures(&guest).await;
    assert!(signature.lines().all(|line| line.len() <= 64));
    assert_eq!(openssl_verifies(dir.path(), &certs, &document, &signature, &pkcs7, &rsa2048), [true; 3]);
    // A changed document does not verify.
    let forged = document.replace("eu-west-1", "us-east-1");
    assert!(
        !openssl_verifies(dir.path(), &certs, &forged, &signature, &pkcs7, &rsa2048)[0],
        "a changed document verified"
    );

    // Rotate: the new key signs, both certificates stay published, the old one no longer matches.
    let before = server.admin().send(Method::GET, "/v1/signing/keys", &[], "").await.unwrap().json();
    let rotated = server.admin().send(Method::POST, "/v1/signing/rotate", &[], "").await.unwrap();
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let after = rotated.json();
    assert_eq!(after["keys"].as_array().unwrap().len(), 2);
    assert_eq!(after["keys"][1]["kid"], before["keys"][0]["kid"]);
    assert_eq!(after["keys"][0]["active"], true);
    let new_cert = after["keys"][0]["certificate"].as_str().unwrap().to_owned();
    let (document, signature, pkcs7, rsa2048) = signatures(&guest).await;
    assert_eq!(openssl_verifies(dir.path(), &new_cert, &document, &signature, &pkcs7, &rsa2048), [true; 3]);
    assert_eq!(openssl_verifies(dir.path(), &certs, &document, &signature, &pkcs7, &rsa2048), [false; 3]);
    let jwks = server.admin().send(Method::GET, "/v1/signing/jwks", &[], "").await.unwrap().json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][0]["kid"], after["keys"][0]["kid"]);
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
}

#[tokio::test]
async fn operator_keys_are_installed_and_bad_ones_refused() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let made = openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    assert!(made.status.success());
    let pem = std::fs::read_to_string(&key).unwrap();
    let body = json!({"private_key_pem": pem}).to_string();
    let installed = server
        .admin()
        .send(Method::PUT, "/v1/signing/key", &[("content-type", "application/json")], body)
        .await
        .unwrap();
    assert_eq!(installed.status, StatusCode::OK, "{}", installed.text());
    assert!(!installed.text().contains("PRIVATE KEY"), "the private key is never echoed");
    // The certificate served matches the operator's key.
    let cert = installed.json()["keys"][0]["certificate"].as_str().unwrap().to_owned();
    let cert_path = write(dir.path(), "cert.pem", &cert);
    let from_cert = openssl(&["x509", "-in", &cert_path, "-pubkey", "-noout"]).stdout;
    let from_key = openssl(&["rsa", "-in", key.to_str().unwrap(), "-pubout"]).stdout;
    assert_eq!(from_cert, from_key);
    let bad = json!({"private_key_pem": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"}).to_string();
    let refused = server
        .admin()
        .send(Method::PUT, "/v1/signing/key", &[("content-type", "application/json")], bad)
        .await
        .unwrap();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["field"], "private_key_pem");
}
