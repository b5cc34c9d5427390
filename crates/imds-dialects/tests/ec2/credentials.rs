//! Role credentials, instance-identity credentials and the identity document's signatures, with
//! a fake credential cache and a fake signer standing in for the server's.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::Method;
use imds_dialects::{ec2, Context, GuestRequest, GuestResponse};
use imds_model::Instance;
use sha2::{Digest, Sha256};

use super::fakes::{key, FakeSigner, Roles, NOW};
use super::{assert_text_eq, body, fixtures};

const ROLES: Roles = Roles {
    access_key_id: "ASIAIOSFODNN7EXAMPLE",
    secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    token: "IQoJb3JpZ2luX2VjEXAMPLE==",
    lifetime: 3600,
};

fn get_at(instance: &Instance, path: &str, now: u64, signer: bool) -> GuestResponse {
    let mut context = Context::new(key(), now);
    context.credentials = &ROLES;
    if signer {
        context.signer = Some(&FakeSigner);
    }
    ec2::respond(instance, &GuestRequest::new(Method::GET, path), &context)
}

fn with_role(role: &str) -> Instance {
    let mut doc = fixtures::full_doc();
    doc["iam_role"] = role.into();
    fixtures::parse(doc)
}

#[test]
fn role_credentials_are_byte_exact() {
    let response = get_at(&fixtures::full(), "/latest/meta-data/iam/security-credentials/app-role", NOW, false);
    assert_eq!(response.status, 200);
    assert_text_eq(
        "credentials",
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2027-01-15T07:59:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \
         \"AccessKeyId\" : \"ASIAIOSFODNN7EXAMPLE\",\n  \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",\n  \
         \"Token\" : \"IQoJb3JpZ2luX2VjEXAMPLE==\",\n  \"Expiration\" : \"2027-01-15T09:00:00Z\"\n}",
        body(&response),
    );
    // A trailing slash serves the leaf too; the listing is the role name alone, no newline.
    let slash = get_at(&fixtures::full(), "/latest/meta-data/iam/security-credentials/app-role/", NOW, false);
    assert_eq!(slash.body, response.body);
    let listing = get_at(&fixtures::full(), "/latest/meta-data/iam/security-credentials/", NOW, false);
    assert_eq!(body(&listing), "app-role");
}

#[test]
fn iam_info_last_updated_moves_with_the_role_credentials() {
    // Not the record's launch time (nor 1970 for a record without one): the credentials'.
    let info = get_at(&fixtures::full(), "/latest/meta-data/iam/info", NOW, false);
    let json: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(json["LastUpdated"], "2027-01-15T07:59:00Z", "{}", body(&info));
    let mut doc = fixtures::full_doc();
    doc.as_object_mut().unwrap().remove("created_at");
    let undated = fixtures::parse(doc);
    let info = get_at(&undated, "/latest/meta-data/iam/info", NOW, false);
    let json: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(json["LastUpdated"], "2027-01-15T07:59:00Z", "{}", body(&info));
    let failed = get_at(&with_role("broken-role"), "/latest/meta-data/iam/info", NOW, false);
    let json: serde_json::Value = serde_json::from_slice(&failed.body).unwrap();
    assert_eq!(json["LastUpdated"], "2027-01-15T07:59:55Z", "the last attempt");
}

#[test]
fn a_role_whose_source_failed_gets_the_error_form() {
    let response =
        get_at(&with_role("broken-role"), "/latest/meta-data/iam/security-credentials/broken-role", NOW, false);
    assert_eq!(response.status, 200, "EC2 answers 200 with a Code other than Success");
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(json["Code"], "AssumeRoleUnauthorizedAccess");
    assert_eq!(json["LastUpdated"], "2027-01-15T07:59:55Z");
    assert!(json.get("AccessKeyId").is_none());
    assert!(body(&response).starts_with("{\n  \"Code\" : "));
}

#[test]
fn instance_identity_credentials_rotate_per_period_and_differ_per_instance() {
    let path = "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance";
    let read = |instance: &Instance, now: u64| -> serde_json::Value {
        serde_json::from_slice(&get_at(instance, path, now, false).body).unwrap()
    };
    let minimal = fixtures::minimal();
    let first = read(&minimal, NOW);
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]);
    let id = first["AccessKeyId"].as_str().unwrap();
    assert!(id.starts_with("ASIA") && id.len() == 20, "{id}");
    assert_eq!(read(&minimal, NOW + 60), first, "stable within a period");
    let next = read(&minimal, NOW + 6 * 3600);
    assert_ne!(next["AccessKeyId"], first["AccessKeyId"], "a new set each period");
    assert_ne!(read(&fixtures::full(), NOW)["AccessKeyId"], first["AccessKeyId"]);
    // Served expiry is always at least 15 minutes ahead.
    for offset in [0, 3600, 6 * 3600 - 1] {
        let json = read(&minimal, NOW + offset);
        let expiration = json["Expiration"].as_str().unwrap();
        assert!(expiration > imds_dialects::credentials::format_time(NOW + offset + 15 * 60 - 1).as_str());
    }
    let info: serde_json::Value =
        serde_json::from_slice(&get_at(&minimal, "/latest/meta-data/identity-credentials/ec2/info", NOW, false).body)
            .unwrap();
    assert_eq!(info["Code"], "Success");
    assert_eq!(info["AccountId"].as_str().unwrap().len(), 12);
}

fn decode(text: &str) -> Vec<u8> {
    assert!(text.lines().all(|line| line.len() <= 64), "wrapped at 64: {text}");
    STANDARD.decode(text.replace('\n', "")).unwrap()
}

#[test]
fn signatures_sign_the_exact_document_bytes() {
    let instance = fixtures::full();
    let document = get_at(&instance, "/latest/dynamic/instance-identity/document", NOW, true).body;
    let signature = get_at(&instance, "/latest/dynamic/instance-identity/signature", NOW, true);
    assert_eq!(signature.status, 200);
    assert_eq!(decode(body(&signature)), Sha256::digest(&document).to_vec());
    for leaf in ["pkcs7", "rsa2048"] {
        let response = get_at(&instance, &format!("/latest/dynamic/instance-identity/{leaf}"), NOW, true);
        assert_eq!(decode(body(&response)), [b"P7:".as_slice(), &document].concat(), "{leaf}");
    }
    let listing = get_at(&instance, "/latest/dynamic/instance-identity/", NOW, true);
    assert_eq!(body(&listing), "rsa2048\npkcs7\ndocument\nsignature");
    // Without a signer only the document is served (and listed).
    let listing = get_at(&instance, "/latest/dynamic/instance-identity/", NOW, false);
    assert_eq!(body(&listing), "document");
    assert_eq!(get_at(&instance, "/latest/dynamic/instance-identity/signature", NOW, false).status, 404);
}
