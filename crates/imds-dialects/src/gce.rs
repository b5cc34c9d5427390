//! The GCE dialect: `/computeMetadata/v1/…`, as Google's metadata server answers it.
//!
//! Every request must carry `Metadata-Flavor: Google` and must not carry `X-Forwarded-For`
//! (both refused with 403); every answer carries `Metadata-Flavor: Google`,
//! `Server: Metadata Server for VM`, `X-XSS-Protection: 0` and `X-Frame-Options: SAMEORIGIN`, and
//! every 200 an `ETag`: the first 16 hex digits of the SHA-256 of the body, so it changes
//! exactly when the rendered answer does.
//!
//! The tree (module `build`) is rendered from the record: `instance/` (`attributes/` with
//! `ssh-keys` as `user:key` lines and `user-data`, `description`, `hostname`, `id`, `image`,
//! `machine-type`, `maintenance-event`, `name`, `network-interfaces/N/…` with `access-configs/`,
//! `preempted`, `scheduling/`, `service-accounts/` when the record has an `iam_role`, `tags`,
//! `zone`, `guest-attributes/` when enabled) and `project/` (`attributes/`, `project-id`,
//! `numeric-project-id`). Directories list one entry per line (sub-directories end in `/`); a
//! directory asked for without its slash answers 301 to the slash form. `?recursive=true`
//! (booleans are case-insensitive) renders a directory as JSON with camelCase keys;
//! `?alt=text` flattens it into `path value` lines, `?alt=json` renders a leaf or a listing as
//! JSON. Service-account `token` and `identity` are computed on request (module `credentials`):
//! `token` serves the role's current token as `{"access_token","expires_in","token_type"}`
//! (404 when the role is not configured, 503 while it has no valid credentials) and
//! `identity?audience=…[&format=full]` an RS256 JWT signed with the deployment's identity key
//! (400 without `audience`).
//!
//! Guest attributes (`instance/guest-attributes/<namespace>/<key>`) are written by the guest
//! with `PUT` (the body is the value) and removed with `DELETE`, once the instance or project
//! attribute `enable-guest-attributes` is `TRUE`; otherwise those paths answer 403. They live in
//! the instance's guest state, so an admin replace of the record keeps them.
//!
//! `?wait_for_change=true` (with `last_etag` and `timeout_sec`) is a long poll: this module only
//! validates it and tells the server about it ([`wait_request`]); the server holds the request
//! until the rendered answer's ETag differs from `last_etag` (or, without one, from the first
//! answer's) or the timeout passes. Plain directory listings refuse it with 400, as GCE does.
//!
//! # Overrides
//!
//! `dialects.gce` in the record is an object; every key is optional ([`overrides::KEYS`],
//! checked by [`overrides::check`]): `id` (numeric instance id; default: the record's id when
//! decimal, else a 63-bit hash of it), `project_id` (default `account.name`, else a non-numeric
//! `account.id`, else `imds-project`), `project_number` (default a numeric `account.id`, else a
//! 12-digit hash of the project id), `zone` (default `zone`, else `<region>-a`, else `local-a`),
//! `machine_type` (default `instance_type`, else `e2-medium`), `hostname`, `image`,
//! `description`, `cpu_platform`, `network` (network path of every interface), `tags` (list of
//! strings; default none), `attributes` (instance attributes; `null` removes a derived one),
//! `project_attributes`, `service_account_email` (default `<role>@<project>.iam.gserviceaccount.com`),
//! `scopes` (default `cloud-platform`), `preemptible`.

use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Context, GuestRequest, GuestResponse, Subject};

mod build;
mod credentials;
pub mod overrides;

pub use overrides::check as check_overrides;
mod tree;
pub mod wire;

use overrides::Overrides;
use tree::{Dir, Leaf, Node};

/// A long poll a request asks for (`?wait_for_change=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// Answer as soon as the ETag differs from this; `None`: from the first answer's ETag.
    pub last_etag: Option<String>,
    /// Answer with the unchanged value after this many seconds.
    pub timeout_secs: u64,
}

/// The query parameters GCE reads.
#[derive(Debug, Default)]
struct Query {
    recursive: bool,
    alt: Option<Alt>,
    wait: Option<Wait>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alt {
    Json,
    Text,
}

/// The wait a valid GCE `GET` asks for; `None` for anything else (including invalid ones,
/// which [`respond`] answers with 400).
pub fn wait_request(request: &GuestRequest) -> Option<Wait> {
    if request.method != Method::GET {
        return None;
    }
    parse_query(request.query.as_deref()).ok()?.wait
}

/// Answers one GCE request for the subject instance.
pub fn respond(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    if request.headers.contains_key(&wire::FORWARDED_FOR_NAME) {
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Your client does not have permission to get this URL from this server. Requests with an \
             X-Forwarded-For header are refused.",
        );
    }
    let flavor = request.headers.get(&wire::FLAVOR_NAME).and_then(|v| v.to_str().ok());
    if flavor != Some(wire::FLAVOR) {
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "Your client does not have permission to get URL <code>{}</code> from this server. Missing \
                 Metadata-Flavor:Google header.",
                wire::escape(&request.path)
            ),
        );
    }
    let query = match parse_query(request.query.as_deref()) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, "Bad Request", &message),
    };
    let path = request.path.as_str();
    // `/computeMetadata` and `/computeMetadata/`: the version list.
    if path == wire::ROOT {
        return redirect(request);
    }
    let Some(rest) = path.strip_prefix(wire::ROOT).and_then(|p| p.strip_prefix('/')) else {
        return not_found(path);
    };
    let (dir, slash) = match rest.strip_suffix('/') {
        Some(dir) => (dir, true),
        None => (rest, false),
    };
    let segments: Vec<&str> = if dir.is_empty() { Vec::new() } else { dir.split('/').collect() };
    let guest_attributes = segments.len() >= 3 && segments[..3] == [wire::VERSION, "instance", wire::GUEST_ATTRIBUTES];
    let readable = request.method == Method::GET || request.method == Method::HEAD;
    if readable && !guest_attributes {
        // Everything but guest attributes and credentials renders from the record alone: keep
        // those answers with this version of the record. An instance with events shows them by
        // the clock (`maintenance-event`, `preempted`, and every directory holding them), so
        // its answers are rendered for each request.
        let cache = subject.cache.filter(|_| subject.events.is_none_or(|events| events.events.is_empty()));
        let key = || format!("gce {path} {}{:?}{}", query.recursive, query.alt, query.wait.is_some());
        return crate::cache::answer_with(cache, context.now, key, || {
            walk(subject, request, context, &query, &segments, slash, guest_attributes)
        });
    }
    walk(subject, request, context, &query, &segments, slash, guest_attributes).0
}

/// Renders the tree and answers from the node at `segments`; the flag says whether the answer
/// depends on the record alone (not on guest state, credentials or the clock).
fn walk(
    subject: &Subject<'_>,
    request: &GuestRequest,
    context: &Context<'_>,
    query: &Query,
    segments: &[&str],
    slash: bool,
    guest_attributes: bool,
) -> (GuestResponse, bool) {
    let path = request.path.as_str();
    let overrides = Overrides::new(subject.instance.dialects.override_for("gce"));
    let root = build::root(subject.instance, subject.state, &overrides, build::Live::at(subject.events, context.now));
    let versions = Dir::sorted(vec![tree::Entry::new(wire::VERSION, Node::Dir(root))]);
    if guest_attributes {
        if let Some(refusal) = guest_attributes_gate(&versions, path) {
            return (refusal, false);
        }
        if request.method == Method::PUT || request.method == Method::DELETE {
            return (guest_attribute_write(request, &segments[3..], slash), false);
        }
    }
    if request.method != Method::GET && request.method != Method::HEAD {
        let refusal = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "The request method is not allowed.")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (refusal, false);
    }
    let mut node = &Node::Dir(versions);
    for segment in segments {
        node = match node {
            Node::Dir(dir) => match dir.get(segment) {
                Some(entry) => &entry.node,
                None => return (not_found(path), false),
            },
            Node::Leaf(_) => return (not_found(path), false),
        };
    }
    match node {
        Node::Dir(_) if !slash && !segments.is_empty() => (redirect(request), false),
        Node::Dir(dir) => (render_dir(dir, node, query), true),
        Node::Leaf(_) if slash => (not_found(path), false),
        Node::Leaf(Leaf::Credential(what)) => {
            let names = build::Names::new(subject.instance, &overrides);
            (credentials::respond(what, subject.instance, &names, request.query.as_deref(), path, context), false)
        }
        Node::Leaf(leaf) => (render_leaf(leaf, node, query), true),
    }
}

fn render_dir(dir: &Dir, node: &Node, query: &Query) -> GuestResponse {
    if query.recursive {
        return match query.alt {
            Some(Alt::Text) => {
                let mut out = String::new();
                node.to_text_lines("", &mut out);
                ok(wire::TEXT, out)
            }
            _ => ok(wire::JSON, json_body(&node.to_json().unwrap_or(Value::Null))),
        };
    }
    if query.wait.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Non-recursive directory listings do not support wait_for_change; add recursive=true.",
        );
    }
    let listing = dir.listing();
    match query.alt {
        Some(Alt::Json) => ok(wire::JSON, json_body(&Value::from(listing))),
        _ => ok(wire::TEXT, listing.iter().map(|line| format!("{line}\n")).collect::<String>()),
    }
}

fn render_leaf(leaf: &Leaf, node: &Node, query: &Query) -> GuestResponse {
    let json = node.to_json().unwrap_or(Value::Null);
    match (leaf, query.alt) {
        (_, Some(Alt::Json)) | (Leaf::JsonList(_), None) => ok(wire::JSON, json_body(&json)),
        (Leaf::Text(text), _) => ok(wire::TEXT, text.clone()),
        (Leaf::Number(number), _) => ok(wire::TEXT, number.to_string()),
        (Leaf::Lines(_) | Leaf::JsonList(_), _) => {
            let mut out = String::new();
            node.to_text_lines("", &mut out);
            ok(wire::TEXT, out)
        }
        (Leaf::Credential(_), _) => ok(wire::TEXT, String::new()),
    }
}

/// 403 when guest attributes are not enabled for the instance.
fn guest_attributes_gate(versions: &Dir, path: &str) -> Option<GuestResponse> {
    let enabled = versions
        .get(wire::VERSION)
        .and_then(|v| match &v.node {
            Node::Dir(root) => root.get("instance"),
            Node::Leaf(_) => None,
        })
        .is_some_and(|instance| matches!(&instance.node, Node::Dir(dir) if dir.get(wire::GUEST_ATTRIBUTES).is_some()));
    (!enabled).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "Guest attributes endpoint access is disabled for <code>{}</code>. Set the \
                 enable-guest-attributes metadata attribute to TRUE.",
                wire::escape(path)
            ),
        )
    })
}

/// `PUT`/`DELETE instance/guest-attributes/<ns>/<key>`.
fn guest_attribute_write(request: &GuestRequest, names: &[&str], slash: bool) -> GuestResponse {
    let [namespace, key] = names else {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Guest attributes are written at instance/guest-attributes/&lt;namespace&gt;/&lt;key&gt;.",
        );
    };
    if slash {
        return error(StatusCode::BAD_REQUEST, "Bad Request", "A guest attribute key has no trailing slash.");
    }
    for name in [namespace, key] {
        let valid = !name.is_empty()
            && name.len() <= wire::MAX_GUEST_ATTRIBUTE_NAME
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                &format!(
                    "Invalid guest attribute name {}: use 1 to {} letters, digits, '-' and '_'.",
                    wire::escape(name),
                    wire::MAX_GUEST_ATTRIBUTE_NAME
                ),
            );
        }
    }
    let value = if request.method == Method::PUT {
        if request.body.len() > wire::MAX_GUEST_ATTRIBUTE_VALUE {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
                &format!("A guest attribute value is at most {} bytes.", wire::MAX_GUEST_ATTRIBUTE_VALUE),
            );
        }
        let Ok(text) = std::str::from_utf8(&request.body) else {
            return error(StatusCode::BAD_REQUEST, "Bad Request", "A guest attribute value must be UTF-8 text.");
        };
        Some(Value::String(text.to_owned()))
    } else {
        None
    };
    let write = imds_model::StateWrite {
        dialect: "gce".to_owned(),
        path: vec![wire::GUEST_ATTRIBUTES.to_owned(), (*namespace).to_owned(), (*key).to_owned()],
        value,
        only_if_absent: false,
    };
    let done = ok(wire::TEXT, String::new());
    done.clone().with_write(write, done)
}

fn parse_query(query: Option<&str>) -> Result<Query, String> {
    let mut parsed = Query::default();
    let (mut wait, mut last_etag, mut timeout) = (false, None, None);
    for (name, value) in crate::query::pairs(query) {
        let name = name.as_ref();
        let boolean = |value: &str| {
            if value.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if value.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err(format!("Invalid value for {}: expected true or false.", wire::escape(name)))
            }
        };
        match name {
            "recursive" => parsed.recursive = boolean(&value)?,
            "wait_for_change" => wait = boolean(&value)?,
            "alt" => {
                parsed.alt = Some(match value.as_ref() {
                    "json" => Alt::Json,
                    "text" => Alt::Text,
                    other => return Err(format!("Invalid alt value {}: expected json or text.", wire::escape(other))),
                });
            }
            "last_etag" => last_etag = Some(value.into_owned()),
            "timeout_sec" => {
                let seconds = value.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("Invalid timeout_sec {}: expected a positive integer.", wire::escape(&value))
                })?;
                timeout = Some(seconds.min(wire::MAX_WAIT_SECS));
            }
            // Other parameters (`scopes`, `audience`, …) belong to leaves served elsewhere.
            _ => {}
        }
    }
    if wait {
        parsed.wait = Some(Wait { last_etag, timeout_secs: timeout.unwrap_or(wire::MAX_WAIT_SECS) });
    }
    Ok(parsed)
}

fn json_body(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The ETag of a body: 16 hex digits of its SHA-256.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn ok(content_type: &'static str, body: String) -> GuestResponse {
    let tag = etag(body.as_bytes());
    shaped(GuestResponse::new(StatusCode::OK, content_type, body))
        .with_header(header::ETAG, HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("0")))
}

/// Adds the headers GCE sends on every answer.
fn shaped(response: GuestResponse) -> GuestResponse {
    response
        .with_header(HeaderName::from_static(wire::FLAVOR_HEADER), HeaderValue::from_static(wire::FLAVOR))
        .with_header(header::SERVER, HeaderValue::from_static(wire::SERVER))
        .with_header(HeaderName::from_static("x-xss-protection"), HeaderValue::from_static(wire::XSS_PROTECTION))
        .with_header(header::X_FRAME_OPTIONS, HeaderValue::from_static(wire::FRAME_OPTIONS))
}

pub(crate) fn error(status: StatusCode, reason: &str, message: &str) -> GuestResponse {
    shaped(GuestResponse::new(status, wire::HTML, wire::error_page(status.as_u16(), reason, message)))
}

fn not_found(path: &str) -> GuestResponse {
    error(
        StatusCode::NOT_FOUND,
        "Not Found",
        &format!("The requested URL <code>{}</code> was not found on this server.", wire::escape(path)),
    )
}

/// 301 to the slash form of a directory path, keeping the query.
fn redirect(request: &GuestRequest) -> GuestResponse {
    let location = match &request.query {
        Some(query) => format!("{}/?{query}", request.path),
        None => format!("{}/", request.path),
    };
    let body = format!("<a href=\"{}\">Moved Permanently</a>.\n\n", wire::escape(&location));
    let location = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/"));
    shaped(GuestResponse::new(StatusCode::MOVED_PERMANENTLY, wire::HTML, body)).with_header(header::LOCATION, location)
}
