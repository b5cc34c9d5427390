//! Whole documents compared with files under `tests/data/azure/`. Set `IMDS_UPDATE_GOLDEN=1` to
//! rewrite the files from the current output instead of comparing.

use std::path::PathBuf;

use super::{body, fixtures, get, json};

/// Compares `actual` (pretty-printed for readable diffs) with golden file `name`, or rewrites it
/// when `IMDS_UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &serde_json::Value) {
    let actual = serde_json::to_string_pretty(actual).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/azure").join(name);
    if std::env::var_os("IMDS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with IMDS_UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(
        expected == actual,
        "{}: documents differ\n--- expected ---\n{expected}\n--- actual ---\n{actual}",
        path.display()
    );
}

/// The instance document of `instance` at `query`, which must answer 200 with JSON.
fn document(instance: &imds_model::Instance, query: &str) -> serde_json::Value {
    let response = get(instance, &format!("/metadata/instance?{query}"));
    assert_eq!(response.status, http::StatusCode::OK, "{query}: {}", body(&response));
    json(&response)
}

#[test]
fn full_instance_at_the_newest_version() {
    golden("instance-full.json", &document(&fixtures::full(), "api-version=2025-04-07"));
}

#[test]
fn full_instance_extended_as_cloud_init_asks() {
    golden("instance-full-extended.json", &document(&fixtures::full(), "api-version=2021-08-01&extended=true"));
}

#[test]
fn full_instance_at_cloud_init_fallback_version() {
    golden("instance-full-2019-06-01.json", &document(&fixtures::full(), "api-version=2019-06-01"));
}

#[test]
fn minimal_instance() {
    golden("instance-minimal.json", &document(&fixtures::minimal(), "api-version=2021-02-01"));
}

#[test]
fn overridden_instance() {
    golden("instance-overridden.json", &document(&fixtures::overridden(), "api-version=2023-07-01&extended=true"));
}
