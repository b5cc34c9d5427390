//! A load client for imds benchmarks, for what `wrk` cannot do: connections from many loopback
//! source addresses (one per registered instance), connection bursts, token storms, and admin
//! writes. Every mode is bounded in count and time and prints one JSON line of results.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use imds_bench::source_address;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Load client for imds benchmarks")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Keep-alive GETs of one path for a fixed time, each connection from its own instance address.
    Get {
        /// The guest listener.
        #[arg(long)]
        target: SocketAddr,
        /// The path to GET.
        #[arg(long)]
        path: String,
        /// Connections held open.
        #[arg(long, default_value_t = 16)]
        connections: u32,
        /// Instances to spread the connections over (`source_address(0..instances)`); 0: from the
        /// machine's own address (127.0.0.1 to a loopback target, a VM's address in its namespace).
        #[arg(long, default_value_t = 0)]
        instances: u32,
        /// The first instance of that range (`source_address(first..first + instances)`).
        #[arg(long, default_value_t = 0)]
        first: u32,
        /// Seconds to run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Requests per second on each connection, sent on a fixed schedule (a guest agent's
        /// pace, so its latency is measured, not its throughput); 0: back to back.
        #[arg(long, default_value_t = 0)]
        rate: u32,
    },
    /// Holds this many connections from one instance's address for a fixed time, as a hostile
    /// guest would: idle, or (`--slowloris`) sending a request head that never ends, one header
    /// line a second. A connection the server closes is opened again after 100 ms.
    Hold {
        /// The guest listener.
        #[arg(long)]
        target: SocketAddr,
        /// The instance whose address the connections come from (`source_address(instance)`);
        /// without it, the machine's own address (a VM's, run in its network namespace).
        #[arg(long)]
        instance: Option<u32>,
        /// Connections held at once.
        #[arg(long, default_value_t = 20_000)]
        connections: u32,
        /// Seconds to hold them.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Trickle a never-ending head instead of staying silent.
        #[arg(long)]
        slowloris: bool,
    },
    /// One GET from every instance's address (`source_address(0..instances)`), each on a new
    /// connection, `concurrency` at a time; each answer must be 200 and name the instance
    /// (`i-bench-N`), so every instance's guest has asked once.
    Sweep {
        /// The guest listener.
        #[arg(long)]
        target: SocketAddr,
        /// The path to GET (its answer must contain the instance id).
        #[arg(long, default_value = "/latest/meta-data/instance-id")]
        path: String,
        /// Instances to sweep.
        #[arg(long)]
        instances: u32,
        /// Connections in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: u32,
        /// Seconds before the sweep stops, counting what is left as errors.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    /// Opens this many connections at once, one GET on each; every answer must be 200.
    Burst {
        /// The guest listener.
        #[arg(long)]
        target: SocketAddr,
        /// The path to GET.
        #[arg(long, default_value = "/latest/meta-data/instance-id")]
        path: String,
        /// Connections opened at once.
        #[arg(long, default_value_t = 10_000)]
        connections: u32,
        /// Seconds before the burst counts as failed.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// This many concurrent IMDSv2 token PUTs, each followed by a GET with its token.
    Tokens {
        /// The guest listener.
        #[arg(long)]
        target: SocketAddr,
        /// Concurrent clients.
        #[arg(long, default_value_t = 256)]
        connections: u32,
        /// Seconds before the storm counts as failed.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Registers `count` instances through the admin API, `concurrency` requests at a time:
    /// one `PUT` per instance, or bulk imports of `--batch` instances per request.
    Populate {
        /// The admin listener.
        #[arg(long)]
        admin: SocketAddr,
        /// The admin bearer token.
        #[arg(long)]
        token: String,
        /// Instances to register (ids `i-bench-N`, addresses `source_address(N)`).
        #[arg(long)]
        count: u32,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: u32,
        /// Instances per request: above 1, `POST /v1/instances` with that many NDJSON lines.
        #[arg(long, default_value_t = 1)]
        batch: u32,
    },
    /// Times `count` admin writes from send until a guest read sees them.
    Visibility {
        /// The admin listener.
        #[arg(long)]
        admin: SocketAddr,
        /// The guest listener.
        #[arg(long)]
        target: SocketAddr,
        /// The admin bearer token.
        #[arg(long)]
        token: String,
        /// Writes to time.
        #[arg(long, default_value_t = 1000)]
        count: u32,
    },
}

/// One HTTP/1 connection from a chosen source address.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(target: SocketAddr, source: Option<Ipv4Addr>) -> anyhow::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).with_context(|| format!("bind {source}"))?;
        }
        let stream = socket.connect(target).await.with_context(|| format!("connect {target}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder().method(method).uri(path).header("host", "169.254.169.254");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request.body(Full::new(body))?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Prints the common summary line: counts, rate and latency percentiles (microseconds).
fn report(mode: &str, mut micros: Vec<u32>, errors: u64, elapsed: Duration, extra: serde_json::Value) {
    micros.sort_unstable();
    let ok = micros.len() as u64;
    let mut line = json!({
        "mode": mode,
        "requests": ok,
        "errors": errors,
        "seconds": elapsed.as_secs_f64(),
        "rps": ok as f64 / elapsed.as_secs_f64().max(1e-9),
        "p50_us": percentile(&micros, 0.50),
        "p99_us": percentile(&micros, 0.99),
        "max_us": micros.last().copied().unwrap_or(0),
    });
    if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    println!("{line}");
}

/// Samples kept per connection, so that a long run stays bounded in memory.
const MAX_SAMPLES_PER_CONNECTION: usize = 2_000_000;

async fn get(
    target: SocketAddr,
    path: String,
    connections: u32,
    (first, instances): (u32, u32),
    seconds: u64,
    rate: u32,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let pace = (rate > 0).then(|| Duration::from_secs(1) / rate);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let source = (instances > 0).then(|| source_address(first + c % instances));
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut micros = Vec::new();
            let mut errors = 0u64;
            let mut conn = Conn::open(target, source).await?;
            // Connections past the first round spread over the other instances as they go.
            let mut n = 0u32;
            let mut schedule = pace.map(|every| {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            while Instant::now() < deadline {
                if let Some(ticks) = schedule.as_mut() {
                    ticks.tick().await;
                }
                let start = Instant::now();
                match conn.send(Method::GET, &path, &[], Bytes::new()).await {
                    Ok((StatusCode::OK, _)) => {
                        if micros.len() < MAX_SAMPLES_PER_CONNECTION {
                            micros.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                    }
                    Ok(_) | Err(_) => errors += 1,
                }
                n = n.wrapping_add(1);
                if instances > connections && n.is_multiple_of(1024) {
                    let next = c.wrapping_add(connections.wrapping_mul(n / 1024)) % instances;
                    conn = Conn::open(target, Some(source_address(first + next))).await?;
                }
            }
            anyhow::Ok((micros, errors))
        }));
    }
    let mut micros = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (m, e) = task.await??;
        micros.extend(m);
        errors += e;
    }
    report(
        "get",
        micros,
        errors,
        started.elapsed(),
        json!({"connections": connections, "instances": instances, "rate": rate}),
    );
    Ok(())
}

async fn hold(
    target: SocketAddr,
    instance: Option<u32>,
    connections: u32,
    seconds: u64,
    slowloris: bool,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let source = instance.map(source_address);
    let connects = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (connects, closed) = (std::sync::Arc::clone(&connects), std::sync::Arc::clone(&closed));
        tasks.spawn(async move {
            // Whether this connection is open when the time is up.
            let mut open_at_end = false;
            while Instant::now() < deadline {
                let socket = TcpSocket::new_v4()?;
                if let Some(source) = source {
                    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
                }
                let Ok(Ok(mut stream)) = tokio::time::timeout_at(deadline, socket.connect(target)).await else {
                    break;
                };
                connects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if slowloris {
                    let _ = stream.write_all(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n").await;
                }
                let mut byte = [0u8; 1];
                loop {
                    let step = if slowloris { Instant::now() + Duration::from_secs(1) } else { deadline };
                    match tokio::time::timeout_at(step.min(deadline), stream.read(&mut byte)).await {
                        Err(_) if Instant::now() >= deadline => {
                            open_at_end = true;
                            break;
                        }
                        Err(_) => {
                            if stream.write_all(b"X-Trickle: 1\r\n").await.is_err() {
                                closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                        }
                        Ok(_) => {
                            closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                    }
                }
                if open_at_end {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(open_at_end)
        });
    }
    let mut open_at_end = 0u64;
    let mut errors = 0u64;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(open)) => open_at_end += u64::from(open),
            _ => errors += 1,
        }
    }
    let line = json!({
        "mode": "hold",
        "connections": connections,
        "slowloris": slowloris,
        "connects": connects.load(std::sync::atomic::Ordering::Relaxed),
        "closed_by_server": closed.load(std::sync::atomic::Ordering::Relaxed),
        "open_at_end": open_at_end,
        "errors": errors,
    });
    println!("{line}");
    Ok(())
}

async fn sweep(target: SocketAddr, path: String, instances: u32, concurrency: u32, seconds: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, path) = (std::sync::Arc::clone(&next), path.clone());
        tasks.push(tokio::spawn(async move {
            let (mut micros, mut errors, mut first_error) = (Vec::new(), 0u64, None);
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= instances {
                    break;
                }
                if Instant::now() >= deadline {
                    errors += 1;
                    continue;
                }
                let start = Instant::now();
                let answer = async {
                    let mut conn = Conn::open(target, Some(source_address(n))).await?;
                    conn.send(Method::GET, &path, &[], Bytes::new()).await
                };
                let id = format!("i-bench-{n}");
                match answer.await {
                    Ok((StatusCode::OK, body)) if body.windows(id.len()).any(|w| w == id.as_bytes()) => {
                        if micros.len() < MAX_SAMPLES_PER_CONNECTION {
                            micros.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                    }
                    other => {
                        errors += 1;
                        first_error.get_or_insert_with(|| match other {
                            Ok((status, body)) => format!("{id}: {status} {}", String::from_utf8_lossy(&body)),
                            Err(error) => format!("{id}: {error}"),
                        });
                    }
                }
            }
            (micros, errors, first_error)
        }));
    }
    let (mut micros, mut errors, mut first_error) = (Vec::new(), 0, None);
    for task in tasks {
        let (m, e, f) = task.await?;
        micros.extend(m);
        errors += e;
        first_error = first_error.or(f);
    }
    report("sweep", micros, errors, started.elapsed(), json!({"instances": instances, "first_error": first_error}));
    Ok(())
}

async fn burst(target: SocketAddr, path: String, connections: u32, seconds: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let path = path.clone();
        tasks.spawn(async move {
            let start = Instant::now();
            let mut conn = Conn::open(target, None).await?;
            let (status, body) = conn.send(Method::GET, &path, &[], Bytes::new()).await?;
            if status != StatusCode::OK || body.is_empty() {
                bail!("answer {status} with {} bytes", body.len());
            }
            Ok(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX))
        });
    }
    let (micros, errors, first_error) = collect(tasks, seconds).await;
    report("burst", micros, errors, started.elapsed(), json!({"connections": connections, "first_error": first_error}));
    Ok(())
}

async fn tokens(target: SocketAddr, connections: u32, seconds: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(async move {
            let start = Instant::now();
            let mut conn = Conn::open(target, None).await?;
            let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", "60")];
            let (status, token) = conn.send(Method::PUT, "/latest/api/token", &ttl, Bytes::new()).await?;
            if status != StatusCode::OK || token.is_empty() {
                bail!("token PUT answered {status}");
            }
            let token = std::str::from_utf8(&token)?.to_owned();
            let with_token = [("x-aws-ec2-metadata-token", token.as_str())];
            let (status, body) =
                conn.send(Method::GET, "/latest/meta-data/instance-id", &with_token, Bytes::new()).await?;
            if status != StatusCode::OK || body.is_empty() {
                bail!("GET with the token answered {status}");
            }
            Ok(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX))
        });
    }
    let (micros, errors, first_error) = collect(tasks, seconds).await;
    report(
        "tokens",
        micros,
        errors,
        started.elapsed(),
        json!({"connections": connections, "first_error": first_error}),
    );
    Ok(())
}

/// Waits for every task, for at most `seconds`; unfinished tasks count as errors.
async fn collect(
    mut tasks: tokio::task::JoinSet<anyhow::Result<u32>>,
    seconds: u64,
) -> (Vec<u32>, u64, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut micros, mut errors, mut first_error) = (Vec::new(), 0u64, None);
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(Ok(us)))) => micros.push(us),
            Ok(Some(Ok(Err(error)))) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
            Ok(Some(Err(error))) => {
                errors += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
            Ok(None) => break,
            Err(_) => {
                errors += tasks.len() as u64;
                first_error.get_or_insert_with(|| "timed out".into());
                tasks.abort_all();
                break;
            }
        }
    }
    (micros, errors, first_error)
}

fn instance_value(n: u32, hostname: &str) -> serde_json::Value {
    json!({"ipv4": [source_address(n).to_string()], "hostname": hostname, "region": "eu-west-1"})
}

fn instance_doc(n: u32, hostname: &str) -> String {
    instance_value(n, hostname).to_string()
}

async fn populate(admin: SocketAddr, token: String, count: u32, concurrency: u32, batch: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let batch = batch.max(1);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, token) = (std::sync::Arc::clone(&next), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(admin, None).await?;
            let auth = format!("Bearer {token}");
            let mut micros = Vec::new();
            loop {
                let first = next.fetch_add(batch, std::sync::atomic::Ordering::Relaxed);
                if first >= count {
                    return anyhow::Ok(micros);
                }
                let start = Instant::now();
                let (status, text) = if batch == 1 {
                    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
                    let body = Bytes::from(instance_doc(first, &format!("bench-{first}")));
                    conn.send(Method::PUT, &format!("/v1/instances/i-bench-{first}"), &headers, body).await?
                } else {
                    let headers = [("authorization", auth.as_str()), ("content-type", "application/x-ndjson")];
                    let mut lines = String::new();
                    for n in first..first.saturating_add(batch).min(count) {
                        let mut doc = instance_value(n, &format!("bench-{n}"));
                        doc["id"] = json!(format!("i-bench-{n}"));
                        lines.push_str(&doc.to_string());
                        lines.push('\n');
                    }
                    conn.send(Method::POST, "/v1/instances", &headers, Bytes::from(lines)).await?
                };
                if !status.is_success() {
                    bail!("registering i-bench-{first}.. answered {status}: {}", String::from_utf8_lossy(&text));
                }
                micros.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        }));
    }
    let mut micros = Vec::new();
    for task in tasks {
        micros.extend(task.await??);
    }
    let elapsed = started.elapsed();
    report(
        "populate",
        micros,
        0,
        elapsed,
        json!({"count": count, "concurrency": concurrency, "batch": batch,
        "instances_per_second": f64::from(count) / elapsed.as_secs_f64()}),
    );
    Ok(())
}

async fn visibility(admin: SocketAddr, target: SocketAddr, token: String, count: u32) -> anyhow::Result<()> {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let mut admin_conn = Conn::open(admin, None).await?;
    // Instance 0 is the one written; its guest reads from its own address.
    let mut guest = Conn::open(target, Some(source_address(0))).await?;
    let started = Instant::now();
    let mut micros = Vec::new();
    let mut errors = 0;
    for n in 0..count {
        let hostname = format!("visible-{n}");
        let start = Instant::now();
        let (status, _) = admin_conn
            .send(Method::PUT, "/v1/instances/i-bench-0", &headers, Bytes::from(instance_doc(0, &hostname)))
            .await?;
        if !status.is_success() {
            bail!("admin PUT answered {status}");
        }
        // The write is acknowledged once the guest view has it: the very next read must see it.
        let (status, body) = guest.send(Method::GET, "/latest/meta-data/hostname", &[], Bytes::new()).await?;
        let elapsed = start.elapsed();
        if status == StatusCode::OK && body.as_ref() == hostname.as_bytes() {
            micros.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        } else {
            errors += 1;
        }
    }
    report("visibility", micros, errors, started.elapsed(), json!({"count": count}));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::Get { target, path, connections, instances, first, seconds, rate } => {
            get(target, path, connections, (first, instances), seconds, rate).await
        }
        Mode::Hold { target, instance, connections, seconds, slowloris } => {
            hold(target, instance, connections, seconds, slowloris).await
        }
        Mode::Sweep { target, path, instances, concurrency, seconds } => {
            sweep(target, path, instances, concurrency, seconds).await
        }
        Mode::Burst { target, path, connections, seconds } => burst(target, path, connections, seconds).await,
        Mode::Tokens { target, connections, seconds } => tokens(target, connections, seconds).await,
        Mode::Populate { admin, token, count, concurrency, batch } => {
            populate(admin, token, count, concurrency, batch).await
        }
        Mode::Visibility { admin, target, token, count } => visibility(admin, target, token, count).await,
    }
}
