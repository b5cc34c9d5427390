//! The audit log: one JSON line for every sensitive guest read (credentials, session tokens,
//! identity signatures, user-data, MMDS; see `imds_dialects::sensitive`) and every admin write,
//! saying who asked for what and how it was answered, never what was in it (no body, no token,
//! no query string).
//!
//! The guest path never waits for the disk: [`Log::record`] puts the event in a bounded queue
//! and returns (a full queue drops the line and counts it in `imds_audit_lines_dropped_total`);
//! one writer thread turns events into lines and appends each batch (what is queued) to the file
//! (or stdout) with one write; a failed write drops and counts its lines. Rotation: before each batch the writer checks whether the path
//! still names the file it holds open (a `logrotate` rename, a deletion) and opens it anew if
//! not; [`Log::reopen`] asks for a reopen at the next line whatever the path shows (the hook
//! for a `SIGHUP` handler).

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Events queued for the writer by default before lines are dropped.
pub const DEFAULT_QUEUE: usize = 65_536;

/// The longest path written; longer ones are cut (at a character boundary) and marked `…`.
const MAX_PATH: usize = 1024;

/// The audit log's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where lines go; `None` (the default) for no audit log.
    pub output: Option<Output>,
    /// Events queued for the writer before lines are dropped.
    pub queue: usize,
}

impl Default for Config {
    /// Off, with a queue of [`DEFAULT_QUEUE`].
    fn default() -> Self {
        Self { output: None, queue: DEFAULT_QUEUE }
    }
}

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Appended to this file (created 0600), reopened when it is moved or on [`Log::reopen`].
    File(PathBuf),
    /// Standard output (the journal, under systemd); the daemon's own logs go to stderr.
    Stdout,
}

/// Who asked: the connection's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A TCP peer's address.
    Ip(IpAddr),
    /// A client of the admin Unix socket.
    Unix,
}

/// One audited request.
#[derive(Debug, Clone)]
pub struct Event {
    /// When it was answered, Unix milliseconds.
    pub at_millis: u64,
    /// `guest` or `admin`.
    pub plane: &'static str,
    /// For guest reads, what was asked for (`credentials`, `token`, `signature`, `user-data`, `mmds`).
    pub kind: Option<&'static str>,
    /// The instance the request was for, when known.
    pub instance: Option<String>,
    /// The connection's peer.
    pub source: Source,
    /// For guests identified through a trusted proxy, the address the proxy named.
    pub caller: Option<IpAddr>,
    /// The guest dialect that answered.
    pub dialect: Option<&'static str>,
    /// The request method.
    pub method: http::Method,
    /// The request path, without the query string.
    pub path: String,
    /// The answer's status code.
    pub status: u16,
}

impl Event {
    /// The JSON line (without the newline).
    pub fn render(&self) -> String {
        let mut line = json!({
            "time": imds_model::time::format_rfc3339_millis(self.at_millis),
            "plane": self.plane,
        });
        if let Some(kind) = self.kind {
            line["kind"] = kind.into();
        }
        if let Some(instance) = &self.instance {
            line["instance"] = instance.as_str().into();
        }
        line["source"] = match self.source {
            Source::Ip(ip) => ip.to_canonical().to_string().into(),
            Source::Unix => "unix".into(),
        };
        if let Some(caller) = self.caller {
            line["caller"] = caller.to_string().into();
        }
        if let Some(dialect) = self.dialect {
            line["dialect"] = dialect.into();
        }
        line["method"] = self.method.as_str().into();
        line["path"] = cut(&self.path).into();
        line["status"] = self.status.into();
        line.to_string()
    }
}

fn cut(path: &str) -> String {
    if path.len() <= MAX_PATH {
        return path.to_owned();
    }
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// A handle to the running audit log: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Log {
    sender: mpsc::Sender<Event>,
    reopen: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    clock: imds_creds::Clock,
}

impl Log {
    /// Opens the output and starts the writer thread; `Ok(None)` when the log is off. Fails
    /// when the file cannot be opened, so a wrong path stops the start.
    pub fn start(config: &Config, metrics: Arc<Metrics>, clock: imds_creds::Clock) -> std::io::Result<Option<Self>> {
        let Some(output) = &config.output else {
            return Ok(None);
        };
        let sink = Sink::open(output)?;
        let (sender, receiver) = mpsc::channel(config.queue.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer { receiver, sink, reopen: Arc::clone(&reopen), metrics: Arc::clone(&metrics) };
        std::thread::Builder::new().name("imds-audit".into()).spawn(move || writer.run())?;
        Ok(Some(Self { sender, reopen, metrics, clock }))
    }

    /// Reopens the file before the next line, whatever its path shows (a `SIGHUP` handler's hook).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// The current time on the daemon's clock, Unix milliseconds (an event's `at_millis`).
    pub fn now_millis(&self) -> u64 {
        self.clock.now_millis()
    }

    /// Queues `event`; drops it (and counts the drop) when the writer is behind.
    pub fn record(&self, event: Event) {
        if self.sender.try_send(event).is_err() {
            self.metrics.audit_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread's state.
struct Writer {
    receiver: mpsc::Receiver<Event>,
    sink: Sink,
    reopen: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Writes until every [`Log`] handle is gone.
    fn run(mut self) {
        let mut batch = Vec::new();
        while let Some(first) = self.receiver.blocking_recv() {
            self.sink.check(self.reopen.swap(false, Ordering::AcqRel));
            // A batch: everything queued now (up to a bound), written at once.
            batch.clear();
            let mut lines = 0u64;
            let mut next = Some(first);
            while let Some(event) = next.take() {
                batch.extend_from_slice(event.render().as_bytes());
                batch.push(b'\n');
                lines += 1;
                if lines < 4096 {
                    next = self.receiver.try_recv().ok();
                }
            }
            match self.sink.write(&batch) {
                Ok(()) => self.metrics.audit_written.fetch_add(lines, Ordering::Relaxed),
                Err(error) => {
                    tracing::warn!(%error, lines, "cannot write the audit log; lines dropped");
                    self.metrics.audit_dropped.fetch_add(lines, Ordering::Relaxed)
                }
            };
        }
    }
}

/// Where the writer puts lines.
enum Sink {
    Stdout,
    File {
        path: PathBuf,
        file: File,
        /// The open file's device and inode, to notice the path naming another file.
        id: (u64, u64),
    },
}

impl Sink {
    fn open(output: &Output) -> std::io::Result<Self> {
        match output {
            Output::Stdout => Ok(Sink::Stdout),
            Output::File(path) => {
                let (file, id) = open_file(path)?;
                Ok(Sink::File { path: path.clone(), file, id })
            }
        }
    }

    /// Opens the file anew if `forced` or if its path no longer names the open file.
    fn check(&mut self, forced: bool) {
        let Sink::File { path, file, id } = self else { return };
        let moved = match std::fs::metadata(&*path) {
            Ok(meta) => (meta.dev(), meta.ino()) != *id,
            Err(_) => true,
        };
        if !forced && !moved {
            return;
        }
        match open_file(path) {
            Ok((reopened, reopened_id)) => {
                *file = reopened;
                *id = reopened_id;
                tracing::info!(path = %path.display(), "audit log reopened");
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot reopen the audit log; writing to the old file")
            }
        }
    }

    /// Appends whole lines (one `write` for a batch of them, as `O_APPEND` keeps it together).
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(lines)?;
                out.flush()
            }
            Sink::File { file, .. } => file.write_all(lines),
        }
    }
}

/// Opens `path` for appending (created 0600, as the store's files), with its device and inode.
fn open_file(path: &std::path::Path) -> std::io::Result<(File, (u64, u64))> {
    let file = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
    let meta = file.metadata()?;
    Ok((file, (meta.dev(), meta.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_request_and_never_more() {
        let event = Event {
            at_millis: 1_632_174_146_007,
            plane: "guest",
            kind: Some("credentials"),
            instance: Some("i-1".into()),
            source: Source::Ip("::ffff:127.0.0.9".parse().unwrap()),
            caller: None,
            dialect: Some("ec2"),
            method: http::Method::GET,
            path: "/latest/meta-data/iam/security-credentials/\"web\"\n".into(),
            status: 200,
        };
        let line = event.render();
        assert!(!line.contains('\n'), "one line: {line}");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            json!({"time": "2021-09-20T21:42:26.007Z", "plane": "guest", "kind": "credentials", "instance": "i-1",
                   "source": "127.0.0.9", "dialect": "ec2", "method": "GET",
                   "path": "/latest/meta-data/iam/security-credentials/\"web\"\n", "status": 200})
        );
        let long = Event { path: "é".repeat(MAX_PATH), ..event };
        let parsed: serde_json::Value = serde_json::from_str(&long.render()).unwrap();
        assert!(parsed["path"].as_str().unwrap().len() <= MAX_PATH + '…'.len_utf8());
    }
}
