//! `imds instance ...` against a running daemon.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::support::{binary, temp_dir, Daemon, TOKEN};

pub(super) fn imds(daemon: &Daemon, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .env("IMDS_ADMIN", format!("http://{}", daemon.admin))
        .env("IMDS_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn instance_commands_drive_the_admin_api() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));

    let put = imds(
        &daemon,
        &["instance", "put", "-f", "-"],
        Some(r#"{"id": "i-cli", "hostname": "cli", "ipv4": ["127.0.2.1"]}"#),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    assert!(text(&put.stderr).contains("created instance i-cli"));
    let file = dir.join("second.json");
    std::fs::write(&file, r#"{"id": "i-cli-2", "ipv4": ["127.0.2.2"], "zone": "us-east-1b"}"#).unwrap();
    assert!(imds(&daemon, &["instance", "put", "-f", file.to_str().unwrap()], None).status.success());

    let get = imds(&daemon, &["instance", "get", "i-cli"], None);
    let doc: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!(doc["hostname"], "cli");

    let patch = imds(&daemon, &["instance", "patch", "i-cli", "-f", "-"], Some(r#"{"hostname": "renamed"}"#));
    assert!(patch.status.success(), "{}", text(&patch.stderr));
    let guest = daemon.guest_from("127.0.2.1");
    assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), "renamed");

    let table = text(&imds(&daemon, &["instance", "ls"], None).stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("HOSTNAME") && lines[0].contains("IPV4"), "{table}");
    assert!(
        lines[1].starts_with("i-cli ") && lines[1].contains("renamed") && lines[1].contains("127.0.2.1"),
        "{table}"
    );
    assert!(lines[2].starts_with("i-cli-2") && lines[2].contains("us-east-1b"), "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&imds(&daemon, &["instance", "ls", "-o", "json"], None).stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    let rm = imds(&daemon, &["instance", "rm", "i-cli"], None);
    assert!(rm.status.success());
    let gone = imds(&daemon, &["instance", "get", "i-cli"], None);
    assert_eq!(gone.status.code(), Some(3));
    assert!(
        text(&gone.stderr).contains("404") && text(&gone.stderr).contains("imds instance ls"),
        "{}",
        text(&gone.stderr)
    );

    // Refusals explain themselves and say what to do.
    let conflict = imds(&daemon, &["instance", "put", "-f", "-"], Some(r#"{"id": "i-dup", "ipv4": ["127.0.2.2"]}"#));
    assert_eq!(conflict.status.code(), Some(4));
    assert!(text(&conflict.stderr).contains("i-cli-2"), "{}", text(&conflict.stderr));
    let invalid = imds(
        &daemon,
        &["instance", "put", "-f", "-"],
        Some(r#"{"id": "i-bad", "ipv4": ["nope"], "imds": {"hop_limit": 0}}"#),
    );
    let stderr = text(&invalid.stderr);
    assert!(stderr.contains("ipv4[0]") && stderr.contains("imds.hop_limit"), "{stderr}");
    let no_id = imds(&daemon, &["instance", "put", "-f", "-"], Some("{}"));
    assert_eq!(no_id.status.code(), Some(2));
    assert!(text(&no_id.stderr).contains("\"id\""));

    let mut unauthorised = Command::new(binary());
    unauthorised
        .args(["instance", "ls"])
        .env("IMDS_ADMIN", format!("http://{}", daemon.admin))
        .env_remove("IMDS_ADMIN_TOKEN");
    let output = unauthorised.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("IMDS_ADMIN_TOKEN"), "{}", text(&output.stderr));
}

#[test]
fn an_unreachable_admin_api_says_what_to_do() {
    let output = Command::new(binary())
        .args(["instance", "ls", "--admin", "http://127.0.0.1:9"])
        .env_remove("IMDS_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("127.0.0.1:9") && stderr.contains("imds serve --dev"), "{stderr}");
}

#[tokio::test]
async fn smbios_prints_qemu_arguments_for_the_configured_seed() {
    let (_guard, dir) = temp_dir();
    let config = dir.join("imds.toml");
    std::fs::write(
        &config,
        format!(
            "[guest]\nlisten = [\"127.0.0.1:0\"]\nnocloud_prefix = \"/seed/\"\n[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"\"\ntoken = \"{}\"\n[store]\npath = \"{}\"\n",
            super::support::TOKEN,
            dir.join("imds.db").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&dir, &["--config", config.to_str().unwrap()], &[]);
    let put = imds(
        &daemon,
        &["instance", "put", "-f", "-"],
        Some(
            r#"{"id": "4711", "hostname": "seeded", "ipv4": ["127.0.3.10"], "platform": {"dialect": "digitalocean"}}"#,
        ),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));

    let nocloud = imds(&daemon, &["instance", "smbios", "4711", "--dialect", "nocloud"], None);
    assert!(nocloud.status.success(), "{}", text(&nocloud.stderr));
    assert_eq!(text(&nocloud.stdout), "-smbios 'type=1,serial=ds=nocloud-net;s=http://169.254.169.254/seed/'\n");
    // An EC2 hint for an id that is no UUID: product UUID and serial both `ec2…`, as
    // ds-identify requires (the vendor alone does not identify EC2).
    let ec2 = imds(&daemon, &["instance", "smbios", "4711", "--dialect", "ec2"], None);
    assert!(ec2.status.success(), "{}", text(&ec2.stderr));
    let ec2 = text(&ec2.stdout);
    let uuid = ec2.split("uuid=").nth(1).and_then(|rest| rest.split([',', '\'']).next()).unwrap_or_default();
    assert!(uuid.starts_with("ec2") && uuid.len() == 36, "{ec2}");
    assert!(ec2.contains(&format!("serial={uuid}")), "{ec2}");
    // The guest finds its seed where the serial points.
    let guest = daemon.guest_from("127.0.3.10");
    let meta = guest.get("/seed/meta-data").await.unwrap();
    assert!(meta.text().contains("\"local-hostname\": \"seeded\""), "{}", meta.text());

    // Default dialect from platform.dialect; a space in a value is quoted for the shell.
    let droplet = imds(&daemon, &["instance", "smbios", "4711"], None);
    assert_eq!(text(&droplet.stdout), "-smbios type=1,manufacturer=DigitalOcean,product=Droplet,serial=4711\n");
    let azure = imds(&daemon, &["instance", "smbios", "4711", "--dialect", "azure"], None);
    assert_eq!(
        text(&azure.stdout),
        "-smbios 'type=1,manufacturer=Microsoft Corporation,product=Virtual Machine' -smbios type=3,asset=7783-7084-3265-9085-8269-3286-77\n"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&imds(&daemon, &["instance", "smbios", "4711", "-o", "json"], None).stdout).unwrap();
    assert_eq!(json["smbios"]["serial"], "4711");

    let unknown = imds(&daemon, &["instance", "smbios", "4711", "--dialect", "vax"], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("400") && text(&unknown.stderr).contains("vax"),
        "{}",
        text(&unknown.stderr)
    );
}

#[tokio::test]
async fn instance_import_sends_batches_and_says_what_happened() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    let doc = |n: u32, host: &str| serde_json::json!({"id": format!("i-imp-{n:02}"), "hostname": host, "ipv4": [format!("127.0.4.{}", n + 1)]});
    let ndjson: String = (0..25).map(|n| format!("{}\n\n", doc(n, "first"))).collect();
    let file = dir.join("inventory.ndjson");
    std::fs::write(&file, &ndjson).unwrap();

    let first = imds(&daemon, &["instance", "import", file.to_str().unwrap(), "--batch", "10"], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout).trim(), "created 25, replaced 0");
    let guest = daemon.guest_from("127.0.4.25");
    assert_eq!(guest.get("/latest/meta-data/instance-id").await.unwrap().text(), "i-imp-24");

    // A JSON array from standard input replaces.
    let array = serde_json::Value::Array((0..25).map(|n| doc(n, "second")).chain([doc(30, "new")]).collect());
    let second = imds(&daemon, &["instance", "import", "-"], Some(&array.to_string()));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout).trim(), "created 1, replaced 25");
    assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), "second");

    // Create-only over existing ids refuses, names what to do, and writes nothing.
    let refused = imds(&daemon, &["instance", "import", "--create-only", "-"], Some(&format!("{}\n", doc(40, "x"))));
    assert!(refused.status.success(), "{}", text(&refused.stderr));
    let refused = imds(&daemon, &["instance", "import", "--create-only", "-"], Some(&format!("{}\n", doc(3, "x"))));
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("412") && stderr.contains("drop --create-only"), "{stderr}");

    // A bad line: the error points into the file; earlier batches stay and are counted.
    let mut lines: Vec<String> = (50..60).map(|n| doc(n, "ok").to_string()).collect();
    lines.push(r#"{"id": "i-imp-bad", "ipv4": ["nope"]}"#.to_owned());
    let file = dir.join("bad.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let bad = imds(&daemon, &["instance", "import", file.to_str().unwrap(), "--batch", "5"], None);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("lines from 11 of") && stderr.contains("line 1: ipv4"), "{stderr}");
    assert!(stderr.contains("created 10, replaced 0"), "{stderr}");
    assert!(stderr.contains("hint: fix that line"), "{stderr}");
}
