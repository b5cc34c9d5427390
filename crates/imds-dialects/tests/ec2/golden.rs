//! Long bodies compared with files under `tests/data/ec2/`. Set `IMDS_UPDATE_GOLDEN=1` to
//! rewrite the files from the current output instead of comparing.

use std::path::PathBuf;

use super::{assert_text_eq, body, fixtures, get, ok};

/// Compares `actual` with golden file `name`, or rewrites it when `IMDS_UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ec2").join(name);
    if std::env::var_os("IMDS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with IMDS_UPDATE_GOLDEN=1 to create it)", path.display()));
    assert_text_eq(&path.display().to_string(), &expected, actual);
}

/// Fetches `path` from the full fixture, which must answer 200.
fn full_body(path: &str) -> String {
    let response = get(&fixtures::full(), path);
    assert!(ok(&response), "{path}");
    body(&response).to_owned()
}

#[test]
fn identity_document_of_the_full_fixture() {
    golden("identity-document.json", &full_body("/latest/dynamic/instance-identity/document"));
}

#[test]
fn identity_document_of_the_minimal_fixture() {
    let response = get(&fixtures::minimal(), "/latest/dynamic/instance-identity/document");
    golden("identity-document-minimal.json", body(&response));
}

#[test]
fn meta_data_listing_of_the_full_fixture() {
    golden("meta-data-listing.txt", &full_body("/latest/meta-data/"));
}

#[test]
fn iam_info_of_the_full_fixture() {
    golden("iam-info.json", &full_body("/latest/meta-data/iam/info"));
}
