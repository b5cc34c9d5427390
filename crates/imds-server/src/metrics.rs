//! Prometheus metrics: what the daemon counts, and `GET /metrics` (OpenMetrics text, or the classic
//! text format for clients that do not ask for OpenMetrics).
//!
//! [`Metrics`] holds plain atomics, one per fixed label set (dialect × status class, dialect ×
//! reason, …), created at start-up: the guest path increments them and takes no lock (it never
//! touches a `prometheus-client` `Family`, whose map sits behind a lock). What can be read off
//! the daemon's state (the view's revision and staleness, the render cache's bytes, every
//! role's credential expiry and refresh outcomes, per-instance counts) is read at scrape time
//! by [`Exporter`], the one `prometheus-client` collector. Per-listener connection figures are
//! registered once per listener at start ([`Metrics::listener`]). Store writes are timed by
//! the [`store::Timed`] wrapper. The metric names, labels and meanings are listed in
//! `docs/operations.md`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use imds_dialects::sensitive::Read;
use imds_dialects::Dialect;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::view::View;

mod histogram;
pub mod store;

use histogram::Histogram;

/// `Content-Type` of `/metrics` in the OpenMetrics text format (what `prometheus-client` writes,
/// `# EOF` included), which Prometheus asks for first in its `Accept` header.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of `/metrics` in Prometheus's classic text format, for clients that do not ask
/// for OpenMetrics (curl, older scrapers), as node_exporter answers them.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// At most this many instances get per-instance series ([`Config::per_instance`]).
pub const PER_INSTANCE_MAX: usize = 1000;

/// The metrics' settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Also serve `/metrics`, without authentication, on this TCP address (`[metrics] listen`).
    pub listen: Option<SocketAddr>,
    /// Export guest requests per instance as well (`[metrics] per_instance`): one series per
    /// instance this node serves, for the first [`PER_INSTANCE_MAX`] instances by id. Off by
    /// default: on a large host it would be thousands of series.
    pub per_instance: bool,
}

const DIALECTS: usize = Dialect::ALL.len();
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const READS: [Read; 5] = [Read::Credentials, Read::Token, Read::Signature, Read::UserData, Read::Mmds];
/// The dialects with session tokens.
const SESSION_DIALECTS: [Dialect; 4] = [Dialect::Ec2, Dialect::Mmds, Dialect::Alibaba, Dialect::Linode];

fn counters<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// How a guest request ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered for an instance.
    Served,
    /// From an address no instance holds (or a forged proxy header).
    Unknown,
    /// Over its instance's request budget.
    Throttled,
}

/// What the guest plane tells the metrics about one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestRequest {
    pub(crate) dialect: Dialect,
    pub(crate) status: StatusCode,
    pub(crate) outcome: Outcome,
    pub(crate) read: Option<Read>,
    /// Whether it carried a session token (EC2, MMDS; `None` for the other dialects).
    pub(crate) token: Option<bool>,
    /// How long it took; `None` for long polls, which wait on purpose.
    pub(crate) elapsed: Option<Duration>,
}

/// One listener's connections.
#[derive(Debug)]
pub struct Connections {
    listener: &'static str,
    address: String,
    open: AtomicI64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl Connections {
    /// A connection was accepted; it counts as open until the returned guard drops.
    pub(crate) fn accepted(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }

    /// A connection was closed at once (its source's every connection was busy).
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// An open connection, counted in [`Connections`] until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(Arc<Connections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A long poll waiting, counted until dropped.
#[derive(Debug)]
pub(crate) struct Waiting<'a>(&'a AtomicI64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every counter the daemon keeps.
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; CLASSES.len()]; DIALECTS],
    latency: Vec<Histogram>,
    no_token: [AtomicU64; DIALECTS],
    token_missing: [AtomicU64; DIALECTS],
    token_invalid: [AtomicU64; DIALECTS],
    tokens_minted: [AtomicU64; DIALECTS],
    unknown: [AtomicU64; DIALECTS],
    throttled: [AtomicU64; DIALECTS],
    reads: [AtomicU64; READS.len()],
    long_polls: AtomicI64,
    listeners: Mutex<Vec<Arc<Connections>>>,
    store_writes: Histogram,
    store_write_errors: AtomicU64,
    /// Audit lines written, and dropped because the writer fell behind.
    pub(crate) audit_written: AtomicU64,
    /// See [`Metrics::audit_written`].
    pub(crate) audit_dropped: AtomicU64,
    per_instance: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Metrics {
    /// Every counter at zero; `per_instance`: count each instance's requests too.
    pub fn new(per_instance: bool) -> Self {
        Self {
            requests: std::array::from_fn(|_| counters()),
            latency: (0..DIALECTS).map(|_| Histogram::new(histogram::LATENCY)).collect(),
            no_token: counters(),
            token_missing: counters(),
            token_invalid: counters(),
            tokens_minted: counters(),
            unknown: counters(),
            throttled: counters(),
            reads: counters(),
            long_polls: AtomicI64::new(0),
            listeners: Mutex::new(Vec::new()),
            store_writes: Histogram::new(histogram::LATENCY),
            store_write_errors: AtomicU64::new(0),
            audit_written: AtomicU64::new(0),
            audit_dropped: AtomicU64::new(0),
            per_instance,
        }
    }

    /// Whether instances' requests are counted one by one.
    pub(crate) fn per_instance(&self) -> bool {
        self.per_instance
    }

    /// The connection figures of a new listener (`guest`, `wireserver`, `admin`, `metrics`).
    pub fn listener(&self, listener: &'static str, address: SocketAddr) -> Arc<Connections> {
        let connections = Arc::new(Connections {
            listener,
            address: address.to_string(),
            open: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        self.listeners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Arc::clone(&connections));
        connections
    }

    /// Counts a long poll as waiting until the guard drops.
    pub(crate) fn long_poll(&self) -> Waiting<'_> {
        self.long_polls.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.long_polls)
    }

    /// Counts one guest request.
    pub(crate) fn guest(&self, request: &GuestRequest) {
        let d = request.dialect as usize;
        let class = usize::from(request.status.as_u16() / 100).clamp(1, CLASSES.len()) - 1;
        let inc = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
        inc(&self.requests[d][class]);
        if let Some(elapsed) = request.elapsed {
            self.latency[d].observe(elapsed);
        }
        match request.outcome {
            Outcome::Unknown => inc(&self.unknown[d]),
            Outcome::Throttled => inc(&self.throttled[d]),
            Outcome::Served => 0,
        };
        if request.outcome != Outcome::Served {
            return;
        }
        let ok = request.status.is_success();
        if let Some(read) = request.read.filter(|_| ok) {
            inc(&self.reads[READS.iter().position(|r| *r == read).unwrap_or(0)]);
        }
        if request.read == Some(Read::Token) {
            if ok {
                inc(&self.tokens_minted[d]);
            }
            return;
        }
        match (request.token, request.status) {
            (Some(false), status) if status.is_success() => inc(&self.no_token[d]),
            (Some(false), StatusCode::UNAUTHORIZED) => inc(&self.token_missing[d]),
            (Some(true), StatusCode::UNAUTHORIZED) => inc(&self.token_invalid[d]),
            _ => 0,
        };
    }
}

/// What a scrape reads besides the counters: the daemon's running state.
#[derive(Debug)]
struct Sources {
    metrics: Arc<Metrics>,
    view: View,
    credentials: Arc<imds_creds::Manager>,
}

/// Renders `/metrics`: the counters of [`Metrics`] and the gauges read off the running daemon.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    /// An exporter of `metrics`, reading the view and the roles' credentials at each scrape.
    pub fn new(metrics: Arc<Metrics>, view: View, credentials: Arc<imds_creds::Manager>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Sources { metrics, view, credentials }));
        Self { registry }
    }

    /// The OpenMetrics text of every metric now.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }
}

/// Prometheus's classic text format (0.0.4) of an OpenMetrics exposition: a counter family is
/// named with its `_total` suffix, and the `# UNIT` and `# EOF` lines go (the samples, their
/// labels and escaping are the same in both).
pub fn classic_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, help)) = line.strip_prefix("# HELP ").and_then(|rest| rest.split_once(' ')) {
            if lines.peek().and_then(|next| next.strip_prefix("# TYPE ")) == Some(&format!("{name} counter")) {
                lines.next();
                out.push_str(&format!("# HELP {name}_total {help}\n# TYPE {name}_total counter\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether an `Accept` header asks for OpenMetrics.
fn wants_openmetrics(accept: Option<&http::HeaderValue>) -> bool {
    accept.and_then(|value| value.to_str().ok()).is_some_and(|accept| accept.contains("application/openmetrics-text"))
}

/// `GET /metrics`: every metric in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health", responses(
    (status = 200, description = "Every metric (docs/operations.md lists them): OpenMetrics text when the `Accept` header asks for `application/openmetrics-text` (as Prometheus does), else Prometheus's classic text format",
     content((String = "application/openmetrics-text; version=1.0.0; charset=utf-8"), (String = "text/plain; version=0.0.4; charset=utf-8")))))]
pub async fn serve(State(exporter): State<Arc<Exporter>>, headers: http::HeaderMap) -> Response {
    let text = exporter.render();
    if wants_openmetrics(headers.get(header::ACCEPT)) {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], classic_text(&text)).into_response()
    }
}

/// A router with `/metrics` alone, for the unauthenticated `[metrics] listen` address.
pub fn router(exporter: Arc<Exporter>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(serve))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
        .with_state(exporter)
}

type Fmt = std::fmt::Result;

/// Writes one counter family whose series are `(labels, value)`.
fn counter<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Fmt {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        family.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

/// Writes one gauge family whose series are `(labels, value)`.
fn gauge<L: prometheus_client::encoding::EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (L, V)>,
) -> Fmt {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// Writes one counter without labels.
fn counter1(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Fmt {
    encoder.encode_descriptor(name, help, None, MetricType::Counter)?.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// Writes one gauge without labels.
fn gauge1(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl prometheus_client::encoding::EncodeGaugeValue,
) -> Fmt {
    encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?.encode_gauge(&value)
}

/// `value` escaped as an OpenMetrics label value (`prometheus-client` writes values as given).
/// Instance ids and role names are validated to need none; this keeps the exposition whole if
/// that ever changes.
fn escaped(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// One role's credential figures at a scrape (over its per-instance sessions, if any).
struct RoleFigures {
    succeeded: u64,
    failed: u64,
    /// Seconds left of the soonest-expiring credentials held; `None` while some hold none.
    expiry: Option<i64>,
    /// Whether every session has credentials guests are served.
    valid: bool,
    /// Whether every session seen so far holds credentials.
    expiring: bool,
}

impl Sources {
    fn by_dialect<'a>(
        counters: &'a [AtomicU64; DIALECTS],
        dialects: &'a [Dialect],
    ) -> impl Iterator<Item = ([(&'static str, &'static str); 1], u64)> + 'a {
        dialects.iter().map(|d| ([("dialect", d.name())], load(&counters[*d as usize])))
    }

    fn encode_guest(&self, encoder: &mut DescriptorEncoder<'_>) -> Fmt {
        let m = &self.metrics;
        let requests = Dialect::ALL.iter().flat_map(|d| {
            CLASSES
                .iter()
                .enumerate()
                .map(move |(c, class)| ([("dialect", d.name()), ("class", *class)], load(&m.requests[*d as usize][c])))
        });
        counter(encoder, "imds_guest_requests", "Guest requests answered, by dialect and status class.", requests)?;
        let mut latency = encoder.encode_descriptor(
            "imds_guest_request_duration",
            "Time to answer a guest request (long polls excepted), by dialect.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for d in Dialect::ALL {
            m.latency[d as usize].encode_with(&mut latency, &[("dialect", d.name())])?;
        }
        counter(
            encoder,
            "imds_guest_no_token_requests",
            "Requests answered without a session token (IMDSv1; AWS's MetadataNoToken), by dialect.",
            Self::by_dialect(&m.no_token, &SESSION_DIALECTS),
        )?;
        let rejected = SESSION_DIALECTS.iter().flat_map(|d| {
            [("missing", &m.token_missing), ("invalid", &m.token_invalid)]
                .map(|(reason, counters)| ([("dialect", d.name()), ("reason", reason)], load(&counters[*d as usize])))
        });
        counter(
            encoder,
            "imds_guest_token_rejected",
            "Requests refused 401 for a missing (required) or invalid session token, by dialect.",
            rejected,
        )?;
        counter(
            encoder,
            "imds_guest_tokens_minted",
            "Session tokens minted (PUT /latest/api/token answered 200), by dialect.",
            Self::by_dialect(&m.tokens_minted, &SESSION_DIALECTS),
        )?;
        counter(
            encoder,
            "imds_guest_unknown_callers",
            "Requests refused because no instance holds the caller's address, by the dialect asked.",
            Self::by_dialect(&m.unknown, &Dialect::ALL),
        )?;
        counter(
            encoder,
            "imds_guest_throttled",
            "Requests refused over their instance's request budget, by dialect.",
            Self::by_dialect(&m.throttled, &Dialect::ALL),
        )?;
        let reads = READS.iter().enumerate().map(|(i, read)| ([("kind", read.name())], load(&m.reads[i])));
        counter(
            encoder,
            "imds_guest_sensitive_reads",
            "Sensitive reads answered 2xx (credentials, tokens, signatures, user-data, MMDS), by kind.",
            reads,
        )?;
        gauge1(
            encoder,
            "imds_guest_long_polls",
            "Long polls (GCE wait_for_change) waiting now.",
            None,
            m.long_polls.load(Ordering::Relaxed),
        )?;
        if m.per_instance {
            let snapshot = self.view.load();
            let mut entries: Vec<_> = snapshot.entries().collect();
            entries.sort_unstable_by(|a, b| a.instance.id.as_str().cmp(b.instance.id.as_str()));
            let series = entries
                .iter()
                .take(PER_INSTANCE_MAX)
                .map(|entry| ([("instance", escaped(entry.instance.id.as_str()))], load(&entry.throttle.requests)));
            counter(
                encoder,
                "imds_guest_instance_requests",
                "Guest requests of each instance this node serves (identified callers; [metrics] per_instance).",
                series,
            )?;
        }
        Ok(())
    }

    fn encode_connections(&self, encoder: &mut DescriptorEncoder<'_>) -> Fmt {
        let listeners = self.metrics.listeners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let labels = |c: &Connections| [("listener", c.listener.to_owned()), ("address", c.address.clone())];
        gauge(
            encoder,
            "imds_connections_open",
            "Connections open now, by listener.",
            None,
            listeners.iter().map(|c| (labels(c), c.open.load(Ordering::Relaxed))),
        )?;
        counter(
            encoder,
            "imds_connections_accepted",
            "Connections accepted, by listener.",
            listeners.iter().map(|c| (labels(c), load(&c.accepted))),
        )?;
        counter(
            encoder,
            "imds_connections_refused",
            "Connections closed at once because every connection of their source was busy, by listener.",
            listeners.iter().map(|c| (labels(c), load(&c.refused))),
        )
    }

    fn encode_state(&self, encoder: &mut DescriptorEncoder<'_>) -> Fmt {
        let snapshot = self.view.load();
        let health = self.view.health().status();
        let ready = self.view.is_ready();
        gauge1(
            encoder,
            "imds_view_revision",
            "The store revision the view guests read holds.",
            None,
            if ready { snapshot.rev().0 } else { 0 },
        )?;
        gauge1(encoder, "imds_view_instances", "Instances in the view this node serves.", None, snapshot.len())?;
        if let Some(staleness) = health.staleness {
            gauge1(
                encoder,
                "imds_view_staleness",
                "Time since the replica last applied a change or heard progress from the store.",
                Some(&Unit::Seconds),
                staleness.as_secs_f64(),
            )?;
        }
        gauge1(
            encoder,
            "imds_store_connected",
            "1 while the replica follows the store's change feed.",
            None,
            i64::from(health.connected),
        )?;
        let mut writes = encoder.encode_descriptor(
            "imds_store_write_duration",
            "Time of store writes (commits), admin and guest writes alike.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        self.metrics.store_writes.encode(&mut writes)?;
        counter1(
            encoder,
            "imds_store_write_errors",
            "Store writes that failed.",
            load(&self.metrics.store_write_errors),
        )?;
        let budget = snapshot.budget();
        gauge1(
            encoder,
            "imds_render_cache",
            "Bytes of renderings kept (EC2 trees, GCE and Azure answers).",
            Some(&Unit::Bytes),
            budget.used(),
        )?;
        gauge1(
            encoder,
            "imds_render_cache_limit",
            "The render cache's budget (guest.render_cache_mib).",
            Some(&Unit::Bytes),
            budget.limit(),
        )?;
        counter1(encoder, "imds_audit_lines_written", "Audit lines written.", load(&self.metrics.audit_written))?;
        counter1(
            encoder,
            "imds_audit_lines_dropped",
            "Audit lines dropped because the writer fell behind (its queue was full) or could not write.",
            load(&self.metrics.audit_dropped),
        )
    }

    fn encode_credentials(&self, encoder: &mut DescriptorEncoder<'_>) -> Fmt {
        let now = self.credentials.clock().now();
        // One series per role: the sessions of a role assumed per instance are summed (fetches)
        // or taken at their worst (expiry, validity), so no series is per instance.
        let mut by_role: std::collections::BTreeMap<&str, RoleFigures> = std::collections::BTreeMap::new();
        let all = self.credentials.states();
        for (name, state) in &all {
            let figures = by_role.entry(crate::creds::role_of(name)).or_insert(RoleFigures {
                succeeded: 0,
                failed: 0,
                expiry: None,
                valid: true,
                expiring: true,
            });
            figures.succeeded += state.succeeded;
            figures.failed += state.failed;
            figures.valid &= state.usable(now).is_some();
            match (&state.served, figures.expiry) {
                (Some(served), expiry) if figures.expiring => {
                    let left = served.expiration as i64 - now as i64;
                    figures.expiry = Some(expiry.map_or(left, |worst: i64| worst.min(left)));
                }
                (None, _) => {
                    figures.expiring = false;
                    figures.expiry = None;
                }
                _ => {}
            }
        }
        let states: Vec<(&str, RoleFigures)> = by_role.into_iter().collect();
        let refreshes = states.iter().flat_map(|(name, state)| {
            [("success", state.succeeded), ("failure", state.failed)]
                .map(|(outcome, value)| ([("role", escaped(name)), ("outcome", outcome.into())], value))
        });
        counter(
            encoder,
            "imds_credential_refreshes",
            "Credential fetches of each role since it started, by outcome.",
            refreshes,
        )?;
        let expiry = states.iter().filter_map(|(name, state)| Some(([("role", escaped(name))], state.expiry?)));
        gauge(
            encoder,
            "imds_credential_expiry",
            "Seconds until the credentials a role holds expire (negative once expired).",
            Some(&Unit::Seconds),
            expiry,
        )?;
        let valid = states.iter().map(|(name, state)| ([("role", escaped(name))], i64::from(state.valid)));
        gauge(
            encoder,
            "imds_credential_valid",
            "1 while a role has credentials guests are served (at least five minutes left).",
            None,
            valid,
        )
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Fmt {
        gauge(
            &mut encoder,
            "imds_build_info",
            "The running imds version.",
            None,
            [([("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;
        self.encode_guest(&mut encoder)?;
        self.encode_connections(&mut encoder)?;
        self.encode_state(&mut encoder)?;
        self.encode_credentials(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dialect: Dialect, status: u16, token: Option<bool>, read: Option<Read>) -> GuestRequest {
        GuestRequest {
            dialect,
            status: StatusCode::from_u16(status).unwrap(),
            outcome: Outcome::Served,
            read,
            token,
            elapsed: Some(Duration::from_micros(80)),
        }
    }

    #[test]
    fn the_classic_format_names_counters_with_their_suffix_and_drops_openmetrics_lines() {
        let openmetrics = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n\
                           # HELP a_age Age.\n# TYPE a_age gauge\n# UNIT a_age seconds\na_age 2.5\n# EOF\n";
        assert_eq!(
            classic_text(openmetrics),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n\
             # HELP a_age Age.\n# TYPE a_age gauge\na_age 2.5\n"
        );
        let accept = http::HeaderValue::from_static("application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
        assert!(wants_openmetrics(Some(&accept)));
        assert!(!wants_openmetrics(Some(&http::HeaderValue::from_static("*/*"))));
        assert!(!wants_openmetrics(None));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escaped("web-1"), "web-1");
        assert_eq!(escaped("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn token_outcomes_are_told_apart() {
        let metrics = Metrics::default();
        let ec2 = Dialect::Ec2 as usize;
        metrics.guest(&request(Dialect::Ec2, 200, Some(false), None));
        metrics.guest(&request(Dialect::Ec2, 401, Some(false), None));
        metrics.guest(&request(Dialect::Ec2, 401, Some(true), Some(Read::Credentials)));
        metrics.guest(&request(Dialect::Ec2, 200, Some(false), Some(Read::Token)));
        metrics.guest(&request(Dialect::Ec2, 200, Some(true), Some(Read::Credentials)));
        assert_eq!(load(&metrics.no_token[ec2]), 1);
        assert_eq!(load(&metrics.token_missing[ec2]), 1);
        assert_eq!(load(&metrics.token_invalid[ec2]), 1);
        assert_eq!(load(&metrics.tokens_minted[ec2]), 1);
        assert_eq!(load(&metrics.reads[0]), 1, "only the answered credential read");
        assert_eq!(load(&metrics.requests[ec2][1]), 3);
        assert_eq!(load(&metrics.requests[ec2][3]), 2);
        assert_eq!(metrics.latency[ec2].count(), 5);
    }
}
