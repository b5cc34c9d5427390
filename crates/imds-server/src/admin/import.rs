//! `POST /v1/instances`: bulk import of instance records from NDJSON.
//!
//! Owns [`Limits`] (body size and lines per request), [`ImportSummary`] and the handler. The
//! body holds one instance document (with its `id`) per line; blank lines are ignored. Every
//! line is validated exactly as `PUT /v1/instances/{id}` validates its body, and the whole
//! import is checked before the first write: a bad line, a repeated id, two lines claiming one
//! address, an address held by an instance outside the import (or, with `If-None-Match: *`, an
//! id that exists) fails the request and writes nothing. Then the instances are written in
//! chunks of at most [`Store::max_batch`](imds_store::Store::max_batch) operations (and [`CHUNK_CAP`]),
//! each chunk one store transaction at one revision. An instance whose node changes takes its
//! MMDS document and guest state along in its chunk's commit, as a single write does. A chunk
//! that still fails (a concurrent write won a race) ends the import with the error and the
//! number of instances committed before it; those earlier chunks stay.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::Json;
use futures::{StreamExt as _, TryStreamExt as _};
use http::header::{CONTENT_TYPE, IF_MATCH, IF_NONE_MATCH};
use http::HeaderMap;
use imds_model::{split_claim, Instance};
use imds_store::{Expect, Op, Put, Revision, Scope};
use serde::Serialize;

use super::error::AdminError;
use super::instances::{follow_node, parse, wait_visible};
use super::AdminState;
use crate::records;
use crate::view::Snapshot;

/// The media type of an import body.
pub const MEDIA_NDJSON: &str = "application/x-ndjson";
/// Also accepted for an import body.
const MEDIA_JSONL: &str = "application/jsonl";

/// The most instances one store transaction of an import holds, whatever the backend allows:
/// a chunk holds the store's write lock (SQLite) until it commits, so it stays short.
pub const CHUNK_CAP: usize = 5_000;

/// How many follow-node reads (MMDS document and guest state of one instance) run at once.
const FOLLOW_READS: usize = 16;

/// How big an import request may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Most instance lines per request.
    pub max_lines: usize,
}

impl Default for Limits {
    /// 64 MiB and 100,000 lines per request.
    fn default() -> Self {
        Self { max_body: 64 * 1024 * 1024, max_lines: 100_000 }
    }
}

/// The answer to a successful import.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Instances that did not exist before.
    pub created: usize,
    /// Instances that existed and were replaced.
    pub replaced: usize,
    /// The store revision of the last chunk written (what an `ETag` would hold); absent when
    /// the body held no instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
}

/// One validated line.
struct Line {
    /// 1-based line number in the body.
    number: usize,
    instance: Instance,
}

/// `POST /v1/instances`
#[utoipa::path(post, path = "/v1/instances", tag = "instances",
    params(("If-None-Match" = Option<String>, Header, description = "`*`: create only; an existing id fails the import (412) before anything is written")),
    request_body(content = String, content_type = "application/x-ndjson",
                 description = "One instance document (with `id`) per line, as for PUT /v1/instances/{id}; blank lines are ignored. `application/jsonl` is accepted too."),
    responses(
        (status = 200, description = "Every instance was written", body = ImportSummary),
        (status = 400, description = "A line is invalid (`field` is `line N: <field>`) or an id repeats; nothing was written", body = super::error::ErrorBody),
        (status = 409, description = "An address is claimed by two lines, or held by an instance outside the import; nothing was written (unless `committed` says otherwise)", body = super::error::ErrorBody),
        (status = 412, description = "Create only, and an instance exists; nothing was written (unless `committed` says otherwise)", body = super::error::ErrorBody),
        (status = 413, description = "Body or line count over the limit", body = super::error::ErrorBody),
        (status = 415, description = "Not NDJSON", body = super::error::ErrorBody)))]
pub async fn import(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportSummary>, AdminError> {
    let started = tokio::time::Instant::now();
    let media = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(MEDIA_NDJSON) && !media.eq_ignore_ascii_case(MEDIA_JSONL) {
        return Err(AdminError::UnsupportedMediaType { expected: MEDIA_NDJSON });
    }
    let expect = precondition(&headers)?;
    let limit = state.import.max_body;
    let bytes = super::body::read(body, limit).await.map_err(|error| error.into_admin(limit))?;
    // Validating up to 100,000 documents is CPU work of its own: keep it off the async workers
    // that also serve guests.
    let lines = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || parse_lines(&state, &bytes))
            .await
            .map_err(|error| AdminError::Unavailable(format!("import validation did not complete: {error}")))??
    };
    check_claims(&lines)?;
    // An instance moving to another node takes its MMDS document and guest state along, in its
    // chunk's commit (as a single write does). The view tells which lines may: only those are
    // read from the store.
    let snapshot = state.view.load();
    let may_move: Vec<bool> = lines.iter().map(|line| may_move(&state, &snapshot, &line.instance)).collect();
    drop(snapshot);
    let (state_ref, lines_ref, may_move) = (&state, &lines, &may_move);
    let follows: Vec<Vec<Op>> = futures::stream::iter(0..lines.len())
        .map(move |at| async move {
            if !may_move[at] {
                return Ok(Vec::new());
            }
            follow_node(state_ref, &lines_ref[at].instance, false).await
        })
        .buffered(FOLLOW_READS)
        .try_collect()
        .await?;
    let chunks = chunk_lines(&follows, state.store.max_batch().clamp(1, CHUNK_CAP));
    let chunk_of: Vec<usize> =
        chunks.iter().enumerate().flat_map(|(at, range)| std::iter::repeat_n(at, range.len())).collect();
    check_against_store(&state, &lines, expect, &chunk_of).await?;

    let (mut created, mut replaced, mut last) = (0usize, 0usize, None::<Revision>);
    let mut wait = false;
    let mut follows = follows.into_iter();
    for range in &chunks {
        let part = &lines[range.clone()];
        let mut ops: Vec<Op> = part
            .iter()
            .map(|line| {
                Op::Put(Put {
                    key: records::instance(&line.instance.id),
                    node: line.instance.node.clone(),
                    claims: line.instance.claims(),
                    value: line.instance.to_bytes(),
                    expect,
                })
            })
            .collect();
        ops.extend(follows.by_ref().take(part.len()).flatten());
        let committed = match state.store.commit(ops).await {
            Ok(committed) => committed,
            Err(error) => {
                let committed = created + replaced;
                let error = AdminError::from(error);
                tracing::warn!(action = "import", committed, %error, "import stopped by a failed chunk");
                return Err(if committed == 0 {
                    error
                } else {
                    AdminError::ImportIncomplete { committed, error: Box::new(error) }
                });
            }
        };
        for before in &committed.before[..part.len()] {
            if before.is_none() {
                created += 1;
            } else {
                replaced += 1;
            }
        }
        last = last.max(Some(committed.rev));
        wait |= part.iter().any(|line| state.serves(&line.instance.id, line.instance.node.as_deref()));
    }
    if let (Some(rev), true) = (last, wait) {
        wait_visible(&state, rev).await;
    }
    let elapsed: Duration = started.elapsed();
    tracing::info!(
        action = "import",
        instances = lines.len(),
        created,
        replaced,
        chunks = chunks.len(),
        rev = last.map(|rev| rev.0),
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "instances imported"
    );
    Ok(Json(ImportSummary { created, replaced, rev: last.map(|rev| rev.to_string()) }))
}

/// `If-None-Match: *` creates only; otherwise each line creates or replaces.
fn precondition(headers: &HeaderMap) -> Result<Expect, AdminError> {
    if headers.contains_key(IF_MATCH) {
        return Err(AdminError::BadRequest {
            field: "If-Match".into(),
            message: "an import cannot be conditional on one revision; use If-None-Match: * or nothing".into(),
        });
    }
    match headers.get(IF_NONE_MATCH) {
        None => Ok(Expect::Any),
        Some(value) if value.to_str().unwrap_or("").trim() == "*" => Ok(Expect::Absent),
        Some(_) => Err(AdminError::BadRequest {
            field: "If-None-Match".into(),
            message: "only If-None-Match: * is supported".into(),
        }),
    }
}

/// Validates every non-blank line and refuses repeated ids and too many lines.
fn parse_lines(state: &AdminState, bytes: &[u8]) -> Result<Vec<Line>, AdminError> {
    let mut lines = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if lines.len() == state.import.max_lines {
            return Err(AdminError::TooManyLines { limit: state.import.max_lines });
        }
        let at_line = |error: AdminError| AdminError::Line { line: number, error: Box::new(error) };
        let doc: serde_json::Value = super::body::parse_json(raw).map_err(|error| at_line(error.into()))?;
        let mut instance = parse(state, &doc).map_err(at_line)?;
        if instance.created_at.is_none() {
            let view = state.view.load();
            instance.created_at =
                Some(super::instances::launch_time(state, view.get(&instance.id).map(|e| &e.instance)));
        }
        if let Some(first) = seen.insert(instance.id.as_str().to_owned(), number) {
            return Err(at_line(AdminError::BadRequest {
                field: "id".into(),
                message: format!("instance {} is already on line {first}; an import names each id once", instance.id),
            }));
        }
        lines.push(Line { number, instance });
    }
    Ok(lines)
}

/// Refuses two lines claiming one address.
fn check_claims(lines: &[Line]) -> Result<(), AdminError> {
    let mut holders: HashMap<String, usize> = HashMap::new();
    for (at, line) in lines.iter().enumerate() {
        for claim in line.instance.claims() {
            if let Some(&first) = holders.get(&claim) {
                let (kind, value) = split_claim(&claim).unwrap_or(("address", claim.as_str()));
                return Err(AdminError::Line {
                    line: line.number,
                    error: Box::new(AdminError::DuplicateAddress {
                        kind: kind.to_owned(),
                        value: value.to_owned(),
                        id: line.instance.id.to_string(),
                        holder: lines[first].instance.id.to_string(),
                        holder_line: lines[first].number,
                    }),
                });
            }
            holders.insert(claim, at);
        }
    }
    Ok(())
}

/// Checks the import against what the store holds, before anything is written: with
/// `If-None-Match: *` no id may exist, and no address may be held by an instance outside the
/// import, nor by one of its instances written in a later chunk (a claim moves between
/// instances only inside one store transaction, or once its old holder's chunk released it).
///
/// A server following the whole store checks against its view (no store round trip per
/// line). A node-scoped server sees only its own node's instances: it checks existence with a
/// store read per line, and a conflict with an instance of another node surfaces when its
/// chunk is written.
async fn check_against_store(
    state: &AdminState,
    lines: &[Line],
    expect: Expect,
    chunks: &[usize],
) -> Result<(), AdminError> {
    let chunk_of: HashMap<&str, usize> =
        lines.iter().zip(chunks).map(|(line, &chunk)| (line.instance.id.as_str(), chunk)).collect();
    if state.scope != Scope::All {
        if expect == Expect::Absent {
            for line in lines {
                let key = records::instance(&line.instance.id);
                if let Some(record) = state.store.get(&key).await? {
                    return Err(exists(line, record.rev));
                }
            }
        }
        return Ok(());
    }
    let snapshot = state.view.load();
    for (at, line) in lines.iter().enumerate() {
        let instance = &line.instance;
        if expect == Expect::Absent {
            if let Some(entry) = snapshot.get(&instance.id) {
                return Err(exists(line, entry.rev));
            }
        }
        let ips =
            instance.ipv4.iter().map(|ip| std::net::IpAddr::V4(*ip)).chain(instance.ipv6.iter().map(|ip| (*ip).into()));
        let held = ips
            .filter_map(|ip| snapshot.by_ip(ip).map(|entry| (claim_of_ip(ip), entry.instance.id.clone())))
            .chain(instance.mac.iter().filter_map(|mac| {
                snapshot.by_mac(*mac).map(|entry| (format!("mac/{mac}"), entry.instance.id.clone()))
            }));
        for (claim, holder) in held {
            let released_in_time = chunk_of.get(holder.as_str()).is_some_and(|&theirs| theirs <= chunks[at]);
            if holder == instance.id || released_in_time {
                continue;
            }
            let (kind, value) = split_claim(&claim).unwrap_or(("address", claim.as_str()));
            return Err(AdminError::Line {
                line: line.number,
                error: Box::new(AdminError::AddressConflict {
                    kind: kind.to_owned(),
                    value: value.to_owned(),
                    holder: holder.to_string(),
                }),
            });
        }
    }
    Ok(())
}

/// Whether writing `instance` may move MMDS or guest-state records to another node: the view
/// holds the instance on another node with such records, or (a node-scoped server) does not
/// hold it at all, so it may live on another node. A server following the whole store that
/// does not know the instance is creating it: nothing can be attached to it yet.
fn may_move(state: &AdminState, snapshot: &Snapshot, instance: &Instance) -> bool {
    match snapshot.get(&instance.id) {
        Some(entry) => {
            entry.instance.node != instance.node
                && (snapshot.mmds(&instance.id).is_some() || snapshot.state(&instance.id).is_some())
        }
        None => state.scope != Scope::All,
    }
}

/// Splits the lines into chunks of at most `cap` operations: one per instance, plus its
/// follow-node moves (a chunk always takes at least one line).
fn chunk_lines(follows: &[Vec<Op>], cap: usize) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut ops) = (0, 0);
    for (at, moves) in follows.iter().enumerate() {
        let cost = 1 + moves.len();
        if at > start && ops + cost > cap {
            chunks.push(start..at);
            (start, ops) = (at, 0);
        }
        ops += cost;
    }
    if start < follows.len() {
        chunks.push(start..follows.len());
    }
    chunks
}

fn claim_of_ip(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(ip) => format!("ipv4/{ip}"),
        std::net::IpAddr::V6(ip) => format!("ipv6/{ip}"),
    }
}

fn exists(line: &Line, rev: Revision) -> AdminError {
    AdminError::Line {
        line: line.number,
        error: Box::new(AdminError::PreconditionFailed(format!(
            "instance {} already exists (revision {rev}); nothing was imported",
            line.instance.id
        ))),
    }
}
