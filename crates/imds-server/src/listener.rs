//! Accept loops: one bounded, gracefully stoppable HTTP/1.1 server per bound socket.
//!
//! A listener serves an [`Answer`] through [`serve_tcp`] or [`serve_unix`]: an axum `Router`
//! (the admin API, metrics) or a plane that answers every request itself without routing (the
//! guest plane, where routing cost about a tenth of the work of a request). An answer learns
//! the connection's [`Peer`] and [`ConnSocket`] from its [`Arrival`] (a router, as request
//! extensions). Connections are bounded by a semaphore, and per source address on guest listeners
//! (`sources`: the oldest idle connection of a source at its cap is closed first); idle and
//! header-read times are bounded (hyper's header-read timeout runs from the first byte of a
//! head, or from the end of the previous request, and more bytes do not extend it; one tokio
//! sleep per connection times it, `head_timer`); accept
//! errors back off, and on shutdown the listener stops accepting while in-flight requests drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub mod framing;
mod head_timer;
mod sources;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client: its address and the local address it reached.
    Tcp {
        /// The client's address.
        remote: SocketAddr,
        /// The local address the client connected to.
        local: SocketAddr,
    },
    /// A client of a Unix socket (only the admin plane listens on those).
    Unix,
}

/// A TCP connection's socket, for settings that must change per response (the hop limit of
/// EC2 token replies). Carried as a request extension; it shares the connection's stream (no
/// second file descriptor: a host holding thousands of long polls needs one per connection).
#[derive(Debug, Clone)]
pub struct ConnSocket {
    stream: Arc<TcpStream>,
    ipv6: bool,
    default_ttl: u32,
    current_ttl: Arc<std::sync::atomic::AtomicU32>,
}

impl ConnSocket {
    fn new(stream: Arc<TcpStream>) -> std::io::Result<Self> {
        let socket = socket2::SockRef::from(&*stream);
        let ipv6 = stream.local_addr()?.is_ipv6();
        let default_ttl = if ipv6 { socket.unicast_hops_v6()? } else { socket.ttl_v4()? };
        Ok(Self { stream, ipv6, default_ttl, current_ttl: Arc::new(default_ttl.into()) })
    }

    /// Makes what the connection sends next leave with IP TTL / IPv6 hop limit `hops`
    /// (`None`: the system default). One system call only when the value changes.
    pub fn set_hop_limit(&self, hops: Option<u8>) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let ttl = hops.map_or(self.default_ttl, u32::from);
        if self.current_ttl.swap(ttl, Ordering::Relaxed) == ttl {
            return Ok(());
        }
        let socket = socket2::SockRef::from(&*self.stream);
        if self.ipv6 {
            socket.set_unicast_hops_v6(ttl)?;
            // IPv4 peers of an IPv6 socket (::ffff:a.b.c.d) are sent with the IPv4 TTL.
            let _ = socket.set_ttl_v4(ttl);
            Ok(())
        } else {
            socket.set_ttl_v4(ttl)
        }
    }
}

/// How much a connection reads at first, and again after a short read: a guest request is a
/// few hundred bytes.
const FIRST_READ: usize = 1024;
/// The most one read asks for: a read that fills its buffer doubles the next, up to this.
const MAX_READ: usize = 64 * 1024;

/// A TCP stream the connection reads and writes while its [`ConnSocket`] (in request extensions)
/// holds the same stream to change socket options: reads and writes go through tokio's
/// readiness API on a shared reference.
///
/// Safe code reads only into initialized bytes, and hyper hands over its whole spare buffer
/// (8 KiB and up) uninitialized, so each read zeroes what it asks for: `next`, which follows
/// the size of what the peer sends.
#[derive(Debug)]
struct SharedStream {
    stream: Arc<TcpStream>,
    next: usize,
}

impl SharedStream {
    fn new(stream: Arc<TcpStream>) -> Self {
        Self { stream, next: FIRST_READ }
    }
}

impl tokio::io::AsyncRead for SharedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read;
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            let chunk = buf.remaining().min(self.next);
            let into = buf.initialize_unfilled_to(chunk);
            let mut short = None;
            // A short read drained the socket: answering it "would block" clears the readiness
            // (as tokio's own `TcpStream` does), so the next read waits for the poller instead
            // of asking the kernel once more for nothing.
            let result = self.stream.try_io(tokio::io::Interest::READABLE, || {
                let read = (&*socket2::SockRef::from(&*self.stream)).read(into)?;
                if 0 < read && read < chunk {
                    short = Some(read);
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok(read)
            });
            match result.or_else(|error| short.ok_or(error)) {
                Ok(read) => {
                    self.next = if read == chunk { (chunk * 2).clamp(FIRST_READ, MAX_READ) } else { FIRST_READ };
                    buf.advance(read);
                    return std::task::Poll::Ready(Ok(()));
                }
                // Readiness was stale: poll_read_ready registers for the next wake-up.
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => return std::task::Poll::Ready(Err(error)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for SharedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(buf) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                result => return std::task::Poll::Ready(result),
            }
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write_vectored(bufs) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                result => return std::task::Poll::Ready(result),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let result = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        std::task::Poll::Ready(match result {
            Err(error) if error.kind() == std::io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

/// Limits every accept loop applies.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from the first byte of
    /// the head (or, on a kept-alive connection, from the end of the previous request): also
    /// how long an idle connection is kept.
    pub header_read_timeout: Duration,
    /// TCP connections one source address may hold at once (`None`: no per-source cap, as on
    /// the admin listener). Beyond it, the source's oldest idle connection is closed.
    pub max_connections_per_source: Option<usize>,
    /// Refuse requests with both `Content-Length` and `Transfer-Encoding`, or a target that is
    /// not UTF-8, with the response this renders, then close ([`framing`]; the admin plane).
    pub strict_framing: Option<framing::Refuse>,
    /// Where this listener's connections are counted (`None`: nowhere).
    pub metrics: Option<Arc<crate::metrics::Connections>>,
}

impl Limits {
    /// The default per-source cap of guest listeners.
    pub const DEFAULT_PER_SOURCE: usize = 64;
}

impl Default for Limits {
    /// 4096 connections, 64 per source address, 10 s to send headers.
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_source: Some(Self::DEFAULT_PER_SOURCE),
            strict_framing: None,
            metrics: None,
        }
    }
}

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Who is on the other end.
    pub peer: Peer,
    /// The connection's socket (TCP only).
    pub socket: Option<ConnSocket>,
}

/// What answers the requests a listener's connections carry.
pub trait Answer: Clone + Send + Sync + 'static {
    /// The body of its responses.
    type Body: hyper::body::Body<Data = bytes::Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;

    /// The response to `request`, which arrived as `arrival` says.
    fn answer(
        &self,
        request: http::Request<Incoming>,
        arrival: &Arrival,
    ) -> impl std::future::Future<Output = http::Response<Self::Body>> + Send + use<Self>;
}

/// A router sees the connection's [`Peer`] and [`ConnSocket`] as request extensions.
impl Answer for Router {
    type Body = axum::body::Body;

    fn answer(
        &self,
        request: http::Request<Incoming>,
        arrival: &Arrival,
    ) -> impl std::future::Future<Output = axum::response::Response> + Send + use<> {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(arrival.peer);
        if let Some(socket) = &arrival.socket {
            request.extensions_mut().insert(socket.clone());
        }
        self.clone().oneshot(request).map(|answered| answered.unwrap_or_else(|never| match never {}))
    }
}

/// Serves `answer` on a bound TCP listener until `shutdown`, then drains in-flight requests.
pub async fn serve_tcp(listener: TcpListener, answer: impl Answer, limits: Limits, shutdown: CancellationToken) {
    accept_loop(listener, answer, limits, shutdown).await;
}

/// Serves `answer` on a bound Unix listener until `shutdown`, then drains and removes the socket.
pub async fn serve_unix(
    listener: UnixListener,
    path: PathBuf,
    answer: impl Answer,
    limits: Limits,
    shutdown: CancellationToken,
) {
    accept_loop(listener, answer, limits, shutdown).await;
    remove_socket(&path);
}

/// A bound socket that yields connections and says who is on the other end.
trait Acceptor {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept(&self)
        -> impl std::future::Future<Output = std::io::Result<(Self::Io, Peer, Option<ConnSocket>)>> + Send;
}

impl Acceptor for TcpListener {
    type Io = SharedStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer, Option<ConnSocket>)> {
        let (stream, remote) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(remote);
        let stream = Arc::new(stream);
        let socket = ConnSocket::new(Arc::clone(&stream))
            .inspect_err(|error| tracing::warn!(%remote, %error, "cannot control this connection's hop limit"))
            .ok();
        Ok((SharedStream::new(stream), Peer::Tcp { remote, local }, socket))
    }
}

impl Acceptor for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, Peer, Option<ConnSocket>)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, Peer::Unix, None))
    }
}

/// Accepts until `shutdown`, one task per connection, at most `limits.max_connections` at once.
async fn accept_loop(listener: impl Acceptor, answer: impl Answer, limits: Limits, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let sources = limits.max_connections_per_source.map(sources::Sources::new);
    let tracker = TaskTracker::new();
    let mut failures = 0u32;
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer, socket) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "accept failed");
                backoff(failures, &shutdown).await;
                continue;
            }
        };
        failures = 0;
        // Cancelled when the connection must close: on shutdown, or when its source's cap evicts it.
        let stop = shutdown.child_token();
        let admission = match (&sources, peer) {
            (Some(sources), Peer::Tcp { remote, .. }) => match sources.admit(remote.ip(), stop.clone()) {
                Some(admission) => Some(admission),
                None => {
                    if let Some(metrics) = &limits.metrics {
                        metrics.refused();
                    }
                    tracing::debug!(%remote, "refusing a connection: every connection of this source is busy");
                    continue;
                }
            },
            _ => None,
        };
        let open = limits.metrics.as_ref().map(crate::metrics::Connections::accepted);
        let connection = Connection { peer, socket, admission, stop, _open: open };
        let (answer, limits_, shutdown_) = (answer.clone(), limits.clone(), shutdown.clone());
        match limits.strict_framing {
            Some(refuse) => {
                let io = TokioIo::new(framing::Checked::new(stream, refuse));
                tracker.spawn(serve_connection(io, answer, connection, limits_, shutdown_, permit))
            }
            None => {
                tracker.spawn(serve_connection(TokioIo::new(stream), answer, connection, limits_, shutdown_, permit))
            }
        };
    }
    tracker.close();
    tracker.wait().await;
}

/// Binds a Unix socket at `path` with mode 0600, replacing a stale socket file.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn remove_socket(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %error, "could not remove the admin socket");
        }
    }
}

/// What every request of a connection carries as extensions.
struct Connection {
    peer: Peer,
    socket: Option<ConnSocket>,
    /// Its place among its source's connections (guest listeners).
    admission: Option<sources::Admission>,
    /// Cancelled on shutdown and when its source's cap evicts it.
    stop: CancellationToken,
    /// Counts the connection as open while it lives.
    _open: Option<crate::metrics::OpenConnection>,
}

async fn serve_connection<S>(
    io: TokioIo<S>,
    answer: impl Answer,
    connection: Connection,
    limits: Limits,
    shutdown: CancellationToken,
    _permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Connection { peer, socket, admission, stop, _open: open } = connection;
    let activity = admission.as_ref().map(|admission| Arc::clone(&admission.activity));
    let arrival = Arrival { peer, socket };
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let answered = answer.answer(request, &arrival);
        let in_flight = activity.as_ref().map(sources::Activity::request);
        async move {
            let response = answered.await;
            drop(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(head_timer::HeadTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A refused head ends the stream hyper reads: the requests before it are still answered.
        .half_close(limits.strict_framing.is_some())
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        // One token for both (a connection waits on one signal, not two, at every wake-up).
        // On shutdown every connection finishes the request it is on. When its source opened
        // one connection too many, an idle connection (or one still sending its head) closes
        // now; one whose request started meanwhile, after that request.
        () = stop.cancelled() => {
            let busy = admission.as_ref().is_some_and(|admission| !admission.activity.is_idle());
            if shutdown.is_cancelled() || busy {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
    drop(admission);
    drop(open);
}

async fn backoff(failures: u32, shutdown: &CancellationToken) {
    // Running out of file descriptors makes accept fail in a tight loop: wait it out.
    let delay = Duration::from_millis(10u64.saturating_mul(1 << failures.min(7)));
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}
