use std::collections::HashMap;

use super::*;
use crate::cli::serve::{load, ServeArgs};
use imds_dialects::Dialect;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |key| map.get(key).cloned()
}

fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imds.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn production_defaults_listen_where_clouds_do() {
    let config = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert_eq!(config.server.guest.listen, vec!["169.254.169.254:80".parse().unwrap()]);
    assert_eq!(config.server.admin.listen, None);
    assert_eq!(config.server.admin.socket, Some("/run/imds/admin.sock".into()));
    assert_eq!(config.store, StoreConfig::Sqlite { path: "/var/lib/imds/imds.db".into(), retain_changes: 100_000 });
    assert_eq!(config.server.limits, imds_model::Limits::default());
    assert!(!config.dev);
}

#[test]
fn dev_defaults_are_loopback_without_a_token() {
    let args = ServeArgs { dev: true, ..ServeArgs::default() };
    let config = load(&args, &env(&[])).unwrap();
    let listen: Vec<String> = config.server.guest.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, ["127.0.0.1:1338", "[::1]:1338"]);
    assert_eq!(config.server.admin.listen, Some("127.0.0.1:8998".parse().unwrap()));
    assert_eq!(config.server.admin.socket, None);
    assert!(config.server.admin.token.is_none());
    assert_eq!(
        config.store,
        StoreConfig::Sqlite { path: Path::new(DEV_DATA_DIR).join("imds.db"), retain_changes: 100_000 }
    );
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let (_dir, path) = config_file(
        "[guest]\nlisten = [\"127.0.0.5:80\"]\n[admin]\nlisten = \"127.0.0.1:7000\"\ntoken = \"from-file\"\n[store]\npath = \"/file.db\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n[limits]\nmax_user_data = 100\n",
    );
    let args = ServeArgs { config: Some(path), store_path: Some("/flag.db".into()), ..ServeArgs::default() };
    let config = load(
        &args,
        &env(&[
            ("IMDS_STORE_PATH", "/env.db"),
            ("IMDS_ADMIN_LISTEN", "127.0.0.1:7001"),
            ("IMDS_LIMITS_MAX_USER_DATA", "200"),
        ]),
    )
    .unwrap();
    assert_eq!(config.store, StoreConfig::Sqlite { path: "/flag.db".into(), retain_changes: 100_000 }, "flag wins");
    assert_eq!(config.server.admin.listen, Some("127.0.0.1:7001".parse().unwrap()), "env beats file");
    assert_eq!(config.server.limits.max_user_data, 200);
    assert_eq!(config.server.guest.listen, vec!["127.0.0.5:80".parse().unwrap()], "file beats default");
    assert_eq!(config.server.admin.token, Some(Token::new("from-file")));
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.log_level, "debug");
    assert_eq!(config.server.limits.max_record, imds_model::Limits::default().max_record, "default stays");
}

#[test]
fn every_problem_is_reported_at_once() {
    let (_dir, path) = config_file("[guest]\nlisten = [\"nowhere\", \"127.0.0.1:80\"]\n[admin]\nlisten = \"10.0.0.1:8998\"\n[store]\nbackend = \"tape\"\n");
    let args = ServeArgs { config: Some(path), log_format: Some("xml".into()), ..ServeArgs::default() };
    let problems = load(&args, &env(&[("IMDS_LIMITS_MAX_RECORD", "lots")])).unwrap_err();
    let all = problems.join("\n");
    for needle in [
        "guest.listen",
        "nowhere",
        "admin.listen",
        "bearer token",
        "store.backend",
        "log.format",
        "IMDS_LIMITS_MAX_RECORD",
    ] {
        assert!(all.contains(needle), "{needle} missing from:\n{all}");
    }
    assert!(problems.len() >= 5, "{problems:#?}");
}

#[test]
fn admin_must_not_share_a_guest_address_and_tcp_needs_a_token_outside_dev() {
    let args = ServeArgs {
        guest_listen: vec!["0.0.0.0:8998".into()],
        admin_listen: Some("127.0.0.1:8998".into()),
        ..ServeArgs::default()
    };
    let problems = load(&args, &env(&[("IMDS_ADMIN_TOKEN", "x")])).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("overlaps a guest listener")), "{problems:#?}");

    let args = ServeArgs { admin_listen: Some("127.0.0.1:8998".into()), ..ServeArgs::default() };
    assert!(load(&args, &env(&[])).unwrap_err().iter().any(|p| p.contains("bearer token")));
    let dev_public = ServeArgs { dev: true, admin_listen: Some("0.0.0.0:8998".into()), ..ServeArgs::default() };
    assert!(
        load(&dev_public, &env(&[])).unwrap_err().iter().any(|p| p.contains("bearer token")),
        "--dev off loopback needs a token"
    );
    assert!(load(&args, &env(&[("IMDS_ADMIN_TOKEN", "secret")])).is_ok());
}

#[test]
fn token_file_is_read_and_trimmed() {
    let (_dir, path) = config_file("s3cret\n");
    let args = ServeArgs {
        admin_listen: Some("127.0.0.1:8998".into()),
        admin_token_file: Some(path.display().to_string()),
        ..ServeArgs::default()
    };
    let config = load(&args, &env(&[])).unwrap();
    assert!(config.server.admin.token.unwrap().matches("s3cret"));
    let missing = ServeArgs { admin_token_file: Some("/nonexistent/token".into()), ..ServeArgs::default() };
    assert!(load(&missing, &env(&[])).unwrap_err().iter().any(|p| p.contains("/nonexistent/token")));
}

#[test]
fn the_mmds_size_limit_comes_from_file_env_or_flag() {
    let defaults = load(&ServeArgs { dev: true, ..ServeArgs::default() }, &env(&[])).unwrap();
    assert_eq!(defaults.server.limits.max_mmds, 51_200, "Firecracker's default");
    let (_dir, path) = config_file("[limits]\nmax_mmds = 1000\n");
    let file = ServeArgs { dev: true, config: Some(path.clone()), ..ServeArgs::default() };
    assert_eq!(load(&file, &env(&[])).unwrap().server.limits.max_mmds, 1000);
    assert_eq!(load(&file, &env(&[("IMDS_LIMITS_MAX_MMDS", "2000")])).unwrap().server.limits.max_mmds, 2000);
    let flag = ServeArgs { mmds_size_limit: Some(3000), ..file };
    assert_eq!(load(&flag, &env(&[("IMDS_LIMITS_MAX_MMDS", "2000")])).unwrap().server.limits.max_mmds, 3000);
    let zero = ServeArgs { dev: true, mmds_size_limit: Some(0), ..ServeArgs::default() };
    assert!(load(&zero, &env(&[])).unwrap_err().iter().any(|p| p.contains("limits.max_mmds")));
}

#[test]
fn import_limits_come_from_file_or_env_and_are_checked() {
    let dev = ServeArgs { dev: true, ..ServeArgs::default() };
    let defaults = load(&dev, &env(&[])).unwrap().server.admin.import;
    assert_eq!((defaults.max_body, defaults.max_lines), (64 * 1024 * 1024, 100_000));
    let (_dir, path) = config_file("[admin]\nimport_max_body = 2048\nimport_max_lines = 10\n");
    let file = ServeArgs { dev: true, config: Some(path), ..ServeArgs::default() };
    let from_file = load(&file, &env(&[])).unwrap().server.admin.import;
    assert_eq!((from_file.max_body, from_file.max_lines), (2048, 10));
    let from_env = load(&file, &env(&[("IMDS_ADMIN_IMPORT_MAX_LINES", "20")])).unwrap().server.admin.import;
    assert_eq!(from_env.max_lines, 20, "env beats file");
    let problems =
        load(&dev, &env(&[("IMDS_ADMIN_IMPORT_MAX_LINES", "0"), ("IMDS_ADMIN_IMPORT_MAX_BODY", "10")])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("admin.import_max_lines")), "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("admin.import_max_body")), "{problems:?}");
}

#[test]
fn nocloud_prefix_comes_from_file_or_env_and_is_checked() {
    let args = ServeArgs::default();
    let config = load(&args, &env(&[])).unwrap();
    assert_eq!(config.server.guest.dialects.nocloud_prefix, "/nocloud/");
    let (_dir, path) = config_file("[guest]\nnocloud_prefix = \"/seed/\"\n");
    let from_file = ServeArgs { config: Some(path), ..ServeArgs::default() };
    assert_eq!(load(&from_file, &env(&[])).unwrap().server.guest.dialects.nocloud_prefix, "/seed/");
    let from_env = load(&from_file, &env(&[("IMDS_GUEST_NOCLOUD_PREFIX", "/ds/nocloud/")])).unwrap();
    assert_eq!(from_env.server.guest.dialects.nocloud_prefix, "/ds/nocloud/", "env beats file");
    for bad in ["nocloud/", "/nocloud", "/", "/latest/", "/2009-04-04/", "/metadata/v1/", "/hetzner/", "/a b/", "/x//"]
    {
        let problems = load(&args, &env(&[("IMDS_GUEST_NOCLOUD_PREFIX", bad)])).unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with("guest.nocloud_prefix")), "{bad}: {problems:?}");
    }
}

#[test]
fn the_render_cache_size_comes_from_file_or_env() {
    let args = ServeArgs::default();
    let default = load(&args, &env(&[])).unwrap().server.guest.render_cache_bytes;
    assert_eq!(default, imds_server::view::DEFAULT_RENDER_BYTES);
    let (_dir, path) = config_file("[guest]\nrender_cache_mib = 64\n");
    let from_file = ServeArgs { config: Some(path), ..ServeArgs::default() };
    assert_eq!(load(&from_file, &env(&[])).unwrap().server.guest.render_cache_bytes, 64 << 20);
    let from_env = load(&from_file, &env(&[("IMDS_GUEST_RENDER_CACHE_MIB", "0")])).unwrap();
    assert_eq!(from_env.server.guest.render_cache_bytes, 0, "env beats file; 0 keeps nothing");
    let problems = load(&args, &env(&[("IMDS_GUEST_RENDER_CACHE_MIB", "lots")])).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("IMDS_GUEST_RENDER_CACHE_MIB")), "{problems:?}");
}

#[test]
fn roles_in_the_file_are_validated_like_the_admin_api_does() {
    let (_dir, path) = config_file(
        "[roles.app.source]\ntype = \"static\"\naccess_key_id = \"AKIAFILE\"\nsecret_access_key = \"s\"\n\
         [roles.vault.source]\ntype = \"process\"\ncommand = [\"/usr/local/bin/vault-creds\", \"app\"]\n",
    );
    let config = load(&ServeArgs { config: Some(path), ..ServeArgs::default() }, &env(&[])).unwrap();
    let names: Vec<&str> = config.roles.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["app", "vault"]);
    assert_eq!(config.roles[1].1.source.kind(), "process");

    let (_dir, path) = config_file(
        "[roles.bad.source]\ntype = \"sts\"\nrole_arn = \"nope\"\n[roles.\"a:b\".source]\ntype = \"process\"\ncommand = [\"x\"]\n",
    );
    let problems = load(&ServeArgs { config: Some(path), ..ServeArgs::default() }, &env(&[])).unwrap_err().join("\n");
    assert!(problems.contains("roles.bad.source.role_arn"), "{problems}");
    assert!(problems.contains("roles.a:b"), "{problems}");
}

#[test]
fn node_scope_comes_from_flag_env_or_file() {
    assert_eq!(load(&ServeArgs::default(), &env(&[])).unwrap().server.scope, Scope::All);
    let args = ServeArgs { node: Some("hv-0001".into()), ..ServeArgs::default() };
    assert_eq!(load(&args, &env(&[])).unwrap().server.scope, Scope::Node("hv-0001".into()));
    let config = load(&ServeArgs::default(), &env(&[("IMDS_STORE_NODE", "hv-2")])).unwrap();
    assert_eq!(config.server.scope, Scope::Node("hv-2".into()));
    let (_dir, path) = config_file("[store]\nnode = \"all\"\n");
    let args = ServeArgs { config: Some(path), ..ServeArgs::default() };
    assert_eq!(load(&args, &env(&[])).unwrap().server.scope, Scope::All);
    let args = ServeArgs { node: Some("hv/1".into()), ..ServeArgs::default() };
    let problems = load(&args, &env(&[])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("store.node:")), "{problems:?}");
}

#[test]
fn etcd_tls_files_come_from_flags_env_and_file_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, "pem").unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let args = ServeArgs {
        store: Some("etcds://10.0.0.1:2379/imds/eu".into()),
        store_ca: Some(ca.clone()),
        store_cert: Some(cert.clone()),
        ..ServeArgs::default()
    };
    let outcome = load(&args, &env(&[("IMDS_STORE_KEY", &key)]));
    if !cfg!(feature = "etcd") {
        assert!(outcome.unwrap_err().iter().any(|p| p.contains("`etcd` cargo feature")));
        return;
    }
    let tls = StoreTls { ca: Some(ca.clone().into()), cert: Some(cert.clone().into()), key: Some(key.clone().into()) };
    assert_eq!(outcome.unwrap().store, StoreConfig::Etcd { url: "etcds://10.0.0.1:2379/imds/eu".into(), tls });
    // Each mistake is named by its field.
    for (flags, vars, field) in [
        (ServeArgs { store: Some("etcds://a:1".into()), ..ServeArgs::default() }, vec![], "store.ca:"),
        (
            ServeArgs {
                store: Some("etcds://a:1".into()),
                store_ca: Some(ca.clone()),
                store_cert: Some(cert.clone()),
                ..ServeArgs::default()
            },
            vec![],
            "store.key:",
        ),
        (
            ServeArgs {
                store: Some("etcds://a:1".into()),
                store_ca: Some("/nonexistent/ca.pem".into()),
                ..ServeArgs::default()
            },
            vec![],
            "store.ca: cannot read /nonexistent/ca.pem",
        ),
        (
            ServeArgs { store: Some("etcd://a:1".into()), ..ServeArgs::default() },
            vec![("IMDS_STORE_CA", ca.as_str())],
            "store.ca: TLS files need an etcds://",
        ),
    ] {
        let problems = load(&flags, &env(&vars)).unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with(field)), "{field}: {problems:?}");
    }
}

#[test]
fn etcd_store_urls() {
    let args = ServeArgs { store: Some("etcd://10.0.0.1:2379,10.0.0.2:2379/imds/eu".into()), ..ServeArgs::default() };
    let outcome = load(&args, &env(&[]));
    if cfg!(feature = "etcd") {
        assert_eq!(
            outcome.unwrap().store,
            StoreConfig::Etcd { url: "etcd://10.0.0.1:2379,10.0.0.2:2379/imds/eu".into(), tls: StoreTls::default() }
        );
    } else {
        let problems = outcome.unwrap_err();
        assert!(problems.iter().any(|p| p.contains("`etcd` cargo feature")), "{problems:?}");
    }
    let config = load(
        &ServeArgs::default(),
        &env(&[("IMDS_STORE_BACKEND", "etcd"), ("IMDS_STORE_URL", "etcd://127.0.0.1:2379")]),
    );
    assert_eq!(config.is_ok(), cfg!(feature = "etcd"));
    let problems = load(&ServeArgs::default(), &env(&[("IMDS_STORE_BACKEND", "etcd")])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("store.url:")), "{problems:?}");
    let args = ServeArgs { store: Some("postgres://x".into()), ..ServeArgs::default() };
    assert!(load(&args, &env(&[])).unwrap_err().iter().any(|p| p.starts_with("store.backend:")));
}

#[test]
fn net_section_gives_the_host_datapath_and_bad_entries_are_named() {
    let (_dir, file) = config_file(
        "[guest]\nlisten = [\"169.254.169.254:80\", \"[fd00:ec2::254]:80\", \"198.51.100.1:8775\"]\n[admin]\nlisten = \"127.0.0.1:8998\"\ntoken = \"t\"\n[net]\nguest_interfaces = [\"tap*\", \"br0\"]\nmanage = true\n",
    );
    let args = ServeArgs { config: Some(file), ..ServeArgs::default() };
    let config = load(&args, &env(&[])).unwrap();
    let addresses: Vec<String> = config.net.addresses.iter().map(ToString::to_string).collect();
    // The proxy-facing host address is the host's own: only metadata addresses go on imds0.
    assert_eq!(addresses, ["169.254.169.254", "fd00:ec2::254"]);
    assert_eq!(config.net.guest_ports, [80, 8775]);
    assert_eq!(config.net.admin_ports, [8998]);
    assert_eq!(config.net.interface, "imds0");
    assert!(config.net.manage);
    assert!(config.server.guest.identify.neighbours);

    let (_dir, file) = config_file(
        "[admin]\nsocket = \"/run/x.sock\"\n[net]\nguest_interfaces = [\"t*p\"]\ninterface = \"way-too-long-name\"\nproxies = [\"nope\"]\nproxy_secret_file = \"/nonexistent/secret\"\n",
    );
    let problems = load(&ServeArgs { config: Some(file), ..ServeArgs::default() }, &env(&[])).unwrap_err();
    for field in ["net.guest_interfaces[0]", "net.interface", "net.proxies[0]", "net.proxy_secret_file"] {
        assert!(problems.iter().any(|p| p.starts_with(field)), "{field} in {problems:?}");
    }
    let problems = load(&ServeArgs::default(), &env(&[("IMDS_NET_MANAGE", "true")])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("net.manage")), "{problems:?}");
}

#[test]
fn a_short_proxy_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "short\n").unwrap();
    let env = env(&[("IMDS_NET_PROXIES", "198.51.100.2"), ("IMDS_NET_PROXY_SECRET_FILE", secret.to_str().unwrap())]);
    let problems = load(&ServeArgs::default(), &env).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("at least 16")), "{problems:?}");
    std::fs::write(&secret, "a-long-enough-shared-secret\n").unwrap();
    let config = load(&ServeArgs::default(), &env).unwrap();
    assert_eq!(config.server.guest.identify.proxies, ["198.51.100.2".parse::<std::net::IpAddr>().unwrap()]);
    assert!(config.server.guest.identify.proxy_secret.is_some());
}

#[test]
fn an_admin_address_guests_can_reach_is_refused_unless_allowed() {
    let args = ServeArgs { admin_listen: Some("0.0.0.0:8998".into()), ..ServeArgs::default() };
    let token = ("IMDS_ADMIN_TOKEN", "t");
    let problems = load(&args, &env(&[token])).unwrap_err();
    assert!(
        problems.iter().any(|p| p.starts_with("admin.listen") && p.contains("allow_guest_reachable")),
        "{problems:?}"
    );
    let args = ServeArgs { admin_listen: Some("192.0.2.1:8998".into()), ..ServeArgs::default() };
    assert!(load(&args, &env(&[token])).is_err());
    assert!(load(&args, &env(&[token, ("IMDS_ADMIN_ALLOW_GUEST_REACHABLE", "true")])).is_ok());
    let args = ServeArgs { admin_listen: Some("127.0.0.1:8998".into()), ..ServeArgs::default() };
    assert!(load(&args, &env(&[token])).is_ok());
}

#[test]
fn the_azure_wireserver_is_off_unless_configured() {
    let config = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert!(config.server.guest.azure_wireserver_listen.is_empty());
    let (_dir, path) = config_file("[guest]\nazure_wireserver_listen = [\"168.63.129.16:80\"]\n");
    let args = ServeArgs { config: Some(path), ..ServeArgs::default() };
    let config = load(&args, &env(&[])).unwrap();
    assert_eq!(config.server.guest.azure_wireserver_listen, vec!["168.63.129.16:80".parse().unwrap()]);
    let config = load(&ServeArgs::default(), &env(&[("IMDS_GUEST_AZURE_WIRESERVER_LISTEN", "127.0.0.9:80")])).unwrap();
    assert_eq!(config.server.guest.azure_wireserver_listen, vec!["127.0.0.9:80".parse().unwrap()]);
}

#[test]
fn the_azure_wireserver_needs_its_own_address_and_never_the_admin_port() {
    let (_dir, path) = config_file(
        "[guest]\nazure_wireserver_listen = [\"169.254.169.254:80\", \"nonsense\"]\n[admin]\nlisten = \"127.0.0.1:8998\"\ntoken = \"t\"\n",
    );
    let problems = load(&ServeArgs { config: Some(path), ..ServeArgs::default() }, &env(&[])).unwrap_err();
    assert!(
        problems.iter().any(|p| p.starts_with("guest.azure_wireserver_listen: 169.254.169.254:80 is also")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("guest.azure_wireserver_listen") && p.contains("nonsense")),
        "{problems:?}"
    );
    let (_dir, path) = config_file(
        "[guest]\nazure_wireserver_listen = [\"127.0.0.1:8998\"]\n[admin]\nlisten = \"127.0.0.1:8998\"\ntoken = \"t\"\n",
    );
    let problems = load(&ServeArgs { config: Some(path), ..ServeArgs::default() }, &env(&[])).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("overlaps a guest listener")), "{problems:?}");
}

#[test]
fn metrics_and_audit_are_off_by_default_and_set_by_file_or_env() {
    let config = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert_eq!(config.server.metrics, imds_server::metrics::Config::default());
    assert_eq!(config.server.audit.output, None, "no audit log unless asked for");

    let (_dir, path) = config_file(
        "[metrics]\nlisten = \"127.0.0.1:9464\"\nper_instance = true\n[audit]\noutput = \"/var/log/imds/audit.log\"\nqueue = 10\n",
    );
    let args = ServeArgs { config: Some(path.clone()), ..ServeArgs::default() };
    let config = load(&args, &env(&[])).unwrap();
    assert_eq!(config.server.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert!(config.server.metrics.per_instance);
    assert_eq!(config.server.audit.output, Some(imds_server::audit::Output::File("/var/log/imds/audit.log".into())));
    assert_eq!(config.server.audit.queue, 10);
    assert_eq!(config.net.admin_ports, [9464], "imds net up keeps guests off the metrics port");

    let config = load(
        &args,
        &env(&[("IMDS_AUDIT_OUTPUT", "stdout"), ("IMDS_METRICS_LISTEN", ""), ("IMDS_METRICS_PER_INSTANCE", "false")]),
    )
    .unwrap();
    assert_eq!(config.server.audit.output, Some(imds_server::audit::Output::Stdout));
    assert_eq!(config.server.metrics, imds_server::metrics::Config::default());
}

#[test]
fn a_metrics_address_guests_reach_is_refused_like_the_admin_apis() {
    let (_dir, path) = config_file(
        "[guest]\nlisten = [\"169.254.169.254:80\"]\n[metrics]\nlisten = \"169.254.169.254:80\"\n[audit]\nqueue = 0\n",
    );
    let args = ServeArgs { config: Some(path), ..ServeArgs::default() };
    let problems = load(&args, &env(&[])).unwrap_err().join("\n");
    assert!(problems.contains("metrics.listen: 169.254.169.254:80 overlaps a guest listener"), "{problems}");
    assert!(problems.contains("metrics.listen: guests can reach 169.254.169.254:80"), "{problems}");
    assert!(problems.contains("audit.queue: must be at least 1"), "{problems}");
}

#[test]
fn a_credentials_key_file_turns_on_fleet_refresh_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("fleet.key");
    std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
    let args = ServeArgs {
        credentials_key_file: Some(good.to_str().unwrap().to_owned()),
        node: Some("hv-7".into()),
        ..ServeArgs::default()
    };
    let fleet = load(&args, &env(&[])).unwrap().server.fleet.expect("fleet refresh on");
    assert!(fleet.holder.starts_with("hv-7/"), "{}", fleet.holder);
    assert!(!format!("{fleet:?}").contains("abab"), "the key shows in Debug");
    assert!(load(&ServeArgs::default(), &env(&[])).unwrap().server.fleet.is_none());
    let bad = dir.path().join("short.key");
    std::fs::write(&bad, "too short").unwrap();
    let problems =
        load(&ServeArgs::default(), &env(&[("IMDS_STORE_CREDENTIALS_KEY_FILE", bad.to_str().unwrap())])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("store.credentials_key_file:")), "{problems:?}");
}

#[test]
fn only_named_refreshers_refresh_for_a_fleet_of_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("fleet.key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    let key = key.to_str().unwrap().to_owned();
    let on_node =
        ServeArgs { credentials_key_file: Some(key.clone()), node: Some("hv-7".into()), ..ServeArgs::default() };
    let refresher =
        |args: &ServeArgs, vars: &[(&str, &str)]| load(args, &env(vars)).unwrap().server.fleet.unwrap().refresher;
    assert!(!refresher(&on_node, &[]), "a node-scoped server with a key is no refresher by default");
    assert!(refresher(&on_node, &[("IMDS_FLEET_REFRESHER", "true")]));
    let all = ServeArgs { credentials_key_file: Some(key), ..ServeArgs::default() };
    assert!(refresher(&all, &[]), "scope all refreshes by default");
    assert!(!refresher(&all, &[("IMDS_FLEET_REFRESHER", "0")]));
    let problems = load(&ServeArgs::default(), &env(&[("IMDS_FLEET_REFRESHER", "false")])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("fleet.refresher:")), "{problems:?}");
    let problems = load(&on_node, &env(&[("IMDS_FLEET_REFRESHER", "maybe")])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("IMDS_FLEET_REFRESHER:")), "{problems:?}");
    let ttl = |vars: &[(&str, &str)]| load(&on_node, &env(vars)).map(|config| config.server.fleet.unwrap().lease_ttl);
    assert_eq!(ttl(&[]).unwrap(), std::time::Duration::from_secs(15));
    assert_eq!(ttl(&[("IMDS_FLEET_LEASE_TTL_SECS", "30")]).unwrap(), std::time::Duration::from_secs(30));
    let problems = ttl(&[("IMDS_FLEET_LEASE_TTL_SECS", "1")]).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("fleet.lease_ttl_secs:")), "{problems:?}");
}

#[test]
fn an_etcd_url_is_never_ignored_for_a_local_file() {
    let url = "etcd://127.0.0.1:2379/imds";
    // A URL alone names the etcd backend.
    let alone = load(&ServeArgs::default(), &env(&[("IMDS_STORE_URL", url)]));
    if cfg!(feature = "etcd") {
        assert_eq!(alone.unwrap().store, StoreConfig::Etcd { url: url.into(), tls: StoreTls::default() });
    } else {
        assert!(alone.unwrap_err().iter().any(|p| p.contains("`etcd` cargo feature")));
    }
    // Beside another backend it is refused, naming the field.
    for backend in ["sqlite", "memory"] {
        let problems =
            load(&ServeArgs::default(), &env(&[("IMDS_STORE_URL", url), ("IMDS_STORE_BACKEND", backend)])).unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with("store.url:") && p.contains(backend)), "{problems:?}");
    }
}

#[test]
fn unknown_keys_and_mistyped_values_are_each_reported_and_the_rest_is_kept() {
    let mut problems = Vec::new();
    let raw = RawConfig::parse_toml_reporting(
        "[guest]\nlisten = [\"127.0.0.1:1338\"]\nlisen = 1\nmax_held = -3\n[nope]\nx = 1\n[log]\nlevel = \"debug\"\n",
        &mut problems,
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems.iter().any(|p| p.starts_with("nope: unknown field `nope`")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.starts_with("guest.lisen: unknown field `lisen`")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.starts_with("guest.max_held: invalid value")), "{problems:#?}");
    assert_eq!(raw.guest.listen, Some(vec!["127.0.0.1:1338".to_owned()]));
    assert_eq!(raw.log.level.as_deref(), Some("debug"));

    let mut problems = Vec::new();
    assert_eq!(RawConfig::parse_toml_reporting("[guest\n", &mut problems), RawConfig::default());
    assert_eq!(problems.len(), 1, "a syntax error is one problem: {problems:#?}");
}

#[test]
fn dialect_listeners_come_from_file_or_env_and_go_on_the_host() {
    let config = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert!(config.server.guest.dialect_listen.is_empty(), "none by default");
    let (_dir, path) = config_file(
        "[guest]\nlisten = [\"169.254.169.254:80\"]\n[guest.dialect_listen]\nopenstack = [\"100.100.100.200:80\", \"[fd00:ec2::23]:8080\"]\ngce = [\"127.0.0.1:81\"]\n",
    );
    let args = ServeArgs { config: Some(path), ..ServeArgs::default() };
    let config = load(&args, &env(&[])).unwrap();
    let bound: Vec<(Dialect, String)> =
        config.server.guest.dialect_listen.iter().map(|(d, addr)| (*d, addr.to_string())).collect();
    assert_eq!(
        bound,
        [
            (Dialect::Gce, "127.0.0.1:81".to_owned()),
            (Dialect::OpenStack, "100.100.100.200:80".to_owned()),
            (Dialect::OpenStack, "[fd00:ec2::23]:8080".to_owned()),
        ]
    );
    // Its addresses go on the host (loopback is the host's own already), its ports pass.
    let addresses: Vec<String> = config.net.addresses.iter().map(ToString::to_string).collect();
    assert_eq!(addresses, ["169.254.169.254", "100.100.100.200", "fd00:ec2::23"]);
    assert_eq!(config.net.guest_ports, [80, 81, 8080]);
    // The environment replaces the table.
    let from_env = load(&args, &env(&[("IMDS_GUEST_DIALECT_LISTEN", "hetzner=127.0.0.2:80, hetzner=127.0.0.3:80")]));
    let bound: Vec<(Dialect, SocketAddr)> = from_env.unwrap().server.guest.dialect_listen;
    assert_eq!(
        bound,
        [(Dialect::Hetzner, "127.0.0.2:80".parse().unwrap()), (Dialect::Hetzner, "127.0.0.3:80".parse().unwrap())]
    );
}

#[test]
fn bad_dialect_listeners_are_named() {
    let (_dir, path) = config_file(
        "[guest]\nlisten = [\"169.254.169.254:80\"]\n[guest.dialect_listen]\noracle9 = [\"127.0.0.1:80\"]\nmmds = [\"127.0.0.2:80\"]\ngce = [\"169.254.169.254:80\", \"nowhere\", \"127.0.0.1:8998\"]\n[admin]\nlisten = \"127.0.0.1:8998\"\ntoken = \"t\"\n",
    );
    let args = ServeArgs { config: Some(path), ..ServeArgs::default() };
    let problems = load(&args, &env(&[])).unwrap_err();
    let all = problems.join("\n");
    for needle in [
        "guest.dialect_listen.oracle9: not a dialect",
        "guest.dialect_listen.mmds: MMDS is chosen per instance",
        "guest.dialect_listen.gce: 169.254.169.254:80 is also another guest listener's",
        "guest.dialect_listen.gce: \"nowhere\" is not an address",
        "admin.listen: 127.0.0.1:8998 overlaps a guest listener",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let malformed = load(&ServeArgs::default(), &env(&[("IMDS_GUEST_DIALECT_LISTEN", "gce")])).unwrap_err();
    assert!(malformed.iter().any(|p| p.starts_with("IMDS_GUEST_DIALECT_LISTEN: \"gce\" is not dialect=address")));
}

#[test]
fn the_connection_rate_limit_comes_from_file_or_env_and_is_checked() {
    let config = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert_eq!((config.net.syn_per_second, config.net.syn_burst), (100, 200));
    let (_dir, file) = config_file("[net]\nsyn_per_second = 20\nsyn_burst = 40\n");
    let args = ServeArgs { config: Some(file), ..ServeArgs::default() };
    let config = load(&args, &env(&[])).unwrap();
    assert_eq!((config.net.syn_per_second, config.net.syn_burst), (20, 40));
    let config = load(&args, &env(&[("IMDS_NET_SYN_PER_SECOND", "0")])).unwrap();
    assert_eq!(config.net.syn_per_second, 0, "0 turns the limit off");

    let problems = load(&args, &env(&[("IMDS_NET_SYN_BURST", "0")])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("net.syn_burst:")), "{problems:?}");
    let problems = load(&args, &env(&[("IMDS_NET_SYN_PER_SECOND", "fast")])).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("IMDS_NET_SYN_PER_SECOND:")), "{problems:?}");
    let (_dir, file) = config_file("[net]\nsyn_per_second = -1\nsyn_burst = \"lots\"\n");
    let problems = load(&ServeArgs { config: Some(file), ..ServeArgs::default() }, &env(&[])).unwrap_err();
    for field in ["net.syn_per_second: ", "net.syn_burst: "] {
        assert!(problems.iter().any(|p| p.contains(field)), "{field} in {problems:?}");
    }
}
