//! The container credential endpoints: issued tokens by header or relative URI, only the
//! instance's own, the token's role, errors.

use http::{Method, StatusCode};
use imds_dialects::container::hex_sha256;
use imds_dialects::token::TokenKey;
use imds_dialects::{route, Context, Dialect, GuestRequest, Subject};
use imds_model::{ContainerToken, ContainerTokens, RoleName};
use serde_json::{json, Value};

use super::{body, golden, parse};

fn tokens() -> ContainerTokens {
    let token = |id: &str, secret: &str, role: Option<&str>| ContainerToken {
        id: id.into(),
        workload: format!("workload-{id}"),
        role: role.map(|r| RoleName::try_from(r).unwrap()),
        sha256: hex_sha256(secret),
        created: "2026-12-01T00:00:00Z".into(),
    };
    ContainerTokens {
        tokens: vec![token("ct-1", "secret-one", None), token("ct-2", "secret-two", Some("broken-role"))],
    }
}

fn send(
    instance: &imds_model::Instance,
    tokens: Option<&ContainerTokens>,
    target: &str,
    auth: Option<&str>,
) -> imds_dialects::GuestResponse {
    let mut request = GuestRequest::new(Method::GET, target).on_listener_of(Dialect::Container);
    if let Some(auth) = auth {
        request = request.with_header(http::header::AUTHORIZATION, auth.parse().unwrap());
    }
    let key = TokenKey::from_bytes([7; 32]);
    let mut context = Context::new(&key, super::fakes::NOW);
    context.credentials = &super::ROLES;
    let subject = Subject { container_tokens: tokens, ..Subject::new(instance) };
    route(&subject, &request, &context)
}

fn code(response: &imds_dialects::GuestResponse) -> Value {
    serde_json::from_slice::<Value>(&response.body).unwrap()["code"].clone()
}

#[test]
fn an_issued_token_gets_the_role_credentials_by_header_or_relative_uri() {
    let instance = parse(json!({"id": "i-host", "iam_role": "app-role"}));
    let tokens = tokens();
    let full = send(&instance, Some(&tokens), "/v1/credentials", Some("secret-one"));
    assert_eq!(full.status, StatusCode::OK);
    golden("container", "credentials.json", body(&full));
    let relative = send(&instance, Some(&tokens), "/v2/credentials/secret-one", None);
    assert_eq!(relative.body, full.body);
    // The token's own role wins over the instance's (here one without credentials yet).
    let own_role = send(&instance, Some(&tokens), "/v1/credentials", Some("secret-two"));
    assert_eq!(own_role.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body(&own_role).contains("cloud-secret"));
}

#[test]
fn anything_but_an_issued_token_gets_nothing() {
    let instance = parse(json!({"id": "i-host", "iam_role": "app-role"}));
    let tokens = tokens();
    for (target, auth, status, expected) in [
        ("/v1/credentials", None, StatusCode::BAD_REQUEST, "MissingAuthorization"),
        ("/v1/credentials", Some("secret-nope"), StatusCode::FORBIDDEN, "AccessDenied"),
        ("/v1/credentials", Some(""), StatusCode::FORBIDDEN, "AccessDenied"),
        ("/v2/credentials/secret-nope", None, StatusCode::BAD_REQUEST, "InvalidIdInRequest"),
        ("/v2/credentials/", None, StatusCode::NOT_FOUND, "NotFound"),
        ("/latest/meta-data/iam/security-credentials/app-role", None, StatusCode::NOT_FOUND, "NotFound"),
    ] {
        let response = send(&instance, Some(&tokens), target, auth);
        assert_eq!((response.status, code(&response)), (status, json!(expected)), "{target} {auth:?}");
        assert!(!body(&response).contains("cloud-secret"));
    }
    // No tokens issued at all.
    assert_eq!(send(&instance, None, "/v1/credentials", Some("secret-one")).status, StatusCode::FORBIDDEN);
    // No role anywhere.
    let roleless = parse(json!({"id": "i-bare"}));
    assert_eq!(code(&send(&roleless, Some(&tokens), "/v1/credentials", Some("secret-one"))), json!("NoRole"));
    // A switched-off endpoint and a disabled dialect.
    let shut = parse(json!({"id": "i-host", "iam_role": "app-role", "imds": {"endpoint": "disabled"}}));
    assert_eq!(send(&shut, Some(&tokens), "/v1/credentials", Some("secret-one")).status, StatusCode::FORBIDDEN);
    let ec2_only = parse(json!({"id": "i-host", "iam_role": "app-role", "dialects": {"enabled": ["ec2"]}}));
    let not_served = send(&ec2_only, Some(&tokens), "/v1/credentials", Some("secret-one"));
    assert_eq!((not_served.status, code(&not_served)), (StatusCode::NOT_FOUND, json!("NotFound")));
}
