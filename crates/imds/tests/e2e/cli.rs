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
    assert_eq!(refused.status.code(), Some(4));
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

/// `imds` with `args` and no admin-API environment at all.
fn bare(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("IMDS_ADMIN")
        .env_remove("IMDS_ADMIN_TOKEN")
        .env_remove("IMDS_ADMIN_TOKEN_FILE")
        .env_remove("IMDS_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn every_read_prints_table_json_or_yaml() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    let put = imds(
        &daemon,
        &["instance", "put", "-f", "-", "-o", "yaml"],
        Some(r#"{"id": "i-fmt", "hostname": "fmt", "ipv4": ["127.0.5.1"], "tags": {"env": "dev"}}"#),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    let yaml = text(&put.stdout);
    assert!(yaml.contains("\"id\": \"i-fmt\"\n") && yaml.contains("\"tags\":\n  \"env\": \"dev\"\n"), "{yaml}");

    let table = text(&imds(&daemon, &["instance", "get", "i-fmt", "-o", "table"], None).stdout);
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        ["ID     HOSTNAME  IPV4       IPV6  MAC  ZONE", "i-fmt  fmt       127.0.5.1  -     -    -"]
    );
    let json: serde_json::Value =
        serde_json::from_slice(&imds(&daemon, &["-o", "json", "instance", "ls"], None).stdout).unwrap();
    assert_eq!(json[0]["id"], "i-fmt", "-o before the subcommand works too");
    let listed = text(&imds(&daemon, &["instance", "ls", "-o", "yaml"], None).stdout);
    assert!(listed.starts_with("- \"id\": \"i-fmt\"\n"), "{listed}");

    // Roles, signing keys and the MMDS document take -o as well.
    let role = imds(
        &daemon,
        &["role", "put", "app", "-f", "-"],
        Some(r#"{"source": {"type": "static", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cret"}}"#),
    );
    assert!(role.status.success(), "{}", text(&role.stderr));
    let roles = text(&imds(&daemon, &["role", "ls"], None).stdout);
    assert!(roles.starts_with("NAME") && roles.lines().nth(1).unwrap().starts_with("app  "), "{roles}");
    let roles: serde_json::Value =
        serde_json::from_slice(&imds(&daemon, &["role", "ls", "-o", "json"], None).stdout).unwrap();
    assert_eq!(roles["roles"][0]["name"], "app");
    assert!(!roles.to_string().contains("s3cret"));
    let keys = text(&imds(&daemon, &["signing", "keys"], None).stdout);
    assert!(keys.starts_with("KID") && keys.lines().nth(1).unwrap().ends_with("true"), "{keys}");
    let mmds =
        imds(&daemon, &["mmds", "put", "i-fmt", "-f", "-"], Some(r#"{"latest": {"meta-data": {"ami-id": "ami-1"}}}"#));
    assert!(mmds.status.success(), "{}", text(&mmds.stderr));
    assert_eq!(
        text(&imds(&daemon, &["mmds", "get", "i-fmt", "-o", "table"], None).stdout),
        "KEY                      VALUE\nlatest.meta-data.ami-id  ami-1\n"
    );

    let bad = imds(&daemon, &["instance", "ls", "-o", "xml"], None);
    assert_eq!(bad.status.code(), Some(2), "an unknown format is a usage error");
}

#[tokio::test]
async fn missing_is_exit_3_and_a_conflict_exit_4() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    assert_eq!(imds(&daemon, &["instance", "get", "i-none"], None).status.code(), Some(3));
    assert_eq!(imds(&daemon, &["instance", "rm", "i-none"], None).status.code(), Some(3));
    assert_eq!(imds(&daemon, &["role", "get", "nobody"], None).status.code(), Some(3));

    let first = imds(&daemon, &["instance", "put", "-f", "-"], Some(r#"{"id": "i-a", "ipv4": ["127.0.5.2"]}"#));
    let etag = text(&first.stderr).split("etag ").nth(1).unwrap().trim_end_matches([')', '\n']).to_owned();
    // The address is held by i-a: 409.
    let taken = imds(&daemon, &["instance", "put", "-f", "-"], Some(r#"{"id": "i-b", "ipv4": ["127.0.5.2"]}"#));
    assert_eq!(taken.status.code(), Some(4), "{}", text(&taken.stderr));
    // Create-only over an existing instance, and a stale ETag: 412.
    let exists = imds(&daemon, &["instance", "put", "--create-only", "-f", "-"], Some(r#"{"id": "i-a"}"#));
    assert_eq!(exists.status.code(), Some(4), "{}", text(&exists.stderr));
    let fresh =
        imds(&daemon, &["instance", "patch", "i-a", "--if-match", &etag, "-f", "-"], Some(r#"{"hostname": "one"}"#));
    assert!(fresh.status.success(), "{}", text(&fresh.stderr));
    let stale =
        imds(&daemon, &["instance", "patch", "i-a", "--if-match", &etag, "-f", "-"], Some(r#"{"hostname": "two"}"#));
    assert_eq!(stale.status.code(), Some(4), "{}", text(&stale.stderr));
    assert!(text(&stale.stderr).contains("412"), "{}", text(&stale.stderr));
    let guest = daemon.guest_from("127.0.5.2");
    assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), "one", "the stale patch changed nothing");
}

#[tokio::test]
async fn a_closed_pipe_ends_the_command_quietly() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    let ndjson: String = (0..3000)
        .map(|n| format!("{{\"id\": \"i-pipe-{n:04}\", \"ipv4\": [\"127.0.{}.{}\"]}}\n", 100 + n / 250, 1 + n % 250))
        .collect();
    assert!(imds(&daemon, &["instance", "import", "-f", "-"], Some(&ndjson)).status.success());

    // The reader is gone before imds writes a byte.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(binary())
        .args(["instance", "ls", "--admin", &format!("http://{}", daemon.admin), "--token", TOKEN])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(141), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "", "no panic, no message");

    // As a shell pipeline reads it: head takes the first line and leaves.
    let pipeline = Command::new("bash")
        .args(["-c", "\"$0\" instance ls | head -1; echo \"status ${PIPESTATUS[0]}\""])
        .arg(binary())
        .env("IMDS_ADMIN", format!("http://{}", daemon.admin))
        .env("IMDS_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(text(&pipeline.stdout), "ID           HOSTNAME  IPV4           IPV6  MAC  ZONE\nstatus 141\n");
    assert!(!text(&pipeline.stderr).contains("panicked"), "{}", text(&pipeline.stderr));
}

#[tokio::test]
async fn the_token_comes_from_a_flag_a_file_or_the_environment() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    let admin = format!("http://{}", daemon.admin);
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let with_file = bare(&["instance", "ls", "--admin", &admin, "--token-file", file.to_str().unwrap()]);
    assert!(with_file.status.success(), "{}", text(&with_file.stderr));
    let with_flag = bare(&["--admin", &admin, "--token", TOKEN, "role", "ls"]);
    assert!(with_flag.status.success(), "{}", text(&with_flag.stderr));
    let from_env = Command::new(binary())
        .args(["signing", "keys"])
        .env("IMDS_ADMIN", &admin)
        .env_remove("IMDS_ADMIN_TOKEN")
        .env("IMDS_ADMIN_TOKEN_FILE", &file)
        .output()
        .unwrap();
    assert!(from_env.status.success(), "{}", text(&from_env.stderr));
    let wrong = bare(&["instance", "ls", "--admin", &admin, "--token", "not-it"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong.stderr).contains("401") && text(&wrong.stderr).contains("--token-file"),
        "{}",
        text(&wrong.stderr)
    );
    let missing = bare(&["instance", "ls", "--admin", &admin, "--token-file", "/nonexistent/token"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test]
async fn mmds_config_without_a_version_changes_nothing() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    assert!(imds(&daemon, &["instance", "put", "-f", "-"], Some(r#"{"id": "i-ec2", "ipv4": ["127.0.5.3"]}"#))
        .status
        .success());
    let config = imds(&daemon, &["mmds", "config", "i-ec2"], None);
    assert_eq!(config.status.code(), Some(2));
    assert!(text(&config.stderr).contains("--version"), "{}", text(&config.stderr));
    let guest = daemon.guest_from("127.0.5.3");
    assert_eq!(guest.get("/latest/meta-data/instance-id").await.unwrap().text(), "i-ec2", "still EC2, not MMDS");
}

#[test]
fn completions_are_valid_scripts() {
    let bash = bare(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = text(&bash.stdout);
    assert!(script.contains("complete") && script.contains("instance") && script.contains("--token-file"), "{script}");
    let (_guard, dir) = temp_dir();
    let file = dir.join("imds.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    for shell in ["zsh", "fish"] {
        let output = bare(&["completions", shell]);
        assert!(output.status.success() && text(&output.stdout).contains("instance"), "{shell}");
    }
    assert_eq!(bare(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn the_man_pages_render() {
    let (_guard, dir) = temp_dir();
    let page = dir.join("imds.1");
    let man = bare(&["man"]);
    assert!(man.status.success());
    std::fs::write(&page, &man.stdout).unwrap();
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .expect("groff (Debian: groff-base) is installed");
    assert!(groff.status.success() && groff.stderr.is_empty(), "groff: {}", text(&groff.stderr));
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man (Debian: man-db) is installed");
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let rendered = text(&rendered.stdout);
    assert!(
        rendered.contains("NAME") && rendered.contains("--token-file") && rendered.contains("instance"),
        "{rendered}"
    );

    let pages = dir.join("pages");
    assert!(bare(&["man", "--dir", pages.to_str().unwrap()]).status.success());
    for name in ["imds.1", "imds-instance.1", "imds-instance-put.1", "imds-config-check.1"] {
        assert!(pages.join(name).is_file(), "{name}");
    }
}

#[test]
fn config_check_lists_every_problem() {
    let (_guard, dir) = temp_dir();
    let file = dir.join("imds.toml");
    std::fs::write(
        &file,
        "[guest]\nlisten = [\"169.254.169.254\"]\nlisen = []\nthrottle_per_second = 10\nthrottle_burst = 0\n\
         render_cache_mib = \"lots\"\n[store]\nbackend = \"floppy\"\n[log]\nformat = \"xml\"\n",
    )
    .unwrap();
    let output = bare(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let report = text(&output.stdout);
    for problem in [
        "6 problems",
        "guest.lisen: unknown field `lisen`, expected one of `listen`",
        "guest.render_cache_mib: invalid type: string \"lots\", expected u32",
        "guest.listen: \"169.254.169.254\" is not an address with a port",
        "guest.throttle_burst",
        "store.backend",
        "log.format",
    ] {
        assert!(report.contains(problem), "{problem} in {report}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&bare(&["config", "check", "-o", "json", file.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["problems"].as_array().unwrap().len(), 6);

    std::fs::write(&file, "[guest]\nlisten = [\"127.0.0.1:1338\"]\n[admin]\nsocket = \"/run/imds/admin.sock\"\n")
        .unwrap();
    let valid = bare(&["config", "check", file.to_str().unwrap()]);
    assert!(valid.status.success(), "{}", text(&valid.stdout));
    assert!(text(&valid.stdout).ends_with(": valid\n"));
    let unreadable = bare(&["config", "check", "/nonexistent/imds.toml"]);
    assert_eq!(unreadable.status.code(), Some(2));
}

#[test]
fn version_names_the_commit() {
    let output = bare(&["--version"]);
    assert!(output.status.success());
    let version = text(&output.stdout);
    let commit = version
        .trim_end()
        .strip_prefix(&format!("imds {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    let head =
        Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    match head {
        Ok(head) if head.status.success() => {
            assert_eq!(commit, text(&head.stdout).trim(), "built from this checkout's HEAD")
        }
        _ => assert_eq!(commit, "unknown"),
    }
}
