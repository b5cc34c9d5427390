//! The AWS EC2 instance metadata dialect (IMDS), as a pure renderer.
//!
//! [`respond`] turns an instance record and a guest request into the bytes EC2 would send. It
//! builds the instance's path tree (module `tree`), each entry tagged with the API version that
//! introduced it, and answers from it: `/` lists the API versions, `/<version>/` (every listed
//! date, `1.0` and `latest`) serves the tree filtered to that version, and unknown versions are
//! 404. No I/O, no clock, no randomness: ids EC2 has and the record lacks are derived
//! deterministically (module `derived`).
//!
//! Served: `meta-data/` (module `meta_data`, per-interface `network/` in `network`), `user-data`
//! (raw bytes, `application/octet-stream`; 404 and unlisted when absent), `dynamic/fws/` and
//! `dynamic/instance-identity/document` (module `identity`), IMDSv2 session tokens and the
//! token gate (module `session`), role credentials, instance-identity credentials and the
//! identity document's signatures (module `credentials`, from [`Context::credentials`] and
//! [`Context::signer`]), and what the instance's runtime events show at [`Context::now`]
//! (module `events`: spot notices, rebalance, scheduled maintenance, Auto Scaling lifecycle;
//! `dialects.ec2` overrides still win over them).
//!
//! Wire rules: listings are `text/plain`, one entry per line with no trailing newline,
//! sub-directories end in `/`, the version level lists `dynamic`, `meta-data`, `user-data` bare,
//! and `public-keys/` lists `N=name`. Leaves answer with or without a trailing slash, directories
//! with or without one. Every listing is built from the same visibility rule lookups use, so it is
//! closed under crawling. Errors are EC2's exact 404 page; methods other than `GET` and `HEAD` get
//! 405 with `Allow: GET, HEAD` (`HEAD` answers like `GET`; the server drops the body).
//!
//! # Overrides
//!
//! `dialects.ec2` in the record is an object whose keys are paths relative to `meta-data/`
//! (segments separated by `/`, no leading or trailing slash) and whose values are:
//! - a string: the leaf at that path serves it verbatim (replacing a leaf or a whole directory,
//!   or creating the leaf and any missing directories — created entries exist at every version);
//! - `null`: whatever is at that path is removed (404 and unlisted).
//!
//! The admin API refuses other values and keys with empty segments ([`check_overrides`], with
//! the field path, e.g. `dialects.ec2.spot/instance-action`): EC2 serves text, so a JSON
//! document such as `spot/instance-action` is written as its JSON text. Paths that run through
//! a leaf are ignored. For example `{"instance-life-cycle": "spot", "placement/availability-zone-id": "use1-az1",
//! "public-keys": null}`. The identity document reads `meta-data` after overrides, so it agrees
//! with what `meta-data/` serves.

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use imds_model::{EndpointMode, Instance};

use crate::{Context, GuestRequest, GuestResponse, Subject};

mod credentials;
pub(crate) mod derived;
mod events;
mod identity;
pub(crate) mod meta_data;
mod network;
mod session;
mod tree;
pub mod wire;

use tree::{Entry, Node};

/// The instance's rendered tree: everything under `/<version>/` that depends on the record
/// alone, and the identity document its signatures sign. Build it once per record version
/// (kept in the [`crate::Cache`] that [`respond`] finds in the [`Subject`]) and answer many
/// requests from it; credentials, signatures and other time-dependent leaves are computed per
/// request.
#[derive(Debug, Clone)]
pub struct Tree {
    root: Entry,
    document: String,
}

impl Tree {
    /// Renders `instance`'s tree, overrides applied.
    pub fn build(instance: &Instance) -> Self {
        Self::build_with(instance, &[])
    }

    /// Renders `instance`'s tree with the event leaves `leaves` (`(path under meta-data/,
    /// body)`) set before the overrides are applied.
    fn build_with(instance: &Instance, leaves: &[(&str, String)]) -> Self {
        let (root, document) = version_dir(instance, leaves);
        Self { root, document }
    }

    /// About how many bytes of memory the tree holds (what a [`crate::Cache`] charges for it).
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.root.heap_size() + self.document.capacity()
    }
}

/// Checks a `dialects.ec2` block: an object of `meta-data/` paths to strings or `null`.
/// Returns `(field, message)` for each problem, `field` relative to `dialects.ec2`.
pub fn check_overrides(block: &serde_json::Value) -> Vec<(String, String)> {
    let Some(map) = block.as_object() else {
        return vec![(String::new(), "must be an object of meta-data paths to strings or null".to_owned())];
    };
    map.iter()
        .filter_map(|(key, value)| {
            if key.split('/').any(str::is_empty) {
                return Some((key.clone(), "path segments must not be empty (no leading, trailing or double `/`)".into()));
            }
            match value {
                serde_json::Value::String(_) | serde_json::Value::Null => None,
                _ => Some((
                    key.clone(),
                    "must be a string (the text EC2 serves; write a JSON document as its JSON text) or null (removes the path)"
                        .into(),
                )),
            }
        })
        .collect()
}

/// Answers one EC2 request for the subject's instance (a `&Subject`, or a bare `&Instance`),
/// taking its tree from the subject's cache (built by the first request that needs the tree and
/// kept while the cache's budget allows; rendered for this request alone without a cache).
pub fn respond<'s>(subject: impl Into<Subject<'s>>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let subject = subject.into();
    let instance = subject.instance;
    if instance.imds.endpoint == EndpointMode::Disabled {
        return session::error(StatusCode::FORBIDDEN, "403 - Forbidden");
    }
    // AWS serves `//latest//meta-data/` as `/latest/meta-data/`: repeated slashes collapse (the
    // JavaScript SDK joins its endpoint's `/` and the path into `//latest/…`).
    let path = collapse_slashes(&request.path);
    let path = path.trim_end_matches('/');
    let split = path.strip_prefix('/').map(|p| p.split_once('/').unwrap_or((p, "")));
    if let Some((version, wire::TOKEN_PATH)) = split {
        return match tree::filter_key(version) {
            Some(_) => session::token_request(instance, request, context, version),
            None => not_found(),
        };
    }
    if request.method != Method::GET && request.method != Method::HEAD {
        return GuestResponse::new(StatusCode::METHOD_NOT_ALLOWED, wire::TEXT_PLAIN, "")
            .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    let remaining = match session::check(instance, request, context) {
        Ok(remaining) => remaining,
        Err(refusal) => return refusal,
    };
    let mut response = lookup(&subject, path, split, context);
    if response.status == StatusCode::OK {
        // Real 200 metadata responses carry it (recorded traffic); byte ranges are not served.
        response = response.with_header(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    }
    match remaining {
        Some(seconds) => response.with_header(wire::TTL_NAME.clone(), HeaderValue::from(seconds)),
        None => response,
    }
}

/// `path` with every run of `/` replaced by one `/`.
pub(crate) fn collapse_slashes(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains("//") {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    std::borrow::Cow::Owned(collapsed)
}

/// The tree lookup behind the token gate.
fn lookup(subject: &Subject<'_>, path: &str, split: Option<(&str, &str)>, context: &Context<'_>) -> GuestResponse {
    if path.is_empty() {
        return text(versions_listing());
    }
    let Some((version, rest)) = split else {
        return not_found();
    };
    let Some(at) = tree::filter_key(version) else {
        return not_found();
    };
    // `split` yields one empty segment for an empty string: the version directory has none.
    let segments = rest.split('/').filter(|_| !rest.is_empty());
    let instance = subject.instance;
    // What the events show depends on the clock: a tree carrying them is built for this
    // request alone, and the kept tree (the record's) serves while they show nothing.
    let leaves = subject.events.map(|events| events::leaves(events, context.now)).unwrap_or_default();
    let tree = match subject.cache {
        _ if !leaves.is_empty() => std::sync::Arc::new(Tree::build_with(instance, &leaves)),
        Some(cache) => cache.ec2_tree(context.now, || Tree::build(instance)),
        None => std::sync::Arc::new(Tree::build(instance)),
    };
    match tree.root.find(segments, at).map(|entry| &entry.node) {
        Some(Node::Leaf(body, content_type)) => GuestResponse::new(StatusCode::OK, content_type, body.clone()),
        Some(Node::Computed(computed)) => match credentials::compute(*computed, instance, &tree.document, context) {
            Some(body) => text(body),
            None => not_found(),
        },
        Some(Node::Dir(children)) => text(Entry::listing(children, at, context.signer.is_some())),
        Some(Node::Absent) | None => not_found(),
    }
}

/// EC2's 404 response: `text/html` with the exact page real instances send.
pub fn not_found() -> GuestResponse {
    GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT_HTML, wire::NOT_FOUND_PAGE)
}

fn text(body: impl Into<Bytes>) -> GuestResponse {
    GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, body)
}

/// `GET /`: the dated versions, oldest first, then `latest`.
fn versions_listing() -> String {
    let mut versions = wire::VERSIONS.to_vec();
    versions.push(wire::LATEST);
    versions.join("\n")
}

/// The tree under `/<version>/`, overrides applied; filtered by version at lookup time. Also
/// returns the identity document: the exact bytes its signatures sign.
fn version_dir(instance: &Instance, leaves: &[(&str, String)]) -> (Entry, String) {
    let mut meta_data = meta_data::meta_data(instance);
    for (path, body) in leaves {
        meta_data.set_text(path, body);
    }
    if let Some(overrides) = instance.dialects.override_for("ec2") {
        meta_data.apply_overrides(overrides);
    }
    let document = identity::document(instance, &meta_data);
    let dynamic = Entry::dir(
        "dynamic",
        "1.0",
        vec![
            Entry::dir(
                "fws",
                "2009-04-04",
                vec![Entry::text("instance-monitoring", "2009-04-04", Some(wire::MONITORING.to_owned()))],
            ),
            Entry::dir("instance-identity", "2009-04-04", identity_entries(&document)),
        ],
    )
    .labelled("dynamic");
    let user_data = Entry {
        name: "user-data".to_owned(),
        label: None,
        since: "1.0",
        node: instance
            .user_data
            .as_ref()
            .map_or(Node::Absent, |data| Node::Leaf(Bytes::copy_from_slice(data.as_bytes()), wire::OCTET_STREAM)),
    };
    (Entry::dir("", "1.0", vec![dynamic, meta_data, user_data]), document)
}

/// `dynamic/instance-identity/`, in EC2's listing order (`rsa2048`, `pkcs7`, `document`,
/// `signature`); the signatures only with a signer. (`dsa2048` is not served: no DSA key.)
fn identity_entries(document: &str) -> Vec<Entry> {
    // Listed and served only while a signing key is loaded (`Entry::listing`, `compute`).
    let signed = |name: &str, kind| Entry {
        name: name.to_owned(),
        label: None,
        since: "2009-04-04",
        node: Node::Computed(credentials::Computed::Signature(kind)),
    };
    vec![
        signed("rsa2048", credentials::Signature::Pkcs7),
        signed("pkcs7", credentials::Signature::Pkcs7),
        Entry::text("document", "2009-04-04", Some(document.to_owned())),
        signed("signature", credentials::Signature::Raw),
    ]
}

#[cfg(test)]
mod tests;
