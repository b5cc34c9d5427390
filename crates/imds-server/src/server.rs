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
use crate::replica::{self, Backoff};
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
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {what}: {source}")]
    Bind {
        /// The address or socket path.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// A started daemon: its bound addresses and a handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// Bound guest addresses (the real ports when the config asked for port 0).
    pub guest_addrs: Vec<SocketAddr>,
    /// Bound admin TCP address.
    pub admin_addr: Option<SocketAddr>,
    /// The admin Unix socket.
    pub admin_socket: Option<PathBuf>,
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

/// Serves guests once the session-token key and the view are loaded: a guest that connects
/// earlier waits in the listen backlog instead of being told it is unknown by an empty view.
/// Both are retried while the store is unavailable.
async fn serve_guests(
    store: Arc<dyn Store>,
    view: View,
    listeners: Vec<TcpListener>,
    throttle: guest::throttle::Throttle,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let backoff = Backoff::default();
    let mut attempt = 0;
    let tokens = loop {
        let loaded = tokio::select! {
            () = shutdown.cancelled() => return,
            loaded = guest::token_key::load_or_create(&store) => loaded,
        };
        match loaded {
            Ok(tokens) => break tokens,
            Err(error) => {
                tracing::warn!(%error, "cannot load the session-token key; retrying");
                let delay = backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    tokio::select! {
        () = shutdown.cancelled() => return,
        () = view.ready() => {}
    }
    let router = guest::router(view, tokens, throttle);
    let mut serving = JoinSet::new();
    for listener in listeners {
        serving.spawn(listener::serve_tcp(listener, router.clone(), limits.clone(), shutdown.clone()));
    }
    while serving.join_next().await.is_some() {}
}

/// Binds every listener, then starts the replica loop and both planes.
///
/// Binding happens before anything runs, so a port in use fails the start instead of leaving a
/// half-started daemon.
pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<Running, StartError> {
    let bind_tcp = |addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| StartError::Bind { what: addr.to_string(), source })
    };
    let mut guest_listeners = Vec::new();
    for addr in &config.guest.listen {
        guest_listeners.push(bind_tcp(*addr).await?);
    }
    let admin_tcp = match config.admin.listen {
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

    let view = View::new();
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(replica::run(
        Arc::clone(&store),
        config.scope.clone(),
        view.clone(),
        Backoff::default(),
        shutdown.clone(),
    ));

    let mut guest_addrs = Vec::new();
    for listener in &guest_listeners {
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { what: "guest listener".into(), source })?;
        tracing::info!(%addr, "guest plane listening");
        guest_addrs.push(addr);
    }
    tasks.spawn(serve_guests(
        Arc::clone(&store),
        view.clone(),
        guest_listeners,
        config.guest.throttle,
        config.connections.clone(),
        shutdown.clone(),
    ));

    let state = AdminState {
        store,
        view: view.clone(),
        limits: config.limits,
        write_visibility_timeout: config.admin.write_visibility_timeout,
        scope: config.scope.clone(),
    };
    let admin_router = admin::router(state, config.admin.token.clone());
    let mut admin_addr = None;
    if let Some(listener) = admin_tcp {
        let addr =
            listener.local_addr().map_err(|source| StartError::Bind { what: "admin listener".into(), source })?;
        tracing::info!(%addr, authenticated = config.admin.token.is_some(), "admin API listening");
        admin_addr = Some(addr);
        tasks.spawn(listener::serve_tcp(listener, admin_router.clone(), config.connections.clone(), shutdown.clone()));
    }
    let mut admin_socket = None;
    if let Some((listener, path)) = admin_unix {
        tracing::info!(path = %path.display(), "admin API listening on a Unix socket");
        admin_socket = Some(path.clone());
        tasks.spawn(listener::serve_unix(listener, path, admin_router, config.connections.clone(), shutdown.clone()));
    }
    Ok(Running { guest_addrs, admin_addr, admin_socket, view, shutdown, tasks })
}
