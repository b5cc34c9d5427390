//! Tencent Cloud CVM: the tree, CAM role credentials with Tencent's field names, and errors.

use http::{Method, StatusCode};
use imds_dialects::Dialect;
use serde_json::{json, Value};

use super::{body, content_type, full, golden, minimal, parse, send};

fn get(instance: &imds_model::Instance, target: &str) -> imds_dialects::GuestResponse {
    send(instance, Dialect::Tencent, Method::GET, target, &[])
}

/// Every leaf under `meta-data/`, crawled from the listings in order.
fn crawl(instance: &imds_model::Instance, version: &str) -> String {
    fn walk(instance: &imds_model::Instance, version: &str, dir: &str, out: &mut String) {
        let listing = get(instance, &format!("/{version}/meta-data/{dir}"));
        assert_eq!(listing.status, StatusCode::OK, "{dir}");
        for entry in body(&listing).lines() {
            if entry.ends_with('/') {
                walk(instance, version, &format!("{dir}{entry}"), out);
            } else {
                let leaf = get(instance, &format!("/{version}/meta-data/{dir}{entry}"));
                assert_eq!(leaf.status, StatusCode::OK, "{dir}{entry}");
                out.push_str(&format!("{dir}{entry}: {}\n", body(&leaf)));
            }
        }
    }
    let mut out = String::new();
    walk(instance, version, "", &mut out);
    out
}

#[test]
fn the_tree_is_tencents_at_every_version() {
    assert_eq!(body(&get(&full(), "/")), "1.0\n2017-09-19\nlatest");
    assert_eq!(body(&get(&full(), "/latest/")), "meta-data/\nuser-data");
    golden("tencent", "meta-data.txt", &crawl(&full(), "latest"));
    assert_eq!(crawl(&full(), "1.0"), crawl(&full(), "latest"));
    golden("tencent", "meta-data-minimal.txt", &crawl(&minimal(), "latest"));
    assert_eq!(body(&get(&full(), "/latest/meta-data/mac")), "02:00:00:00:00:0B", "upper case, as Tencent");
    assert_eq!(get(&full(), "/2009-04-04/meta-data/").status, StatusCode::NOT_FOUND);
    let user_data = get(&full(), "/latest/user-data");
    assert_eq!((user_data.status, body(&user_data)), (StatusCode::OK, super::USER_DATA));
    assert_eq!(get(&minimal(), "/latest/user-data").status, StatusCode::NOT_FOUND);
}

#[test]
fn cam_role_credentials_carry_tencents_field_names() {
    assert_eq!(body(&get(&full(), "/latest/meta-data/cam/security-credentials/")), "app-role");
    let response = get(&full(), "/latest/meta-data/cam/security-credentials/app-role");
    golden("tencent", "credentials.json", body(&response));
    let parsed: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(parsed["Code"], "Success");
    assert_eq!(parsed["TmpSecretId"], "STS.NUCLOUDKEY");
    assert_eq!(parsed["ExpiredTime"], super::fakes::NOW + 3600);
    let broken = parse(json!({"id": "ins-b", "iam_role": "broken-role"}));
    let failed: Value =
        serde_json::from_slice(&get(&broken, "/latest/meta-data/cam/security-credentials/broken-role").body).unwrap();
    assert_ne!(failed["Code"], "Success");
    assert!(failed.get("TmpSecretKey").is_none());
}

#[test]
fn errors_and_settings_take_tencents_shape() {
    let missing = get(&full(), "/latest/meta-data/nothing");
    assert_eq!((missing.status, content_type(&missing)), (StatusCode::NOT_FOUND, "text/html"));
    assert_eq!(
        send(&full(), Dialect::Tencent, Method::PUT, "/latest/meta-data/", &[]).status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let mut shut = super::full_doc();
    shut["imds"] = json!({"endpoint": "disabled"});
    let disabled = get(&parse(shut), "/latest/meta-data/cam/security-credentials/app-role");
    assert_eq!(disabled.status, StatusCode::FORBIDDEN);
    assert!(!body(&disabled).contains("cloud-secret"));
    let mut only = super::full_doc();
    only["dialects"] = json!({"enabled": ["alibaba"], "tencent": {"instance-id": "ins-3g445roi"}});
    let only = parse(only);
    assert_eq!(get(&only, "/latest/meta-data/instance-id").status, StatusCode::NOT_FOUND);
    let mut overridden = super::full_doc();
    overridden["dialects"] = json!({"tencent": {"instance-id": "ins-3g445roi"}});
    assert_eq!(body(&get(&parse(overridden), "/latest/meta-data/instance-id")), "ins-3g445roi");
}

#[test]
fn a_spot_interruption_shows_its_termination_time_at_utc8_from_its_notice_until_it_is_canceled() {
    let at = |events: &imds_model::InstanceEvents, target: &str, seconds: u64| {
        super::get_at(&full(), events, Dialect::Tencent, target, seconds)
    };
    let leaf = "/latest/meta-data/spot/termination-time";
    let mut events = super::spot("terminate");
    let listed = |seconds: u64, events: &imds_model::InstanceEvents| {
        body(&at(events, "/latest/meta-data/", seconds)).lines().any(|line| line == "spot/")
    };
    // Before the notice: 404 and unlisted (Tencent: "not a spot instance or not reclaimed").
    assert_eq!(at(&events, leaf, 179).status, StatusCode::NOT_FOUND);
    assert_eq!(at(&events, "/latest/meta-data/spot/", 179).status, StatusCode::NOT_FOUND);
    assert!(!listed(179, &events));
    // From the notice on, at every version: the time at UTC+8 (08:05 UTC), as Tencent writes it.
    for version in ["latest", "2017-09-19", "1.0"] {
        let notice = at(&events, &format!("/{version}/meta-data/spot/termination-time"), 180);
        assert_eq!((notice.status, body(&notice)), (StatusCode::OK, "2027-01-15 16:05:00"));
        assert_eq!(content_type(&notice), "text/plain");
    }
    assert!(listed(180, &events));
    assert_eq!(body(&at(&events, "/latest/meta-data/spot", 180)), "termination-time");
    assert_eq!(body(&at(&events, leaf, 3600)), "2027-01-15 16:05:00", "it stays until it is over");
    assert_eq!(body(&at(&super::spot("hibernate"), leaf, 180)), "2027-01-15 16:05:00");
    // Canceled: gone again, leaf and listing.
    events.events[0].canceled_at = Some(super::fakes::NOW + 200);
    assert_eq!(at(&events, leaf, 200).status, StatusCode::NOT_FOUND);
    assert!(!listed(200, &events));
    assert_eq!(get(&full(), leaf).status, StatusCode::NOT_FOUND);
}
