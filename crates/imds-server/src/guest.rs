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
use futures::future::Either;
use http::header::CONTENT_LENGTH;
use http::Method;
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::pin::Pin;
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

    fn answer(&self, request: Request, arrival: &Arrival) -> impl Future<Output = Response> + Send + use<> {
        match self.serves {
            Serves::Metadata(bound) => answer(&self.plane, request, arrival, bound),
            Serves::WireServer => {
                let (plane, arrival) = (Arc::clone(&self.plane), arrival.clone());
                let answered: Pin<Box<dyn Future<Output = Response> + Send>> =
                    Box::pin(async move { wireserver::answer(&plane, request, arrival).await });
                Either::Right(answered)
            }
        }
    }
}

/// A guest answer: ready when the request needed no waiting (the common case, with no future
/// state at all), else a boxed future that does the waiting.
type Answered = Either<std::future::Ready<Response>, Pin<Box<dyn Future<Output = Response> + Send>>>;

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
    /// The connection's source address.
    source: Option<IpAddr>,
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
            source: None,
            audited: None,
        }
    }

    /// Counts the request answered with `response` (and audits a sensitive read).
    fn count(self, plane: &Plane, response: Response) -> Response {
        let status = response.status();
        plane.observe.metrics.guest(&crate::metrics::GuestRequest {
            dialect: self.dialect,
            status,
            outcome: self.outcome,
            read: self.read,
            token: self.token,
            elapsed: (!self.long_poll).then(|| self.started.elapsed()),
        });
        if let (Some(log), Some(read), Some((method, path)), Some(source)) =
            (&plane.observe.audit, self.read, self.audited, self.source)
        {
            log.record(crate::audit::Event {
                at_millis: log.now_millis(),
                plane: "guest",
                kind: Some(read.name()),
                instance: self.instance.map(|id| id.as_str().to_owned()),
                source: crate::audit::Source::Ip(source),
                caller: self.caller.filter(|caller| *caller != source),
                dialect: Some(self.dialect.name()),
                method,
                path,
                status: status.as_u16(),
            });
        }
        response
    }

    /// Classifies `request` as answered by `self.dialect`.
    fn classify(&mut self, plane: &Plane, request: &GuestRequest) {
        self.read = imds_dialects::sensitive::read_of(self.dialect, request, &plane.settings);
        if self.read.is_some() && plane.observe.audit.is_some() {
            self.audited = Some((request.method.clone(), request.path.clone()));
        }
    }

    /// Notes `request` as `subject`'s, from `caller`: the dialect that answers it, what it reads
    /// and whether it carries a session token.
    fn admitted(&mut self, plane: &Plane, subject: &Subject<'_>, request: &GuestRequest, caller: IpAddr) {
        self.dialect = imds_dialects::dialect_of(Some(subject), request, &plane.settings);
        self.classify(plane, request);
        self.token = imds_dialects::sensitive::carries_token(self.dialect, request);
        if self.audited.is_some() {
            self.instance = Some(subject.instance.id.clone());
        }
        self.caller = Some(caller);
    }
}

/// Answers one guest request, then counts it (and audits a sensitive read). Everything that
/// needs no waiting runs now; what must wait (a body to read, an unknown caller held, the
/// neighbour table, the throttle's pause, a long poll, a write) goes on in [`later`].
fn answer(plane: &Arc<Plane>, request: Request, arrival: &Arrival, bound: Option<imds_dialects::Dialect>) -> Answered {
    let mut note = Note::new(request.uri().path(), &plane.settings);
    note.source = identify::caller_ip(&arrival.peer);
    // `Note::new` named the path's dialect; a bound listener's is its own.
    if let Some(bound) = bound {
        note.dialect = bound;
    }
    let step = match Arrived::new(request, arrival, bound) {
        Some(arrived) => match admit_now(plane, arrived, &mut note) {
            Step::Admitted(admitted) => match respond(plane, admitted, &mut note) {
                Ok(response) => Step::Done(response),
                Err(rest) => Step::Finish(rest),
            },
            step => step,
        },
        None => Step::Done(Arrived::no_peer()),
    };
    match step {
        Step::Done(response) => Either::Left(std::future::ready(note.count(plane, response))),
        step => {
            let plane = Arc::clone(plane);
            Either::Right(Box::pin(async move {
                let response = later(&plane, step, &mut note).await;
                note.count(&plane, response)
            }))
        }
    }
}

/// Where a request stands after the work that needs no waiting.
enum Step {
    /// Answered.
    Done(Response),
    /// Admission must wait ([`admit`]).
    Admit(Box<Arrived>),
    /// Throttled: the refusal goes out after a pause.
    Pause(Response),
    /// Admitted, not yet answered: the guest's instance is known.
    Admitted(Admitted),
    /// Rendered (or about to be, for a long poll): what remains is waited for ([`finish`]).
    Finish(Box<Finish>),
}

/// Takes `step` to its answer, waiting where it must.
async fn later(plane: &Plane, step: Step, note: &mut Note) -> Response {
    let admitted = match step {
        Step::Done(response) => return response,
        Step::Pause(refusal) => {
            tokio::time::sleep(Throttle::next_refusal_delay()).await;
            return refusal;
        }
        Step::Admit(arrived) => match admit(plane, *arrived, Refusals::Dialect, note).await {
            Ok(admitted) => admitted,
            Err(response) => return response,
        },
        Step::Admitted(admitted) => admitted,
        Step::Finish(rest) => return finish(plane, *rest).await,
    };
    match respond(plane, admitted, note) {
        Ok(response) => response,
        Err(rest) => finish(plane, *rest).await,
    }
}

/// A guest request as the plane reads it: its head, and a body still to read.
struct Arrived {
    request: GuestRequest,
    /// The body, for methods that carry one (a GET's is never read, and never waited for).
    body: Option<hyper::body::Incoming>,
    is_head: bool,
    socket: Option<ConnSocket>,
    /// The connection's source address (IPv4-mapped IPv6 as its IPv4) and port.
    remote: IpAddr,
    port: u16,
}

impl Arrived {
    /// `None` without a TCP peer ([`Arrived::no_peer`]).
    fn new(request: Request, arrival: &Arrival, bound: Option<imds_dialects::Dialect>) -> Option<Self> {
        let (Some(remote), crate::listener::Peer::Tcp { remote: address, .. }) =
            (identify::caller_ip(&arrival.peer), arrival.peer)
        else {
            return None;
        };
        let is_head = request.method() == Method::HEAD;
        let (parts, body) = request.into_parts();
        let body = (parts.method != Method::GET && !is_head).then_some(body);
        let request = GuestRequest {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body: Bytes::new(),
            bound,
            source_port: None,
        };
        Some(Self { request, body, is_head, socket: arrival.socket.clone(), remote, port: address.port() })
    }

    /// The answer to a request without a TCP peer address.
    fn no_peer() -> Response {
        // Guests only ever arrive over TCP; a request without a peer address is a wiring bug.
        tracing::error!("guest request without a TCP peer address");
        bare(http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// A request read whole, its caller identified (after the registration hold, when unknown)
/// and charged to its instance's request budget. Its [`Note`] is completed by [`respond`]
/// ([`Note::admitted`]), with the [`subject`] it renders from: the subject is built once.
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

/// Admits `arrived` if that needs no waiting: a request without a body, from a caller the
/// snapshot names by its address. Anything else is left to [`admit`].
fn admit_now(plane: &Plane, arrived: Arrived, note: &mut Note) -> Step {
    if arrived.body.is_some() {
        return Step::Admit(Box::new(arrived));
    }
    let snapshot = plane.view.load();
    match identify::by_address(&plane.identify, &snapshot, arrived.remote, &arrived.request.headers) {
        Ok(identify::Caller::Instance { entry, address }) => {
            let known = Known { snapshot, entry, caller: address };
            match charge(plane, arrived, known, note.started, Refusals::Dialect, note) {
                Charged::Admitted(admitted) => Step::Admitted(admitted),
                Charged::Throttled(refusal) => Step::Pause(refusal),
            }
        }
        Ok(identify::Caller::Refused(response)) => {
            note.outcome = crate::metrics::Outcome::Unknown;
            Step::Done(into_http(response, arrived.is_head))
        }
        // Held, or looked for in the neighbour table.
        Ok(identify::Caller::Unknown(_)) | Err(_) => Step::Admit(Box::new(arrived)),
    }
}

/// Reads the body of `arrived` and identifies its caller (after the registration hold, when
/// unknown), or the answer it gets instead.
async fn admit(plane: &Plane, arrived: Arrived, refusals: Refusals, note: &mut Note) -> Result<Admitted, Response> {
    let mut arrived = arrived;
    if let Some(body) = arrived.body.take() {
        match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => arrived.request.body = collected.to_bytes(),
            Err(_) => return Err(bare(http::StatusCode::PAYLOAD_TOO_LARGE)),
        }
    }
    let (request, remote) = (&arrived.request, arrived.remote);
    let identify = |snapshot: Arc<Snapshot>| async move {
        let caller =
            identify::identify(&plane.identify, plane.neighbours.as_ref(), &snapshot, remote, &request.headers).await;
        (snapshot, caller)
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
            return Err(into_http(response, arrived.is_head));
        }
        identify::Caller::Unknown(address) => {
            note.outcome = crate::metrics::Outcome::Unknown;
            note.classify(plane, request);
            note.caller = Some(address);
            tracing::debug!(caller = %address, path = %request.path, "guest request from an unknown address");
            return Err(match refusals {
                Refusals::Dialect => {
                    into_http(imds_dialects::unknown_caller(address, request, &plane.settings), arrived.is_head)
                }
                Refusals::Status => bare(http::StatusCode::FORBIDDEN),
            });
        }
    };
    match charge(plane, arrived, Known { snapshot, entry, caller }, charged_at, refusals, note) {
        Charged::Admitted(admitted) => Ok(admitted),
        Charged::Throttled(refusal) => {
            tokio::time::sleep(Throttle::next_refusal_delay()).await;
            Err(refusal)
        }
    }
}

/// A caller identified in a snapshot.
struct Known {
    snapshot: Arc<Snapshot>,
    /// The caller's instance in `snapshot`.
    entry: Arc<crate::view::Entry>,
    /// The address the caller is known by.
    caller: IpAddr,
}

/// What [`charge`] decided.
enum Charged {
    Admitted(Admitted),
    /// The refusal to send after a pause.
    Throttled(Response),
}

/// Charges the request of `arrived`, from the `known` caller, to its instance's request budget
/// at `charged_at`.
fn charge(
    plane: &Plane,
    arrived: Arrived,
    known: Known,
    charged_at: tokio::time::Instant,
    refusals: Refusals,
    note: &mut Note,
) -> Charged {
    let Known { snapshot, entry, caller } = known;
    let Arrived { mut request, is_head, socket, remote, port, .. } = arrived;
    // A port is the guest's only on its own connection, never on a trusted proxy's.
    if !plane.identify.proxies.contains(&remote) {
        request.source_port = Some(port);
    }
    if plane.observe.metrics.per_instance() {
        entry.throttle.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if entry.throttle.try_take(plane.throttle, nanos_between(plane.clock, charged_at)) {
        return Charged::Admitted(Admitted { request, is_head, socket, snapshot, entry, caller });
    }
    let subject = subject(&snapshot, &entry);
    note.admitted(plane, &subject, &request, caller);
    note.outcome = crate::metrics::Outcome::Throttled;
    tracing::debug!(%caller, id = %entry.instance.id, "throttled");
    // The snapshot is not held while pausing: the view moves on meanwhile.
    Charged::Throttled(match refusals {
        Refusals::Dialect => into_http(imds_dialects::throttled(&subject, &request, &plane.settings), is_head),
        Refusals::Status => bare(http::StatusCode::TOO_MANY_REQUESTS),
    })
}

/// What remains of an admitted request once rendered: a long poll to hold, or a write (or
/// events to start) before the answer goes out.
struct Finish {
    request: GuestRequest,
    is_head: bool,
    socket: Option<ConnSocket>,
    caller: IpAddr,
    id: InstanceId,
    /// The long poll's terms, or the answer rendered.
    work: Work,
}

enum Work {
    Wait(imds_dialects::gce::Wait),
    Send(GuestResponse),
}

/// Answers an admitted request from its snapshot, or leaves to [`finish`] what must wait.
fn respond(plane: &Plane, admitted: Admitted, note: &mut Note) -> Result<Response, Box<Finish>> {
    let Admitted { request, is_head, socket, snapshot, entry, caller } = admitted;
    let subject = subject(&snapshot, &entry);
    note.admitted(plane, &subject, &request, caller);
    let work = match imds_dialects::wait_request(&request, &plane.settings) {
        Some(wait_for) => {
            note.long_poll = true;
            Work::Wait(wait_for)
        }
        None => {
            let response = render(plane, &snapshot, &subject, note.dialect, &request);
            if response.write.is_none() && response.start_events.is_empty() {
                return Ok(send(response, socket.as_ref(), is_head, caller));
            }
            Work::Send(response)
        }
    };
    let id = entry.instance.id.clone();
    Err(Box::new(Finish { request, is_head, socket, caller, id, work }))
}

/// Holds a long poll, or applies the write (or starts the events) a rendered answer carries,
/// then sends it.
async fn finish(plane: &Plane, rest: Finish) -> Response {
    let Finish { request, is_head, socket, caller, id, work } = rest;
    let mut response = match work {
        // `respond` noted it as a long poll.
        Work::Wait(wait_for) => wait::hold(plane, caller, &id, &request, wait_for).await,
        Work::Send(response) => response,
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
    send(response, socket.as_ref(), is_head, caller)
}

/// `response` as sent on `socket`: its hop limit set there first, since the bytes are written
/// after this returns.
fn send(response: GuestResponse, socket: Option<&ConnSocket>, is_head: bool, caller: IpAddr) -> Response {
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
        Some(entry) => {
            let subject = subject(snapshot, entry);
            let dialect = imds_dialects::dialect_of(Some(&subject), request, &plane.settings);
            render(plane, snapshot, &subject, dialect, request)
        }
        None => imds_dialects::unknown_caller(caller, request, &plane.settings),
    }
}

/// Renders `request` as `dialect` ([`imds_dialects::dialect_of`] the `subject`'s) for
/// `subject`, the caller's instance in `snapshot`.
fn render(
    plane: &Plane,
    snapshot: &Snapshot,
    subject: &Subject<'_>,
    dialect: imds_dialects::Dialect,
    request: &GuestRequest,
) -> GuestResponse {
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
    imds_dialects::route_as(dialect, subject, request, &context)
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
    let GuestResponse { status, headers, body, .. } = response;
    // Always a Content-Length: clients read whole bodies. hyper writes it, after these headers,
    // from the body's length; a HEAD answer has no body, so it names the GET's.
    let (length, body) = if is_head { (Some(body.len()), Full::default()) } else { (None, Full::new(body)) };
    let mut http = Response::new(body);
    *http.status_mut() = status;
    let map = http.headers_mut();
    map.reserve(headers.len() + usize::from(length.is_some()));
    for (name, value) in headers {
        map.append(name, value);
    }
    if let Some(length) = length {
        map.insert(CONTENT_LENGTH, http::HeaderValue::from(length));
    }
    http
}

/// A response with `status` and no body.
fn bare(status: http::StatusCode) -> Response {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}
