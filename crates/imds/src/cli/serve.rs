//! `imds serve`: load the configuration, open the store, run until SIGINT/SIGTERM.
//!
//! Under systemd (`Type=notify`) it reports `READY=1` once guests are answered from the loaded
//! view. `SIGHUP` re-reads the configuration and applies what changes without a restart: the
//! log filter, the roles of `[roles.*]` (written to the store; roles no longer in the file are
//! kept), and the host datapath's base rules and addresses (`imds net up` again, on a host where
//! it was run and whose configuration names metadata addresses); it also reopens the audit
//! log's file. Everything else takes effect at the next start; an invalid file is logged and
//! changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use imds_store::Store;
use imds_store_sqlite::{SqliteOptions, SqliteStore};

use crate::cli::out::{announce, errln};
use crate::config::{Config, LogFormat, RawConfig, StoreConfig};
use crate::dev;

/// Flags of `imds serve`; each overrides the config file and the environment.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file (env IMDS_CONFIG).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Development mode: guest on 127.0.0.1:1338 and on port 1338 of ::1, admin on
    /// 127.0.0.1:8998 without a token, SQLite under ./.imds-dev, and a demo instance for
    /// 127.0.0.1 and ::1.
    #[arg(long)]
    pub dev: bool,
    /// With --dev: schedule a spot interruption (terminate) of the demo instance this long
    /// from start, e.g. 2m (its notice shows at once when that is two minutes or less).
    #[arg(long, value_name = "DURATION", requires = "dev", value_parser = super::event::parse_duration)]
    pub spot_in: Option<u64>,
    /// Guest plane address (repeatable), e.g. 169.254.169.254:80.
    #[arg(long, value_name = "ADDR")]
    pub guest_listen: Vec<String>,
    /// Admin API TCP address ("" for none).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Admin API Unix socket ("" for none).
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<String>,
    /// File holding the admin API's bearer token.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<String>,
    /// Store backend: sqlite, memory, or an etcd URL: etcd://HOST:PORT,HOST:PORT/PREFIX (one or
    /// more members; the prefix is optional), etcds://… for TLS (with --store-ca).
    #[arg(long, value_name = "BACKEND")]
    pub store: Option<String>,
    /// The serving node this process is (serves only instances placed on it); "all" follows
    /// the whole store.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// SQLite file.
    #[arg(long, value_name = "FILE")]
    pub store_path: Option<String>,
    /// With an etcds:// store: the PEM file of the CA that signed the etcd members' certificates.
    #[arg(long, value_name = "FILE")]
    pub store_ca: Option<String>,
    /// With an etcds:// store: this node's client certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub store_cert: Option<String>,
    /// With an etcds:// store: the client certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub store_key: Option<String>,
    /// The deployment key (32 bytes or 64 hex digits) sealing fleet-refreshed credentials:
    /// each role is then refreshed by one node of the fleet.
    #[arg(long, value_name = "FILE")]
    pub credentials_key_file: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or imds_server=debug.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Largest Firecracker MMDS document per instance, bytes of compact JSON (default 51200).
    #[arg(long, value_name = "BYTES")]
    pub mmds_size_limit: Option<usize>,
}

impl ServeArgs {
    fn overlay(&self, raw: &mut RawConfig) {
        if !self.guest_listen.is_empty() {
            raw.guest.listen = Some(self.guest_listen.clone());
        }
        let pairs: [(&Option<String>, &mut Option<String>); 11] = [
            (&self.admin_listen, &mut raw.admin.listen),
            (&self.admin_socket, &mut raw.admin.socket),
            (&self.store, &mut raw.store.backend),
            (&self.store_path, &mut raw.store.path),
            (&self.store_ca, &mut raw.store.ca),
            (&self.store_cert, &mut raw.store.cert),
            (&self.store_key, &mut raw.store.key),
            (&self.credentials_key_file, &mut raw.store.credentials_key_file),
            (&self.node, &mut raw.store.node),
            (&self.log_format, &mut raw.log.format),
            (&self.log_level, &mut raw.log.level),
        ];
        for (flag, slot) in pairs {
            if let Some(value) = flag {
                *slot = Some(value.clone());
            }
        }
        if let Some(bytes) = self.mmds_size_limit {
            raw.limits.max_mmds = Some(bytes);
        }
        if let Some(file) = &self.admin_token_file {
            raw.admin.token_file = Some(file.clone());
            raw.admin.token = None;
        }
    }
}

/// Builds the configuration from file, environment (through `lookup`) and flags.
pub fn load(args: &ServeArgs, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<String>> {
    let mut problems = Vec::new();
    let file = args.config.clone().or_else(|| lookup("IMDS_CONFIG").map(PathBuf::from));
    let mut raw = match &file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut found = Vec::new();
                let raw = RawConfig::parse_toml_reporting(&text, &mut found);
                problems.extend(found.into_iter().map(|problem| format!("{}: {problem}", path.display())));
                raw
            }
            Err(error) => {
                problems.push(format!("cannot read config file {}: {error}", path.display()));
                RawConfig::default()
            }
        },
        None => RawConfig::default(),
    };
    raw.overlay_env(lookup, &mut problems);
    args.overlay(&mut raw);
    Config::resolve(&raw, args.dev, problems)
}

/// Runs the daemon; exit 2 on invalid configuration, 1 on a failure to start.
pub async fn run(args: ServeArgs) -> ExitCode {
    let config = match load(&args, &|key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(problems) => {
            errln!("imds: invalid configuration:");
            for problem in problems {
                errln!("  - {problem}");
            }
            return ExitCode::from(2);
        }
    };
    let log_filter = init_logging(&config);
    match serve(config, args, log_filter).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            errln!("imds: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Replaces the log filter of the running subscriber (SIGHUP).
type SetLogFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Installs the subscriber: text or JSON on stderr, colour only when stderr is a terminal (and
/// `NO_COLOR` is unset); returns how to change its filter later.
fn init_logging(config: &Config) -> SetLogFilter {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| "info".into());
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    fn setter<S: 'static>(
        handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>,
    ) -> SetLogFilter {
        Box::new(move |level: &str| {
            let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|error| error.to_string())?;
            handle.reload(filter).map_err(|error| error.to_string())
        })
    }
    match config.log_format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = setter(builder.reload_handle());
            let _ = builder.try_init();
            handle
        }
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = setter(builder.reload_handle());
            let _ = builder.try_init();
            handle
        }
    }
}

async fn open_store(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config {
        StoreConfig::Memory => Arc::new(imds_store::memory::MemoryStore::new()),
        StoreConfig::Sqlite { path, retain_changes } => {
            // The store creates its directory 0700 and its file 0600 (and tightens old ones).
            let options = SqliteOptions { retain_changes: *retain_changes, ..SqliteOptions::default() };
            let store =
                SqliteStore::open(path, options).with_context(|| format!("opening the store {}", path.display()))?;
            Arc::new(store)
        }
        #[cfg(feature = "etcd")]
        StoreConfig::Etcd { url, tls } => {
            let mut options = imds_store_etcd::EtcdOptions::from_url(url).map_err(anyhow::Error::msg)?;
            if options.tls.is_some() {
                options.tls =
                    Some(imds_store_etcd::EtcdTls { ca: tls.ca.clone(), cert: tls.cert.clone(), key: tls.key.clone() });
            }
            Arc::new(imds_store_etcd::EtcdStore::connect(options).await.context("connecting to etcd")?)
        }
        #[cfg(not(feature = "etcd"))]
        StoreConfig::Etcd { .. } => anyhow::bail!("this imds was built without the `etcd` cargo feature"),
    })
}

async fn serve(config: Config, args: ServeArgs, set_log_filter: SetLogFilter) -> anyhow::Result<()> {
    let store = open_store(&config.store).await?;
    if config.dev {
        dev::ensure_demo_instance(&*store).await.context("creating the demo instance")?;
        if let Some(seconds) = args.spot_in {
            dev::schedule_spot(&store, seconds).await.context("scheduling the demo spot interruption")?;
        }
    }
    for (name, role) in &config.roles {
        imds_server::creds::put_configured(&store, name, role)
            .await
            .with_context(|| format!("writing role {name} from the configuration"))?;
    }
    let mut server = config.server.clone();
    if config.net.manage {
        let handle = imds_net::link::connect()?;
        let placement = imds_net::link::place(&handle, &config.net.interface, false).await?;
        let bridge = match placement.kind {
            imds_net::MetadataInterface::Bridge(name) => Some(name),
            _ => None,
        };
        server.net = Some(imds_server::net::Config { bridge });
    }
    let store_for_reload = Arc::clone(&store);
    let running = imds_server::server::start(server, store).await.context("starting the listeners")?;
    // Announce only once guests are answered from the store's data (scripts read the lines).
    if tokio::time::timeout(std::time::Duration::from_secs(2), running.view.ready()).await.is_err() {
        tracing::warn!("waiting for the store to load the view; guests wait until it has");
        running.view.ready().await;
    }
    announce(&config, &running);
    notify(&[sd_notify::NotifyState::Ready]);
    let shutdown = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        notify(&[sd_notify::NotifyState::Stopping]);
        shutdown.cancel();
    });
    let audit = running.audit.clone();
    tokio::spawn(reload_on_hangup(config, args, store_for_reload, set_log_filter, audit));
    running.wait().await;
    Ok(())
}

/// Tells systemd (`Type=notify`; nothing without `NOTIFY_SOCKET`).
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// On every SIGHUP: re-read the configuration and apply what can change while running.
async fn reload_on_hangup(
    mut current: Config,
    args: ServeArgs,
    store: Arc<dyn Store>,
    set_log_filter: SetLogFilter,
    audit: Option<imds_server::audit::Log>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; configuration changes need a restart");
        return;
    };
    while hangup.recv().await.is_some() {
        notify(&[sd_notify::NotifyState::Reloading]);
        // logrotate's `postrotate` convention; a moved file is also noticed without it.
        if let Some(audit) = &audit {
            audit.reopen();
        }
        match load(&args, &|key| std::env::var(key).ok()) {
            Err(problems) => {
                tracing::error!(problems = %problems.join("; "), "SIGHUP: the configuration is invalid; nothing changed");
            }
            Ok(next) => {
                reload(&current, &next, &store, &set_log_filter).await;
                current = next;
            }
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// Applies the log filter, the configured roles and the host datapath of `next`.
async fn reload(current: &Config, next: &Config, store: &Arc<dyn Store>, set_log_filter: &SetLogFilter) {
    let mut applied = Vec::new();
    if next.log_level != current.log_level {
        match set_log_filter(&next.log_level) {
            Ok(()) => applied.push(format!("log level {}", next.log_level)),
            Err(error) => tracing::error!(%error, "SIGHUP: cannot change the log filter"),
        }
    }
    let mut roles = 0;
    for (name, role) in &next.roles {
        match imds_server::creds::put_configured(store, name, role).await {
            Ok(()) => roles += 1,
            Err(error) => tracing::error!(role = %name, %error, "SIGHUP: cannot write the role"),
        }
    }
    applied.push(format!("{roles} configured role{}", if roles == 1 { "" } else { "s" }));
    // Only a host `imds net up` set up (its table exists): a reload never creates a datapath.
    if !next.net.addresses.is_empty() && matches!(imds_net::nft::list_table("inet").await, Ok(Some(_))) {
        match super::net::apply_up(&next.net).await {
            Ok(notes) => {
                for note in notes.iter().filter(|note| note.starts_with("added ")) {
                    tracing::info!("SIGHUP: {note}");
                }
                applied.push("host datapath rules".to_owned());
            }
            Err(error) => tracing::error!(%error, "SIGHUP: cannot apply the host datapath rules"),
        }
    }
    tracing::info!(applied = %applied.join(", "), "SIGHUP: configuration reloaded; other settings change at restart");
}

/// Prints where the service listens (stdout, one address per line: scripts may read it).
fn announce(config: &Config, running: &imds_server::server::Running) {
    announce!("imds is serving");
    for addr in &running.guest_addrs {
        announce!("  guest plane: http://{addr}");
    }
    for (dialect, addr) in &running.dialect_addrs {
        announce!("  dialect {}: http://{addr}", dialect.name());
    }
    if let Some(addr) = running.admin_addr {
        let auth = if config.server.admin.token.is_some() {
            "bearer token required"
        } else {
            "NO TOKEN: loopback development only"
        };
        announce!("  admin API:   http://{addr} ({auth})");
    }
    if let Some(addr) = running.metrics_addr {
        announce!("  metrics:     http://{addr}/metrics (no token)");
    }
    if let Some(path) = &running.admin_socket {
        announce!("  admin API:   unix:{}", path.display());
    }
    match &config.store {
        StoreConfig::Sqlite { path, .. } => announce!("  store:       sqlite {}", path.display()),
        StoreConfig::Memory => announce!("  store:       memory (nothing survives a restart)"),
        StoreConfig::Etcd { url, .. } => announce!("  store:       {url}"),
    }
    if let imds_store::Scope::Node(node) = &config.server.scope {
        announce!("  node:        {node} (serves only instances placed on it)");
    }
    if config.dev {
        if config.server.admin.token.is_none() {
            tracing::warn!("--dev: the admin API accepts requests without a token on loopback");
        }
        dev::print_tour(running);
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot install signal handlers; stop imds with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
