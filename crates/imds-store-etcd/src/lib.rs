//! The etcd backend of the imds [`Store`] trait: many serving nodes share one source of truth.
//!
//! Owns [`EtcdStore`] and its [`EtcdOptions`] (parsed from an `etcd://host:port[,host:port…][/prefix]`
//! URL, or `etcds://…` for TLS, with [`EtcdTls`]: the CA to trust and a client certificate). The store revision is etcd's cluster revision (a fresh cluster's initial revision 1
//! reads as `0`), so every node agrees on it. The key layout (module `layout`) puts a record
//! under its node's prefix, which is all a node watches; an index key per record serves admin
//! look-ups and listing, and one key per claim makes claims unique. Every write is one `Txn`
//! guarded by the `mod_revision` of the record's index key (the admin ETag) and by
//! `create_revision == 0` on each claim it takes; a move between nodes deletes the old key and
//! puts the new one in that same `Txn`, so both nodes see it at one revision.
//!
//! Calls that fail for transport reasons are retried with jittered back-off across the
//! endpoints until [`EtcdOptions::write_deadline`] (the client does not fail over by itself);
//! a write retried after a lost answer recognises its own earlier success by a tag in the index
//! entry. The change feed (module `feed`) is a prefix watch from `after + 1` with progress
//! requests while idle, read by its own task into a bounded queue.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KeyValue, PutOptions, TlsOptions,
    Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use imds_store::{Acquired, Committed, Feed, Key, Op, Page, Record, Revision, Scope, Snapshot, Store, StoreError};

mod feed;
mod layout;
#[cfg(feature = "test-util")]
pub mod testing;

use crate::layout::{IndexEntry, Layout};

/// How an [`EtcdStore`] connects and behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client endpoints, e.g. `http://10.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// The key prefix of this deployment (default `/imds/v1`).
    pub prefix: String,
    /// HTTP/2 keep-alive interval. etcd cuts off clients pinging more often than its
    /// `--grpc-keepalive-min-time` (5 s by default), so this is never below 5 s unless the
    /// servers were told otherwise. Default 5 s.
    pub keep_alive: Duration,
    /// How long a keep-alive ping may go unanswered before the connection is dropped. Default 5 s.
    pub keep_alive_timeout: Duration,
    /// How long one call may take. Default 5 s.
    pub call_timeout: Duration,
    /// How long a read or write keeps retrying across endpoints before failing with
    /// [`StoreError::Unavailable`]. Default 5 s.
    pub write_deadline: Duration,
    /// How often an idle feed asks etcd for a progress notification (the node's staleness
    /// figure and resume point move with it). Default 5 s: at one request per second, 1,000
    /// idle nodes on one member measurably slowed writes (docs/scale.md).
    pub progress_interval: Duration,
    /// How many watch responses (each up to 1,000 revisions) may wait between the network read
    /// and the apply; past it the watch is dropped, the feed ends after the queued events and
    /// the reader resumes from its last revision. Default 1,024.
    pub queue: usize,
    /// Records per page of a snapshot. Default 500.
    pub page: i64,
    /// The largest record value accepted (etcd refuses requests over 1.5 MiB by default).
    /// Default 1.25 MiB.
    pub max_value_bytes: usize,
    /// TLS to the members (`etcds://`): `Some` makes every endpoint `https://`.
    pub tls: Option<EtcdTls>,
}

/// How a TLS connection to etcd is checked and authenticated: PEM files, read at connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA that signed the members' certificates (required: a cluster has its own CA, and
    /// the system's roots are never trusted for it).
    pub ca: Option<PathBuf>,
    /// This client's certificate chain, for members started with `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    /// The private key of [`EtcdTls::cert`]; its contents never appear in logs or errors.
    pub key: Option<PathBuf>,
}

impl EtcdTls {
    /// Checks that the files go together: a certificate needs its key and a key its certificate.
    pub fn check(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err("a client certificate needs its key (store.key)".into()),
            (None, Some(_)) => Err("a client key needs its certificate (store.cert)".into()),
            _ if self.ca.is_none() => Err("TLS to etcd needs the cluster's CA certificate (store.ca)".into()),
            _ => Ok(()),
        }
    }

    /// The client's TLS configuration, reading the files.
    fn options(&self) -> Result<TlsOptions, StoreError> {
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|err| StoreError::unavailable(format!("etcd: reading the {what} {}: {err}", path.display())))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read("CA certificate", ca)?));
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            tls = tls.identity(Identity::from_pem(read("client certificate", cert)?, read("client key", key)?));
        }
        Ok(tls)
    }
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/imds/v1".into(),
            keep_alive: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(5),
            write_deadline: Duration::from_secs(5),
            progress_interval: Duration::from_secs(5),
            queue: 1024,
            page: 500,
            max_value_bytes: 1280 * 1024,
            tls: None,
        }
    }
}

impl EtcdOptions {
    /// Parses `etcd://host:port[,host:port…][/prefix]` (default prefix `/imds/v1`), or
    /// `etcds://…` for TLS (then name the files in [`EtcdOptions::tls`]).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let (rest, tls) = match (url.strip_prefix("etcd://"), url.strip_prefix("etcds://")) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            (None, None) => return Err(format!("{url:?} does not start with etcd:// or etcds://")),
        };
        let scheme = if tls { "https" } else { "http" };
        let (hosts, prefix) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(format!("etcd endpoint {host:?} in {url:?} has no port (host:port)"));
            };
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("etcd endpoint {host:?} in {url:?} is not host:port"));
            }
            endpoints.push(format!("{scheme}://{host}"));
        }
        let prefix = prefix.trim_end_matches('/');
        if prefix.split('/').skip(1).any(str::is_empty) {
            return Err(format!("etcd prefix {prefix:?} in {url:?} has an empty segment"));
        }
        let mut options = Self { endpoints, tls: tls.then(EtcdTls::default), ..Self::default() };
        if !prefix.is_empty() {
            options.prefix = prefix.to_owned();
        }
        Ok(options)
    }
}

/// A [`Store`] on an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    layout: Layout,
    options: EtcdOptions,
    /// The leases this store value holds: per lease key, the holder and its etcd lease id.
    leases: Arc<Mutex<HashMap<String, (String, i64)>>>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.options.endpoints)
            .field("prefix", &self.layout.prefix())
            .finish_non_exhaustive()
    }
}

/// Maps a client error to [`StoreError`]: compaction is reported as such, everything else may be
/// retried.
fn etcd_error(context: &str, err: etcd_client::Error) -> StoreError {
    StoreError::unavailable_from(format!("etcd: {context}"), err)
}

/// Whether a client error says the revision asked for is compacted.
fn is_compacted(err: &etcd_client::Error) -> bool {
    err.to_string().contains("required revision has been compacted")
}

/// The header revision of a response, as an etcd revision.
fn header_rev(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, etcd_client::ResponseHeader::revision)
}

/// A tag unique enough to tell this process's writes apart.
fn write_tag() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}-{:x}-{:x}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// One operation of a commit, checked and encoded.
struct Prepared {
    op: Op,
    /// `collection/id`, the value of the claim keys it holds.
    holder_name: String,
    index_key: String,
    /// What a put stores under its record key.
    stored: Vec<u8>,
}

impl Prepared {
    /// The claims a put takes (none for other operations).
    fn claims(&self) -> &[String] {
        match &self.op {
            Op::Put(put) => &put.claims,
            Op::Delete { .. } | Op::Check { .. } => &[],
        }
    }
}

/// What a write observed of a record before building its transaction.
struct Current {
    entry: IndexEntry,
    /// The index key's (and record's) `mod_revision`.
    mod_rev: i64,
}

impl EtcdStore {
    /// Connects to the cluster. Does not fail when no member answers yet: calls then fail with
    /// [`StoreError::Unavailable`] and are retried by the caller.
    pub async fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        if options.endpoints.is_empty() {
            return Err(StoreError::unavailable("etcd: no endpoint given"));
        }
        if options.keep_alive < Duration::from_secs(5) {
            tracing::warn!(
                keep_alive = ?options.keep_alive,
                "etcd cuts off clients pinging more often than its --grpc-keepalive-min-time (5 s by default)"
            );
        }
        let mut connect = ConnectOptions::new()
            .with_keep_alive(options.keep_alive, options.keep_alive_timeout)
            .with_keep_alive_while_idle(true)
            .with_connect_timeout(options.call_timeout)
            .with_require_leader(true);
        let https = options.endpoints.iter().all(|endpoint| endpoint.starts_with("https://"));
        match &options.tls {
            Some(tls) if https => {
                tls.check().map_err(|err| StoreError::unavailable(format!("etcd: {err}")))?;
                connect = connect.with_tls(tls.options()?);
            }
            Some(_) => return Err(StoreError::unavailable("etcd: TLS needs https:// endpoints (etcds://)")),
            None if options.endpoints.iter().any(|endpoint| endpoint.starts_with("https://")) => {
                return Err(StoreError::unavailable("etcd: https:// endpoints need the TLS files (store.ca)"));
            }
            None => {}
        }
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(|err| etcd_error(&format!("connecting to {:?}", options.endpoints), err))?;
        Ok(Self { client, layout: Layout::new(&options.prefix), options, leases: Arc::default() })
    }

    /// The etcd key prefixes a reader of `scope` reads and watches: what an etcd user serving
    /// that scope needs read access to (besides the index and claim keys its writes use).
    pub fn watched_prefixes(&self, scope: &Scope) -> Vec<String> {
        self.layout.watched(scope)
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &EtcdOptions {
        &self.options
    }

    /// Runs `call` until it succeeds, fails for a reason other than transport, or the write
    /// deadline passes; each attempt is bounded by the call timeout.
    async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.options.write_deadline;
        let mut attempt = 0u32;
        loop {
            let outcome = tokio::time::timeout(self.options.call_timeout, call(self.client.clone())).await;
            let err = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err)) if is_compacted(&err) => {
                    return Err(StoreError::Compacted { after: Revision(0), oldest: Revision(0) })
                }
                Ok(Err(err)) => etcd_error(what, err),
                Err(_) => {
                    StoreError::unavailable(format!("etcd: {what}: no answer within {:?}", self.options.call_timeout))
                }
            };
            let delay = backoff(attempt);
            attempt = attempt.saturating_add(1);
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(err);
            }
            tracing::debug!(%err, "etcd call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One transaction attempt, bounded by the call timeout. An error may mean it committed.
    async fn txn_once(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let outcome = tokio::time::timeout(self.options.call_timeout, self.client.clone().txn(txn)).await;
        match outcome {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(etcd_error("transaction", err)),
            Err(_) => Err(StoreError::unavailable(format!(
                "etcd: transaction: no answer within {:?}",
                self.options.call_timeout
            ))),
        }
    }

    /// Checks one operation of a commit and encodes it (the write tag is added later).
    fn prepare(&self, op: Op) -> Result<Prepared, StoreError> {
        let key = op.key();
        layout::check_segment("collection", &key.collection)?;
        layout::check_segment("id", &key.id)?;
        let mut stored = Vec::new();
        if let Op::Put(put) = &op {
            if let Some(node) = &put.node {
                layout::check_segment("node", node)?;
            }
            if put.value.len() > self.options.max_value_bytes {
                return Err(StoreError::TooLarge { size: put.value.len(), limit: self.options.max_value_bytes });
            }
            stored = layout::encode_record(&put.claims, &put.value);
        }
        Ok(Prepared {
            holder_name: format!("{}/{}", key.collection, key.id),
            index_key: self.layout.index(key),
            stored,
            op,
        })
    }

    /// Commits checked operations in one `Txn`: every index entry guarded by its
    /// `mod_revision` (or its absence), every claim taken from outside the commit by
    /// `create_revision == 0`. A claim held by a record the commit deletes or rewrites is
    /// guarded by that record's index guard (claims change only with their index entry), so it
    /// may move to another put without a delete.
    async fn write_ops(&self, batch: &[Prepared]) -> Result<Committed, StoreError> {
        let tag = write_tag();
        let names: HashSet<&str> =
            batch.iter().filter(|p| !matches!(p.op, Op::Check { .. })).map(|p| p.holder_name.as_str()).collect();
        let taken: HashSet<&str> = batch.iter().flat_map(|p| p.claims().iter().map(String::as_str)).collect();
        // A put's index entry carries the tag: how a retry recognises its own lost success.
        let tagged = batch.iter().position(|p| matches!(p.op, Op::Put(_)));
        let deadline = tokio::time::Instant::now() + self.options.write_deadline;
        let mut ambiguous: Option<Vec<Option<Revision>>> = None;
        let mut attempt = 0u32;
        for _ in 0..MAX_RACES {
            let (currents, holders) = self.read_batch(batch).await?;
            if let (Some(before), Some(tagged)) = (&ambiguous, tagged) {
                if let Some(first) = currents[tagged].as_ref().filter(|c| c.entry.write == tag) {
                    // An earlier attempt committed; its answer was lost.
                    return Ok(Committed { rev: layout::revision(first.mod_rev), before: before.clone() });
                }
            }
            let mut compares = Vec::new();
            let mut ops = Vec::new();
            for ((prepared, current), holders) in batch.iter().zip(&currents).zip(&holders) {
                let op = &prepared.op;
                op.expect().check(op.key(), current.as_ref().map(|c| layout::revision(c.mod_rev)))?;
                let held: &[String] = current.as_ref().map_or(&[], |c| &c.entry.claims);
                compares.push(match current {
                    Some(current) => {
                        Compare::mod_revision(prepared.index_key.clone(), CompareOp::Equal, current.mod_rev)
                    }
                    None => Compare::create_revision(prepared.index_key.clone(), CompareOp::Equal, 0),
                });
                let put = match op {
                    Op::Check { .. } => continue,
                    Op::Delete { key, .. } => {
                        if let Some(current) = current {
                            ops.push(TxnOp::delete(self.layout.record(key, current.entry.node.as_deref()), None));
                            ops.push(TxnOp::delete(prepared.index_key.clone(), None));
                            for claim in held.iter().filter(|claim| !taken.contains(claim.as_str())) {
                                ops.push(TxnOp::delete(self.layout.claim(claim), None));
                            }
                        }
                        continue;
                    }
                    Op::Put(put) => put,
                };
                for (claim, holder) in put.claims.iter().zip(holders) {
                    if held.contains(claim) {
                        continue;
                    }
                    match holder {
                        // Already ours (the index entry missed it): nothing to take.
                        Some(holder) if *holder == prepared.holder_name => {}
                        // Held by a record this commit deletes or rewrites without it: moves here.
                        Some(holder) if names.contains(holder.as_str()) => {
                            ops.push(TxnOp::put(self.layout.claim(claim), prepared.holder_name.clone(), None));
                        }
                        Some(holder) => {
                            return Err(StoreError::ClaimConflict { claim: claim.clone(), holder: holder_key(holder) });
                        }
                        None => {
                            compares.push(Compare::create_revision(self.layout.claim(claim), CompareOp::Equal, 0));
                            ops.push(TxnOp::put(self.layout.claim(claim), prepared.holder_name.clone(), None));
                        }
                    }
                }
                for claim in held.iter().filter(|claim| !taken.contains(claim.as_str())) {
                    ops.push(TxnOp::delete(self.layout.claim(claim), None));
                }
                if let Some(current) = current {
                    if current.entry.node != put.node {
                        ops.push(TxnOp::delete(self.layout.record(&put.key, current.entry.node.as_deref()), None));
                    }
                }
                let entry = IndexEntry { node: put.node.clone(), claims: put.claims.clone(), write: tag.clone() };
                ops.push(TxnOp::put(self.layout.record(&put.key, put.node.as_deref()), prepared.stored.clone(), None));
                ops.push(TxnOp::put(prepared.index_key.clone(), layout::encode_index(&entry), None));
            }
            let needed = compares.len().max(ops.len());
            if needed > MAX_TXN_OPS {
                return Err(StoreError::BatchTooLarge { ops: needed, limit: MAX_TXN_OPS });
            }
            let before: Vec<Option<Revision>> =
                currents.iter().map(|current| current.as_ref().map(|c| layout::revision(c.mod_rev))).collect();
            match self.txn_once(Txn::new().when(compares).and_then(ops)).await {
                Ok(response) if response.succeeded() => {
                    return Ok(Committed { rev: layout::revision(header_rev(response.header())), before });
                }
                Ok(_) => continue, // lost a race: read again and re-check
                Err(err) => {
                    // A retry of a commit without puts that finds its deletes done reports what
                    // it finds (etcd keeps no trace of who deleted a key).
                    ambiguous = Some(before);
                    let delay = backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(err);
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Err(StoreError::unavailable(format!(
            "etcd: a commit of {} operations kept changing under {MAX_RACES} write attempts",
            batch.len()
        )))
    }

    /// Reads the index entries of a batch's records and the holders of their claims, at most
    /// [`READS_PER_TXN`] reads per transaction (so possibly at several revisions: the write's
    /// guards catch whatever changed in between).
    async fn read_batch(
        &self,
        batch: &[Prepared],
    ) -> Result<(Vec<Option<Current>>, Vec<Vec<Option<String>>>), StoreError> {
        let mut ops = Vec::new();
        for prepared in batch {
            ops.push(TxnOp::get(prepared.index_key.clone(), None));
            ops.extend(prepared.claims().iter().map(|claim| TxnOp::get(self.layout.claim(claim), None)));
        }
        let mut found: Vec<Option<KeyValue>> = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(READS_PER_TXN) {
            let response = self
                .retry("reading before a write", |mut client| {
                    let txn = Txn::new().and_then(chunk.to_vec());
                    async move { client.txn(txn).await }
                })
                .await?;
            found.extend(response.op_responses().into_iter().map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().cloned(),
                _ => None,
            }));
        }
        let mut found = found.into_iter();
        let mut currents = Vec::with_capacity(batch.len());
        let mut holders = Vec::with_capacity(batch.len());
        for prepared in batch {
            let current = match found.next().flatten() {
                Some(kv) => Some(Current {
                    entry: layout::decode_index(prepared.op.key(), kv.value())?,
                    mod_rev: kv.mod_revision(),
                }),
                None => None,
            };
            currents.push(current);
            holders.push(
                prepared
                    .claims()
                    .iter()
                    .map(|_| found.next().flatten().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
                    .collect(),
            );
        }
        Ok((currents, holders))
    }

    /// The index entry of a record, with the revision it was read at.
    async fn read_index(&self, key: &Key) -> Result<(Option<Current>, i64), StoreError> {
        let index = self.layout.index(key);
        let mut response = self
            .retry("reading an index entry", |mut client| {
                let index = index.clone();
                async move { client.get(index, None).await }
            })
            .await?;
        let rev = header_rev(response.header());
        let current = match response.take_kvs().into_iter().next() {
            Some(kv) => Some(Current { entry: layout::decode_index(key, kv.value())?, mod_rev: kv.mod_revision() }),
            None => None,
        };
        Ok((current, rev))
    }

    /// Reads record keys at one revision.
    async fn read_records(&self, keys: Vec<(Key, Option<String>)>, rev: i64) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::with_capacity(keys.len());
        // At most 100 reads per transaction (etcd refuses more than 128 operations).
        for chunk in keys.chunks(100) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|(key, node)| {
                    TxnOp::get(self.layout.record(key, node.as_deref()), Some(GetOptions::new().with_revision(rev)))
                })
                .collect();
            let response = self
                .retry("reading records", |mut client| {
                    let txn = Txn::new().and_then(ops.clone());
                    async move { client.txn(txn).await }
                })
                .await?;
            for ((key, node), op) in chunk.iter().zip(response.op_responses()) {
                if let TxnOpResponse::Get(get) = op {
                    if let Some(kv) = get.kvs().first() {
                        records.push(layout::decode_record(key.clone(), node.clone(), kv.value(), kv.mod_revision())?);
                    }
                }
            }
        }
        Ok(records)
    }

    /// Every key under `prefix` at revision `rev` (`0`: the current one, which is returned),
    /// one page at a time.
    async fn range_all(&self, prefix: &str, mut rev: i64) -> Result<(Vec<KeyValue>, i64), StoreError> {
        let end = layout::prefix_end(prefix);
        let mut start = prefix.as_bytes().to_vec();
        let mut out = Vec::new();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(self.options.page);
            if rev > 0 {
                options = options.with_revision(rev);
            }
            let key = start.clone();
            let mut response = self
                .retry("listing", |mut client| {
                    let (key, options) = (key.clone(), options.clone());
                    async move { client.get(key, Some(options)).await }
                })
                .await?;
            if rev == 0 {
                rev = header_rev(response.header());
            }
            let more = response.more();
            let kvs = response.take_kvs();
            if let Some(last) = kvs.last() {
                start = last.key().to_vec();
                start.push(0);
            }
            let empty = kvs.is_empty();
            out.extend(kvs);
            if !more || empty {
                return Ok((out, rev));
            }
        }
    }

    /// The etcd lease this store value holds `lease_key` with for `holder`, if any.
    fn held(&self, lease_key: &str, holder: &str) -> Option<i64> {
        let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases.get(lease_key).filter(|(current, _)| current == holder).map(|(_, id)| *id)
    }

    fn forget(&self, lease_key: &str, id: i64) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.get(lease_key).is_some_and(|(_, current)| *current == id) {
            leases.remove(lease_key);
        }
    }

    /// Renews etcd lease `id` once and checks that `lease_key` is still attached to it: whether
    /// the lease is still held.
    async fn renew(&self, lease_key: &str, id: i64) -> Result<bool, StoreError> {
        // The client reads the first keep-alive answer itself: an expired lease is an error.
        let renewed = self
            .retry("renewing a lease", |mut client| async move {
                match client.lease_keep_alive(id).await {
                    Ok(_) => Ok(true),
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                    Err(err) => Err(err),
                }
            })
            .await?;
        if !renewed {
            return Ok(false);
        }
        let mut response = self
            .retry("reading a lease", |mut client| {
                let key = lease_key.to_owned();
                async move { client.get(key, None).await }
            })
            .await?;
        Ok(response.take_kvs().first().is_some_and(|kv| kv.lease() == id))
    }

    /// Revokes etcd lease `id` (deleting the key attached to it), at most once per call timeout.
    async fn revoke(&self, id: i64) -> Result<(), StoreError> {
        match tokio::time::timeout(self.options.call_timeout, self.client.clone().lease_revoke(id)).await {
            Ok(Ok(_)) => Ok(()),
            // Already expired: nothing is attached to it any more.
            Ok(Err(err)) if err.to_string().contains("lease not found") => Ok(()),
            Ok(Err(err)) => Err(etcd_error("revoking a lease", err)),
            Err(_) => Err(StoreError::unavailable(format!(
                "etcd: revoking a lease: no answer within {:?}",
                self.options.call_timeout
            ))),
        }
    }

    /// The oldest revision a feed may resume after, once etcd said `after` is compacted: a
    /// watch from revision 1 is cancelled naming the compaction revision.
    async fn compaction_point(&self, after: Revision) -> Revision {
        let probe = async {
            let options = etcd_client::WatchOptions::new().with_start_revision(1);
            let mut stream =
                self.client.clone().watch(format!("{}/", self.layout.prefix()), Some(options)).await.ok()?;
            while let Ok(Some(response)) = stream.message().await {
                if response.compact_revision() > 0 {
                    return Some(layout::revision(response.compact_revision()));
                }
                if response.canceled() {
                    return None;
                }
            }
            None
        };
        match tokio::time::timeout(self.options.call_timeout, probe).await {
            Ok(Some(oldest)) if oldest > after => oldest,
            _ => Revision(after.0 + 1),
        }
    }
}

/// The jittered back-off before retry `attempt`: 25 ms doubling to 1 s, 50–100 % of that.
fn backoff(attempt: u32) -> Duration {
    imds_store::backoff::Backoff { initial: Duration::from_millis(25), max: Duration::from_secs(1) }.delay(attempt)
}

/// How many times a write re-reads and retries after losing a race.
const MAX_RACES: usize = 64;

/// etcd's default `--max-txn-ops`: the most compares, and the most success operations, one
/// `Txn` may hold.
const MAX_TXN_OPS: usize = 128;

/// The claims a batched record is assumed to hold when sizing [`Store::max_batch`] (an
/// instance's IPv4, IPv6 and MAC, and one spare).
const CLAIMS_PER_PUT: usize = 4;

/// The success operations one put of a batch needs at most, with [`CLAIMS_PER_PUT`] claims:
/// the record and its index entry, the old record's delete when it moves between nodes, and
/// per claim a put (taken) or a delete (released). Its compares (the index entry's revision and
/// one per taken claim, 5) are fewer, so the operations bound the batch.
const OPS_PER_PUT: usize = 3 + 2 * CLAIMS_PER_PUT;

/// Reads per transaction when a batch reads its index entries and claims.
const READS_PER_TXN: usize = 100;

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        let (current, rev) = self.read_index(key).await?;
        let Some(current) = current else { return Ok(None) };
        Ok(self.read_records(vec![(key.clone(), current.entry.node)], rev).await?.into_iter().next())
    }

    async fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let limit = limit.max(1);
        let prefix = self.layout.index_prefix(collection);
        let start = match after {
            Some(after) => format!("{prefix}{after}\0"),
            None => prefix.clone(),
        };
        let options = GetOptions::new()
            .with_range(layout::prefix_end(&prefix))
            .with_limit(i64::try_from(limit + 1).unwrap_or(i64::MAX));
        let mut response = self
            .retry("listing", |mut client| {
                let (start, options) = (start.clone(), options.clone());
                async move { client.get(start, Some(options)).await }
            })
            .await?;
        let rev = header_rev(response.header());
        let mut keys = Vec::new();
        for kv in response.take_kvs() {
            let id = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
            let key = Key::new(collection, id);
            let entry = layout::decode_index(&key, kv.value())?;
            keys.push((key, entry.node));
        }
        let records = self.read_records(keys, rev).await?;
        Ok(Page::from_overfetch(records, limit))
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Committed, StoreError> {
        imds_store::check_ops(&ops)?;
        let ops = imds_store::normalize_ops(ops);
        if ops.is_empty() {
            return Ok(Committed { rev: self.revision().await?, before: Vec::new() });
        }
        let mut prepared = Vec::with_capacity(ops.len());
        for op in ops {
            prepared.push(self.prepare(op)?);
        }
        self.write_ops(&prepared).await
    }

    fn max_batch(&self) -> usize {
        MAX_TXN_OPS / OPS_PER_PUT
    }

    async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, StoreError> {
        if let Some(node) = scope.node() {
            layout::check_segment("node", node)?;
        }
        // A compaction racing a long paginated read invalidates its pinned revision: start over.
        'again: for _ in 0..3 {
            let mut rev = 0;
            let mut records = Vec::new();
            for prefix in self.layout.snapshot_prefixes(scope) {
                let (kvs, at) = match self.range_all(&prefix, rev).await {
                    Ok(found) => found,
                    Err(StoreError::Compacted { .. }) => continue 'again,
                    Err(err) => return Err(err),
                };
                rev = at;
                for kv in kvs {
                    if let Some((key, node)) = self.layout.parse_record(kv.key()) {
                        if !scope.holds(&key, node.as_deref()) {
                            continue;
                        }
                        records.push(layout::decode_record(key, node, kv.value(), kv.mod_revision())?);
                    }
                }
            }
            return Ok(Snapshot { rev: layout::revision(rev), records });
        }
        Err(StoreError::unavailable("etcd: snapshot kept being compacted away"))
    }

    async fn subscribe(&self, scope: &Scope, after: Revision) -> Result<Feed, StoreError> {
        if let Some(node) = scope.node() {
            layout::check_segment("node", node)?;
        }
        let feed = feed::open(self.client.clone(), self.layout.clone(), scope.clone(), after, &self.options).await?;
        // etcd refuses a watch starting before its compaction revision but accepts one starting
        // at it, although the changes at that revision may be gone: a read at `after` tells.
        let probe = GetOptions::new().with_revision(layout::etcd_revision(after)).with_count_only();
        let prefix = self.layout.prefix().to_owned();
        match self
            .retry("checking the resume point", |mut client| {
                let (prefix, probe) = (prefix.clone(), probe.clone());
                async move { client.get(prefix, Some(probe)).await }
            })
            .await
        {
            Ok(_) => Ok(feed),
            Err(StoreError::Compacted { .. }) => {
                Err(StoreError::Compacted { after, oldest: self.compaction_point(after).await })
            }
            Err(err) => Err(err),
        }
    }

    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        let head = self.revision().await?;
        let through = through.min(head);
        if through.0 < 2 {
            return Ok(());
        }
        let rev = layout::etcd_revision(through);
        match self.retry("compacting", |mut client| async move { client.compact(rev, None).await }).await {
            // Compacting less far than an earlier compaction forgets nothing more.
            Ok(_) | Err(StoreError::Compacted { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn acquire(&self, key: &Key, holder: &str, ttl: Duration) -> Result<Acquired, StoreError> {
        layout::check_segment("collection", &key.collection)?;
        layout::check_segment("id", &key.id)?;
        let lease_key = self.layout.lease(key);
        if let Some(id) = self.held(&lease_key, holder) {
            if self.renew(&lease_key, id).await? {
                return Ok(Acquired::Held);
            }
            // Expired (or revoked) in etcd: this holder learns it lost the lease.
            self.forget(&lease_key, id);
        }
        // etcd counts whole seconds and rounds a TTL below its minimum up to it.
        let seconds = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).unwrap_or(i64::MAX).max(1);
        for _ in 0..MAX_RACES {
            // A held lease costs one read: a new etcd lease (a raft write) only when it looks free.
            let mut found = self
                .retry("reading a lease", |mut client| {
                    let key = lease_key.clone();
                    async move { client.get(key, None).await }
                })
                .await?;
            if let Some(kv) = found.take_kvs().into_iter().next() {
                return Ok(Acquired::HeldBy(String::from_utf8_lossy(kv.value()).into_owned()));
            }
            let granted = self
                .retry("granting a lease", |mut client| async move { client.lease_grant(seconds, None).await })
                .await?
                .id();
            let take = TxnOp::put(lease_key.clone(), holder, Some(PutOptions::new().with_lease(granted)));
            let txn = Txn::new()
                .when(vec![Compare::create_revision(lease_key.clone(), CompareOp::Equal, 0)])
                .and_then(vec![take])
                .or_else(vec![TxnOp::get(lease_key.clone(), None)]);
            let response = match self.txn_once(txn).await {
                Ok(response) => response,
                Err(err) => {
                    // Maybe taken, maybe not: revoking the new lease leaves it not taken.
                    let _ = self.revoke(granted).await;
                    return Err(err);
                }
            };
            if response.succeeded() {
                let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
                leases.insert(lease_key, (holder.to_owned(), granted));
                return Ok(Acquired::Held);
            }
            // Held by someone: the granted lease is not needed (it would lapse by itself).
            let _ = self.revoke(granted).await;
            let current = response.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                _ => None,
            });
            if let Some(current) = current {
                return Ok(Acquired::HeldBy(current));
            }
            // It lapsed between the compare and the read: try again.
        }
        Err(StoreError::unavailable(format!("etcd: lease {key} kept changing hands")))
    }

    async fn release(&self, key: &Key, holder: &str) -> Result<(), StoreError> {
        let lease_key = self.layout.lease(key);
        let Some(id) = self.held(&lease_key, holder) else { return Ok(()) };
        self.revoke(id).await?;
        self.forget(&lease_key, id);
        Ok(())
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let prefix = self.layout.prefix().to_owned();
        let response = self
            .retry("reading the revision", |mut client| {
                let prefix = prefix.clone();
                async move { client.get(prefix, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(layout::revision(header_rev(response.header())))
    }
}

/// The key a claim's holder name (`collection/id`, as stored under the claim) stands for.
fn holder_key(holder: &str) -> Key {
    match holder.split_once('/') {
        Some((collection, id)) => Key::new(collection, id),
        None => Key::new(holder, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let options = EtcdOptions::from_url("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(options.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(options.prefix, "/imds/v1");
        let options = EtcdOptions::from_url("etcd://a:1,b:2/imds/eu-1/").unwrap();
        assert_eq!(options.endpoints, ["http://a:1", "http://b:2"]);
        assert_eq!(options.prefix, "/imds/eu-1");
        let options = EtcdOptions::from_url("etcds://a:1,b:2").unwrap();
        assert_eq!(options.endpoints, ["https://a:1", "https://b:2"]);
        assert_eq!(options.tls, Some(EtcdTls::default()));
        assert_eq!(EtcdOptions::from_url("etcd://a:1").unwrap().tls, None);
        for bad in ["http://a:1", "etcd://a", "etcds://a", "etcd://a:x", "etcd://:1", "etcd://a:1//x", "etcd://a:1,"] {
            assert!(EtcdOptions::from_url(bad).is_err(), "{bad} parsed");
        }
    }
}
