//! Alibaba Cloud ECS: the tree cloud-init's AliYun datasource crawls, its tokens, RAM role
//! credentials and errors.

use http::{Method, StatusCode};
use imds_dialects::Dialect;
use serde_json::{json, Value};

use super::{body, content_type, full, golden, minimal, parse, send};

fn get(instance: &imds_model::Instance, target: &str) -> imds_dialects::GuestResponse {
    send(instance, Dialect::Alibaba, Method::GET, target, &[])
}

/// Every leaf under `meta-data/`, crawled from the listings in order, as cloud-init does.
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
fn the_tree_is_alibabas_at_both_versions() {
    assert_eq!(body(&get(&full(), "/")), "2016-01-01\nlatest");
    assert_eq!(body(&get(&full(), "/latest/")), "dynamic/\nmeta-data/\nuser-data\nvendor-data");
    golden("alibaba", "meta-data.txt", &crawl(&full(), "latest"));
    assert_eq!(crawl(&full(), "2016-01-01"), crawl(&full(), "latest"));
    golden("alibaba", "meta-data-minimal.txt", &crawl(&minimal(), "latest"));
    golden("alibaba", "document.json", body(&get(&full(), "/latest/dynamic/instance-identity/document")));
    assert_eq!(get(&full(), "/2009-04-04/meta-data/").status, StatusCode::NOT_FOUND, "no EC2 versions");
    // The signature signs exactly the document's bytes.
    assert_eq!(body(&get(&full(), "/latest/dynamic/instance-identity/")), "document\npkcs7");
    let document = get(&full(), "/latest/dynamic/instance-identity/document").body;
    let pkcs7 = get(&full(), "/latest/dynamic/instance-identity/pkcs7");
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(&pkcs7.body).unwrap();
    assert_eq!(der, [b"P7:".as_slice(), &document].concat());
}

#[test]
fn user_data_is_byte_exact_and_absent_user_data_is_404() {
    let response = get(&full(), "/2016-01-01/user-data");
    assert_eq!((response.status, body(&response)), (StatusCode::OK, super::USER_DATA));
    assert_eq!(get(&minimal(), "/latest/user-data").status, StatusCode::NOT_FOUND);
}

#[test]
fn ram_role_credentials_carry_alibabas_field_names() {
    assert_eq!(body(&get(&full(), "/latest/meta-data/ram/security-credentials/")), "app-role");
    let response = get(&full(), "/latest/meta-data/ram/security-credentials/app-role");
    assert_eq!(response.status, StatusCode::OK);
    golden("alibaba", "credentials.json", body(&response));
    let parsed: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(parsed["Code"], "Success");
    assert_eq!(parsed["AccessKeySecret"], "cloud-secret");
    assert_eq!(parsed["SecurityToken"], "cloud-session-token");
    let broken = parse(json!({"id": "i-b", "iam_role": "broken-role"}));
    let failed: Value =
        serde_json::from_slice(&get(&broken, "/latest/meta-data/ram/security-credentials/broken-role").body).unwrap();
    assert_ne!(failed["Code"], "Success");
    assert!(failed.get("AccessKeyId").is_none());
    assert_eq!(get(&minimal(), "/latest/meta-data/ram/security-credentials/app-role").status, StatusCode::NOT_FOUND);
}

#[test]
fn tokens_are_minted_checked_and_required_when_the_record_says_so() {
    let ttl = [("x-aliyun-ecs-metadata-token-ttl-seconds", "60")];
    let minted = send(&full(), Dialect::Alibaba, Method::PUT, "/latest/api/token", &ttl);
    assert_eq!(minted.status, StatusCode::OK);
    let token = body(&minted).to_owned();
    let with = |token: &str| {
        send(
            &full(),
            Dialect::Alibaba,
            Method::GET,
            "/latest/meta-data/instance-id",
            &[("x-aliyun-ecs-metadata-token", token)],
        )
    };
    assert_eq!(body(&with(&token)), "i-bp67acfmxazb4p1");
    assert_eq!(with("forged").status, StatusCode::UNAUTHORIZED);
    // Another instance's token is refused.
    let other = send(&minimal(), Dialect::Alibaba, Method::PUT, "/latest/api/token", &ttl);
    assert_eq!(with(body(&other)).status, StatusCode::UNAUTHORIZED);
    for bad in ["0", "21601", "soon"] {
        let refused = send(
            &full(),
            Dialect::Alibaba,
            Method::PUT,
            "/latest/api/token",
            &[("x-aliyun-ecs-metadata-token-ttl-seconds", bad)],
        );
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(send(&full(), Dialect::Alibaba, Method::PUT, "/latest/api/token", &[]).status, StatusCode::BAD_REQUEST);
    // EC2's header names mean nothing here.
    let aws = send(
        &full(),
        Dialect::Alibaba,
        Method::PUT,
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(aws.status, StatusCode::BAD_REQUEST);
    let mut hardened = super::full_doc();
    hardened["imds"] = json!({"tokens": "required"});
    let hardened = parse(hardened);
    assert_eq!(get(&hardened, "/latest/meta-data/instance-id").status, StatusCode::UNAUTHORIZED);
    let token = send(&hardened, Dialect::Alibaba, Method::PUT, "/latest/api/token", &ttl);
    let read = send(
        &hardened,
        Dialect::Alibaba,
        Method::GET,
        "/latest/meta-data/instance-id",
        &[("x-aliyun-ecs-metadata-token", body(&token))],
    );
    assert_eq!(read.status, StatusCode::OK);
}

#[test]
fn errors_and_settings_take_alibabas_shape() {
    let missing = get(&full(), "/latest/meta-data/nothing-here");
    assert_eq!((missing.status, content_type(&missing)), (StatusCode::NOT_FOUND, "text/html"));
    assert!(body(&missing).contains("404 Not Found"));
    assert_eq!(
        send(&full(), Dialect::Alibaba, Method::POST, "/latest/meta-data/", &[]).status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let mut shut = super::full_doc();
    shut["imds"] = json!({"endpoint": "disabled"});
    let disabled = get(&parse(shut), "/latest/user-data");
    assert_eq!(disabled.status, StatusCode::FORBIDDEN);
    assert!(!body(&disabled).contains("cloud-config"));
    let mut ec2_only = super::full_doc();
    ec2_only["dialects"] = json!({"enabled": ["ec2"]});
    let not_served = get(&parse(ec2_only), "/latest/user-data");
    assert_eq!(not_served.status, StatusCode::NOT_FOUND);
    assert!(body(&not_served).contains("404 Not Found") && !body(&not_served).contains("cloud-config"));
    let mut overridden = super::full_doc();
    overridden["dialects"] = json!({"alibaba": {"vpc-id": "vpc-bp1opxu1zkhn00g", "hostname": null}});
    let overridden = parse(overridden);
    assert_eq!(body(&get(&overridden, "/latest/meta-data/vpc-id")), "vpc-bp1opxu1zkhn00g");
    assert_eq!(get(&overridden, "/latest/meta-data/hostname").status, StatusCode::NOT_FOUND);
    let mut bad = super::full_doc();
    bad["dialects"] = json!({"alibaba": {"vpc-id": 7}});
    let problems = imds_dialects::check_overrides(&parse(bad)).unwrap_err();
    assert_eq!(problems.errors[0].field, "dialects.alibaba.vpc-id");
}

#[test]
fn a_spot_interruption_shows_its_termination_time_from_its_notice_until_it_is_canceled() {
    let at = |events: &imds_model::InstanceEvents, target: &str, seconds: u64| {
        super::get_at(&full(), events, Dialect::Alibaba, target, seconds)
    };
    let leaf = "/latest/meta-data/instance/spot/termination-time";
    let mut events = super::spot("terminate");
    // Before the notice: 404 and unlisted, like an instance that is not to be reclaimed.
    assert_eq!(at(&events, leaf, 179).status, StatusCode::NOT_FOUND);
    assert_eq!(at(&events, "/latest/meta-data/instance/spot/", 179).status, StatusCode::NOT_FOUND);
    assert_eq!(body(&at(&events, "/latest/meta-data/instance/", 179)), "instance-name\ninstance-type");
    // From the notice on, at both versions: the interruption's time, UTC.
    for version in ["latest", "2016-01-01"] {
        let notice = at(&events, &format!("/{version}/meta-data/instance/spot/termination-time"), 180);
        assert_eq!((notice.status, body(&notice)), (StatusCode::OK, "2027-01-15T08:05:00Z"));
        assert_eq!(content_type(&notice), "text/plain");
    }
    assert_eq!(body(&at(&events, "/latest/meta-data/instance/", 180)), "instance-name\ninstance-type\nspot/");
    assert_eq!(body(&at(&events, "/latest/meta-data/instance/spot", 180)), "termination-time");
    assert_eq!(body(&at(&events, leaf, 3600)), "2027-01-15T08:05:00Z", "it stays until it is over");
    // Every action is a reclaim on Alibaba: the one leaf shows it.
    assert_eq!(body(&at(&super::spot("stop"), leaf, 180)), "2027-01-15T08:05:00Z");
    // Canceled: gone again, leaf and listing.
    events.events[0].canceled_at = Some(super::fakes::NOW + 200);
    assert_eq!(at(&events, leaf, 200).status, StatusCode::NOT_FOUND);
    assert_eq!(body(&at(&events, "/latest/meta-data/instance/", 200)), "instance-name\ninstance-type");
    // The record's tree without events is unchanged.
    assert_eq!(get(&full(), leaf).status, StatusCode::NOT_FOUND);
}
