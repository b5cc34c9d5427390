//! The metadata dialects imds speaks, as pure functions.
//!
//! A dialect turns `(&Subject, &GuestRequest, &Context)` into a [`GuestResponse`] value: the
//! exact status, headers and body bytes the real cloud would send. It never fetches, awaits or
//! opens a socket: whatever it needs (the record, its MMDS document and guest-owned state, the
//! session-token key, the clock) comes in as an argument. The server identifies the caller,
//! picks the instance from its in-memory view, calls [`route`], and writes the bytes.
//!
//! A guest that writes (OpenStack's `password`, GCE guest attributes) gets a response carrying a
//! [`GuestWrite`]: the server applies it to the instance's [`GuestState`] in the store and then
//! sends the response (or the write's conflict response).
//!
//! [`route`] picks the dialect from the path ([`Dialect::for_path`]); a dialect the instance has
//! not enabled answers as if its paths did not exist. Dialects: [`ec2`] (the full EC2 metadata
//! tree, every dated API version, IMDSv2 session tokens), [`mmds`], [`gce`], [`azure`],
//! [`openstack`], [`digitalocean`], [`nocloud`], [`hetzner`]. [`token`]: the session tokens every
//! dialect shares. [`platform`]: the SMBIOS values a VMM presents so cloud-init picks a dialect.

#![forbid(unsafe_code)]

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use imds_model::{FieldError, GuestState, Instance, Invalid, Mmds, StateWrite};

pub use cache::{Budget, Cache};
pub use refusal::Refusal;

pub mod azure;
mod cache;
pub mod credentials;
mod derive;
pub mod digitalocean;
pub mod ec2;
pub mod gce;
pub mod hetzner;
pub mod ids;
pub mod mmds;
pub mod nocloud;
pub mod openstack;
pub mod platform;
pub mod refusal;
pub mod token;
mod yaml;

/// Deployment-wide dialect settings (from the server's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where NoCloud is served, with leading and trailing `/` (default `/nocloud/`).
    pub nocloud_prefix: Cow<'static, str>,
}

impl Settings {
    /// The defaults.
    pub const DEFAULT: Settings = Settings { nocloud_prefix: Cow::Borrowed("/nocloud/") };
}

impl Default for Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a dialect needs from the world besides the instance and the request.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The deployment's session-token key.
    pub tokens: &'a token::TokenKey,
    /// The current time, Unix seconds.
    pub now: u64,
    /// Deployment-wide dialect settings.
    pub settings: &'a Settings,
    /// The roles' current credentials.
    pub credentials: &'a dyn credentials::RoleCredentials,
    /// The identity signing key, once loaded.
    pub signer: Option<&'a dyn credentials::Signer>,
    /// A random number drawn for this request, for the nonce of a session token it mints
    /// (the server draws one for every `PUT`, the only method that mints).
    pub nonce: u64,
}

impl<'a> Context<'a> {
    /// A context with the default [`Settings`], no roles and no signer.
    pub fn new(tokens: &'a token::TokenKey, now: u64) -> Self {
        Self {
            tokens,
            now,
            settings: &Settings::DEFAULT,
            credentials: &credentials::NoCredentials,
            signer: None,
            nonce: 0,
        }
    }
}

/// Everything a dialect renders from for one instance.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The operator's record.
    pub instance: &'a Instance,
    /// The instance's MMDS configuration and document, once the operator set either.
    pub mmds: Option<&'a Mmds>,
    /// What the instance's guests wrote.
    pub state: &'a GuestState,
    /// What dialects keep of this version of the record between requests, held by whoever
    /// keeps the record (`None`: everything is rendered for each request).
    pub cache: Option<&'a Cache>,
}

impl<'a> Subject<'a> {
    /// An instance with no MMDS and no guest state.
    pub fn new(instance: &'a Instance) -> Self {
        static EMPTY: std::sync::OnceLock<GuestState> = std::sync::OnceLock::new();
        Self { instance, mmds: None, state: EMPTY.get_or_init(GuestState::default), cache: None }
    }
}

/// What a dialect sees of a guest's HTTP request.
#[derive(Debug, Clone)]
pub struct GuestRequest {
    /// The request method.
    pub method: Method,
    /// The raw path, without the query string, exactly as sent (no percent-decoding).
    pub path: String,
    /// The raw query string (after `?`, not decoded), if the request had one.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body (empty for `GET`; the server bounds its size).
    pub body: Bytes,
}

impl GuestRequest {
    /// A request with no headers and no body; `target` is the path with an optional `?query`.
    pub fn new(method: Method, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (target, None),
        };
        Self { method, path: path.to_owned(), query, headers: HeaderMap::new(), body: Bytes::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A guest's write to its instance's [`GuestState`], carried by the response that acknowledges
/// it. The server applies `write` atomically in the store and sends the carrying response; when
/// `write.only_if_absent` finds a value already set it sends `conflict` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestWrite {
    /// The change.
    pub write: StateWrite,
    /// The answer when the value is already set (write-once values).
    pub conflict: GuestResponse,
}

/// What a dialect answers: sent to the guest as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResponse {
    /// The status code.
    pub status: StatusCode,
    /// Headers, `Content-Type` included; `Content-Length` is added by the server.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body bytes.
    pub body: Bytes,
    /// The IP TTL (IPv6 hop limit) the response must leave with; `None` for the system default.
    /// EC2 limits its token replies this way so that they die one hop too far from the VM.
    pub hop_limit: Option<u8>,
    /// A write to apply before this response is sent.
    pub write: Option<Box<GuestWrite>>,
}

impl GuestResponse {
    /// A response with one `Content-Type` header.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body: body.into(),
            hop_limit: None,
            write: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Attaches a guest write the server applies before sending this response.
    pub fn with_write(mut self, write: StateWrite, conflict: GuestResponse) -> Self {
        self.write = Some(Box::new(GuestWrite { write, conflict }));
        self
    }

    /// The first value of header `name`, if the response has it.
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// The dialects a guest path can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// AWS EC2 IMDS: `/`, `/latest/…`, dated versions; also every path no other dialect claims.
    Ec2,
    /// Firecracker MMDS: every path, for an instance whose MMDS is configured.
    Mmds,
    /// GCE: `/computeMetadata/…`.
    Gce,
    /// Azure: `/metadata/{instance,identity,attested,scheduledevents,versions,…}`.
    Azure,
    /// OpenStack: `/openstack…`.
    OpenStack,
    /// DigitalOcean: `/metadata/v1`, `/metadata/v1.json`, `/metadata/v1/…`.
    DigitalOcean,
    /// NoCloud over HTTP: under [`Settings::nocloud_prefix`].
    NoCloud,
    /// Hetzner: `/hetzner/v1/…`.
    Hetzner,
}

/// Azure's top-level categories under `/metadata/`.
const AZURE_CATEGORIES: &[&str] =
    &["instance", "identity", "attested", "scheduledevents", "versions", "loadbalancer", "reprovisiondata"];

impl Dialect {
    /// The name used in `dialects.enabled` and override blocks.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Ec2 => "ec2",
            Dialect::Mmds => "mmds",
            Dialect::Gce => "gce",
            Dialect::Azure => "azure",
            Dialect::OpenStack => "openstack",
            Dialect::DigitalOcean => "digitalocean",
            Dialect::NoCloud => "nocloud",
            Dialect::Hetzner => "hetzner",
        }
    }

    /// Every dialect, in declaration order.
    pub const ALL: [Dialect; 8] = [
        Dialect::Ec2,
        Dialect::Mmds,
        Dialect::Gce,
        Dialect::Azure,
        Dialect::OpenStack,
        Dialect::DigitalOcean,
        Dialect::NoCloud,
        Dialect::Hetzner,
    ];

    /// The dialect called `name` (as in `dialects.enabled`), if imds serves it.
    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The dialect a path belongs to (spec: dialects.md §8). MMDS is not chosen by path.
    pub fn for_path(path: &str, settings: &Settings) -> Dialect {
        let nocloud = settings.nocloud_prefix.trim_end_matches('/');
        if path.starts_with("/computeMetadata/") || path == "/computeMetadata" {
            Dialect::Gce
        } else if path == "/metadata/v1" || path == "/metadata/v1.json" || path.starts_with("/metadata/v1/") {
            Dialect::DigitalOcean
        } else if let Some(rest) = path.strip_prefix("/metadata/") {
            let category = rest.split('/').next().unwrap_or("");
            if AZURE_CATEGORIES.contains(&category) {
                Dialect::Azure
            } else {
                Dialect::Ec2
            }
        } else if path == "/openstack" || path.starts_with("/openstack/") {
            Dialect::OpenStack
        } else if path == "/hetzner" || path.starts_with("/hetzner/") {
            Dialect::Hetzner
        } else if !nocloud.is_empty() && (path == nocloud || path.starts_with(&settings.nocloud_prefix[..])) {
            Dialect::NoCloud
        } else {
            Dialect::Ec2
        }
    }
}

/// Answers a request from a known instance with the dialect its path belongs to.
///
/// An instance whose MMDS is configured (and enabled) answers every path from it, as a
/// Firecracker guest expects. Otherwise the path picks the dialect; paths no dialect claims are
/// EC2's (the listener's root is EC2's, and EC2 is what an unknown client most likely speaks).
/// A dialect the instance has not enabled answers with EC2's not-found page, as if its paths
/// did not exist. An instance whose endpoint is switched off (`imds.endpoint: disabled`) gets
/// every dialect's own refusal ([`refusal`]), whatever it asks.
pub fn route(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    let dialects = &subject.instance.dialects;
    let dialect = dialect_of(Some(subject), request, context.settings);
    if dialect != Dialect::Mmds && !dialects.is_enabled(dialect.name()) {
        return ec2_shaped(ec2::not_found());
    }
    if subject.instance.imds.endpoint == imds_model::EndpointMode::Disabled {
        return refusal::refuse(dialect, request, Refusal::Disabled);
    }
    match dialect {
        Dialect::Mmds => mmds::respond(subject, request, context),
        Dialect::Ec2 if request.path == "/" && gce_ping(request) => {
            // google-auth's GCE detection: 200 plus the flavor header (dialects.md §1.2).
            ec2_shaped(ec2::respond(subject.instance, request, context)).with_header(
                HeaderName::from_static(gce::wire::FLAVOR_HEADER),
                HeaderValue::from_static(gce::wire::FLAVOR),
            )
        }
        Dialect::Ec2 => ec2_shaped(ec2::respond_with(subject.instance, subject.cache, request, context)),
        Dialect::Gce => gce::respond(subject, request, context),
        Dialect::Azure => azure::respond(subject, request, context),
        Dialect::OpenStack => openstack::respond(subject, request, context),
        Dialect::DigitalOcean => digitalocean::respond(subject, request, context),
        Dialect::NoCloud => nocloud::respond(subject, request, context),
        Dialect::Hetzner => hetzner::respond(subject, request, context),
    }
}

/// The dialect that answers `request`: MMDS for an instance whose MMDS is configured and
/// enabled, else the dialect its path belongs to ([`Dialect::for_path`]). `subject` is `None`
/// for a caller no instance is registered for.
pub fn dialect_of(subject: Option<&Subject<'_>>, request: &GuestRequest, settings: &Settings) -> Dialect {
    match subject {
        Some(subject) if subject.mmds.is_some() && subject.instance.dialects.is_enabled(Dialect::Mmds.name()) => {
            Dialect::Mmds
        }
        _ => Dialect::for_path(&request.path, settings),
    }
}

/// Checks the record's per-dialect override blocks against what each dialect reads, reporting
/// every problem at once with its field path (e.g. `dialects.azure.vmSize`). The admin API calls
/// it after [`Instance::parse`]; a dialect that defines no check accepts any object.
pub fn check_overrides(instance: &Instance) -> Result<(), Invalid> {
    let mut errors = Vec::new();
    for (dialect, block) in &instance.dialects.overrides {
        let problems = match (dialect.as_str(), block) {
            ("azure", _) => azure::check_overrides(block),
            ("ec2", _) => ec2::check_overrides(block),
            ("gce", _) => gce::overrides::check(block),
            ("openstack", serde_json::Value::Object(block)) => openstack::check_overrides(block),
            _ => Vec::new(),
        };
        errors.extend(problems.into_iter().map(|(field, message)| {
            let path =
                if field.is_empty() { format!("dialects.{dialect}") } else { format!("dialects.{dialect}.{field}") };
            FieldError::new(path, message)
        }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid { errors })
    }
}

/// Whether a request carries `Metadata-Flavor: Google`.
fn gce_ping(request: &GuestRequest) -> bool {
    request.headers.get(gce::wire::FLAVOR_HEADER).is_some_and(|value| value == gce::wire::FLAVOR)
}

/// The long poll a request asks for, if its dialect supports one (GCE's `wait_for_change`).
///
/// The server renders the request with [`route`]; when the answer is a 200 whose `ETag` equals
/// [`Wait::last_etag`](gce::Wait::last_etag) (or, without one, in any case) it holds the request
/// and renders it again on every change of the instance, until the `ETag` differs or the
/// timeout passes.
pub fn wait_request(request: &GuestRequest, settings: &Settings) -> Option<gce::Wait> {
    match Dialect::for_path(&request.path, settings) {
        Dialect::Gce => gce::wait_request(request),
        _ => None,
    }
}

/// Adds EC2's `Server` header: AWS sends `Server: EC2ws` on every metadata answer.
fn ec2_shaped(response: GuestResponse) -> GuestResponse {
    response.with_header(http::header::SERVER, HeaderValue::from_static(ec2::wire::SERVER))
}

/// Answers a request over its instance's request budget: `429 Too Many Requests`, in the shape
/// of the dialect the request speaks ([`refusal`]).
pub fn throttled(subject: &Subject<'_>, request: &GuestRequest, settings: &Settings) -> GuestResponse {
    refusal::refuse(dialect_of(Some(subject), request, settings), request, Refusal::Throttled)
}

/// Answers a request whose source address matches no instance: no instance's data, ever, in
/// the shape of the dialect its path belongs to ([`refusal`]).
pub fn unknown_caller(caller: std::net::IpAddr, request: &GuestRequest, settings: &Settings) -> GuestResponse {
    refusal::refuse(dialect_of(None, request, settings), request, Refusal::UnknownCaller(caller))
}
