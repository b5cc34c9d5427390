//! Shared fixtures for tests: a whole daemon on loopback, and clients for both planes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use imds_store::memory::MemoryStore;
use imds_store::{Scope, Store};

use crate::admin::{self, Token};
use crate::client::{Client, Endpoint};
use crate::guest::throttle::Throttle;
use crate::server::{self, Running};
use crate::{guest, listener};

/// A daemon listening on 127.0.0.1 (guest and admin on ephemeral ports).
#[derive(Debug)]
pub struct TestServer {
    /// The running daemon.
    pub running: Running,
    /// Its store.
    pub store: Arc<dyn Store>,
    /// The bound guest address.
    pub guest_addr: SocketAddr,
    /// The bound admin address.
    pub admin_addr: SocketAddr,
    /// The admin token.
    pub token: Option<String>,
}

impl TestServer {
    /// Starts a daemon over a fresh in-memory store, without an admin token.
    pub async fn start() -> Self {
        Self::with_store(Arc::new(MemoryStore::new()), None).await
    }

    /// Starts a daemon over `store`; with `token`, admin TCP clients must send it.
    pub async fn with_store(store: Arc<dyn Store>, token: Option<&str>) -> Self {
        Self::with_config(store, token, imds_model::Limits::default(), None).await
    }

    /// Starts a daemon over a fresh in-memory store whose guests are throttled to `throttle`.
    pub async fn with_throttle(throttle: Throttle) -> Self {
        Self::with_guest_limits(throttle, listener::Limits::default()).await
    }

    /// Starts a daemon over a fresh in-memory store with explicit guest throttle and
    /// connection limits (tests that hold thousands of connections).
    pub async fn with_guest_limits(throttle: Throttle, connections: listener::Limits) -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let guest = guest::Config { throttle, ..guest::Config::default() };
        Self::start_with(store, None, imds_model::Limits::default(), None, guest, connections, Default::default()).await
    }

    /// Starts a daemon over a fresh in-memory store whose instances keep at most
    /// `render_cache_bytes` of renderings together.
    pub async fn with_render_cache(render_cache_bytes: usize) -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let guest = guest::Config { render_cache_bytes, ..guest::Config::default() };
        let connections = listener::Limits::default();
        Self::start_with(store, None, imds_model::Limits::default(), None, guest, connections, Default::default()).await
    }

    /// Starts a daemon over a fresh in-memory store with the guest plane's settings `guest`
    /// (its `listen` is replaced by a loopback port).
    pub async fn with_guest(guest: guest::Config) -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let connections = listener::Limits::default();
        Self::start_with(store, None, imds_model::Limits::default(), None, guest, connections, Default::default()).await
    }

    /// Starts a daemon over `store` with explicit bulk-import limits.
    pub async fn with_import_limits(store: Arc<dyn Store>, import: admin::import::Limits) -> Self {
        let limits = imds_model::Limits::default();
        let guest = guest::Config::default();
        Self::start_with(store, None, limits, None, guest, listener::Limits::default(), import).await
    }

    /// Starts a daemon with explicit limits and an optional admin Unix socket.
    pub async fn with_config(
        store: Arc<dyn Store>,
        token: Option<&str>,
        limits: imds_model::Limits,
        socket: Option<std::path::PathBuf>,
    ) -> Self {
        let connections = listener::Limits::default();
        Self::start_with(store, token, limits, socket, guest::Config::default(), connections, Default::default()).await
    }

    async fn start_with(
        store: Arc<dyn Store>,
        token: Option<&str>,
        limits: imds_model::Limits,
        socket: Option<std::path::PathBuf>,
        guest: guest::Config,
        connections: listener::Limits,
        import: admin::import::Limits,
    ) -> Self {
        Self::start_with_compat(store, token, limits, socket, guest, connections, import, Default::default()).await
    }

    /// Starts a daemon over a fresh in-memory store whose seed-compatible endpoints act on
    /// `default_role`.
    pub async fn with_default_role(default_role: &str) -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let compat = admin::compat::Config { default_role: Some(default_role.to_owned()) };
        let (limits, guest) = (imds_model::Limits::default(), guest::Config::default());
        let connections = listener::Limits::default();
        Self::start_with_compat(store, None, limits, None, guest, connections, Default::default(), compat).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_with_compat(
        store: Arc<dyn Store>,
        token: Option<&str>,
        limits: imds_model::Limits,
        socket: Option<std::path::PathBuf>,
        guest: guest::Config,
        connections: listener::Limits,
        import: admin::import::Limits,
        compat: admin::compat::Config,
    ) -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = server::Config {
            guest: guest::Config { listen: vec![loopback], ..guest },
            admin: admin::Config {
                listen: Some(loopback),
                socket,
                token: token.map(Token::new),
                write_visibility_timeout: Duration::from_secs(5),
                import,
                compat,
            },
            limits,
            connections,
            scope: Scope::All,
            net: None,
            metrics: Default::default(),
            audit: Default::default(),
            fleet: None,
        };
        Self::start_config(config, store, token).await
    }

    /// Starts a daemon over a fresh in-memory store with the guest plane's settings `guest`
    /// (its `listen` replaced by a loopback port) and `/metrics` and audit-log settings; with
    /// `token`, admin TCP clients must send it.
    pub async fn with_operations(
        token: Option<&str>,
        guest: guest::Config,
        metrics: crate::metrics::Config,
        audit: crate::audit::Config,
    ) -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = server::Config {
            guest: guest::Config { listen: vec![loopback], ..guest },
            admin: admin::Config {
                listen: Some(loopback),
                socket: None,
                token: token.map(Token::new),
                ..Default::default()
            },
            limits: imds_model::Limits::default(),
            connections: listener::Limits::default(),
            scope: Scope::All,
            net: None,
            metrics,
            audit,
            fleet: None,
        };
        Self::start_config(config, Arc::new(MemoryStore::new()), token).await
    }

    async fn start_config(config: server::Config, store: Arc<dyn Store>, token: Option<&str>) -> Self {
        let running = server::start(config, Arc::clone(&store)).await.expect("test server starts");
        let guest_addr = running.guest_addrs[0];
        let admin_addr = running.admin_addr.expect("admin listener");
        let server = Self { running, store, guest_addr, admin_addr, token: token.map(str::to_owned) };
        server.wait_ready().await;
        server
    }

    /// A client of the admin API carrying the token.
    pub fn admin(&self) -> Client {
        Client::new(Endpoint::Tcp(self.admin_addr)).with_token(self.token.clone())
    }

    /// A client of the guest plane whose requests come from `source` (a 127.x.y.z address).
    pub fn guest_from(&self, source: &str) -> Client {
        let source: IpAddr = source.parse().expect("a literal address");
        Client::from_source(self.guest_addr, source)
    }

    /// Waits (at most 60 s) until `/readyz` answers 200 (the signing key generated, every
    /// role's first fetch done) and returns its body.
    pub async fn node_ready(&self) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let response = self.admin().get("/readyz").await.expect("admin API answers");
            if response.status == http::StatusCode::OK {
                return response.json();
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready within 60 s: {}", response.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ready(&self) {
        let ready = self.running.view.wait_for(imds_store::Revision(0), Duration::from_secs(10)).await;
        assert!(ready, "the view did not load within 10 s");
    }

    /// Creates an instance through the admin API and checks it was created.
    pub async fn create(&self, doc: serde_json::Value) {
        let id = doc["id"].as_str().expect("fixture has an id").to_owned();
        let response = self
            .admin()
            .send(
                http::Method::PUT,
                &format!("/v1/instances/{id}"),
                &[("content-type", "application/json")],
                doc.to_string(),
            )
            .await
            .expect("admin API answers");
        assert_eq!(response.status, http::StatusCode::CREATED, "creating {id}: {}", response.text());
    }
}
