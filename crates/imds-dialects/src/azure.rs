//! The Azure Instance Metadata Service dialect (`/metadata/…`), as a pure renderer.
//!
//! Every request must carry `Metadata: true` (any case) and no `X-Forwarded-For`; anything else
//! is refused at once with Azure's `400` JSON body, so clients probing with a one-second timeout
//! get their answer. Query parameters may not repeat. Endpoints:
//! - `/metadata/instance[/<key or index>…]?api-version=<v>[&format=json|text][&extended=true]`:
//!   the document of module `document`, filtered to the fields `<v>` has; `api-version` must be
//!   one of [`wire::API_VERSIONS`] (else `400` with the three newest). Route filtering walks
//!   object keys and array indexes; a leaf (a string) must be asked with `format=text` and
//!   answers its bare value, anything else answers JSON and refuses `format=text`.
//! - `/metadata/versions`: `{"apiVersions":[…]}`, no `api-version` needed.
//! - `/metadata/scheduledevents?api-version=<v>`: the instance's runtime events as Azure's
//!   Scheduled Events document (module `events`); `POST {"StartRequests":[{"EventId":…}]}`
//!   starts them (an id the document does not show: `400`).
//! - `/metadata/identity/oauth2/token?api-version=…&resource=…[&client_id|object_id|msi_res_id=…]`
//!   (module `credentials`): the instance role's token as Azure's compact JSON (numbers as
//!   strings); `400 {"error":"invalid_request","error_description":"Identity not found"}` when
//!   the instance has no role, the role is not configured or the query names another identity;
//!   `500 unknown_error` while the role has no valid credentials; the same header and
//!   `api-version` checks first, with the token endpoint's OAuth-shaped bodies.
//! - `/metadata/attested/document?api-version=…[&nonce=<up to 10 digits>]`: `{"encoding":"pkcs7",
//!   "signature":…}`, base64 DER PKCS#7 SignedData (deployment identity key) over the JSON
//!   `nonce`, `plan`, `timeStamp`, `vmId`, `licenseType`, `subscriptionId`, `sku`.
//! - `/metadata/reprovisiondata`: `404` (no pre-provisioning); `/metadata/loadbalancer`: Azure's
//!   `404` for a VM behind no standard load balancer.
//!
//! All JSON primitives are strings and missing values are `""`, as Azure documents.
//!
//! # Overrides
//!
//! `dialects.azure` is an object; [`check_overrides`] lists its keys (string values replacing
//! `compute.<key>`, `adminUsername`/`computerName` for `osProfile`, `ppsType` for `extended`,
//! `vmId` a UUID, and the objects `plan` and `securityProfile`). Without overrides the document
//! is derived from the record: `vmId` per rule R1 ([`vm_id`]), `location` from `region`, `vmSize`
//! from `instance_type`, `subscriptionId` from `account.id`, `zone` from `zone` only when it is an
//! Azure zone number, `name` from `name` or `hostname`, `osProfile` from `default_user`,
//! `hostname` and `password_auth`, `publicKeys` from `ssh_keys` (path
//! `/home/<key user or default user>/.ssh/authorized_keys`), `tags`/`tagsList` from `tags`,
//! `userData` as base64, and `network` from `network.interfaces` (else `mac[0]`/`ipv4[0]`).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::{Context, GuestRequest, GuestResponse, Subject};

mod credentials;
mod document;
mod events;
mod overrides;
pub mod wire;
pub mod wireserver;

pub use credentials::{client_id, object_id};
pub use document::{mac, vm_id};
pub use overrides::check as check_overrides;

/// Answers one Azure request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let path = request.path.trim_end_matches('/');
    let rest = path.strip_prefix("/metadata/").unwrap_or_default();
    let mut segments = rest.split('/').filter(|s| !s.is_empty());
    let category = segments.next().unwrap_or_default();
    if category == "identity" {
        return identity(subject.instance, request, rest, context);
    }
    if let Err(refusal) = check_headers(&request.headers) {
        return error(StatusCode::BAD_REQUEST, refusal.message());
    }
    let Ok(query) = Query::parse(request.query.as_deref()) else {
        return error(StatusCode::BAD_REQUEST, wire::DUPLICATE_PARAMETER);
    };
    let is_get = request.method == Method::GET || request.method == Method::HEAD;
    match category {
        "versions" if segments.next().is_none() => {
            if !is_get {
                return error(StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED);
            }
            json_ok(&json!({"apiVersions": wire::API_VERSIONS}))
        }
        "instance" => {
            if !is_get {
                return error(StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED);
            }
            let Some(version) = query.version(wire::API_VERSIONS) else {
                return bad_api_version(wire::API_VERSIONS);
            };
            let extended = query.get(wire::EXTENDED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let format = query.get(wire::FORMAT).map(str::to_ascii_lowercase);
            // The document renders from the record alone: keep its answers with this version.
            let key = || format!("azure {path} {version} {extended} {format:?}");
            crate::cache::answer_with(subject.cache, context.now, key, || {
                let whole = document::render(subject.instance, version, extended);
                let Some(node) = segments.try_fold(&whole, step) else {
                    return (error(StatusCode::NOT_FOUND, wire::NOT_FOUND), false);
                };
                let response = match (format.as_deref(), node) {
                    (None | Some("json"), Value::String(_)) => error(StatusCode::BAD_REQUEST, wire::LEAF_NEEDS_TEXT),
                    (None | Some("json"), node) => json_ok(node),
                    (Some("text"), Value::String(leaf)) => {
                        GuestResponse::new(StatusCode::OK, wire::TEXT, Bytes::from(leaf.clone()))
                    }
                    (Some("text"), _) => error(StatusCode::BAD_REQUEST, wire::TEXT_NEEDS_LEAF),
                    (Some(_), _) => error(StatusCode::BAD_REQUEST, wire::BAD_FORMAT),
                };
                (response, true)
            })
        }
        "scheduledevents" if segments.next().is_none() => {
            let Some(version) = query.version(wire::SCHEDULED_EVENTS_VERSIONS) else {
                return bad_api_version(wire::SCHEDULED_EVENTS_VERSIONS);
            };
            if is_get {
                events::document(subject.instance, subject.events, version, context.now)
            } else if request.method == Method::POST {
                events::start(subject.events, &request.body, context.now)
            } else {
                error(StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED)
            }
        }
        "attested" if segments.next() == Some("document") && segments.next().is_none() => {
            if !is_get {
                return error(StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED);
            }
            if query.version(wire::API_VERSIONS).is_none() {
                return bad_api_version(wire::API_VERSIONS);
            }
            credentials::attested(subject.instance, &query, context)
        }
        "loadbalancer" | "reprovisiondata" => {
            if !is_get {
                return error(StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED);
            }
            if query.version(wire::API_VERSIONS).is_none() {
                return bad_api_version(wire::API_VERSIONS);
            }
            let message = if category == "loadbalancer" { wire::NO_LOAD_BALANCER } else { wire::NOT_FOUND };
            error(StatusCode::NOT_FOUND, message)
        }
        _ => error(StatusCode::NOT_FOUND, wire::NOT_FOUND),
    }
}

/// One route-filtering step: an object key or an array index.
fn step<'v>(node: &'v Value, segment: &str) -> Option<&'v Value> {
    match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

/// Why a request fails the security checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// It carries `X-Forwarded-For`.
    Forwarded,
    /// It lacks `Metadata: true`.
    MissingHeader,
}

impl Refusal {
    /// The instance endpoints' error message.
    fn message(self) -> &'static str {
        match self {
            Refusal::Forwarded => wire::FORWARDED,
            Refusal::MissingHeader => wire::MISSING_METADATA_HEADER,
        }
    }
}

/// The security checks every endpoint makes, in Azure's order: no forwarding, then the header.
fn check_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    if headers.contains_key(wire::FORWARDED_FOR_HEADER) {
        return Err(Refusal::Forwarded);
    }
    let metadata = headers.get(wire::METADATA_HEADER).and_then(|v| v.to_str().ok());
    if !metadata.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Err(Refusal::MissingHeader);
    }
    Ok(())
}

/// `/metadata/identity/…`: the managed-identity token endpoint.
fn identity(
    instance: &imds_model::Instance,
    request: &GuestRequest,
    rest: &str,
    context: &Context<'_>,
) -> GuestResponse {
    let oauth = |code: &str, description: &str| credentials::oauth(StatusCode::BAD_REQUEST, code, description);
    match check_headers(&request.headers) {
        Err(Refusal::Forwarded) => return oauth(wire::OAUTH_INVALID_REQUEST, wire::FORWARDED),
        Err(Refusal::MissingHeader) => return oauth(wire::OAUTH_MISSING_HEADER, wire::IDENTITY_MISSING_HEADER),
        Ok(()) => {}
    }
    if rest.trim_end_matches('/') != "identity/oauth2/token" {
        return error(StatusCode::NOT_FOUND, wire::NOT_FOUND);
    }
    if request.method != Method::GET && request.method != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, wire::METHOD_NOT_ALLOWED);
    }
    let query = match Query::parse(request.query.as_deref()) {
        Ok(query) if query.version(wire::API_VERSIONS).is_some() => query,
        _ => return oauth(wire::OAUTH_INVALID_REQUEST, wire::IDENTITY_BAD_API_VERSION),
    };
    credentials::token(instance, &query, context)
}

/// A JSON error body `{"error": message}`.
fn error(status: StatusCode, message: &str) -> GuestResponse {
    GuestResponse::new(status, wire::JSON, json!({"error": message}).to_string())
}

/// The `400` for a missing or unsupported `api-version`, naming the three newest of `versions`.
fn bad_api_version(versions: &[&str]) -> GuestResponse {
    let newest: Vec<&str> = versions.iter().rev().take(3).copied().collect();
    let body = json!({"error": wire::BAD_API_VERSION, "newest-versions": newest});
    GuestResponse::new(StatusCode::BAD_REQUEST, wire::JSON, body.to_string())
}

/// A `200` JSON answer.
fn json_ok(value: &Value) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::JSON, value.to_string())
}

/// The query string's parameters, decoded; each name at most once.
struct Query<'q>(Vec<(Cow<'q, str>, Cow<'q, str>)>);

impl<'q> Query<'q> {
    /// Splits the query; `Err` when a parameter name repeats.
    fn parse(raw: Option<&'q str>) -> Result<Self, ()> {
        let mut pairs: Vec<(Cow<'q, str>, Cow<'q, str>)> = Vec::new();
        for (name, value) in crate::query::pairs(raw) {
            if pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(());
            }
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }

    /// The `api-version`, if it is one of `supported`.
    fn version(&self, supported: &[&'static str]) -> Option<&'static str> {
        let asked = self.get(wire::API_VERSION)?;
        supported.iter().find(|v| **v == asked).copied()
    }
}

#[cfg(test)]
mod tests;
