//! Starting and stopping the whole daemon: listeners, the replica loop and both planes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use imds_store::{Scope, Store};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::listener::{self, Limits};
use crate::replica::{self, Backoff, BACKOFF};
use crate::{guest, view::View};

/// Everything the daemon needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The guest plane.
    pub guest: guest::Config,
    /// The admin plane.
    pub admin: admin::Config,
    /// Record size limits.
    pub limits: imds_model::Limits,
    /// Per-listener connection limits.
    pub connections: Limits,
    /// Which part of the store this node serves.
    pub scope: Scope,
    /// `[net] manage = true`: keep the host's per-instance identity rules in sync.
    pub net: Option<crate::net::Config>,
    /// `/metrics`: per-instance series, an unauthenticated address.
    pub metrics: crate::metrics::Config,
    /// The audit log (off by default).
    pub audit: crate::audit::Config,
    /// With a deployment key: refresh each role once per fleet ([`crate::fleet`]).
    pub fleet: Option<crate::fleet::Config>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {what}: {source}{}", bind_hint(what, source))]
    Bind {
        /// The address or socket path.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The host's nftables tables are not in place for `[net] manage`.
    #[error("{0}")]
    Net(String),
    /// The audit log's file cannot be opened.
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
}

/// How to fix a bind failure an operator will meet first: the metadata address not on the host.
fn bind_hint(what: &str, source: &std::io::Error) -> &'static str {
    let metadata =
        what.starts_with("169.254.") || what.starts_with("[fd00:ec2::") || what.starts_with("100.100.100.200:");
    match source.kind() {
        std::io::ErrorKind::AddrNotAvailable if metadata => {
            " (the address is not on this host: run `imds net up` with the same configuration, as root)"
        }
        std::io::ErrorKind::PermissionDenied => " (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        _ => "",
    }
}

/// A started daemon: its bound addresses and a handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// Bound guest addresses (the real ports when the config asked for port 0).
    pub guest_addrs: Vec<SocketAddr>,
    /// Bound addresses of the listeners bound to a dialect (`guest.dialect_listen`).
    pub dialect_addrs: Vec<(imds_dialects::Dialect, SocketAddr)>,
    /// Bound Azure WireServer addresses (`guest.azure_wireserver_listen`).
    pub wireserver_addrs: Vec<SocketAddr>,
    /// Bound admin TCP address.
    pub admin_addr: Option<SocketAddr>,
    /// The admin Unix socket.
    pub admin_socket: Option<PathBuf>,
    /// Bound address of the unauthenticated `/metrics` listener (`[metrics] listen`).
    pub metrics_addr: Option<SocketAddr>,
    /// The audit log, when on: [`Log::reopen`](crate::audit::Log::reopen) makes it reopen its
    /// file (the hook for `SIGHUP`).
    pub audit: Option<crate::audit::Log>,
    /// The view guests are served from.
    pub view: View,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// A token that stops the daemon when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, drains in-flight requests, stops the replica loop.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until the daemon stops (after its shutdown token is cancelled).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The guest-facing listeners: the metadata service's and Azure's WireServer's, and the limits
/// every one of them applies.
struct GuestListeners {
    metadata: Vec<TcpListener>,
    bound: Vec<(imds_dialects::Dialect, TcpListener)>,
    wireserver: Vec<TcpListener>,
    limits: Limits,
}

/// A listener's limits with its own connection figures in `metrics`.
fn counted(limits: &Limits, metrics: &crate::metrics::Metrics, name: &'static str, listener: &TcpListener) -> Limits {
    let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    Limits { metrics: Some(metrics.listener(name, addr)), ..limits.clone() }
}

/// Serves guests once the session-token key and the view are loaded: a guest that connects
/// earlier waits in the listen backlog instead of being told it is unknown by an empty view.
/// Both are retried while the store is unavailable.
async fn serve_guests(
    store: Arc<dyn Store>,
    view: View,
    credentials: crate::creds::Credentials,
    listeners: GuestListeners,
    config: guest::Config,
    observe: guest::Observe,
    shutdown: CancellationToken,
) {
    let backoff = BACKOFF;
    let load = || guest::token_key::load_or_create(&store);
    let Some(tokens) = retry_until_shutdown("the session-token key", backoff, &shutdown, load).await else {
        return;
    };
    // The identity signing keys: generated on first start. A failure is logged and retried in
    // the background; meanwhile documents are served unsigned (signature leaves unlisted).
    tokio::spawn(ensure_signing_keys(Arc::clone(&store), backoff, shutdown.clone()));
    tokio::select! {
        () = shutdown.cancelled() => return,
        () = view.ready() => {}
    }
    let (metrics, limits) = (Arc::clone(&observe.metrics), listeners.limits);
    let routers = guest::routers_observed(view.clone(), store, tokens, credentials, &config, observe);
    let mut serving = JoinSet::new();
    for listener in listeners.metadata {
        let limits = counted(&limits, &metrics, "guest", &listener);
        serving.spawn(listener::serve_tcp(listener, routers.metadata.clone(), limits, shutdown.clone()));
    }
    for (dialect, listener) in listeners.bound {
        let router = routers.metadata.bound_to(dialect);
        let limits = counted(&limits, &metrics, "guest", &listener);
        serving.spawn(listener::serve_tcp(listener, router, limits, shutdown.clone()));
    }
    for listener in listeners.wireserver {
        let limits = counted(&limits, &metrics, "wireserver", &listener);
        serving.spawn(listener::serve_tcp(listener, routers.wireserver.clone(), limits, shutdown.clone()));
    }
    while serving.join_next().await.is_some() {}
}

/// Creates the signing keys if the store has none, retrying while the store is unavailable.
async fn ensure_signing_keys(store: Arc<dyn Store>, backoff: Backoff, shutdown: CancellationToken) {
    let load = || crate::sign::load_or_create(&store);
    retry_until_shutdown("the identity signing keys", backoff, &shutdown, load).await;
}

/// Runs `call` until it succeeds, backing off after each failure; `None` when shutdown came
/// first. `what` names what is being loaded in the warning a failure logs.
async fn retry_until_shutdown<T, E, F, Fut>(
    what: &str,
    backoff: Backoff,
    shutdown: &CancellationToken,
    mut call: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return None,
            outcome = call() => outcome,
        };
        match outcome {
            Ok(value) => return Some(value),
            Err(error) => tracing::warn!(%error, "cannot load {what}; retrying"),
        }
        if replica::sleep_or_stop(&backoff, &mut attempt, shutdown).await {
            return None;
        }
    }
}

/// The listen backlog of TCP listeners: a burst of new connections (every VM of a host booting
/// at once) waits in the kernel instead of being refused. The kernel caps it at
/// `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 8192;

/// Binds a TCP listener with [`LISTEN_BACKLOG`] (`TcpListener::bind` uses 1024).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds every listener, then starts the replica loop and both planes.
///
/// Binding happens before anything runs, so a port in use fails the start instead of leaving a
/// half-started daemon.
pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<Running, StartError> {
    let bind_tcp = |addr: SocketAddr| async move {
        bind(addr).map_err(|source| StartError::Bind { what: addr.to_string(), source })
    };
    let mut guest_listeners = Vec::new();
    for addr in &config.guest.listen {
        guest_listeners.push(bind_tcp(*addr).await?);
    }
    let mut bound_listeners = Vec::new();
    let mut dialect_addrs = Vec::new();
    for (dialect, addr) in &config.guest.dialect_listen {
        let listener = bind_tcp(*addr).await?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { what: addr.to_string(), source })?;
        tracing::info!(%addr, dialect = dialect.name(), "guest plane listening for one dialect");
        bound_listeners.push((*dialect, listener));
        dialect_addrs.push((*dialect, addr));
    }
    let mut wireserver_listeners = Vec::new();
    let mut wireserver_addrs = Vec::new();
    for addr in &config.guest.azure_wireserver_listen {
        let listener = bind_tcp(*addr).await?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { what: addr.to_string(), source })?;
        tracing::info!(%addr, "Azure WireServer listening");
        wireserver_listeners.push(listener);
        wireserver_addrs.push(addr);
    }
    let admin_tcp = match config.admin.listen {
        Some(addr) => Some(bind_tcp(addr).await?),
        None => None,
    };
    let metrics_tcp = match config.metrics.listen {
        Some(addr) => Some(bind_tcp(addr).await?),
        None => None,
    };
    let admin_unix = match &config.admin.socket {
        Some(path) => Some((
            listener::bind_unix(path)
                .map_err(|source| StartError::Bind { what: path.display().to_string(), source })?,
            path.clone(),
        )),
        None => None,
    };

    if let Some(net) = &config.net {
        crate::net::check_tables(net).await.map_err(StartError::Net)?;
    }
    let metrics = Arc::new(crate::metrics::Metrics::new(config.metrics.per_instance));
    let store = crate::metrics::store::Timed::wrap(store, Arc::clone(&metrics));
    let view = View::with_budget(imds_dialects::Budget::new(config.guest.render_cache_bytes));
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    if let Some(net) = &config.net {
        view.gate_on_datapath();
        tasks.spawn(crate::net::follow(view.clone(), net.clone(), shutdown.clone()));
    }
    // One wall clock for the guest plane, the renderings' idle times and the credential
    // refresher (it follows tokio's clock, so tests can pause it).
    let clock = imds_creds::Clock::system();
    let audit = crate::audit::Log::start(&config.audit, Arc::clone(&metrics), clock).map_err(StartError::Audit)?;
    tasks.spawn(crate::view::renderings::tend(view.clone(), clock, shutdown.clone()));
    tasks.spawn(crate::memory::trim(shutdown.clone()));
    tasks.spawn(crate::events::run(Arc::clone(&store), view.clone(), clock, shutdown.clone()));
    tasks.spawn(replica::run(
        Arc::clone(&store),
        config.scope.clone().with_shared(&crate::records::SHARED),
        view.clone(),
        BACKOFF,
        shutdown.clone(),
    ));

    let mut guest_addrs = Vec::new();
    for listener in &guest_listeners {
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { what: "guest listener".into(), source })?;
        tracing::info!(%addr, "guest plane listening");
        guest_addrs.push(addr);
    }
    // The nodes that call sources read base credentials from their own record at fetch time;
    // a fleet node that is no refresher never calls a source that needs them.
    let reads_base = config.fleet.as_ref().is_none_or(|fleet| fleet.refresher);
    let sources: Arc<dyn imds_creds::Fetch> = Arc::new(imds_creds::Sources::default());
    let sources: Arc<dyn imds_creds::Fetch> = if reads_base {
        if let Err(error) = crate::creds::split_stored_roles(&store).await {
            tracing::warn!(%error, "could not move base credentials out of older role records");
        }
        Arc::new(crate::creds::WithStoredBase::new(sources, Arc::clone(&store)))
    } else {
        sources
    };
    let fetcher: Arc<dyn imds_creds::Fetch> = match &config.fleet {
        Some(fleet) => Arc::new(crate::fleet::FleetFetch::new(sources, Arc::clone(&store), fleet.clone())),
        None => sources,
    };
    let manager = Arc::new(imds_creds::Manager::new(fetcher, clock));
    let exporter = Arc::new(crate::metrics::Exporter::new(Arc::clone(&metrics), view.clone(), Arc::clone(&manager)));
    tasks.spawn(crate::creds::follow(view.clone(), Arc::clone(&manager), shutdown.clone()));
    tasks.spawn(serve_guests(
        Arc::clone(&store),
        view.clone(),
        crate::creds::Credentials(Arc::clone(&manager)),
        GuestListeners {
            metadata: guest_listeners,
            bound: bound_listeners,
            wireserver: wireserver_listeners,
            limits: config.connections.clone(),
        },
        guest::Config { scope: config.scope.clone(), ..config.guest.clone() },
        guest::Observe { metrics: Arc::clone(&metrics), audit: audit.clone() },
        shutdown.clone(),
    ));

    let state = AdminState {
        store,
        view: view.clone(),
        credentials: manager,
        limits: config.limits,
        write_visibility_timeout: config.admin.write_visibility_timeout,
        import: config.admin.import,
        dialects: config.guest.dialects.clone(),
        scope: config.scope.clone(),
        started: Arc::default(),
        compat: config.admin.compat.clone(),
        exporter: Arc::clone(&exporter),
        audit: audit.clone(),
    };
    let admin_router = admin::router(state, config.admin.token.clone());
    // Admin clients are the operator's own (token or socket mode): no per-source cap.
    // Malformed framing gets the API's JSON error, not hyper's empty 400 or a chunked reading.
    let admin_limits = Limits {
        max_connections_per_source: None,
        strict_framing: Some(admin::error::refusal),
        ..config.connections.clone()
    };
    let mut admin_addr = None;
    if let Some(listener) = admin_tcp {
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { what: "admin listener".into(), source })?;
        tracing::info!(%addr, authenticated = config.admin.token.is_some(), "admin API listening");
        admin_addr = Some(addr);
        let limits = counted(&admin_limits, &metrics, "admin", &listener);
        tasks.spawn(listener::serve_tcp(listener, admin_router.clone(), limits, shutdown.clone()));
    }
    let mut metrics_addr = None;
    if let Some(listener) = metrics_tcp {
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { what: "metrics listener".into(), source })?;
        tracing::info!(%addr, "metrics listening (unauthenticated)");
        metrics_addr = Some(addr);
        let limits = counted(&admin_limits, &metrics, "metrics", &listener);
        tasks.spawn(listener::serve_tcp(listener, crate::metrics::router(exporter), limits, shutdown.clone()));
    }
    let mut admin_socket = None;
    if let Some((listener, path)) = admin_unix {
        tracing::info!(path = %path.display(), "admin API listening on a Unix socket");
        admin_socket = Some(path.clone());
        tasks.spawn(listener::serve_unix(listener, path, admin_router, admin_limits, shutdown.clone()));
    }
    Ok(Running {
        guest_addrs,
        dialect_addrs,
        wireserver_addrs,
        admin_addr,
        admin_socket,
        metrics_addr,
        audit,
        view,
        shutdown,
        tasks,
    })
}
