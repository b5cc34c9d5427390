//! The guest plane: what VMs reach at `169.254.169.254`.
//!
//! For every request: identify the caller by its source address ([`identify`]), pick its
//! instance from the current view snapshot, hand `(&Subject, &GuestRequest, &Context)` to the
//! dialect router in `imds-dialects`, apply the response's hop limit to the connection's socket,
//! write the bytes. Reads touch no store and await nothing (long polls excepted: see below); the
//! only lock they take is short: a record version's render cache, to copy or insert one answer.
//! An unknown caller gets no instance's data. The session-token key is loaded from the store at
//! start ([`token_key`]).
//!
//! One exception is a guest write (OpenStack's `password`, GCE guest attributes): the
//! dialect's response carries a [`GuestWrite`](imds_dialects::GuestWrite), which [`write`](mod@write)
//! applies to the instance's guest state in the store before the response goes out. The other
//! is a long poll (GCE's `wait_for_change`): [`wait`] holds the request until the instance's
//! rendered answer changes, woken by the view's per-instance change signals.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::Method;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;

use imds_dialects::token::TokenKey;
use imds_dialects::{Context, GuestRequest, GuestResponse, Settings, Subject};
use imds_model::InstanceId;
use imds_store::Store;

use crate::listener::{Arrival, ConnSocket};
use crate::throttle::Throttle;
use crate::view::{Snapshot, View};

pub mod hold;
pub mod identify;
/// The per-instance request budget (kept in the view with each instance).
pub use crate::throttle;
pub mod token_key;
pub mod wait;
pub mod wireserver;
pub mod write;

/// The largest request body a guest may send (guest writes are small: a password, an
/// attribute). Larger bodies get `413`.
pub const MAX_BODY: usize = 64 * 1024;

/// The guest plane's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Addresses to listen on (production: `169.254.169.254:80`).
    pub listen: Vec<SocketAddr>,
    /// Each instance's request budget.
    pub throttle: Throttle,
    /// Deployment-wide dialect settings.
    pub dialects: Settings,
    /// Bytes of renderings (EC2 trees, GCE and Azure answers) kept over all instances.
    pub render_cache_bytes: usize,
    /// Listeners bound to one dialect each (`[guest.dialect_listen]`): a request arriving on one
    /// is answered by that dialect whatever its path (Alibaba's `100.100.100.200:80`). Callers
    /// are identified as on [`Config::listen`].
    pub dialect_listen: Vec<(imds_dialects::Dialect, SocketAddr)>,
    /// Addresses Azure's WireServer is emulated on (`168.63.129.16:80` on an Azure host, see
    /// [`wireserver`]); empty, the default, for none.
    pub azure_wireserver_listen: Vec<SocketAddr>,
    /// How long a request from an address no instance holds waits for its record to appear
    /// (zero: refused at once).
    pub unknown_hold: std::time::Duration,
    /// How many such requests are held at once, over all sources.
    pub max_held: usize,
    /// How long a guest write waits for the view to contain it before answering (the admin
    /// plane's `write_visibility_timeout`).
    pub write_visibility_timeout: std::time::Duration,
    /// Trusted proxies and neighbour-table lookups.
    pub identify: identify::Config,
    /// The part of the store this node's view follows (the server's `--node`): a guest write
    /// waits for the view only when it lands there.
    pub scope: imds_store::Scope,
}

impl Default for Config {
    /// `169.254.169.254:80`, where every cloud image looks; the default throttle and dialect
    /// settings.
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([169, 254, 169, 254], 80))],
            throttle: Throttle::default(),
            dialects: Settings::default(),
            render_cache_bytes: crate::view::DEFAULT_RENDER_BYTES,
            dialect_listen: Vec::new(),
            azure_wireserver_listen: Vec::new(),
            unknown_hold: hold::DEFAULT_HOLD,
            max_held: hold::DEFAULT_MAX_HELD,
            write_visibility_timeout: crate::admin::Config::default().write_visibility_timeout,
            identify: identify::Config::default(),
            scope: imds_store::Scope::All,
        }
    }
}

/// The guest router: every path is answered from the current view snapshot; session tokens
/// are minted and checked with `tokens`; guest writes go to `store`. No role has credentials
/// (see [`router_with_credentials`]).
pub fn router(view: View, store: Arc<dyn Store>, tokens: TokenKey, config: &Config) -> Guests {
    let manager = imds_creds::Manager::new(Arc::new(imds_creds::Sources::default()), imds_creds::Clock::system());
    router_with_credentials(view, store, tokens, crate::creds::Credentials(Arc::new(manager)), config)
}

/// [`router`], with roles' credentials served from `credentials`.
pub fn router_with_credentials(
    view: View,
    store: Arc<dyn Store>,
    tokens: TokenKey,
    credentials: crate::creds::Credentials,
    config: &Config,
) -> Guests {
    routers(view, store, tokens, credentials, config).metadata
}

/// What answers the guest-facing listeners. They share one plane: one identification, one
/// registration hold and one throttle budget per instance across both.
#[derive(Debug)]
pub struct Routers {
    /// The metadata service's (every dialect).
    pub metadata: Guests,
    /// Azure's WireServer's ([`wireserver`]).
    pub wireserver: Guests,
}

/// One guest listener's answers ([`listener::Answer`](crate::listener::Answer)): every request
/// goes straight to the plane, with no router in between (the path is the dialect's to read).
#[derive(Debug, Clone)]
pub struct Guests {
    plane: Arc<Plane>,
    serves: Serves,
}

/// What a guest listener serves.
#[derive(Debug, Clone, Copy)]
enum Serves {
    /// The metadata service, every dialect or only the one it is bound to.
    Metadata(Option<imds_dialects::Dialect>),
    /// Azure's WireServer.
    WireServer,
}

impl Guests {
    /// The same plane, for a listener bound to `dialect`: every request it serves is that
    /// dialect's ([`GuestRequest::bound`]).
    pub fn bound_to(&self, dialect: imds_dialects::Dialect) -> Self {
        Self { plane: Arc::clone(&self.plane), serves: Serves::Metadata(Some(dialect)) }
    }
}

/// A guest request as it arrives.
type Request = http::Request<hyper::body::Incoming>;
/// A guest response: the bytes rendered, whole.
type Response = http::Response<Full<Bytes>>;

impl crate::listener::Answer for Guests {
    type Body = Full<Bytes>;

    fn answer(
        &self,
        request: Request,
        arrival: &Arrival,
    ) -> impl std::future::Future<Output = Response> + Send + use<> {
        let (plane, serves, arrival) = (Arc::clone(&self.plane), self.serves, arrival.clone());
        // Boxed: the answer's state (a few KiB) is written once, in place, and what hyper
        // moves around is a pointer.
        Box::pin(async move {
            match serves {
                Serves::Metadata(bound) => answer(&plane, request, arrival, bound).await,
                Serves::WireServer => wireserver::answer(&plane, request, arrival).await,
            }
        })
    }
}

/// The metadata and WireServer routers over one plane (see [`router_with_credentials`]).
pub fn routers(
    view: View,
    store: Arc<dyn Store>,
    tokens: TokenKey,
    credentials: crate::creds::Credentials,
    config: &Config,
) -> Routers {
    routers_observed(view, store, tokens, credentials, config, Observe::default())
}

/// Where the guest plane reports what it answered: the metrics' counters and, when on, the
/// audit log (sensitive reads only).
#[derive(Debug, Clone, Default)]
pub struct Observe {
    /// The counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The audit log, if on.
    pub audit: Option<crate::audit::Log>,
}

/// [`routers`], reporting to `observe`.
pub fn routers_observed(
    view: View,
    store: Arc<dyn Store>,
    tokens: TokenKey,
    credentials: crate::creds::Credentials,
    config: &Config,
    observe: Observe,
) -> Routers {
    let neighbours = if config.identify.neighbours {
        match imds_net::link::connect() {
            Ok(handle) => Some(imds_net::neigh::Neighbours::new(handle)),
            Err(error) => {
                tracing::error!(%error, "cannot read the neighbour table: instances known by MAC only will not be found");
                None
            }
        }
    } else {
        None
    };
    let plane = Arc::new(Plane {
        identify: config.identify.clone(),
        neighbours,
        view,
        store,
        tokens,
        credentials,
        throttle: config.throttle,
        settings: config.dialects.clone(),
        write_visibility_timeout: config.write_visibility_timeout,
        scope: config.scope.clone(),
        clock: tokio::time::Instant::now(),
        hold: config.unknown_hold,
        max_held: config.max_held,
        held: hold::Held::default(),
        observe,
    });
    Routers {
        metadata: Guests { plane: Arc::clone(&plane), serves: Serves::Metadata(None) },
        wireserver: Guests { plane, serves: Serves::WireServer },
    }
}

/// What every guest request reads.
#[derive(Debug)]
struct Plane {
    identify: identify::Config,
    neighbours: Option<imds_net::neigh::Neighbours>,
    view: View,
    store: Arc<dyn Store>,
    tokens: TokenKey,
    credentials: crate::creds::Credentials,
    throttle: Throttle,
    settings: Settings,
    write_visibility_timeout: std::time::Duration,
    /// [`Config::scope`].
    scope: imds_store::Scope,
    /// The origin of the throttle's monotonic clock.
    clock: tokio::time::Instant,
    /// How long an unknown caller is held ([`Config::unknown_hold`]).
    hold: std::time::Duration,
    /// [`Config::max_held`].
    max_held: usize,
    /// The requests held now.
    held: hold::Held,
    /// Metrics and the audit log.
    observe: Observe,
}

fn nanos_between(origin: tokio::time::Instant, now: tokio::time::Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// What [`admit`] and [`respond`] learnt about a request, for the metrics and the audit log.
#[derive(Debug)]
pub(super) struct Note {
    /// When the request arrived (one clock read serves the latency and the throttle).
    started: tokio::time::Instant,
    dialect: imds_dialects::Dialect,
    outcome: crate::metrics::Outcome,
    read: Option<imds_dialects::sensitive::Read>,
    token: Option<bool>,
    long_poll: bool,
    /// The instance, for an audited read.
    instance: Option<InstanceId>,
    /// The address the caller is known by, when a trusted proxy named it.
    caller: Option<IpAddr>,
    /// The method and path of a sensitive read, when the audit log is on.
    audited: Option<(Method, String)>,
}

impl Note {
    /// A request to `path`, before anything is known of its caller.
    pub(super) fn new(path: &str, settings: &Settings) -> Self {
        Self {
            started: tokio::time::Instant::now(),
            dialect: imds_dialects::Dialect::for_path(path, settings),
            outcome: crate::metrics::Outcome::Served,
            read: None,
            token: None,
            long_poll: false,
            instance: None,
            caller: None,
            audited: None,
        }
    }

    /// Classifies `request` as answered by `self.dialect`.
    fn classify(&mut self, plane: &Plane, request: &GuestRequest) {
        self.read = imds_dialects::sensitive::read_of(self.dialect, request, &plane.settings);
        if self.read.is_some() && plane.observe.audit.is_some() {
            self.audited = Some((request.method.clone(), request.path.clone()));
        }
    }
}

/// Answers one guest request, then counts it (and audits a sensitive read).
async fn answer(plane: &Plane, request: Request, arrival: Arrival, bound: Option<imds_dialects::Dialect>) -> Response {
    let source = identify::caller_ip(&arrival.peer);
    let mut note = Note::new(request.uri().path(), &plane.settings);
    let response = respond(plane, request, arrival, bound, &mut note).await;
    let status = response.status();
    plane.observe.metrics.guest(&crate::metrics::GuestRequest {
        dialect: note.dialect,
        status,
        outcome: note.outcome,
        read: note.read,
        token: note.token,
        elapsed: (!note.long_poll).then(|| note.started.elapsed()),
    });
    if let (Some(log), Some(read), Some((method, path)), Some(source)) =
        (&plane.observe.audit, note.read, note.audited, source)
    {
        log.record(crate::audit::Event {
            at_millis: log.now_millis(),
            plane: "guest",
            kind: Some(read.name()),
            instance: note.instance.map(|id| id.as_str().to_owned()),
            source: crate::audit::Source::Ip(source),
            caller: note.caller.filter(|caller| *caller != source),
            dialect: Some(note.dialect.name()),
            method,
            path,
            status: status.as_u16(),
        });
    }
    response
}

/// A request read whole, its caller identified (after the registration hold, when unknown)
/// and charged to its instance's request budget.
struct Admitted {
    request: GuestRequest,
    is_head: bool,
    socket: Option<ConnSocket>,
    snapshot: Arc<Snapshot>,
    entry: Arc<crate::view::Entry>,
    /// The address the caller is known by (the forwarded one behind a trusted proxy).
    caller: IpAddr,
}

/// How a request that is not admitted is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusals {
    /// In the shape of the dialect the path belongs to.
    Dialect,
    /// With a bare status (`403` unknown, `429` throttled), as Azure's WireServer does.
    Status,
}

/// Reads `request` and identifies its caller, or the answer it gets instead.
async fn admit(
    plane: &Plane,
    request: Request,
    arrival: Arrival,
    bound: Option<imds_dialects::Dialect>,
    refusals: Refusals,
    note: &mut Note,
) -> Result<Admitted, Response> {
    let Arrival { peer, socket } = arrival;
    let (Some(remote), crate::listener::Peer::Tcp { remote: remote_address, .. }) = (identify::caller_ip(&peer), peer)
    else {
        // Guests only ever arrive over TCP; a request without a peer address is a wiring bug.
        tracing::error!("guest request without a TCP peer address");
        return Err(bare(http::StatusCode::INTERNAL_SERVER_ERROR));
    };
    let is_head = request.method() == Method::HEAD;
    let (parts, body) = request.into_parts();
    // Only writes carry a body; a GET's is never read (and never waited for).
    let body = if parts.method == Method::GET || parts.method == Method::HEAD {
        bytes::Bytes::new()
    } else {
        match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(bare(http::StatusCode::PAYLOAD_TOO_LARGE)),
        }
    };
    let mut request = GuestRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        bound,
        source_port: None,
    };
    // `Note::new` named the path's dialect; a bound listener's is its own.
    if let Some(bound) = bound {
        note.dialect = bound;
    }
    let identify = |snapshot: Arc<Snapshot>| {
        let headers = &request.headers;
        async move {
            let caller =
                identify::identify(&plane.identify, plane.neighbours.as_ref(), &snapshot, remote, headers).await;
            (snapshot, caller)
        }
    };
    let (mut snapshot, mut identified) = identify(plane.view.load()).await;
    // The throttle charges the request when it arrived, or when a hold ends.
    let mut charged_at = note.started;
    if let identify::Caller::Unknown(address) = identified {
        // The guest may ask before its orchestrator's write lands: hold it briefly.
        (snapshot, identified) = identify(hold::until_known(plane, address, snapshot).await).await;
        charged_at = tokio::time::Instant::now();
    }
    let (entry, caller) = match identified {
        identify::Caller::Instance { entry, address } => (entry, address),
        identify::Caller::Refused(response) => {
            note.outcome = crate::metrics::Outcome::Unknown;
            return Err(into_http(response, is_head));
        }
        identify::Caller::Unknown(address) => {
            note.outcome = crate::metrics::Outcome::Unknown;
            note.classify(plane, &request);
            note.caller = Some(address);
            tracing::debug!(caller = %address, path = %request.path, "guest request from an unknown address");
            return Err(match refusals {
                Refusals::Dialect => {
                    into_http(imds_dialects::unknown_caller(address, &request, &plane.settings), is_head)
                }
                Refusals::Status => bare(http::StatusCode::FORBIDDEN),
            });
        }
    };
    // A port is the guest's only on its own connection, never on a trusted proxy's.
    if !plane.identify.proxies.contains(&remote) {
        request.source_port = Some(remote_address.port());
    }
    note.dialect = imds_dialects::dialect_of(Some(&subject(&snapshot, &entry)), &request, &plane.settings);
    note.classify(plane, &request);
    note.token = imds_dialects::sensitive::carries_token(note.dialect, &request);
    if note.audited.is_some() {
        note.instance = Some(entry.instance.id.clone());
    }
    note.caller = Some(caller);
    if plane.observe.metrics.per_instance() {
        entry.throttle.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if !entry.throttle.try_take(plane.throttle, nanos_between(plane.clock, charged_at)) {
        note.outcome = crate::metrics::Outcome::Throttled;
        tracing::debug!(%caller, id = %entry.instance.id, "throttled");
        let refusal = match refusals {
            Refusals::Dialect => {
                let response = imds_dialects::throttled(&subject(&snapshot, &entry), &request, &plane.settings);
                into_http(response, is_head)
            }
            Refusals::Status => bare(http::StatusCode::TOO_MANY_REQUESTS),
        };
        // Not holding the snapshot while waiting: the view moves on meanwhile.
        drop((snapshot, entry));
        tokio::time::sleep(Throttle::next_refusal_delay()).await;
        return Err(refusal);
    }
    Ok(Admitted { request, is_head, socket, snapshot, entry, caller })
}

/// Answers one guest request from the current snapshot.
async fn respond(
    plane: &Plane,
    request: Request,
    arrival: Arrival,
    bound: Option<imds_dialects::Dialect>,
    note: &mut Note,
) -> Response {
    let Admitted { request: guest_request, is_head, socket, snapshot, entry, caller } =
        match admit(plane, request, arrival, bound, Refusals::Dialect, note).await {
            Ok(admitted) => admitted,
            Err(response) => return response,
        };
    let id = entry.instance.id.clone();
    let mut response = match imds_dialects::wait_request(&guest_request, &plane.settings) {
        Some(wait_for) => {
            note.long_poll = true;
            drop(snapshot);
            wait::hold(plane, caller, &id, &guest_request, wait_for).await
        }
        None => {
            let response = render(plane, &snapshot, &entry, &guest_request);
            drop(snapshot);
            response
        }
    };
    if let Some(guest_write) = response.write.take() {
        response = write::apply(
            &plane.store,
            &plane.view,
            &plane.scope,
            plane.write_visibility_timeout,
            &id,
            *guest_write,
            response,
        )
        .await;
    } else if !response.start_events.is_empty() {
        let ids = std::mem::take(&mut response.start_events);
        let now = plane.credentials.0.clock().now();
        response = match crate::events::start(&plane.store, plane.view.writers(), &id, &ids, now).await {
            Ok(Some(rev)) => {
                plane.view.wait_visible(rev, plane.write_visibility_timeout).await;
                response
            }
            Ok(None) => response,
            Err(error) => {
                tracing::warn!(%id, %error, "cannot start the guest's events");
                GuestResponse::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "the metadata store is unavailable; try again\n",
                )
            }
        };
    }
    // The response is written after this returns, so the socket's TTL applies to it.
    if let Some(socket) = socket {
        if let Err(error) = socket.set_hop_limit(response.hop_limit) {
            tracing::warn!(%caller, %error, "cannot set the response's hop limit");
        }
    }
    into_http(response, is_head)
}

/// Renders `request` from `snapshot` for instance `id`, identified as `caller` (refused as
/// unknown when the snapshot no longer holds it).
fn render_for(
    plane: &Plane,
    snapshot: &Snapshot,
    caller: IpAddr,
    id: &InstanceId,
    request: &GuestRequest,
) -> GuestResponse {
    match snapshot.get(id) {
        Some(entry) => render(plane, snapshot, entry, request),
        None => imds_dialects::unknown_caller(caller, request, &plane.settings),
    }
}

/// Renders `request` from `snapshot` for `entry`, the caller's instance in it.
fn render(plane: &Plane, snapshot: &Snapshot, entry: &crate::view::Entry, request: &GuestRequest) -> GuestResponse {
    let signer = snapshot.signer().map(|signer| &**signer as &dyn imds_dialects::credentials::Signer);
    let context = Context {
        tokens: &plane.tokens,
        // The credential refresher's clock: one wall clock for the whole daemon.
        now: plane.credentials.0.clock().now(),
        settings: &plane.settings,
        credentials: &plane.credentials,
        signer,
        // Only a PUT mints a session token; other requests need no randomness.
        nonce: if request.method == Method::PUT { random_nonce() } else { 0 },
    };
    let subject = subject(snapshot, entry);
    imds_dialects::route(&subject, request, &context)
}

/// A random number from the operating system (the clock's nanoseconds if that fails, which
/// only makes two tokens minted in the same nanosecond alike).
fn random_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    }
}

/// What the dialects render from for `entry`.
fn subject<'a>(snapshot: &'a Snapshot, entry: &'a crate::view::Entry) -> Subject<'a> {
    let id = &entry.instance.id;
    Subject {
        instance: &entry.instance,
        mmds: snapshot.mmds(id).map(|mmds| &**mmds),
        state: snapshot.state(id).map_or_else(|| Subject::new(&entry.instance).state, |state| &**state),
        events: snapshot.events(id).map(|events| &events.list),
        container_tokens: snapshot.container_tokens(id).map(|tokens| &**tokens),
        // Filled by the dialects on the first requests that need a rendering, and kept with this
        // version of the record: an instance keeps only what its guests asked for.
        cache: Some(&entry.cache),
    }
}

fn into_http(response: GuestResponse, is_head: bool) -> Response {
    let mut headers = http::HeaderMap::with_capacity(response.headers.len() + 1);
    for (name, value) in response.headers {
        headers.append(name, value);
    }
    // Always a Content-Length: clients read whole bodies.
    headers.insert(CONTENT_LENGTH, http::HeaderValue::from(response.body.len()));
    let body = if is_head { Full::default() } else { Full::new(response.body) };
    let mut http = Response::new(body);
    *http.status_mut() = response.status;
    *http.headers_mut() = headers;
    http
}

/// A response with `status` and no body.
fn bare(status: http::StatusCode) -> Response {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}
