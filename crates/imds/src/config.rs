//! Configuration: a TOML file, overlaid by `IMDS_*` environment variables, overlaid by flags.
//!
//! Two stages: [`RawConfig`] (every field optional, straight from TOML, env and flags) and
//! [`Config`] (typed, validated). [`Config::resolve`] reports every problem at once. The
//! environment is read through a lookup function so tests pass a map and never touch the
//! process environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use imds_server::admin::{self, Token};
use imds_server::{guest, listener, server};
use imds_store::Scope;
use serde::Deserialize;

/// The configuration file's shape; every field optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[guest]`
    #[serde(default)]
    pub guest: RawGuest,
    /// `[admin]`
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[store]`
    #[serde(default)]
    pub store: RawStore,
    /// `[limits]`
    #[serde(default)]
    pub limits: RawLimits,
    /// `[log]`
    #[serde(default)]
    pub log: RawLog,
    /// `[net]`: the host datapath (`imds net up|down|status`, identity rules, proxies).
    #[serde(default)]
    pub net: RawNet,
    /// `[metrics]`: Prometheus `/metrics`.
    #[serde(default)]
    pub metrics: RawMetrics,
    /// `[audit]`: the audit log.
    #[serde(default)]
    pub audit: RawAudit,
    /// `[fleet]`: fleet-wide credential refresh (with `store.credentials_key_file`).
    #[serde(default)]
    pub fleet: RawFleet,
    /// `[roles.<name>]`: roles and their credential sources, written to the store at start
    /// (same shape as the admin API's `PUT /v1/roles/{name}` body).
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, toml::Value>,
}

/// `[guest]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawGuest {
    /// Addresses the guest plane listens on.
    pub listen: Option<Vec<String>>,
    /// Sustained requests per second each instance may make; 0 for no limit.
    pub throttle_per_second: Option<u32>,
    /// Requests each instance may make at once above the sustained rate.
    pub throttle_burst: Option<u32>,
    /// Where NoCloud is served, e.g. `/nocloud/`.
    pub nocloud_prefix: Option<String>,
    /// MiB of renderings (EC2 trees, GCE and Azure answers) kept over all instances.
    pub render_cache_mib: Option<u32>,
    /// Addresses Azure's WireServer is emulated on, e.g. `168.63.129.16:80`; none by default.
    pub azure_wireserver_listen: Option<Vec<String>>,
    /// `[guest.dialect_listen]`: listeners bound to one dialect each, by dialect name, e.g.
    /// `alibaba = ["100.100.100.200:80"]`; none by default.
    pub dialect_listen: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// How long a request from an unregistered address waits for its record, in milliseconds.
    pub unknown_hold_ms: Option<u32>,
    /// How many requests from unregistered addresses are held at once.
    pub max_held: Option<u32>,
}

/// `[admin]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// TCP address of the admin API; `""` for none.
    pub listen: Option<String>,
    /// Unix socket path of the admin API; `""` for none.
    pub socket: Option<String>,
    /// Bearer token TCP clients must send.
    pub token: Option<String>,
    /// File holding the bearer token.
    pub token_file: Option<String>,
    /// How long a write waits for guests to see it, in milliseconds.
    pub write_visibility_timeout_ms: Option<u64>,
    /// Largest bulk-import body (`POST /v1/instances`), bytes.
    pub import_max_body: Option<usize>,
    /// Most instances per bulk-import request.
    pub import_max_lines: Option<usize>,
    /// The role the Go mock's `/status` and `/bootstrap/creds` act on.
    pub default_role: Option<String>,
    /// Start even though guests could reach the admin TCP address (a firewall is in place).
    pub allow_guest_reachable: Option<bool>,
}

/// `[net]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawNet {
    /// Interfaces guests arrive on: names or prefixes ending in `*` (`tap*`, `fc-*`, `br0`).
    pub guest_interfaces: Option<Vec<String>>,
    /// Where the metadata addresses go: a dummy to create (default `imds0`; loopback where the
    /// kernel has no dummy driver), `lo`, or an existing bridge.
    pub interface: Option<String>,
    /// Whether `serve` keeps the per-instance identity rules in sync (fail closed).
    pub manage: Option<bool>,
    /// Addresses of trusted metadata proxies (Neutron's, a NAT gateway's).
    pub proxies: Option<Vec<String>>,
    /// File holding the proxies' shared secret (`X-Instance-ID-Signature`).
    pub proxy_secret_file: Option<String>,
    /// Whether unknown source addresses are looked up in the neighbour table (default true).
    pub neighbours: Option<bool>,
    /// New connections to the guest ports one source address may open per second before the
    /// kernel drops its SYNs (default 100; 0 turns the limit off).
    pub syn_per_second: Option<u32>,
    /// SYNs a source may send at once above `syn_per_second` (default 200).
    pub syn_burst: Option<u32>,
}

/// `[metrics]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Also serve `/metrics`, without authentication, on this TCP address; `""` for none.
    pub listen: Option<String>,
    /// Export guest requests per instance too (small hosts).
    pub per_instance: Option<bool>,
}

/// `[audit]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Where audit lines go: a file path, or `stdout`; `""` (the default) for no audit log.
    pub output: Option<String>,
    /// Lines queued for the writer before they are dropped.
    pub queue: Option<usize>,
}

/// `[fleet]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// Whether this node may refresh roles for the fleet (take refresher leases, read `sts`
    /// base credentials, call sources). Default: `false` on a node-scoped server with a
    /// deployment key (only designated refreshers hold base credentials), `true` otherwise.
    pub refresher: Option<bool>,
    /// Seconds a refresher's lease lasts without renewal: a dead refresher is replaced within
    /// this long (default 15, from 2 to 300; etcd measures it).
    pub lease_ttl_secs: Option<u64>,
}

/// `[store]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite`, `memory`, `etcd`, or an `etcd://` URL (shorthand for `etcd` with that `url`).
    pub backend: Option<String>,
    /// The etcd cluster: `etcd://host:port[,host:port…][/prefix]`, or `etcds://…` for TLS.
    pub url: Option<String>,
    /// With `etcds://`: the PEM file of the CA that signed the members' certificates.
    pub ca: Option<String>,
    /// With `etcds://`: this node's client certificate (PEM), for members requiring one.
    pub cert: Option<String>,
    /// With `etcds://`: the client certificate's private key (PEM).
    pub key: Option<String>,
    /// The deployment key (32 bytes, or 64 hex digits) that seals fleet-refreshed role
    /// credentials in the store: with it, each role is refreshed by one node of the fleet.
    pub credentials_key_file: Option<String>,
    /// The serving node this process is: it follows and serves only instances placed on it.
    /// `all` (the default) follows the whole store.
    pub node: Option<String>,
    /// The SQLite file.
    pub path: Option<String>,
    /// Change-log rows kept for resuming readers.
    pub retain_changes: Option<u64>,
}

/// `[limits]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest user-data (and vendor-data), bytes.
    pub max_user_data: Option<usize>,
    /// Largest encoded instance record, bytes.
    pub max_record: Option<usize>,
    /// Connections served at once per listener.
    pub max_connections: Option<usize>,
    /// Connections one source address may hold on a guest listener (0: no cap).
    pub max_connections_per_source: Option<usize>,
    /// Seconds a client may take to send a request's headers (also the idle keep-alive time).
    pub header_read_timeout_secs: Option<u64>,
    /// Largest Firecracker MMDS document per instance, bytes of compact JSON.
    pub max_mmds: Option<usize>,
}

/// `[log]`
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` or `json`.
    pub format: Option<String>,
    /// A tracing filter, e.g. `info` or `imds_server=debug`.
    pub level: Option<String>,
}

impl RawConfig {
    /// Parses a TOML document, reporting every unknown key and mistyped value in `problems`
    /// (each with its path, `guest.listen[0]`) and keeping the rest, so that the checks after it
    /// report their problems too. A syntax error is one problem and gives the defaults.
    pub fn parse_toml_reporting(text: &str, problems: &mut Vec<String>) -> Self {
        let mut table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(error) => {
                problems.push(error.to_string().trim_end().to_owned());
                return Self::default();
            }
        };
        // Each pass reports one problem and drops the key at fault; a document has few keys.
        for _ in 0..256 {
            match serde_path_to_error::deserialize::<_, Self>(toml::Value::Table(table.clone())) {
                Ok(raw) => return raw,
                Err(error) => {
                    let path = error.path().to_string();
                    // The message alone: toml appends "in `key`", which the path already says.
                    let message = error.inner().to_string();
                    problems.push(format!("{path}: {}", message.lines().next().unwrap_or_default()));
                    if !remove_path(&mut table, error.path()) {
                        return Self::default();
                    }
                }
            }
        }
        Self::default()
    }

    /// Overlays `IMDS_*` variables found by `lookup`; malformed numbers are reported in `problems`.
    pub fn overlay_env(&mut self, lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) {
        env_number(lookup, "IMDS_GUEST_THROTTLE_PER_SECOND", &mut self.guest.throttle_per_second, problems);
        env_number(lookup, "IMDS_GUEST_THROTTLE_BURST", &mut self.guest.throttle_burst, problems);
        env_number(lookup, "IMDS_GUEST_RENDER_CACHE_MIB", &mut self.guest.render_cache_mib, problems);
        env_number(lookup, "IMDS_GUEST_UNKNOWN_HOLD_MS", &mut self.guest.unknown_hold_ms, problems);
        env_number(lookup, "IMDS_GUEST_MAX_HELD", &mut self.guest.max_held, problems);
        env_number(lookup, "IMDS_STORE_RETAIN_CHANGES", &mut self.store.retain_changes, problems);
        env_number(lookup, "IMDS_LIMITS_MAX_USER_DATA", &mut self.limits.max_user_data, problems);
        env_number(lookup, "IMDS_LIMITS_MAX_RECORD", &mut self.limits.max_record, problems);
        env_number(lookup, "IMDS_LIMITS_MAX_MMDS", &mut self.limits.max_mmds, problems);
        env_number(
            lookup,
            "IMDS_LIMITS_MAX_CONNECTIONS_PER_SOURCE",
            &mut self.limits.max_connections_per_source,
            problems,
        );
        env_number(lookup, "IMDS_LIMITS_HEADER_READ_TIMEOUT_SECS", &mut self.limits.header_read_timeout_secs, problems);
        env_number(lookup, "IMDS_ADMIN_IMPORT_MAX_BODY", &mut self.admin.import_max_body, problems);
        env_number(lookup, "IMDS_ADMIN_IMPORT_MAX_LINES", &mut self.admin.import_max_lines, problems);
        env_number(lookup, "IMDS_AUDIT_QUEUE", &mut self.audit.queue, problems);
        env_number(lookup, "IMDS_NET_SYN_PER_SECOND", &mut self.net.syn_per_second, problems);
        env_number(lookup, "IMDS_NET_SYN_BURST", &mut self.net.syn_burst, problems);
        env_number(lookup, "IMDS_FLEET_LEASE_TTL_SECS", &mut self.fleet.lease_ttl_secs, problems);
        for (key, slot) in
            [("IMDS_NET_GUEST_INTERFACES", &mut self.net.guest_interfaces), ("IMDS_NET_PROXIES", &mut self.net.proxies)]
        {
            if let Some(value) = lookup(key) {
                *slot = Some(value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
            }
        }
        for (key, slot) in [
            ("IMDS_NET_MANAGE", &mut self.net.manage),
            ("IMDS_NET_NEIGHBOURS", &mut self.net.neighbours),
            ("IMDS_ADMIN_ALLOW_GUEST_REACHABLE", &mut self.admin.allow_guest_reachable),
            ("IMDS_METRICS_PER_INSTANCE", &mut self.metrics.per_instance),
            ("IMDS_FLEET_REFRESHER", &mut self.fleet.refresher),
        ] {
            if let Some(value) = lookup(key) {
                match value.trim() {
                    "true" | "1" => *slot = Some(true),
                    "false" | "0" => *slot = Some(false),
                    _ => problems.push(format!("{key}: {value:?} is not true or false")),
                }
            }
        }
        if let Some(value) = lookup("IMDS_GUEST_LISTEN") {
            self.guest.listen = Some(value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
        } else {
            self.overlay_vman(lookup, problems);
        }
        if let Some(value) = lookup("IMDS_GUEST_AZURE_WIRESERVER_LISTEN") {
            self.guest.azure_wireserver_listen =
                Some(value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect());
        }
        if let Some(value) = lookup("IMDS_GUEST_DIALECT_LISTEN") {
            // `name=address[,name=address…]`; a name may repeat.
            let mut table = std::collections::BTreeMap::<String, Vec<String>>::new();
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match item.split_once('=') {
                    Some((name, addr)) => table.entry(name.trim().to_owned()).or_default().push(addr.trim().to_owned()),
                    None => problems.push(format!(
                        "IMDS_GUEST_DIALECT_LISTEN: {item:?} is not dialect=address, like \"alibaba=100.100.100.200:80\""
                    )),
                }
            }
            self.guest.dialect_listen = Some(table);
        }
        let strings: [(&str, &mut Option<String>); 20] = [
            ("IMDS_METRICS_LISTEN", &mut self.metrics.listen),
            ("IMDS_AUDIT_OUTPUT", &mut self.audit.output),
            ("IMDS_ADMIN_DEFAULT_ROLE", &mut self.admin.default_role),
            ("IMDS_NET_INTERFACE", &mut self.net.interface),
            ("IMDS_NET_PROXY_SECRET_FILE", &mut self.net.proxy_secret_file),
            ("IMDS_GUEST_NOCLOUD_PREFIX", &mut self.guest.nocloud_prefix),
            ("IMDS_ADMIN_LISTEN", &mut self.admin.listen),
            ("IMDS_ADMIN_SOCKET", &mut self.admin.socket),
            ("IMDS_ADMIN_TOKEN", &mut self.admin.token),
            ("IMDS_ADMIN_TOKEN_FILE", &mut self.admin.token_file),
            ("IMDS_STORE_BACKEND", &mut self.store.backend),
            ("IMDS_STORE_PATH", &mut self.store.path),
            ("IMDS_STORE_URL", &mut self.store.url),
            ("IMDS_STORE_NODE", &mut self.store.node),
            ("IMDS_STORE_CA", &mut self.store.ca),
            ("IMDS_STORE_CERT", &mut self.store.cert),
            ("IMDS_STORE_KEY", &mut self.store.key),
            ("IMDS_STORE_CREDENTIALS_KEY_FILE", &mut self.store.credentials_key_file),
            ("IMDS_LOG_FORMAT", &mut self.log.format),
            ("IMDS_LOG_LEVEL", &mut self.log.level),
        ];
        for (key, slot) in strings {
            if let Some(value) = lookup(key) {
                *slot = Some(value);
            }
        }
    }

    /// VMAN's variables (`VMAN_METADATA_BIND_IP`, default `169.254.169.254`;
    /// `VMAN_METADATA_PORT`, default 80) set the guest listener when `IMDS_GUEST_LISTEN` does
    /// not; `VMAN_METADATA_ENABLED=0` is refused, since `serve` always serves guests.
    fn overlay_vman(&mut self, lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) {
        if lookup("VMAN_METADATA_ENABLED").is_some_and(|v| matches!(v.trim(), "0" | "false" | "no" | "off")) {
            problems.push(
                "VMAN_METADATA_ENABLED: imds serve always serves the guest plane; unset the variable (or run no imds)"
                    .into(),
            );
        }
        let (ip, port) = (lookup("VMAN_METADATA_BIND_IP"), lookup("VMAN_METADATA_PORT"));
        if ip.is_none() && port.is_none() {
            return;
        }
        let ip = ip.map_or_else(|| "169.254.169.254".to_owned(), |ip| ip.trim().to_owned());
        let port = port.map_or_else(|| "80".to_owned(), |port| port.trim().to_owned());
        if port.parse::<u16>().is_err() {
            problems.push(format!("VMAN_METADATA_PORT: {port:?} is not a port number"));
            return;
        }
        let addr = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
        self.guest.listen = Some(vec![addr]);
    }
}

/// Where instance records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Change-log rows kept.
        retain_changes: u64,
    },
    /// In memory: gone when the process exits.
    Memory,
    /// An etcd cluster shared by many nodes (needs the `etcd` cargo feature).
    Etcd {
        /// `etcd://host:port[,host:port…][/prefix]` or `etcds://…`.
        url: String,
        /// The TLS files (`etcds://` only).
        tls: StoreTls,
    },
}

/// The PEM files of TLS to etcd (`[store] ca`, `cert`, `key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTls {
    /// The CA that signed the members' certificates.
    pub ca: Option<PathBuf>,
    /// This node's client certificate.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The daemon's planes.
    pub server: server::Config,
    /// The store.
    pub store: StoreConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// `--dev`: demo instance, loopback defaults, no admin token needed.
    pub dev: bool,
    /// Roles from the file, by name, written to the store at start.
    pub roles: Vec<(String, imds_creds::Role)>,
    /// The host datapath `imds net` sets up.
    pub net: imds_net::HostConfig,
}

/// Defaults in production: where cloud images and operators expect things.
const DEFAULT_STORE_PATH: &str = "/var/lib/imds/imds.db";
/// `--dev` data directory, under the current directory.
pub const DEV_DATA_DIR: &str = ".imds-dev";

impl Config {
    /// Validates `raw` for `dev` mode or production, adding to the `problems` found while
    /// reading it; reports every problem at once.
    pub fn resolve(raw: &RawConfig, dev: bool, mut problems: Vec<String>) -> Result<Config, Vec<String>> {
        let guest_listen = match &raw.guest.listen {
            Some(list) => list.iter().filter_map(|text| parse_addr("guest.listen", text, &mut problems)).collect(),
            None if dev => {
                vec![SocketAddr::from(([127, 0, 0, 1], 1338)), "[::1]:1338".parse().expect("a valid literal")]
            }
            None => guest::Config::default().listen,
        };
        let defaults = guest::throttle::Throttle::default();
        let throttle = guest::throttle::Throttle {
            per_second: raw.guest.throttle_per_second.unwrap_or(defaults.per_second),
            burst: raw.guest.throttle_burst.unwrap_or(defaults.burst),
        };
        if throttle.per_second > 0 && throttle.burst == 0 {
            problems.push("guest.throttle_burst: must be at least 1 while guest.throttle_per_second is set".into());
        }
        let dialects = match raw.guest.nocloud_prefix.as_deref().map(check_nocloud_prefix) {
            None => imds_dialects::Settings::default(),
            Some(Ok(prefix)) => imds_dialects::Settings { nocloud_prefix: prefix.into() },
            Some(Err(problem)) => {
                problems.push(format!("guest.nocloud_prefix: {problem}"));
                imds_dialects::Settings::default()
            }
        };
        let render_cache_bytes = raw
            .guest
            .render_cache_mib
            .map_or(imds_server::view::DEFAULT_RENDER_BYTES, |mib| usize::try_from(mib).unwrap_or(usize::MAX) << 20);
        let unknown_hold = match raw.guest.unknown_hold_ms {
            None => guest::Config::default().unknown_hold,
            Some(ms) if ms > MAX_UNKNOWN_HOLD_MS => {
                problems.push(format!(
                    "guest.unknown_hold_ms: at most {MAX_UNKNOWN_HOLD_MS} (a hold is meant to be short)"
                ));
                Duration::ZERO
            }
            Some(ms) => Duration::from_millis(u64::from(ms)),
        };
        let max_held = raw.guest.max_held.map_or(guest::Config::default().max_held, |n| n as usize);
        if raw.guest.listen.as_ref().is_some_and(Vec::is_empty) {
            problems.push("guest.listen: give at least one address, e.g. \"169.254.169.254:80\"".into());
        }
        let azure_wireserver_listen: Vec<SocketAddr> = raw
            .guest
            .azure_wireserver_listen
            .iter()
            .flatten()
            .filter_map(|text| parse_addr("guest.azure_wireserver_listen", text, &mut problems))
            .collect();
        let mut dialect_listen: Vec<(imds_dialects::Dialect, SocketAddr)> = Vec::new();
        for (name, list) in raw.guest.dialect_listen.iter().flatten() {
            let field = format!("guest.dialect_listen.{name}");
            let dialect = match imds_dialects::Dialect::from_name(name) {
                Some(imds_dialects::Dialect::Mmds) => {
                    problems.push(format!("{field}: MMDS is chosen per instance (its MMDS record), not by listener"));
                    continue;
                }
                Some(dialect) => dialect,
                None => {
                    problems.push(format!("{field}: not a dialect; use one of {}", imds_dialects::Dialect::names()));
                    continue;
                }
            };
            let addrs: Vec<SocketAddr> =
                list.iter().filter_map(|text| parse_addr(&field, text, &mut problems)).collect();
            for addr in addrs {
                // Port 0 asks the kernel for a free port: two such listeners never collide.
                if addr.port() != 0
                    && (guest_listen.contains(&addr) || dialect_listen.iter().any(|(_, other)| *other == addr))
                {
                    problems.push(format!(
                        "{field}: {addr} is also another guest listener's; a dialect's listener needs its own address"
                    ));
                }
                dialect_listen.push((dialect, addr));
            }
        }
        for addr in &azure_wireserver_listen {
            if dialect_listen.iter().any(|(_, other)| other == addr) {
                problems.push(format!(
                    "guest.azure_wireserver_listen: {addr} is also a guest.dialect_listen address; the WireServer needs its own (168.63.129.16:80)"
                ));
            }
            if guest_listen.contains(addr) {
                problems.push(format!(
                    "guest.azure_wireserver_listen: {addr} is also a guest.listen address; the WireServer needs its own (168.63.129.16:80)"
                ));
            }
        }

        let admin_listen = match raw.admin.listen.as_deref() {
            Some("") => None,
            Some(text) => parse_addr("admin.listen", text, &mut problems),
            None if dev => Some(SocketAddr::from(([127, 0, 0, 1], 8998))),
            None => None,
        };
        let admin_socket = match raw.admin.socket.as_deref() {
            Some("") => None,
            Some(path) => Some(PathBuf::from(path)),
            None if dev => None,
            None => admin::Config::default().socket,
        };
        if admin_listen.is_none() && admin_socket.is_none() {
            problems
                .push("admin: neither admin.listen nor admin.socket is set; the admin API would be unreachable".into());
        }
        let token = match (&raw.admin.token, &raw.admin.token_file) {
            (Some(_), Some(_)) => {
                problems.push("admin.token and admin.token_file are both set; keep one".into());
                None
            }
            (Some(token), None) => Some(Token::new(token)),
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(text) => Some(Token::new(&text)),
                Err(error) => {
                    problems.push(format!("admin.token_file: cannot read {file}: {error}"));
                    None
                }
            },
            (None, None) => None,
        };
        if token.as_ref().is_some_and(Token::is_empty) {
            problems.push("admin.token: the token is empty".into());
        }
        if let Some(addr) = admin_listen {
            if token.is_none() && !(dev && addr.ip().is_loopback()) {
                problems.push(format!(
                    "admin.listen: the admin API on TCP {addr} needs a bearer token (admin.token, admin.token_file or IMDS_ADMIN_TOKEN); only --dev on a loopback address may run without one"
                ));
            }
            // Port 0 asks the kernel for a free port: two such listeners never collide.
            if addr.port() != 0
                && guest_listen
                    .iter()
                    .chain(&azure_wireserver_listen)
                    .chain(dialect_listen.iter().map(|(_, addr)| addr))
                    .any(|guest: &SocketAddr| {
                        guest.port() == addr.port()
                            && (guest.ip() == addr.ip() || guest.ip().is_unspecified() || addr.ip().is_unspecified())
                    })
            {
                problems.push(format!(
                    "admin.listen: {addr} overlaps a guest listener; guests must never reach the admin API"
                ));
            }
        }

        let mut guest_interfaces = Vec::new();
        for (i, text) in raw.net.guest_interfaces.iter().flatten().enumerate() {
            match imds_net::Pattern::parse(text) {
                Ok(pattern) => guest_interfaces.push(pattern),
                Err(error) => problems.push(format!("net.guest_interfaces[{i}]: {error}")),
            }
        }
        let interface = raw.net.interface.clone().unwrap_or_else(|| "imds0".into());
        if let Err(error) = imds_net::pattern::check_name(&interface) {
            problems.push(format!("net.interface: {error}"));
        }
        let manage = raw.net.manage.unwrap_or(false);
        if manage && guest_interfaces.is_empty() {
            problems.push(
                "net.manage: identity rules need net.guest_interfaces (the taps or bridge guests arrive on)".into(),
            );
        }
        let syn_per_second = raw.net.syn_per_second.unwrap_or(100);
        let syn_burst = raw.net.syn_burst.unwrap_or(200);
        if syn_per_second > 0 && syn_burst == 0 {
            problems.push(
                "net.syn_burst: must be at least 1 while net.syn_per_second is set (0 turns the limit off)".into(),
            );
        }
        let mut proxies = Vec::new();
        for (i, text) in raw.net.proxies.iter().flatten().enumerate() {
            match text.parse::<std::net::IpAddr>() {
                Ok(ip) => proxies.push(ip.to_canonical()),
                Err(_) => problems.push(format!("net.proxies[{i}]: {text:?} is not an IP address")),
            }
        }
        let proxy_secret = match &raw.net.proxy_secret_file {
            None => None,
            Some(file) => match std::fs::read(file) {
                Ok(bytes) => {
                    let secret = String::from_utf8_lossy(&bytes).trim().to_owned();
                    if secret.len() < 16 {
                        problems.push(format!(
                            "net.proxy_secret_file: {file} holds {} characters; a shared secret needs at least 16",
                            secret.len()
                        ));
                    }
                    Some(guest::identify::ProxySecret::new(secret))
                }
                Err(error) => {
                    problems.push(format!("net.proxy_secret_file: cannot read {file}: {error}"));
                    None
                }
            },
        };
        if proxy_secret.is_some() && proxies.is_empty() {
            problems.push("net.proxy_secret_file: set net.proxies, the addresses the proxies call from".into());
        }
        let identify =
            guest::identify::Config { proxies, proxy_secret, neighbours: raw.net.neighbours.unwrap_or(true) };
        let guest_reachable = !guest_interfaces.is_empty()
            || guest_listen
                .iter()
                .chain(dialect_listen.iter().map(|(_, addr)| addr))
                .any(|addr: &SocketAddr| !addr.ip().is_loopback());
        if let Some(addr) = admin_listen {
            if !addr.ip().is_loopback() && guest_reachable && raw.admin.allow_guest_reachable != Some(true) {
                problems.push(format!(
                    "admin.listen: guests can reach {addr} (Linux accepts packets for any local address on any interface, guest interfaces included); bind the admin API to 127.0.0.1 or use admin.socket, or set [admin] allow_guest_reachable = true if a firewall keeps guests out (`imds net up` drops the admin port on net.guest_interfaces)"
                ));
            }
        }
        let (metrics, audit) =
            operations(raw, &guest_listen, &azure_wireserver_listen, admin_listen, guest_reachable, &mut problems);
        let net = imds_net::HostConfig {
            guest_interfaces,
            interface,
            addresses: {
                // The metadata addresses imds puts on the host: link-local IPv4 (169.254.169.254)
                // and unique-local IPv6 (fd00:ec2::254). Other listen addresses (a proxy-facing
                // host address) are the host's own already.
                let mut ips: Vec<std::net::IpAddr> = guest_listen
                    .iter()
                    .map(|addr: &SocketAddr| addr.ip())
                    .filter(|ip| match ip {
                        std::net::IpAddr::V4(ip) => ip.is_link_local(),
                        std::net::IpAddr::V6(ip) => ip.is_unique_local(),
                    })
                    .collect();
                // A dialect's own address (Alibaba's 100.100.100.200, the container endpoints'
                // 169.254.170.2) exists only for imds: it goes on the host too.
                for (_, addr) in &dialect_listen {
                    let ip = addr.ip();
                    if !ip.is_loopback() && !ip.is_unspecified() && !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                ips.dedup();
                ips
            },
            guest_ports: {
                let mut ports: Vec<u16> = guest_listen
                    .iter()
                    .chain(dialect_listen.iter().map(|(_, addr)| addr))
                    .map(|addr: &SocketAddr| addr.port())
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                ports
            },
            // `imds net up` keeps guests off the metrics address as off the admin API's.
            admin_ports: admin_listen.into_iter().chain(metrics.listen).map(|addr| addr.port()).collect(),
            manage,
            syn_per_second,
            syn_burst,
        };

        // A URL alone names the etcd backend; a URL beside another backend is a mistake, not
        // something to ignore while a local SQLite file quietly takes the writes.
        let backend = raw.store.backend.as_deref().unwrap_or(if raw.store.url.is_some() { "etcd" } else { "sqlite" });
        if let (Some(url), "sqlite" | "memory") = (&raw.store.url, backend) {
            problems.push(format!(
                "store.url: {url:?} is an etcd address but store.backend is {backend:?}; set backend = \"etcd\" or \
                 remove the url"
            ));
        }
        let store = match backend {
            "sqlite" => StoreConfig::Sqlite {
                path: raw.store.path.as_ref().map(PathBuf::from).unwrap_or_else(|| {
                    if dev {
                        Path::new(DEV_DATA_DIR).join("imds.db")
                    } else {
                        PathBuf::from(DEFAULT_STORE_PATH)
                    }
                }),
                retain_changes: raw.store.retain_changes.unwrap_or(100_000),
            },
            "memory" => StoreConfig::Memory,
            "etcd" => match &raw.store.url {
                Some(url) => etcd_store(url, "store.url", &raw.store, &mut problems),
                None => {
                    problems.push("store.url: the etcd backend needs etcd://host:port[,host:port…][/prefix]".into());
                    StoreConfig::Memory
                }
            },
            url if url.starts_with("etcd://") || url.starts_with("etcds://") => {
                etcd_store(url, "store.backend", &raw.store, &mut problems)
            }
            other => {
                problems.push(format!(
                    "store.backend: {other:?} is not a backend; use \"sqlite\", \"memory\" or an etcd:// (etcds://) URL"
                ));
                StoreConfig::Memory
            }
        };
        let scope = match raw.store.node.as_deref() {
            None | Some("all") => Scope::All,
            Some(node) => {
                if let Err(error) = imds_model::node_name(node) {
                    problems.push(format!("store.node: {node:?} {error}"));
                }
                Scope::Node(node.to_owned())
            }
        };
        let fleet = raw.store.credentials_key_file.as_ref().and_then(|path| {
            match imds_server::fleet::FleetKey::from_file(Path::new(path)) {
                Ok(key) => {
                    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                    let name = scope.node().map_or_else(|| host.trim().to_owned(), str::to_owned);
                    Some(imds_server::fleet::Config {
                        key,
                        holder: format!("{name}/{}", std::process::id()),
                        lease_ttl: std::time::Duration::from_secs(raw.fleet.lease_ttl_secs.unwrap_or(15)),
                        // A hypervisor holds no base credentials unless it is named a refresher.
                        refresher: raw.fleet.refresher.unwrap_or(scope == Scope::All),
                    })
                }
                Err(error) => {
                    problems.push(format!("store.credentials_key_file: {error}"));
                    None
                }
            }
        });
        if raw.fleet.refresher == Some(false) && raw.store.credentials_key_file.is_none() {
            problems.push(
                "fleet.refresher: false needs store.credentials_key_file (without a deployment key every node \
                 refreshes its own roles)"
                    .into(),
            );
        }
        if let Some(ttl) = raw.fleet.lease_ttl_secs.filter(|ttl| !(2..=300).contains(ttl)) {
            problems.push(format!("fleet.lease_ttl_secs: {ttl} is outside 2 to 300 seconds"));
        }
        if raw.store.retain_changes == Some(0) {
            problems.push("store.retain_changes: keep at least 1 change".into());
        }

        let defaults = imds_model::Limits::default();
        let limits = imds_model::Limits {
            max_user_data: raw.limits.max_user_data.unwrap_or(defaults.max_user_data),
            max_record: raw.limits.max_record.unwrap_or(defaults.max_record),
            max_mmds: raw.limits.max_mmds.unwrap_or(defaults.max_mmds),
        };
        if limits.max_user_data == 0 {
            problems.push("limits.max_user_data: must be at least 1 byte".into());
        }
        if limits.max_mmds == 0 {
            problems.push("limits.max_mmds: must be at least 1 byte".into());
        }
        if limits.max_record < 1024 {
            problems.push("limits.max_record: must be at least 1024 bytes".into());
        }
        let import_defaults = admin::import::Limits::default();
        let import = admin::import::Limits {
            max_body: raw.admin.import_max_body.unwrap_or(import_defaults.max_body),
            max_lines: raw.admin.import_max_lines.unwrap_or(import_defaults.max_lines),
        };
        if import.max_body < 1024 {
            problems.push("admin.import_max_body: must be at least 1024 bytes".into());
        }
        if import.max_lines == 0 {
            problems.push("admin.import_max_lines: must be at least 1".into());
        }
        let mut connections = listener::Limits::default();
        if let Some(max) = raw.limits.max_connections {
            if max == 0 {
                problems.push("limits.max_connections: must be at least 1".into());
            }
            connections.max_connections = max.max(1);
        }
        if let Some(cap) = raw.limits.max_connections_per_source {
            connections.max_connections_per_source = (cap > 0).then_some(cap);
        }
        if let Some(secs) = raw.limits.header_read_timeout_secs {
            if !(1..=300).contains(&secs) {
                problems.push("limits.header_read_timeout_secs: must be from 1 to 300".into());
            }
            connections.header_read_timeout = std::time::Duration::from_secs(secs.clamp(1, 300));
        }

        let log_format = match raw.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                problems.push(format!("log.format: {other:?} is not a format; use \"text\" or \"json\""));
                LogFormat::Text
            }
        };
        let log_level = raw.log.level.clone().unwrap_or_else(|| "info".into());
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            problems.push(format!("log.level: {log_level:?} is not a filter: {error}"));
        }

        let mut roles = Vec::new();
        for (name, value) in &raw.roles {
            if let Err(error) = imds_model::RoleName::try_from(name.as_str()) {
                problems.push(format!("roles.{name}: {error}"));
                continue;
            }
            let json = match serde_json::to_value(value) {
                Ok(json) => json,
                Err(error) => {
                    problems.push(format!("roles.{name}: {error}"));
                    continue;
                }
            };
            match imds_creds::Role::parse(&json) {
                Ok(role) => roles.push((name.clone(), role)),
                Err(error) => problems.push(format!("roles.{name}.{}: {}", error.field, error.message)),
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        let write_visibility_timeout = raw
            .admin
            .write_visibility_timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(admin::Config::default().write_visibility_timeout);
        Ok(Config {
            server: server::Config {
                guest: guest::Config {
                    listen: guest_listen,
                    throttle,
                    dialects,
                    render_cache_bytes,
                    azure_wireserver_listen,
                    dialect_listen,
                    unknown_hold,
                    max_held,
                    write_visibility_timeout,
                    identify,
                    scope: scope.clone(),
                },
                admin: admin::Config {
                    listen: admin_listen,
                    socket: admin_socket,
                    token,
                    write_visibility_timeout,
                    import,
                    compat: admin::compat::Config { default_role: raw.admin.default_role.clone() },
                },
                limits,
                connections,
                scope,
                net: None,
                metrics,
                audit,
                fleet,
            },
            store,
            log_format,
            log_level,
            dev,
            roles,
            net,
        })
    }
}

/// `[metrics]` and `[audit]`: the metrics address follows the admin API's rules (never a guest
/// listener's address; not where guests reach it unless `admin.allow_guest_reachable`).
fn operations(
    raw: &RawConfig,
    guest_listen: &[SocketAddr],
    wireserver_listen: &[SocketAddr],
    admin_listen: Option<SocketAddr>,
    guest_reachable: bool,
    problems: &mut Vec<String>,
) -> (imds_server::metrics::Config, imds_server::audit::Config) {
    let listen = match raw.metrics.listen.as_deref() {
        None | Some("") => None,
        Some(text) => parse_addr("metrics.listen", text, problems),
    };
    if let Some(addr) = listen {
        let overlaps = |other: &SocketAddr| {
            other.port() == addr.port()
                && (other.ip() == addr.ip() || other.ip().is_unspecified() || addr.ip().is_unspecified())
        };
        if addr.port() != 0 && guest_listen.iter().chain(wireserver_listen).any(overlaps) {
            problems.push(format!("metrics.listen: {addr} overlaps a guest listener; guests must never reach it"));
        }
        if addr.port() != 0 && admin_listen.as_ref().is_some_and(overlaps) {
            problems.push(format!(
                "metrics.listen: {addr} is the admin API's address; /metrics is served there already (with the token)"
            ));
        }
        if !addr.ip().is_loopback() && guest_reachable && raw.admin.allow_guest_reachable != Some(true) {
            problems.push(format!(
                "metrics.listen: guests can reach {addr}; bind it to 127.0.0.1 or a management address guests cannot reach, or set [admin] allow_guest_reachable = true if a firewall keeps guests out (`imds net up` drops the metrics port on net.guest_interfaces)"
            ));
        }
    }
    let metrics = imds_server::metrics::Config { listen, per_instance: raw.metrics.per_instance.unwrap_or(false) };
    let output = match raw.audit.output.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("stdout" | "-") => Some(imds_server::audit::Output::Stdout),
        Some(path) => Some(imds_server::audit::Output::File(PathBuf::from(path))),
    };
    let queue = raw.audit.queue.unwrap_or(imds_server::audit::DEFAULT_QUEUE);
    if queue == 0 {
        problems.push("audit.queue: must be at least 1".into());
    }
    (metrics, imds_server::audit::Config { output, queue })
}

/// The etcd store at `url` with the `[store]` TLS files, or problems naming the field (also when
/// this build lacks etcd).
fn etcd_store(url: &str, field: &str, raw: &RawStore, problems: &mut Vec<String>) -> StoreConfig {
    #[cfg(feature = "etcd")]
    if let Err(error) = imds_store_etcd::EtcdOptions::from_url(url) {
        problems.push(format!("{field}: {error}"));
    }
    #[cfg(not(feature = "etcd"))]
    problems.push(format!("{field}: {url:?} needs an imds built with the `etcd` cargo feature"));
    let tls = StoreTls {
        ca: raw.ca.as_ref().map(PathBuf::from),
        cert: raw.cert.as_ref().map(PathBuf::from),
        key: raw.key.as_ref().map(PathBuf::from),
    };
    let named = [("store.ca", &tls.ca), ("store.cert", &tls.cert), ("store.key", &tls.key)];
    if url.starts_with("etcds://") {
        if tls.ca.is_none() {
            problems.push("store.ca: an etcds:// store needs the PEM file of the cluster's CA".into());
        }
        if tls.cert.is_some() != tls.key.is_some() {
            let missing = if tls.cert.is_none() { "store.cert" } else { "store.key" };
            problems.push(format!("{missing}: a client certificate and its key go together"));
        }
        for (name, path) in named {
            if let Some(path) = path {
                // Readable now, or the node would fail only when it connects.
                if let Err(error) = std::fs::File::open(path) {
                    problems.push(format!("{name}: cannot read {}: {error}", path.display()));
                }
            }
        }
    } else if let Some((name, _)) = named.iter().find(|(_, path)| path.is_some()) {
        problems.push(format!("{name}: TLS files need an etcds:// store URL"));
    }
    StoreConfig::Etcd { url: url.to_owned(), tls }
}

/// Overlays a whole-number variable, or reports it malformed.
/// Checks a NoCloud prefix: a path with leading and trailing `/`, at least one segment, no
/// characters a URL would escape, and not under another dialect's paths or an EC2 version.
fn check_nocloud_prefix(prefix: &str) -> Result<String, String> {
    let shaped = prefix.len() > 2 && prefix.starts_with('/') && prefix.ends_with('/') && !prefix.contains("//");
    let clean = prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b));
    if !shaped || !clean {
        return Err(format!(
            "{prefix:?} must be a path like \"/nocloud/\": starting and ending with \"/\", letters, digits, \"-._~\""
        ));
    }
    let first = prefix[1..].split('/').next().unwrap_or_default();
    let probe = imds_dialects::Settings { nocloud_prefix: std::borrow::Cow::Borrowed("/\u{0}/") };
    let ec2_version = first == "latest" || first.starts_with(|c: char| c.is_ascii_digit());
    if ec2_version || imds_dialects::Dialect::for_path(prefix, &probe) != imds_dialects::Dialect::Ec2 {
        return Err(format!("{prefix:?} is under another dialect's paths"));
    }
    Ok(prefix.to_owned())
}

/// The longest `guest.unknown_hold_ms` accepted.
const MAX_UNKNOWN_HOLD_MS: u32 = 10_000;

fn env_number<T: std::str::FromStr>(
    lookup: &dyn Fn(&str) -> Option<String>,
    key: &str,
    slot: &mut Option<T>,
    problems: &mut Vec<String>,
) {
    if let Some(value) = lookup(key) {
        match value.trim().parse() {
            Ok(n) => *slot = Some(n),
            Err(_) => problems.push(format!("{key}: {value:?} is not a whole number")),
        }
    }
}

fn parse_addr(field: &str, text: &str, problems: &mut Vec<String>) -> Option<SocketAddr> {
    match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(format!(
                "{field}: {text:?} is not an address with a port, like \"127.0.0.1:8998\" or \"[::1]:1338\""
            ));
            None
        }
    }
}

/// Removes the key `path` names (for an array element: the array) from `table`; false when the
/// path names nothing that can be removed.
fn remove_path(table: &mut toml::Table, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let keys: Vec<&str> = path
        .iter()
        .map_while(|segment| match segment {
            Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = keys.split_last() else {
        return false;
    };
    let mut current = table;
    for key in parents {
        match current.get_mut(*key) {
            Some(toml::Value::Table(child)) => current = child,
            _ => return false,
        }
    }
    current.remove(*last).is_some()
}

#[cfg(test)]
mod tests;
