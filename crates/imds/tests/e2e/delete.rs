//! An instance DELETE is one commit: its MMDS document and guest state go with the record or
//! not at all. A DELETE refused by `If-Match` deletes nothing, and a `kill -9` at any moment of
//! a DELETE leaves either the whole instance or none of it; a guest never falls back from its
//! MMDS document to the EC2 tree.

use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::Client;
use serde_json::json;

use super::support::{temp_dir, Daemon};

const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

/// The MMDS document every instance here holds: a guest reading `/marker` gets `mmds` from
/// it, and a 404 from the EC2 tree it would fall back to without it.
fn document() -> String {
    json!({"marker": "mmds"}).to_string()
}

/// Creates instance `id` at guest address `ip` with its MMDS document; returns its ETag.
async fn create(admin: &Client, id: &str, ip: &str) -> String {
    let doc = json!({"id": id, "hostname": "before", "ipv4": [ip]}).to_string();
    let created = admin.send(Method::PUT, &format!("/v1/instances/{id}"), &JSON, doc).await.unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let put = admin.send(Method::PUT, &format!("/v1/instances/{id}/mmds"), &JSON, document()).await.unwrap();
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.text());
    admin.get(&format!("/v1/instances/{id}")).await.unwrap().header("etag").unwrap().to_owned()
}

/// What the admin API and the guest see of instance `id` at `ip`: `Some(true)` for the whole
/// instance (record and MMDS document, the guest served from MMDS), `None` for no instance
/// (record and document gone, the guest refused). Fails on anything in between.
async fn whole_or_gone(daemon: &Daemon, id: &str, ip: &str) -> Option<bool> {
    let admin = daemon.admin_client();
    let record = admin.get(&format!("/v1/instances/{id}")).await.unwrap().status;
    let mmds = admin.get(&format!("/v1/instances/{id}/mmds")).await.unwrap();
    let guest = daemon.guest_from(ip).get("/marker").await.unwrap();
    match record {
        StatusCode::OK => {
            assert_eq!(
                (mmds.status, mmds.text()),
                (StatusCode::OK, r#"{"marker":"mmds"}"#.to_owned()),
                "{id} exists without its MMDS document"
            );
            assert_eq!(
                (guest.status, guest.text()),
                (StatusCode::OK, "mmds".to_owned()),
                "the guest of {id} fell back from MMDS"
            );
            Some(true)
        }
        StatusCode::NOT_FOUND => {
            assert_eq!(mmds.status, StatusCode::NOT_FOUND, "{id} is gone but its MMDS endpoint answers");
            assert_eq!(guest.status, StatusCode::FORBIDDEN, "a deleted instance's guest is still served");
            None
        }
        other => panic!("GET {id}: {other}"),
    }
}

/// A DELETE with the ETag read before a racing PATCH: when the PATCH wins, the DELETE answers
/// 412 and must leave the instance whole, its MMDS document included.
#[tokio::test]
async fn a_delete_refused_by_if_match_keeps_the_mmds_document() {
    const TRIES: usize = 60;
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    let admin = daemon.admin_client();
    let (id, ip) = ("i-race", "127.0.2.1");
    let mut etag = create(&admin, id, ip).await;
    let path = format!("/v1/instances/{id}");
    let merge = [("content-type", "application/merge-patch+json")];
    let (mut refused, mut deleted) = (0, 0);
    for n in 0..TRIES {
        let patch_body = json!({"hostname": format!("patched-{n}")}).to_string();
        let if_match = [("if-match", etag.as_str())];
        let patch = admin.send(Method::PATCH, &path, &merge, patch_body);
        // The DELETE leaves a different moment after the PATCH each try (fault injection, not
        // synchronisation), so either may commit first.
        let lag = Duration::from_micros(250 * (n as u64 % 12));
        let delete = async {
            tokio::time::sleep(lag).await;
            admin.send(Method::DELETE, &path, &if_match, "").await
        };
        let (patch, delete) = tokio::join!(patch, delete);
        let (patch, delete) = (patch.unwrap(), delete.unwrap());
        match delete.status {
            StatusCode::PRECONDITION_FAILED => {
                refused += 1;
                assert_eq!(patch.status, StatusCode::OK, "the DELETE lost to a PATCH that failed: {}", patch.text());
                assert_eq!(whole_or_gone(&daemon, id, ip).await, Some(true), "try {n}: a refused DELETE deleted");
                etag = patch.header("etag").unwrap().to_owned();
            }
            StatusCode::NO_CONTENT => {
                deleted += 1;
                assert!(
                    matches!(patch.status, StatusCode::OK | StatusCode::NOT_FOUND),
                    "PATCH racing a DELETE: {} {}",
                    patch.status,
                    patch.text()
                );
                assert_eq!(whole_or_gone(&daemon, id, ip).await, None, "try {n}: half a delete");
                etag = create(&admin, id, ip).await;
            }
            other => panic!("try {n}: DELETE answered {other}: {}", delete.text()),
        }
    }
    eprintln!("{refused} DELETEs refused by If-Match, {deleted} deleted, of {TRIES}");
    assert!(refused > 0, "no PATCH ever won the race: the refused DELETE was not exercised");
}

/// `kill -9` at many moments of DELETEs in flight, restarting on the same SQLite file each
/// time: every instance is whole or gone, never a record without its MMDS document.
#[tokio::test]
async fn kill_9_during_delete_never_leaves_half_an_instance() {
    const ROUNDS: u64 = 30;
    const INSTANCES: usize = 4;
    let (_guard, dir) = temp_dir();
    let db = dir.join("imds.db");
    let instances: Vec<(String, String)> =
        (0..INSTANCES).map(|n| (format!("i-kill-{n}"), format!("127.0.3.{}", n + 1))).collect();
    let (mut survived, mut gone) = (0, 0);
    for round in 0..ROUNDS {
        let daemon = Daemon::with_db(&dir, &db);
        let admin = daemon.admin_client().with_timeout(Duration::from_secs(5));
        for (id, ip) in &instances {
            match whole_or_gone(&daemon, id, ip).await {
                Some(_) => survived += 1,
                None if round > 0 => gone += 1,
                None => {}
            }
            if admin.get(&format!("/v1/instances/{id}")).await.unwrap().status == StatusCode::NOT_FOUND {
                create(&admin, id, ip).await;
            }
        }
        let deletes: Vec<_> = instances
            .iter()
            .map(|(id, _)| {
                let admin = admin.clone();
                let path = format!("/v1/instances/{id}");
                tokio::spawn(async move { admin.send(Method::DELETE, &path, &[], "").await })
            })
            .collect();
        // Fault injection, not synchronisation: the kill lands at a different moment of the
        // DELETEs each round, finely spaced at first, then long enough (up to 34 ms) for the
        // DELETEs to commit even on a loaded machine.
        tokio::time::sleep(Duration::from_micros(round * round * 40)).await;
        daemon.kill9();
        for delete in deletes {
            let _ = delete.await;
        }
    }
    let daemon = Daemon::with_db(&dir, &db);
    for (id, ip) in &instances {
        match whole_or_gone(&daemon, id, ip).await {
            Some(_) => survived += 1,
            None => gone += 1,
        }
    }
    eprintln!("after the kills: {survived} instances found whole, {gone} found gone");
    assert!(gone > 0, "no DELETE ever committed before the kill: the kills came too early to test anything");
    assert!(survived > 0, "every DELETE committed before the kill: the kills came too late to test anything");
}
