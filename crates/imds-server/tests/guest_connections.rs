//! One source cannot take the guest listener from everyone else: many idle connections from one
//! address, or slow senders, over real sockets.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]
// The open-file limit is raised with setrlimit.
#![allow(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::StatusCode;
use imds_server::guest::throttle::Throttle;
use imds_server::listener;
use imds_server::test_util::TestServer;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

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

async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// Whether the server has closed `stream` (end of stream or a reset, without blocking).
fn is_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

async fn open_count(streams: &[TcpStream]) -> usize {
    // Let the readiness of every socket be polled once.
    tokio::task::yield_now().await;
    let mut open = 0;
    for stream in streams {
        let _ = tokio::time::timeout(Duration::from_millis(1), stream.readable()).await;
        open += usize::from(!is_closed(stream));
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_holding_thousands_of_idle_connections_cannot_fail_another_instances_get() {
    const HELD: usize = 3000;
    // The server and these clients share this process: two descriptors per connection.
    let nofile = raise_nofile(2 * HELD as u64 + 512);
    assert!(nofile >= 2 * HELD as u64 + 512, "the open-file limit ({nofile}) is too low; raise `ulimit -Hn`");
    // A listener smaller than the connections one source opens: without a per-source cap, the
    // attacker holds every slot and the victim waits in the backlog.
    let limits = listener::Limits { max_connections: 1024, ..listener::Limits::default() };
    let cap = limits.max_connections_per_source.unwrap();
    let server = TestServer::with_guest_limits(Throttle::default(), limits).await;
    server.create(json!({"id": "i-attacker", "ipv4": ["127.0.45.1"]})).await;
    server.create(json!({"id": "i-victim", "ipv4": ["127.0.45.2"], "hostname": "victim"})).await;

    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        held.push(connect_from("127.0.45.1", server.guest_addr).await);
    }
    let victim = server.guest_from("127.0.45.2").with_timeout(Duration::from_secs(5));
    for _ in 0..20 {
        let response = victim.get("/latest/meta-data/hostname").await.expect("the victim is answered within 5 s");
        assert_eq!((response.status, response.text()), (StatusCode::OK, "victim".to_owned()));
    }
    // The attacker's connections beyond the cap were closed, oldest first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let open = open_count(&held).await;
        if open <= cap {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} of the source's connections stay open; the cap is {cap}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_closed(&held[0]), "the oldest idle connection is closed first");
    // The attacker itself is still served, on a fresh connection.
    let attacker = server.guest_from("127.0.45.1").with_timeout(Duration::from_secs(5));
    assert_eq!(attacker.get("/latest/meta-data/instance-id").await.unwrap().text(), "i-attacker");
}

#[tokio::test]
async fn slow_senders_are_closed_by_the_header_timeout_however_they_trickle() {
    let limits = listener::Limits {
        header_read_timeout: Duration::from_secs(1),
        // Only the timeout at work here.
        max_connections_per_source: None,
        ..listener::Limits::default()
    };
    let server = TestServer::with_guest_limits(Throttle::default(), limits).await;
    server.create(json!({"id": "i-slow", "ipv4": ["127.0.45.3"]})).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = connect_from("127.0.45.3", server.guest_addr).await;
        stream.write_all(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(stream);
    }
    let idle: Vec<TcpStream> = {
        let mut idle = Vec::new();
        for _ in 0..50 {
            idle.push(connect_from("127.0.45.3", server.guest_addr).await);
        }
        idle
    };
    let started = tokio::time::Instant::now();
    // One header byte every 100 ms each: every byte arrives well within any per-read timeout.
    let closed_after = loop {
        let mut open = 0;
        for stream in &mut slow {
            if stream.write_all(b"x").await.is_ok() && !is_closed(stream) {
                open += 1;
            }
        }
        if open == 0 && open_count(&idle).await == 0 {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(8), "{open} slow senders still open after 8 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Closed by the 1 s deadline (plus scheduling), not after the 8 s they would trickle for.
    assert!(closed_after < Duration::from_secs(4), "slow senders lasted {closed_after:?}");
    let guest = server.guest_from("127.0.45.3");
    assert_eq!(guest.get("/latest/meta-data/instance-id").await.unwrap().text(), "i-slow");
}
