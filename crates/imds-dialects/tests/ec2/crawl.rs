//! Crawls the whole tree the way cloud-init does and checks it is closed: every listed entry
//! answers 200, listed directories end in `/` exactly when they have children, and no body ends
//! with a newline except `openssh-key` values.

use http::StatusCode;
use imds_model::Instance;

use super::{body, content_type, fixtures, get, ok};

/// Versions every fixture is crawled at.
const VERSIONS: &[&str] = &["latest", "2009-04-04", "2021-03-23", "1.0"];

/// What a crawl found: every leaf path (relative to the version) and every directory path.
#[derive(Debug, Default)]
struct Crawl {
    leaves: Vec<String>,
    dirs: Vec<String>,
}

/// Crawls `/<version>/`, panicking with the offending path on the first violation.
fn crawl(name: &str, instance: &Instance, version: &str) -> Crawl {
    let mut found = Crawl::default();
    let root = format!("/{version}/");
    let listing = get(instance, &root);
    assert!(ok(&listing), "{name}: {root} answers");
    for entry in body(&listing).split('\n') {
        // The version level lists its directories without a slash.
        assert!(!entry.ends_with('/'), "{name}: {root} lists {entry:?} bare");
        match entry {
            "dynamic" | "meta-data" => walk(name, instance, &root, &format!("{entry}/"), &mut found),
            "user-data" => {
                let response = get(instance, &format!("{root}user-data"));
                assert!(ok(&response), "{name}: user-data answers");
                assert_eq!(content_type(&response), "application/octet-stream");
                found.leaves.push("user-data".to_owned());
            }
            other => panic!("{name}: unexpected version-level entry {other:?}"),
        }
    }
    found
}

/// Walks directory `dir` (relative to `root`, ending in `/`).
fn walk(name: &str, instance: &Instance, root: &str, dir: &str, found: &mut Crawl) {
    let url = format!("{root}{dir}");
    let listing = get(instance, &url);
    assert!(ok(&listing), "{name}: listed directory {url} answers");
    assert_eq!(content_type(&listing), "text/plain", "{name}: {url}");
    let text = body(&listing);
    assert!(!text.is_empty(), "{name}: listed directory {url} has children");
    assert!(!text.ends_with('\n'), "{name}: listing {url} ends without a newline");
    assert_eq!(body(&get(instance, url.trim_end_matches('/'))), text, "{name}: {url} without its slash");
    found.dirs.push(dir.to_owned());
    for entry in text.split('\n') {
        assert!(!entry.is_empty(), "{name}: {url} lists an empty line");
        if dir.ends_with("public-keys/") {
            // `N=name` names directory `N/`.
            let (index, key_name) = entry.split_once('=').expect("public-keys lines are N=name");
            assert!(index.parse::<usize>().is_ok(), "{name}: {url} index {index:?}");
            assert!(!key_name.is_empty() && !key_name.contains('/'), "{name}: {url} name {key_name:?}");
            walk(name, instance, root, &format!("{dir}{index}/"), found);
        } else if entry.ends_with('/') {
            walk(name, instance, root, &format!("{dir}{entry}"), found);
        } else {
            leaf(name, instance, root, &format!("{dir}{entry}"), found);
        }
    }
}

/// Checks leaf `path` (relative to `root`).
fn leaf(name: &str, instance: &Instance, root: &str, path: &str, found: &mut Crawl) {
    let url = format!("{root}{path}");
    let response = get(instance, &url);
    assert!(ok(&response), "{name}: listed leaf {url} answers");
    assert_eq!(content_type(&response), "text/plain", "{name}: {url}");
    let text = body(&response);
    if path.ends_with("/openssh-key") {
        assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "{name}: {url} ends with one newline");
    } else {
        assert!(!text.ends_with('\n'), "{name}: {url} ends without a newline: {text:?}");
    }
    assert_eq!(get(instance, &format!("{url}/")), response, "{name}: {url}/ answers like {url}");
    // A leaf has no children: none of its lines resolves below it.
    for line in text.lines().filter(|line| !line.is_empty()) {
        let child = get(instance, &format!("{url}/{line}"));
        assert_eq!(child.status, StatusCode::NOT_FOUND, "{name}: leaf {url} has no child {line:?}");
    }
    found.leaves.push(path.to_owned());
}

#[test]
fn every_listing_is_closed_under_crawling() {
    for (name, instance) in fixtures::all() {
        for version in VERSIONS {
            let found = crawl(name, &instance, version);
            assert!(found.leaves.iter().any(|leaf| leaf == "meta-data/instance-id"), "{name} at {version}");
        }
    }
}

#[test]
fn crawls_see_what_each_version_had() {
    let full = fixtures::full();
    let latest = crawl("full", &full, "latest");
    let has = |crawl: &Crawl, path: &str| crawl.leaves.iter().chain(&crawl.dirs).any(|p| p == path);
    for path in [
        "meta-data/tags/instance/Name",
        "meta-data/tags/instance/empty",
        "meta-data/iam/info",
        "meta-data/instance-life-cycle",
        "meta-data/ipv6",
        "meta-data/public-keys/3/openssh-key",
        "meta-data/network/interfaces/macs/02:00:00:00:00:0c/local-ipv4s",
        "meta-data/events/maintenance/scheduled",
        "dynamic/instance-identity/document",
        "user-data",
    ] {
        assert!(has(&latest, path), "latest has {path}");
    }
    assert!(!has(&latest, "meta-data/tags/instance/has space"), "keys EC2 refuses are not exposed");

    let old = crawl("full", &full, "2009-04-04");
    for path in ["meta-data/services/", "meta-data/tags/", "meta-data/iam/", "meta-data/network/", "meta-data/ipv6"] {
        assert!(!has(&old, path), "2009-04-04 has no {path}");
    }
    assert!(has(&old, "meta-data/placement/availability-zone") && has(&old, "dynamic/instance-identity/document"));

    let v1 = crawl("full", &full, "1.0");
    assert!(!has(&v1, "meta-data/local-hostname") && !v1.dirs.iter().any(|d| d == "dynamic/"));

    let six = crawl("ipv6-only", &fixtures::ipv6_only(), "latest");
    assert!(has(&six, "meta-data/network/interfaces/macs/02:00:00:00:00:66/ipv6s"));
    assert!(!six.leaves.iter().any(|leaf| leaf.ends_with("local-ipv4s") || leaf.ends_with("/local-ipv4")));
}
