//! The metadata dialects imds speaks, as pure functions.
//!
//! A dialect turns `(&Subject, &GuestRequest, &Context)` into a [`GuestResponse`] value: the
//! exact status, headers and body bytes the real cloud would send. It never fetches, awaits or
//! opens a socket: whatever it needs (the record, its MMDS document and guest-owned state, the
//! session-token key, the clock) comes in as an argument. The server identifies the caller,
//! picks the instance from its in-memory view, calls [`route`], and writes the bytes.
//!
//! A guest that writes (OpenStack's `password`, GCE guest attributes) gets a response carrying a
//! [`GuestWrite`]: the server applies it to the instance's [`GuestState`](imds_model::GuestState) in the store and then
//! sends the response (or the write's conflict response).
//!
//! [`route`] picks the dialect from the path ([`Dialect::for_path`]); a dialect the instance has
//! not enabled answers as if its paths did not exist. Dialects: [`ec2`] (the full EC2 metadata
//! tree, every dated API version, IMDSv2 session tokens), [`mmds`], [`gce`], [`azure`],
//! [`openstack`], [`digitalocean`], [`nocloud`], [`hetzner`], [`alibaba`], [`tencent`],
//! [`linode`], [`vultr`], [`scaleway`], [`upcloud`], [`exoscale`], [`container`], [`oracle`].
//! [`token`]: the session tokens every
//! dialect shares. [`platform`]: the SMBIOS values a VMM presents so cloud-init picks a dialect.
//!
//! The rules the dialects share (routing, and the derivation rules R1–R5 cited by name in this
//! crate: ids, interfaces, identity, EC2's options) are stated in `docs/dialects.md`.

#![forbid(unsafe_code)]

use http::{HeaderName, HeaderValue};
use imds_model::{FieldError, Instance, Invalid};

pub use cache::{Budget, Cache};
pub use context::{Context, Subject};
pub use exchange::{GuestRequest, GuestResponse, GuestWrite};
pub use imds_model::{Dialect, DialectSettings as Settings};
pub use refusal::Refusal;

pub mod alibaba;
pub mod azure;
mod cache;
pub mod container;
mod context;
pub mod credentials;
mod derive;
pub mod digitalocean;
pub mod ec2;
mod exchange;
pub mod exoscale;
pub mod gce;
pub mod hetzner;
pub mod ids;
pub mod linode;
pub mod mmds;
pub mod nocloud;
pub mod openstack;
pub mod oracle;
pub mod platform;
mod query;
pub mod refusal;
pub mod scaleway;
pub mod sensitive;
pub mod tencent;
mod text_tree;
pub mod token;
pub mod upcloud;
pub mod vultr;
pub mod yaml;

/// Answers a request from a known instance with the dialect its path belongs to, or the
/// dialect its listener is bound to ([`GuestRequest::bound`]).
///
/// An instance whose MMDS is configured (and enabled) answers every path from it, as a
/// Firecracker guest expects. Otherwise the path picks the dialect; paths no dialect claims are
/// EC2's (the listener's root is EC2's, and EC2 is what an unknown client most likely speaks).
/// A dialect the instance has not enabled answers with EC2's not-found page, as if its paths
/// did not exist. An instance whose endpoint is switched off (`imds.endpoint: disabled`) gets
/// every dialect's own refusal ([`refusal`]), whatever it asks.
pub fn route(subject: &Subject<'_>, request: &GuestRequest, context: &Context<'_>) -> GuestResponse {
    route_as(dialect_of(Some(subject), request, context.settings), subject, request, context)
}

/// [`route`], for a caller that has already asked [`dialect_of`] (the server names the
/// dialect for its metrics before it renders): `dialect` must be what it answered.
pub fn route_as(
    dialect: Dialect,
    subject: &Subject<'_>,
    request: &GuestRequest,
    context: &Context<'_>,
) -> GuestResponse {
    let dialects = &subject.instance.dialects;
    if dialect != Dialect::Mmds && !dialects.is_enabled(dialect) {
        return match request.bound {
            // A listener bound to a dialect speaks nothing else, even to say "not here".
            Some(_) => refusal::refuse(dialect, request, Refusal::NotServed),
            None => ec2_shaped(ec2::not_found()),
        };
    }
    if subject.instance.imds.endpoint == imds_model::EndpointMode::Disabled {
        return refusal::refuse(dialect, request, Refusal::Disabled);
    }
    match dialect {
        Dialect::Mmds => mmds::respond(subject, request, context),
        Dialect::Ec2 if request.path == "/" && gce_ping(request) => {
            // google-auth's GCE detection: 200 plus the flavor header (docs/dialects.md, "The root is shared").
            ec2_shaped(ec2::respond(subject, request, context)).with_header(
                HeaderName::from_static(gce::wire::FLAVOR_HEADER),
                HeaderValue::from_static(gce::wire::FLAVOR),
            )
        }
        Dialect::Ec2 => ec2_shaped(ec2::respond(subject, request, context)),
        Dialect::Gce => gce::respond(subject, request, context),
        Dialect::Azure => azure::respond(subject, request, context),
        Dialect::OpenStack => openstack::respond(subject, request, context),
        Dialect::DigitalOcean => digitalocean::respond(subject, request, context),
        Dialect::NoCloud => nocloud::respond(subject, request, context),
        Dialect::Hetzner => hetzner::respond(subject, request, context),
        Dialect::Alibaba => alibaba::respond(subject, request, context),
        Dialect::Tencent => tencent::respond(subject, request, context),
        Dialect::Linode => linode::respond(subject, request, context),
        Dialect::Vultr => vultr::respond(subject, request, context),
        Dialect::Scaleway => scaleway::respond(subject, request, context),
        Dialect::UpCloud => upcloud::respond(subject, request, context),
        // Exoscale's listener of its own is its password server (port 8080); its metadata
        // tree is on the shared listener.
        Dialect::Exoscale if request.bound == Some(Dialect::Exoscale) => {
            exoscale::password_server(subject, request, context)
        }
        Dialect::Exoscale => exoscale::respond(subject, request, context),
        Dialect::Container => container::respond(subject, request, context),
        Dialect::Oracle => oracle::respond(subject, request, context),
    }
}

/// The dialect that answers `request`: the dialect of the listener it arrived on when that
/// listener is bound to one ([`GuestRequest::bound`]), else MMDS for an instance whose MMDS is
/// configured and enabled, else the dialect its path belongs to for this instance
/// ([`Dialects::for_path`]: a path several dialects serve goes to the first the instance
/// enables). `subject` is `None` for a caller no instance is registered for (the path's
/// default dialect, [`Dialect::for_path`]).
///
/// [`Dialects::for_path`]: imds_model::Dialects::for_path
pub fn dialect_of(subject: Option<&Subject<'_>>, request: &GuestRequest, settings: &Settings) -> Dialect {
    if let Some(bound) = request.bound {
        return bound;
    }
    match subject {
        Some(subject) if subject.mmds.is_some() && subject.instance.dialects.is_enabled(Dialect::Mmds) => Dialect::Mmds,
        Some(subject) => subject.instance.dialects.for_path(&request.path, settings),
        None => Dialect::for_path(&request.path, settings),
    }
}

/// Checks the record's per-dialect override blocks against what each dialect reads, reporting
/// every problem at once with its field path (e.g. `dialects.azure.vmSize`). The admin API calls
/// it after [`Instance::parse`]; a dialect that defines no check accepts any object.
pub fn check_overrides(instance: &Instance) -> Result<(), Invalid> {
    let mut errors = Vec::new();
    for (dialect, block) in &instance.dialects.overrides {
        let problems = match (Dialect::from_name(dialect), block) {
            (Some(Dialect::Azure), _) => azure::check_overrides(block),
            (Some(Dialect::Ec2), _) => ec2::check_overrides(block),
            (Some(Dialect::Alibaba), _) => alibaba::check_overrides(block),
            (Some(Dialect::Tencent), _) => tencent::check_overrides(block),
            (Some(Dialect::Exoscale), _) => exoscale::check_overrides(block),
            (Some(Dialect::Oracle), _) => oracle::check_overrides(block),
            (Some(Dialect::Gce), _) => gce::check_overrides(block),
            (Some(Dialect::OpenStack), serde_json::Value::Object(block)) => openstack::check_overrides(block),
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
    request.headers.get(&gce::wire::FLAVOR_NAME).is_some_and(|value| value == gce::wire::FLAVOR)
}

/// The long poll a request asks for, if its dialect supports one (GCE's `wait_for_change`).
///
/// The server renders the request with [`route`]; when the answer is a 200 whose `ETag` equals
/// [`Wait::last_etag`](gce::Wait::last_etag) (or, without one, in any case) it holds the request
/// and renders it again on every change of the instance, until the `ETag` differs or the
/// timeout passes.
pub fn wait_request(request: &GuestRequest, settings: &Settings) -> Option<gce::Wait> {
    // A long poll is asked for in the query: most requests have none.
    request.query.as_ref()?;
    match dialect_of(None, request, settings) {
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
