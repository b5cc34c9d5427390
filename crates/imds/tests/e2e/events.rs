//! `imds serve --dev --spot-in` and `imds event ...` against the built binary.

use http::StatusCode;
use imds_server::client::Client;

use super::cli::{imds, text};
use super::support::{temp_dir, Daemon};

#[tokio::test]
async fn dev_starts_with_a_spot_interruption_and_the_cli_schedules_and_cancels_events() {
    let (_guard, dir) = temp_dir();
    let flags = ["--dev", "--spot-in", "2m", "--guest-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    let daemon = Daemon::start(&dir, &flags, &[]);
    let guest = Client::from_source(daemon.guest, "127.0.0.1".parse().unwrap());

    // The demo instance's notice shows at once: two minutes ahead, AWS's notice period.
    let notice = guest.get("/latest/meta-data/spot/instance-action").await.unwrap();
    assert_eq!(notice.status, StatusCode::OK, "{}", notice.text());
    let body = notice.json();
    assert_eq!(body["action"], "terminate");
    let time = imds_model::time::parse_rfc3339(body["time"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 60..=now + 121).contains(&time), "time {time}, now {now}");

    let listed = imds(&daemon, &["event", "ls", "-o", "json"], None);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let events: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 1);
    let spot = events[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(events[0]["instance"], "i-0123456789abcdef0");

    // A selector: the demo instance is tagged env=dev.
    let added = imds(
        &daemon,
        &[
            "event",
            "add",
            "--selector",
            "tag:env=dev",
            "--kind",
            "scheduled-maintenance",
            "--in",
            "1h",
            "--duration",
            "10m",
        ],
        None,
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let maintenance = text(&added.stdout).trim().to_owned();
    assert!(maintenance.starts_with("instance-event-"), "{maintenance}");
    let scheduled = guest.get("/latest/meta-data/events/maintenance/scheduled").await.unwrap().text();
    assert!(scheduled.contains(&maintenance), "{scheduled}");

    let table = text(&imds(&daemon, &["event", "ls", "i-0123456789abcdef0"], None).stdout);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    let canceled = imds(&daemon, &["event", "cancel", &spot], None);
    assert!(canceled.status.success(), "{}", text(&canceled.stderr));
    assert_eq!(guest.get("/latest/meta-data/spot/instance-action").await.unwrap().status, StatusCode::NOT_FOUND);
    let got = imds(&daemon, &["event", "get", &spot], None);
    let got: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["state"], "canceled");

    // The server's refusal exits 1 naming the field, an unknown instance 3; a malformed
    // duration is a usage error (2).
    let refused = imds(
        &daemon,
        &["event", "add", "i-0123456789abcdef0", "--kind", "spot-interruption", "--action", "explode"],
        None,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("action"), "{}", text(&refused.stderr));
    let local =
        imds(&daemon, &["event", "add", "i-0123456789abcdef0", "--kind", "spot-interruption", "--in", "soon"], None);
    assert_eq!(local.status.code(), Some(2));
    let missing = imds(&daemon, &["event", "add", "i-missing", "--kind", "rebalance-recommendation"], None);
    assert_eq!(missing.status.code(), Some(3), "not found");
    assert!(text(&missing.stderr).contains("404"), "{}", text(&missing.stderr));
}
