//! The GCE dialect over real sockets: the flavor header, forwarded requests, recursive and alt
//! renderings, guest attributes written by a guest, and `wait_for_change` long polls (woken by a
//! relevant admin change, not by an irrelevant one, timing out with the unchanged ETag, freed by
//! a disconnect, and 10,000 of them at once).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::Response;
use imds_server::guest::throttle::Throttle;
use imds_server::listener;
use imds_server::test_util::TestServer;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const FLAVOR: (&str, &str) = ("metadata-flavor", "Google");

fn record(id: &str, ip: &str, hostname: &str) -> Value {
    json!({
        "id": id,
        "hostname": hostname,
        "ipv4": [ip],
        "zone": "europe-west1-b",
        "account": {"id": "123456789012", "name": "acme"},
        "iam_role": "app",
        "user_data": "#cloud-config\n",
        "dialects": {"gce": {"attributes": {"enable-guest-attributes": "TRUE"}}}
    })
}

async fn admin_put(server: &TestServer, doc: &Value) {
    let id = doc["id"].as_str().unwrap();
    let response = server
        .admin()
        .send(Method::PUT, &format!("/v1/instances/{id}"), &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert!(response.status.is_success(), "PUT {id}: {} {}", response.status, response.text());
}

async fn gce_get(server: &TestServer, source: &str, target: &str) -> Response {
    server.guest_from(source).send(Method::GET, target, &[FLAVOR], "").await.unwrap()
}

#[tokio::test]
async fn headers_shapes_and_refusals() {
    let server = TestServer::start().await;
    server.create(record("4001", "127.0.4.1", "alpha")).await;
    let guest = server.guest_from("127.0.4.1");

    let bare = guest.get("/computeMetadata/v1/instance/id").await.unwrap();
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert_eq!(bare.header("metadata-flavor"), Some("Google"));
    let forwarded = guest
        .send(Method::GET, "/computeMetadata/v1/instance/id", &[FLAVOR, ("x-forwarded-for", "127.0.4.99")], "")
        .await
        .unwrap();
    assert_eq!(forwarded.status, StatusCode::FORBIDDEN);

    let id = gce_get(&server, "127.0.4.1", "/computeMetadata/v1/instance/id").await;
    assert_eq!((id.status, id.text().as_str()), (StatusCode::OK, "4001"));
    assert_eq!(id.header("content-type"), Some("application/text"));
    assert_eq!(id.header("server"), Some("Metadata Server for VM"));
    assert_eq!(id.header("etag").map(str::len), Some(16));

    let all = gce_get(&server, "127.0.4.1", "/computeMetadata/v1/?recursive=True&alt=json").await;
    assert_eq!(all.header("content-type"), Some("application/json"));
    let all = all.json();
    assert_eq!(all["instance"]["hostname"], "alpha.europe-west1-b.c.acme.internal");
    assert_eq!(all["project"]["numericProjectId"], 123_456_789_012u64);
    assert_eq!(all["instance"]["serviceAccounts"]["default"]["email"], "app@acme.iam.gserviceaccount.com");
    let text = gce_get(&server, "127.0.4.1", "/computeMetadata/v1/instance/?recursive=true&alt=text").await;
    assert!(text.text().contains("\nzone projects/123456789012/zones/europe-west1-b\n"), "{}", text.text());

    let moved = gce_get(&server, "127.0.4.1", "/computeMetadata/v1/instance").await;
    assert_eq!(moved.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(moved.header("location"), Some("/computeMetadata/v1/instance/"));

    // google-auth's ping: the root with the flavor header answers with it.
    let ping = gce_get(&server, "127.0.4.1", "/").await;
    assert_eq!((ping.status, ping.header("metadata-flavor")), (StatusCode::OK, Some("Google")));
}

#[tokio::test]
async fn guest_attributes_written_by_the_guest_survive_an_admin_replace() {
    let server = TestServer::start().await;
    server.create(record("4002", "127.0.4.2", "bravo")).await;
    server.create(record("4003", "127.0.4.3", "charlie")).await;
    let guest = server.guest_from("127.0.4.2");
    let path = "/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519";
    let put = guest.send(Method::PUT, path, &[FLAVOR], "AAAAC3Nza host key").await.unwrap();
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());

    let read = gce_get(&server, "127.0.4.2", path).await;
    assert_eq!(read.text(), "AAAAC3Nza host key");
    admin_put(&server, &record("4002", "127.0.4.2", "bravo-renamed")).await;
    let all = gce_get(&server, "127.0.4.2", "/computeMetadata/v1/instance/guest-attributes/?recursive=true").await;
    assert_eq!(all.json(), json!({"hostkeys": {"ssh-ed25519": "AAAAC3Nza host key"}}));
    assert_eq!(gce_get(&server, "127.0.4.2", "/computeMetadata/v1/instance/name").await.text(), "bravo-renamed");
    // Another instance does not see it.
    let other = gce_get(&server, "127.0.4.3", "/computeMetadata/v1/instance/guest-attributes/").await;
    assert_eq!((other.status, other.text().as_str()), (StatusCode::OK, ""));
    // Removed by the guest.
    let delete = guest.send(Method::DELETE, path, &[FLAVOR], "").await.unwrap();
    assert_eq!(delete.status, StatusCode::OK);
    assert_eq!(gce_get(&server, "127.0.4.2", path).await.status, StatusCode::NOT_FOUND);
}

/// Sends a GET with the flavor header over a fresh connection from `source` and returns the
/// open stream (the answer is read later).
async fn open_request(addr: SocketAddr, source: &str, target: &str) -> TcpStream {
    let source: IpAddr = source.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: metadata.google.internal\r\nMetadata-Flavor: Google\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads a whole `Connection: close` answer: `(status, etag, body)`.
async fn read_answer(mut stream: TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let etag = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("etag: ").map(str::to_owned))
        .unwrap_or_default();
    (status, etag, body.to_owned())
}

async fn etag_of(server: &TestServer, source: &str, target: &str) -> String {
    gce_get(server, source, target).await.header("etag").unwrap().to_owned()
}

/// Waits (bounded) until the server holds exactly `n` waiters.
async fn until_waiters(server: &TestServer, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while server.running.view.changes().waiters() != n {
        assert!(Instant::now() < deadline, "{} waiters, expected {n}", server.running.view.changes().waiters());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn wait_for_change_returns_soon_after_a_relevant_change_only() {
    let server = TestServer::start().await;
    server.create(record("4004", "127.0.4.4", "delta")).await;
    server.create(record("4005", "127.0.4.5", "echo")).await;
    let leaf = "/computeMetadata/v1/instance/hostname";
    let etag = etag_of(&server, "127.0.4.4", leaf).await;

    let target = format!("{leaf}?wait_for_change=true&last_etag={etag}&timeout_sec=30");
    let waiter = tokio::spawn(read_answer(open_request(server.guest_addr, "127.0.4.4", &target).await));
    until_waiters(&server, 1, Duration::from_secs(5)).await;

    // Irrelevant: another instance, and another leaf of this one. The waiter stays.
    admin_put(&server, &record("4005", "127.0.4.5", "echo-2")).await;
    let mut other_leaf = record("4004", "127.0.4.4", "delta");
    other_leaf["user_data"] = json!("#cloud-config\nchanged: true\n");
    admin_put(&server, &other_leaf).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "an irrelevant change woke the waiter");
    assert_eq!(server.running.view.changes().waiters(), 1);

    // Relevant: the hostname.
    let mut renamed = other_leaf.clone();
    renamed["hostname"] = json!("delta-2");
    renamed["domain"] = json!("example.internal");
    let start = Instant::now();
    admin_put(&server, &renamed).await;
    let (status, new_etag, body) = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
    let elapsed = start.elapsed();
    println!("wait_for_change answered {elapsed:?} after the admin PUT was sent (PUT included)");
    assert_eq!((status, body.as_str()), (200, "delta-2.example.internal"));
    assert_ne!(new_etag, etag);
    assert_eq!(new_etag, etag_of(&server, "127.0.4.4", leaf).await);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    until_waiters(&server, 0, Duration::from_secs(5)).await;

    // A stale last_etag answers at once; no last_etag waits for the next change.
    let stale = format!("{leaf}?wait_for_change=true&last_etag=0000000000000000&timeout_sec=30");
    let (status, _, body) = tokio::time::timeout(
        Duration::from_secs(5),
        read_answer(open_request(server.guest_addr, "127.0.4.4", &stale).await),
    )
    .await
    .unwrap();
    assert_eq!((status, body.as_str()), (200, "delta-2.example.internal"));
    let next = format!("{leaf}?wait_for_change=true&timeout_sec=30");
    let waiter = tokio::spawn(read_answer(open_request(server.guest_addr, "127.0.4.4", &next).await));
    until_waiters(&server, 1, Duration::from_secs(5)).await;
    renamed["hostname"] = json!("delta-3");
    admin_put(&server, &renamed).await;
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
    assert_eq!((status, body.as_str()), (200, "delta-3.example.internal"));
}

#[tokio::test]
async fn wait_for_change_times_out_with_the_unchanged_etag() {
    let server = TestServer::start().await;
    server.create(record("4006", "127.0.4.6", "foxtrot")).await;
    let dir = "/computeMetadata/v1/instance/attributes/?recursive=true";
    let etag = etag_of(&server, "127.0.4.6", dir).await;
    let target = format!("{dir}&wait_for_change=true&last_etag={etag}&timeout_sec=1");
    let start = Instant::now();
    let stream = open_request(server.guest_addr, "127.0.4.6", &target).await;
    // A change outside the attributes during the wait re-renders the same answer.
    let mut renamed = record("4006", "127.0.4.6", "foxtrot-2");
    renamed["zone"] = json!("us-east1-c");
    admin_put(&server, &renamed).await;
    let (status, same, body) = tokio::time::timeout(Duration::from_secs(10), read_answer(stream)).await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(status, 200);
    assert_eq!(same, etag);
    assert!(body.contains("enable-guest-attributes"), "{body}");
    assert!(elapsed >= Duration::from_millis(900), "answered before its timeout: {elapsed:?}");

    // Guest attributes are not part of any recursive dump: a guest's write does not wake it.
    let guest = server.guest_from("127.0.4.6");
    let waiter = tokio::spawn(read_answer(
        open_request(
            server.guest_addr,
            "127.0.4.6",
            "/computeMetadata/v1/?recursive=true&wait_for_change=true&timeout_sec=1",
        )
        .await,
    ));
    until_waiters(&server, 1, Duration::from_secs(5)).await;
    let put =
        guest.send(Method::PUT, "/computeMetadata/v1/instance/guest-attributes/ns/k", &[FLAVOR], "v").await.unwrap();
    assert_eq!(put.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "a guest-attribute write woke a wait on the recursive root");
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_client_that_disconnects_frees_its_waiter() {
    let server = TestServer::start().await;
    server.create(record("4007", "127.0.4.7", "golf")).await;
    let target = "/computeMetadata/v1/instance/name?wait_for_change=true&timeout_sec=3600";
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open_request(server.guest_addr, "127.0.4.7", target).await);
    }
    until_waiters(&server, 3, Duration::from_secs(5)).await;
    assert_eq!(server.running.view.changes().watched(), 1);
    drop(streams.pop());
    until_waiters(&server, 2, Duration::from_secs(5)).await;
    streams.clear();
    until_waiters(&server, 0, Duration::from_secs(5)).await;
    assert_eq!(server.running.view.changes().watched(), 0, "the instance's channel is removed with its last waiter");
}

/// The resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The environment variable that makes [`ten_thousand_concurrent_waiters`] run as the client
/// half (in a child process, so that each process holds one end of every connection and both
/// stay under the open-file limit): `<guest addr> <instances> <waiters> <target>`.
const CLIENT_ROLE: &str = "IMDS_TEST_GCE_WAITER_CLIENT";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_waiters() {
    if let Ok(role) = std::env::var(CLIENT_ROLE) {
        return waiter_client(&role).await;
    }
    const WANTED: usize = 10_000;
    const INSTANCES: usize = 10;
    // The server process holds one descriptor per waiting connection (the client half runs in
    // a child process with its own limit); raise the soft limit as far as the hard limit allows.
    let nofile = raise_nofile(WANTED as u64 + 512);
    assert!(
        nofile >= WANTED as u64 + 512,
        "the open-file limit ({nofile}) is too low for {WANTED} waiting connections; raise `ulimit -Hn` to {}",
        WANTED + 512
    );
    let waiters = WANTED;
    // A thousand long polls per instance: far past the per-source cap a host would set.
    let connections = listener::Limits {
        max_connections: waiters + 100,
        max_connections_per_source: Some(waiters),
        ..listener::Limits::default()
    };
    let server = TestServer::with_guest_limits(Throttle::default(), connections).await;
    for i in 0..INSTANCES {
        server.create(record(&format!("41{i:02}"), &format!("127.0.4.{}", 100 + i), "hotel")).await;
    }
    let leaf = "/computeMetadata/v1/instance/hostname";
    let etag = etag_of(&server, "127.0.4.100", leaf).await;
    let target = format!("{leaf}?wait_for_change=true&last_etag={etag}&timeout_sec=120");
    let before = rss_kib();

    // This test's name as the harness lists it: its module path without the crate's name.
    let name = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::ten_thousand_concurrent_waiters"),
        None => "ten_thousand_concurrent_waiters".to_owned(),
    };
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CLIENT_ROLE, format!("{} {INSTANCES} {waiters} {target}", server.guest_addr))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let start = Instant::now();
    until_waiters(&server, waiters, Duration::from_secs(90)).await;
    let held = start.elapsed();
    let after = rss_kib();
    let per_waiter = (after.saturating_sub(before)) as f64 * 1024.0 / waiters as f64;
    println!(
        "{waiters} waiters on {INSTANCES} instances held after {held:?}: server process RSS {before} KiB -> \
         {after} KiB (+{} KiB, {per_waiter:.0} bytes per waiting connection)",
        after.saturating_sub(before)
    );
    assert_eq!(server.running.view.changes().watched(), INSTANCES);

    // One instance changes: exactly its waiters answer, with the new value.
    let mut renamed = record("4100", "127.0.4.100", "hotel-2");
    renamed["domain"] = json!("example.internal");
    admin_put(&server, &renamed).await;
    until_waiters(&server, waiters - waiters / INSTANCES, Duration::from_secs(30)).await;
    to_child.write_all(format!("changed {etag}\n").as_bytes()).await.unwrap();
    let verdict = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match from_child.next_line().await.unwrap() {
                // libtest may print `test … ... ` on the same line first.
                Some(line) => {
                    if let Some(at) = line.find("woken ") {
                        return line[at..].to_owned();
                    }
                }
                None => panic!("the client process ended without a verdict"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(verdict, format!("woken {} ok", waiters / INSTANCES));
    assert_eq!(server.running.view.changes().waiters(), waiters - waiters / INSTANCES);
    // The client closes every other connection: all waiters are freed.
    drop(to_child);
    until_waiters(&server, 0, Duration::from_secs(30)).await;
    assert!(child.wait().await.unwrap().success());
    println!("server process RSS after every waiter left: {} KiB", rss_kib());
}

/// The client half: opens the waiting requests, reports, and checks the woken answers.
async fn waiter_client(role: &str) {
    let mut parts = role.splitn(4, ' ');
    let addr: SocketAddr = parts.next().unwrap().parse().unwrap();
    let instances: usize = parts.next().unwrap().parse().unwrap();
    let waiters: usize = parts.next().unwrap().parse().unwrap();
    let target = parts.next().unwrap().to_owned();
    let mut streams = Vec::with_capacity(waiters);
    for batch in 0..waiters.div_ceil(500) {
        let opens = (batch * 500..waiters.min(batch * 500 + 500)).map(|i| {
            let source = format!("127.0.4.{}", 100 + i % instances);
            let target = target.clone();
            async move { open_request(addr, &source, &target).await }
        });
        streams.extend(futures::future::join_all(opens).await);
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let line = stdin.next_line().await.unwrap().unwrap();
    let old_etag = line.strip_prefix("changed ").unwrap().to_owned();
    let (woken, rest): (Vec<_>, Vec<_>) = streams.into_iter().enumerate().partition(|(i, _)| i % instances == 0);
    let answers = futures::future::join_all(woken.into_iter().map(|(_, stream)| read_answer(stream))).await;
    let good = answers
        .iter()
        .filter(|(status, etag, body)| *status == 200 && body == "hotel-2.example.internal" && *etag != old_etag)
        .count();
    if good == answers.len() {
        println!("woken {good} ok");
    } else {
        println!("woken {good} of {} correct: {:?}", answers.len(), answers.first());
    }
    // Hold the others until the server side has checked them, then close them all.
    let _ = stdin.next_line().await;
    drop(rest);
}

/// Raises this process's open-file soft limit towards `want` (never above the hard limit,
/// which an unprivileged process cannot raise); returns the limit in force.
#[allow(unsafe_code)]
fn raise_nofile(want: u64) -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read or write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < want {
            let raised = libc::rlimit { rlim_cur: want.min(limit.rlim_max), rlim_max: limit.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

#[tokio::test]
async fn the_admin_api_refuses_a_bad_gce_override_block_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut doc = record("4008", "127.0.4.8", "india");
    doc["dialects"]["gce"] = json!({"tags": "not-a-list", "projectid": "p"});
    let response = server
        .admin()
        .send(Method::PUT, "/v1/instances/4008", &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{}", response.text());
    let body = response.text();
    assert!(body.contains("dialects.gce.tags") && body.contains("dialects.gce.projectid"), "{body}");
    let absent = server.admin().get("/v1/instances/4008").await.unwrap();
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
}
