//! `imds serve` under a service manager: `READY=1` on `NOTIFY_SOCKET` once guests are answered,
//! `SIGHUP` re-reading the configuration, logs without colour codes when stderr is a pipe.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};

use super::support::{temp_dir, Daemon, TOKEN};

fn config(db: &std::path::Path, level: &str, roles: &str) -> String {
    format!(
        "[guest]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"\"\ntoken = \"{TOKEN}\"\n\
         [store]\npath = \"{}\"\n[log]\nlevel = \"{level}\"\n{roles}",
        db.display()
    )
}

const APP: &str =
    "[roles.app.source]\ntype = \"static\"\naccess_key_id = \"AKIAFIRST\"\nsecret_access_key = \"first\"\n";
const OPS: &str = "[roles.ops.source]\ntype = \"static\"\naccess_key_id = \"AKIAOPS\"\nsecret_access_key = \"ops\"\n";

#[tokio::test]
async fn it_tells_systemd_it_is_ready_and_reloads_on_sighup() {
    let (_guard, dir) = temp_dir();
    let file = dir.join("imds.toml");
    let db = dir.join("imds.db");
    std::fs::write(&file, config(&db, "info", APP)).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    let daemon =
        Daemon::start(&dir, &["--config", file.to_str().unwrap()], &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let mut buffer = [0u8; 512];
    let n = socket.recv(&mut buffer).expect("imds notifies systemd");
    assert!(
        String::from_utf8_lossy(&buffer[..n]).lines().any(|l| l == "READY=1"),
        "{}",
        String::from_utf8_lossy(&buffer[..n])
    );
    // Only the role of the file so far.
    let admin = daemon.admin_client();
    assert_eq!(admin.get("/v1/roles/ops").await.unwrap().status, StatusCode::NOT_FOUND);

    // A new role and a new log level, applied without a restart.
    std::fs::write(&file, config(&db, "debug", &format!("{APP}{OPS}"))).unwrap();
    let hup = Command::new("kill").args(["-HUP", &daemon.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let mut states = String::new();
    while !states.lines().any(|l| l == "READY=1") {
        let n = socket.recv(&mut buffer).expect("imds notifies the reload");
        states.push_str(&String::from_utf8_lossy(&buffer[..n]));
        states.push('\n');
    }
    assert!(states.contains("RELOADING=1"), "{states}");
    let reloaded = wait_for_line(&daemon, "configuration reloaded");
    assert!(reloaded.contains("log level debug") && reloaded.contains("2 configured roles"), "{reloaded}");
    let ops = admin.send(Method::GET, "/v1/roles/ops", &[], String::new()).await.unwrap();
    assert_eq!(ops.status, StatusCode::OK, "{}", ops.text());
    assert_eq!(ops.json()["source"]["access_key_id"], "AKIAOPS");

    // An invalid file changes nothing and says why.
    std::fs::write(&file, "[log]\nformat = \"xml\"\n").unwrap();
    Command::new("kill").args(["-HUP", &daemon.child.id().to_string()]).status().unwrap();
    let refused = wait_for_line(&daemon, "the configuration is invalid");
    assert!(refused.contains("log.format"), "{refused}");
    assert_eq!(admin.get("/v1/roles/ops").await.unwrap().status, StatusCode::OK);

    // stderr is a pipe here: no colour codes in any line.
    let lines = daemon.stderr.lock().unwrap().clone();
    assert!(!lines.is_empty() && lines.iter().all(|line| !line.contains('\u{1b}')), "{lines:#?}");
}

/// The first stderr line containing `needle`, waiting up to 30 s for it.
fn wait_for_line(daemon: &Daemon, needle: &str) -> String {
    for _ in 0..300 {
        if let Some(line) = daemon.stderr.lock().unwrap().iter().find(|line| line.contains(needle)) {
            return line.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no log line with {needle:?} within 30 s");
}
