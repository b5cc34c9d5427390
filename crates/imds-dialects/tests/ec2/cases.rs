//! Table-driven cases: fixture, method, path → status, content type, exact body.

use http::{header, Method, StatusCode};
use imds_dialects::ec2::wire::NOT_FOUND_PAGE;
use imds_model::Instance;
use serde_json::json;

use super::fixtures::{self, ED, RSA, SLASHED};
use super::{assert_text_eq, body, content_type, get, send};

/// Shorthands for the table.
const TEXT: &str = "text/plain";
const HTML: &str = "text/html";
const NF: &str = NOT_FOUND_PAGE;
const VERSIONS: &str = "1.0\n2007-01-19\n2007-03-01\n2007-08-29\n2007-10-10\n2007-12-15\n2008-02-01\n2008-09-01\n\
2009-04-04\n2011-01-01\n2011-05-01\n2012-01-12\n2014-02-25\n2014-11-05\n2015-10-20\n2016-04-19\n2016-06-30\n\
2016-09-02\n2018-03-28\n2018-08-17\n2018-09-24\n2019-10-01\n2020-10-27\n2021-01-03\n2021-03-23\n2021-07-15\n\
2022-07-09\n2022-09-24\nlatest";
const MACS: &str = "/latest/meta-data/network/interfaces/macs";

/// One row: `(fixture, path, status, content type, exact body)`.
type Case<'a> = (&'a str, &'a str, u16, &'a str, &'a str);

/// Runs `GET` for every row against the named fixtures.
fn run(fixtures: &[(&str, &Instance)], cases: &[Case<'_>]) {
    for (fixture, path, status, expected_type, expected_body) in cases {
        let instance = fixtures.iter().find(|(name, _)| name == fixture).map(|(_, i)| *i).expect("known fixture");
        let response = get(instance, path);
        let what = format!("{fixture} GET {path}");
        assert_eq!(response.status.as_u16(), *status, "{what}: status (body {:?})", body(&response));
        assert_eq!(content_type(&response), *expected_type, "{what}: content type");
        assert_text_eq(&what, expected_body, body(&response));
    }
}

#[test]
fn every_category_of_the_three_fixtures() {
    let (minimal, full, six) = (fixtures::minimal(), fixtures::full(), fixtures::ipv6_only());
    let fixtures = [("min", &minimal), ("full", &full), ("v6", &six)];
    let ed = format!("{ED}\n");
    let rsa = format!("{RSA}\n");
    let slashed = format!("{SLASHED}\n");
    let cases: &[Case<'_>] = &[
        // Root and version level.
        ("min", "/", 200, TEXT, VERSIONS),
        ("full", "/latest", 200, TEXT, "dynamic\nmeta-data\nuser-data"),
        ("full", "/latest/", 200, TEXT, "dynamic\nmeta-data\nuser-data"),
        ("min", "/latest/", 200, TEXT, "dynamic\nmeta-data"),
        ("min", "/2009-04-04", 200, TEXT, "dynamic\nmeta-data"),
        ("min", "/1.0/", 200, TEXT, "meta-data"),
        ("full", "/1.0/", 200, TEXT, "meta-data\nuser-data"),
        ("min", "/2010-01-01/", 404, HTML, NF),
        ("min", "/2010-01-01/meta-data/instance-id", 404, HTML, NF),
        ("min", "/nope", 404, HTML, NF),
        ("min", "/latest/nope", 404, HTML, NF),
        // Repeated slashes collapse, as on AWS (the JavaScript SDK sends `//latest/…`).
        ("min", "/latest/meta-data//instance-id", 200, TEXT, "i-minimal"),
        ("min", "//latest//meta-data/instance-id", 200, TEXT, "i-minimal"),
        ("min", "latest/meta-data/", 404, HTML, NF),
        // user-data.
        ("full", "/latest/user-data", 200, "application/octet-stream", "#cloud-config\nruncmd: [true]\n"),
        ("full", "/latest/user-data/", 200, "application/octet-stream", "#cloud-config\nruncmd: [true]\n"),
        ("full", "/2009-04-04/user-data", 200, "application/octet-stream", "#cloud-config\nruncmd: [true]\n"),
        ("min", "/latest/user-data", 404, HTML, NF),
        ("min", "/2009-04-04/user-data", 404, HTML, NF),
        // meta-data listings.
        (
            "min",
            "/latest/meta-data/",
            200,
            TEXT,
            "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nevents/\nhostname\nidentity-credentials/\n\
             instance-action\ninstance-id\ninstance-life-cycle\ninstance-type\nlocal-hostname\nprofile\nreservation-id\nsecurity-groups\n\
             services/",
        ),
        (
            "min",
            "/1.0/meta-data",
            200,
            TEXT,
            "ami-id\nami-launch-index\nami-manifest-path\nhostname\ninstance-id\nprofile\nreservation-id\nsecurity-groups",
        ),
        (
            "v6",
            "/latest/meta-data/",
            200,
            TEXT,
            "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nevents/\nhostname\nidentity-credentials/\n\
             instance-action\ninstance-id\ninstance-life-cycle\ninstance-type\nipv6\nlocal-hostname\nmac\nnetwork/\nplacement/\nprofile\n\
             reservation-id\nsecurity-groups\nservices/",
        ),
        // Scalar leaves, with and without a trailing slash.
        ("full", "/latest/meta-data/ami-id", 200, TEXT, "ami-0abcdef1234567890"),
        ("min", "/latest/meta-data/ami-id", 200, TEXT, "ami-2866e0acb78e05952"),
        ("full", "/latest/meta-data/ami-launch-index", 200, TEXT, "2"),
        ("min", "/latest/meta-data/ami-launch-index", 200, TEXT, "0"),
        ("min", "/latest/meta-data/ami-manifest-path", 200, TEXT, "(unknown)"),
        ("min", "/latest/meta-data/ancestor-ami-ids", 404, HTML, NF),
        ("full", "/latest/meta-data/block-device-mapping/", 200, TEXT, "ami\nroot"),
        ("full", "/latest/meta-data/block-device-mapping/ami", 200, TEXT, "/dev/xvda"),
        ("full", "/latest/meta-data/block-device-mapping/root", 200, TEXT, "/dev/xvda"),
        ("full", "/latest/meta-data/events/", 200, TEXT, "maintenance/"),
        ("full", "/latest/meta-data/events/maintenance", 200, TEXT, "history\nscheduled"),
        ("min", "/latest/meta-data/events/maintenance/scheduled", 200, TEXT, "[]"),
        ("min", "/latest/meta-data/events/maintenance/history", 200, TEXT, "[]"),
        ("min", "/latest/meta-data/events/recommendations/rebalance", 404, HTML, NF),
        ("min", "/latest/meta-data/events/recommendations/", 404, HTML, NF),
        ("full", "/latest/meta-data/hostname", 200, TEXT, "web-1.example.internal"),
        ("full", "/latest/meta-data/local-hostname", 200, TEXT, "web-1.example.internal"),
        ("min", "/latest/meta-data/hostname", 200, TEXT, "i-minimal.ec2.internal"),
        ("v6", "/latest/meta-data/local-hostname", 200, TEXT, "i-v6only.ec2.internal"),
        ("full", "/latest/meta-data/iam/", 200, TEXT, "info\nsecurity-credentials/"),
        ("full", "/latest/meta-data/iam/security-credentials/", 200, TEXT, "app-role"),
        ("full", "/latest/meta-data/iam/security-credentials", 200, TEXT, "app-role"),
        // A role with no credentials to serve (none configured here): EC2's error form.
        (
            "full",
            "/latest/meta-data/iam/security-credentials/app-role",
            200,
            TEXT,
            "{\n  \"Code\" : \"AssumeRoleUnauthorizedAccess\",\n  \"Message\" : \"EC2 cannot assume the role app-role.  \
             Please see documentation at http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html.\",\n  \
             \"LastUpdated\" : \"2027-01-15T08:00:00Z\"\n}",
        ),
        ("full", "/latest/meta-data/iam/security-credentials/other-role", 404, HTML, NF),
        ("min", "/latest/meta-data/iam/", 404, HTML, NF),
        ("min", "/latest/meta-data/iam/info", 404, HTML, NF),
        ("min", "/latest/meta-data/iam/security-credentials/", 404, HTML, NF),
        ("min", "/latest/meta-data/identity-credentials/", 200, TEXT, "ec2/"),
        ("min", "/latest/meta-data/identity-credentials/ec2/", 200, TEXT, "info\nsecurity-credentials/"),
        ("min", "/latest/meta-data/identity-credentials/ec2/security-credentials/", 200, TEXT, "ec2-instance"),
        ("min", "/2018-03-28/meta-data/identity-credentials/ec2/info", 404, HTML, NF),
        ("min", "/latest/meta-data/instance-action", 200, TEXT, "none"),
        ("full", "/latest/meta-data/instance-id", 200, TEXT, "i-0123456789abcdef0"),
        ("full", "/latest/meta-data/instance-id/", 200, TEXT, "i-0123456789abcdef0"),
        ("min", "/latest/meta-data/instance-life-cycle", 200, TEXT, "on-demand"),
        ("full", "/latest/meta-data/instance-type", 200, TEXT, "m5.large"),
        ("full", "/latest/meta-data/instance-type/", 200, TEXT, "m5.large"),
        ("min", "/latest/meta-data/instance-type", 200, TEXT, "t3.micro"),
        ("full", "/latest/meta-data/ipv6", 200, TEXT, "2001:db8:1::11"),
        ("v6", "/latest/meta-data/ipv6", 200, TEXT, "2001:db8::66"),
        ("min", "/latest/meta-data/ipv6", 404, HTML, NF),
        ("min", "/latest/meta-data/kernel-id", 404, HTML, NF),
        ("full", "/latest/meta-data/local-ipv4", 200, TEXT, "10.0.0.11"),
        ("v6", "/latest/meta-data/local-ipv4", 404, HTML, NF),
        ("min", "/latest/meta-data/local-ipv4", 404, HTML, NF),
        ("full", "/latest/meta-data/mac", 200, TEXT, "02:00:00:00:00:0b"),
        ("v6", "/latest/meta-data/mac", 200, TEXT, "02:00:00:00:00:66"),
        ("min", "/latest/meta-data/mac", 404, HTML, NF),
        // Placement (botocore strips the last character of `availability-zone/`).
        ("full", "/latest/meta-data/placement/", 200, TEXT, "availability-zone\nregion"),
        ("full", "/latest/meta-data/placement/availability-zone", 200, TEXT, "eu-west-1b"),
        ("full", "/latest/meta-data/placement/availability-zone/", 200, TEXT, "eu-west-1b"),
        ("full", "/latest/meta-data/placement/region", 200, TEXT, "eu-west-1"),
        ("full", "/latest/meta-data/placement/availability-zone-id", 404, HTML, NF),
        ("v6", "/latest/meta-data/placement/region", 200, TEXT, "us-east-1"),
        ("min", "/latest/meta-data/placement/", 404, HTML, NF),
        ("min", "/latest/meta-data/placement/availability-zone", 404, HTML, NF),
        ("min", "/latest/meta-data/product-codes", 404, HTML, NF),
        ("min", "/latest/meta-data/profile", 200, TEXT, "default-hvm"),
        ("full", "/latest/meta-data/public-hostname", 200, TEXT, "ec2-203-0-113-7.eu-west-1.compute.amazonaws.com"),
        ("full", "/latest/meta-data/public-ipv4", 200, TEXT, "203.0.113.7"),
        ("min", "/latest/meta-data/public-hostname", 404, HTML, NF),
        ("v6", "/latest/meta-data/public-ipv4", 404, HTML, NF),
        // Public keys: `N=name`, `N/` → `openssh-key` → the key and a newline.
        ("full", "/latest/meta-data/public-keys/", 200, TEXT, "0=alice@example\n1=deploy\n2=key-2\n3=key-3"),
        ("full", "/latest/meta-data/public-keys", 200, TEXT, "0=alice@example\n1=deploy\n2=key-2\n3=key-3"),
        ("full", "/latest/meta-data/public-keys/0", 200, TEXT, "openssh-key"),
        ("full", "/latest/meta-data/public-keys/0/", 200, TEXT, "openssh-key"),
        ("full", "/latest/meta-data/public-keys/0/openssh-key", 200, TEXT, &ed),
        ("full", "/latest/meta-data/public-keys/1/openssh-key", 200, TEXT, &rsa),
        ("full", "/latest/meta-data/public-keys/2/openssh-key/", 200, TEXT, &rsa),
        ("full", "/latest/meta-data/public-keys/3/openssh-key", 200, TEXT, &slashed),
        ("full", "/latest/meta-data/public-keys/4/", 404, HTML, NF),
        ("full", "/latest/meta-data/public-keys/0=alice@example", 404, HTML, NF),
        ("min", "/latest/meta-data/public-keys/", 404, HTML, NF),
        ("full", "/latest/meta-data/reservation-id", 200, TEXT, "r-c4aae3bc95bcee41c"),
        ("min", "/latest/meta-data/reservation-id", 200, TEXT, "r-e42e41e7decbd63ce"),
        ("min", "/latest/meta-data/security-groups", 200, TEXT, "default"),
        ("min", "/latest/meta-data/services/", 200, TEXT, "domain\npartition"),
        ("min", "/latest/meta-data/services/domain", 200, TEXT, "amazonaws.com"),
        ("min", "/latest/meta-data/services/partition", 200, TEXT, "aws"),
        ("min", "/latest/meta-data/spot/", 404, HTML, NF),
        ("min", "/latest/meta-data/spot/instance-action", 404, HTML, NF),
        ("min", "/latest/meta-data/spot/termination-time", 404, HTML, NF),
        ("min", "/latest/meta-data/autoscaling/target-lifecycle-state", 404, HTML, NF),
        // Tags: on in `full` (keys EC2 refuses are left out), off elsewhere.
        ("full", "/latest/meta-data/tags/", 200, TEXT, "instance/"),
        ("full", "/latest/meta-data/tags/instance", 200, TEXT, "Name\nempty\nenv"),
        ("full", "/latest/meta-data/tags/instance/Name", 200, TEXT, "web-1"),
        ("full", "/latest/meta-data/tags/instance/env/", 200, TEXT, "prod"),
        ("full", "/latest/meta-data/tags/instance/empty", 200, TEXT, ""),
        ("full", "/latest/meta-data/tags/instance/has space", 404, HTML, NF),
        ("full", "/latest/meta-data/tags/instance/nope", 404, HTML, NF),
        ("min", "/latest/meta-data/tags/", 404, HTML, NF),
        ("min", "/latest/meta-data/tags/instance", 404, HTML, NF),
        // Network interfaces.
        ("full", "/latest/meta-data/network/", 200, TEXT, "interfaces/"),
        ("full", "/latest/meta-data/network/interfaces", 200, TEXT, "macs/"),
        ("full", MACS, 200, TEXT, "02:00:00:00:00:0b/\n02:00:00:00:00:0c/"),
        ("v6", "/latest/meta-data/network/interfaces/macs/", 200, TEXT, "02:00:00:00:00:66/"),
        ("min", "/latest/meta-data/network/", 404, HTML, NF),
        (
            "full",
            "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:0b/",
            200,
            TEXT,
            "device-number\ninterface-id\nipv4-associations/\nipv6s\nlocal-hostname\nlocal-ipv4s\nmac\n\
             network-card-index\nowner-id\npublic-hostname\npublic-ipv4s\nsecurity-group-ids\nsecurity-groups\nsubnet-id\n\
             subnet-ipv4-cidr-block\nsubnet-ipv6-cidr-blocks\nvpc-id",
        ),
        (
            "v6",
            "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:66",
            200,
            TEXT,
            "device-number\ninterface-id\nipv6s\nlocal-hostname\nmac\nnetwork-card-index\nowner-id\nsecurity-group-ids\n\
             security-groups\nsubnet-id\nvpc-id",
        ),
    ];
    run(&fixtures, cases);

    let nic = |mac: &str, leaf: &str| format!("{MACS}/{mac}/{leaf}");
    let (b, c, s) = ("02:00:00:00:00:0b", "02:00:00:00:00:0c", "02:00:00:00:00:66");
    let per_nic: &[(&str, String, &str)] = &[
        ("full", nic(b, "device-number"), "0"),
        ("full", nic(c, "device-number"), "1"),
        ("full", nic(b, "interface-id"), "eni-91266f2438a35d6b9"),
        ("full", nic(c, "interface-id"), "eni-f0bf031be2113bbaf"),
        ("full", nic(b, "ipv4-associations/"), "203.0.113.7"),
        ("full", nic(b, "ipv4-associations/203.0.113.7"), "10.0.0.11"),
        ("full", nic(b, "ipv6s"), "2001:db8:1::11"),
        ("full", nic(b, "local-hostname"), "web-1.example.internal"),
        ("full", nic(c, "local-hostname"), "ip-10-0-1-5.eu-west-1.compute.internal"),
        ("full", nic(b, "local-ipv4s"), "10.0.0.11\n10.0.0.12"),
        ("full", nic(c, "local-ipv4s"), "10.0.1.5"),
        ("full", nic(c, "mac"), c),
        ("full", nic(b, "network-card-index"), "0"),
        ("full", nic(b, "owner-id"), "123456789012"),
        ("full", nic(b, "public-hostname"), "ec2-203-0-113-7.eu-west-1.compute.amazonaws.com"),
        ("full", nic(b, "public-ipv4s"), "203.0.113.7"),
        ("full", nic(b, "security-group-ids"), "sg-65be5f37f714005b6"),
        ("full", nic(c, "security-groups"), "default"),
        ("full", nic(b, "subnet-id"), "subnet-6cdb41a5b59039606"),
        ("full", nic(c, "subnet-id"), "subnet-ebec71c70dae6164e"),
        ("full", nic(b, "subnet-ipv4-cidr-block"), "10.0.0.0/24"),
        ("full", nic(c, "subnet-ipv4-cidr-block/"), "10.0.0.0/20"),
        ("full", nic(b, "subnet-ipv6-cidr-blocks"), "2001:db8:1::/64"),
        ("full", nic(b, "vpc-id"), "vpc-68bc87aa556cfe266"),
        ("full", nic(c, "vpc-id"), "vpc-68bc87aa556cfe266"),
        ("v6", nic(s, "ipv6s"), "2001:db8::66"),
        ("v6", nic(s, "local-hostname"), "i-v6only.ec2.internal"),
        ("v6", nic(s, "owner-id"), "641168691908"),
    ];
    let rows: Vec<Case<'_>> = per_nic.iter().map(|(f, path, body)| (*f, path.as_str(), 200, TEXT, *body)).collect();
    run(&fixtures, &rows);
    let absent: Vec<String> = vec![
        nic(c, "ipv6s"),
        nic(c, "public-ipv4s"),
        nic(c, "public-hostname"),
        nic(c, "ipv4-associations/"),
        nic(c, "subnet-ipv6-cidr-blocks"),
        nic(s, "local-ipv4s"),
        nic(s, "subnet-ipv4-cidr-block"),
        nic("02:00:00:00:00:99", ""),
    ];
    let rows: Vec<Case<'_>> = absent.iter().map(|path| ("full", path.as_str(), 404, HTML, NF)).collect();
    run(&fixtures, &rows);
}

#[test]
fn versions_filter_the_tree() {
    let full = fixtures::full();
    let cases: &[Case<'_>] = &[
        ("full", "/2018-09-24/meta-data/tags/", 404, HTML, NF),
        ("full", "/2018-09-24/meta-data/tags/instance/Name", 404, HTML, NF),
        ("full", "/2021-03-23/meta-data/tags/instance/Name", 200, TEXT, "web-1"),
        ("full", "/2018-09-24/meta-data/instance-life-cycle", 404, HTML, NF),
        ("full", "/2019-10-01/meta-data/instance-life-cycle", 200, TEXT, "on-demand"),
        ("full", "/2021-03-23/meta-data/instance-life-cycle", 200, TEXT, "on-demand"),
        ("full", "/2018-09-24/meta-data/placement/", 200, TEXT, "availability-zone"),
        ("full", "/2018-09-24/meta-data/placement/region", 404, HTML, NF),
        ("full", "/2021-03-23/meta-data/placement/", 200, TEXT, "availability-zone\nregion"),
        ("full", "/2009-04-04/meta-data/services/", 404, HTML, NF),
        ("full", "/2009-04-04/meta-data/services/domain", 404, HTML, NF),
        ("full", "/2014-02-25/meta-data/services/", 200, TEXT, "domain"),
        ("full", "/2015-10-20/meta-data/services/", 200, TEXT, "domain\npartition"),
        ("full", "/2020-10-27/meta-data/ipv6", 404, HTML, NF),
        ("full", "/2021-01-03/meta-data/ipv6", 200, TEXT, "2001:db8:1::11"),
        ("full", "/2011-05-01/meta-data/iam/", 404, HTML, NF),
        ("full", "/2012-01-12/meta-data/iam/", 200, TEXT, "info\nsecurity-credentials/"),
        ("full", "/2009-04-04/meta-data/network/", 404, HTML, NF),
        ("full", "/2011-01-01/meta-data/network/interfaces/macs/02:00:00:00:00:0b/ipv6s", 404, HTML, NF),
        ("full", "/2016-06-30/meta-data/network/interfaces/macs/02:00:00:00:00:0b/ipv6s", 200, TEXT, "2001:db8:1::11"),
        ("full", "/2018-08-17/meta-data/events/maintenance/scheduled", 200, TEXT, "[]"),
        ("full", "/2018-03-28/meta-data/events/", 404, HTML, NF),
        ("full", "/2008-09-01/dynamic/", 404, HTML, NF),
        ("full", "/2009-04-04/dynamic/instance-identity/", 200, TEXT, "document"),
        ("full", "/1.0/meta-data/local-hostname", 404, HTML, NF),
        ("full", "/2007-01-19/meta-data/local-hostname", 200, TEXT, "web-1.example.internal"),
        ("full", "/1.0/meta-data/public-keys/0/openssh-key", 200, TEXT, &format!("{ED}\n")),
        (
            "full",
            "/2009-04-04/meta-data/",
            200,
            TEXT,
            "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nhostname\ninstance-action\ninstance-id\n\
             instance-type\nlocal-hostname\nlocal-ipv4\nplacement/\nprofile\npublic-hostname\npublic-ipv4\npublic-keys/\n\
             reservation-id\nsecurity-groups",
        ),
    ];
    run(&[("full", &full)], cases);
}

#[test]
fn dynamic_tree() {
    let full = fixtures::full();
    let cases: &[Case<'_>] = &[
        ("full", "/latest/dynamic", 200, TEXT, "fws/\ninstance-identity/"),
        ("full", "/latest/dynamic/", 200, TEXT, "fws/\ninstance-identity/"),
        ("full", "/latest/dynamic/fws/", 200, TEXT, "instance-monitoring"),
        ("full", "/latest/dynamic/fws/instance-monitoring", 200, TEXT, "disabled"),
        ("full", "/latest/dynamic/instance-identity", 200, TEXT, "document"),
        ("full", "/latest/dynamic/instance-identity/signature", 404, HTML, NF),
        ("full", "/latest/dynamic/instance-identity/pkcs7", 404, HTML, NF),
        ("full", "/latest/dynamic/instance-identity/rsa2048", 404, HTML, NF),
    ];
    run(&[("full", &full)], cases);
    let slash = get(&full, "/latest/dynamic/instance-identity/document/");
    assert_eq!(slash, get(&full, "/latest/dynamic/instance-identity/document"));
}

#[test]
fn placement_and_partition_are_derived_from_zone_or_region() {
    let region_only = fixtures::parse(json!({"id": "i-r", "region": "ap-south-1"}));
    let zone_only = fixtures::parse(json!({"id": "i-z", "zone": "eu-central-1c"}));
    let china = fixtures::parse(json!({"id": "i-cn", "region": "cn-north-1", "ipv4": ["10.9.8.7"]}));
    let east = fixtures::parse(json!({"id": "i-e", "region": "us-east-1", "ipv4": ["10.9.8.7"]}));
    let fixtures = [("region", &region_only), ("zone", &zone_only), ("china", &china), ("east", &east)];
    let cases: &[Case<'_>] = &[
        ("region", "/latest/meta-data/placement/availability-zone", 200, TEXT, "ap-south-1a"),
        ("region", "/latest/meta-data/placement/region", 200, TEXT, "ap-south-1"),
        ("zone", "/latest/meta-data/placement/availability-zone", 200, TEXT, "eu-central-1c"),
        ("zone", "/latest/meta-data/placement/region", 200, TEXT, "eu-central-1"),
        ("zone", "/latest/meta-data/hostname", 200, TEXT, "i-z.eu-central-1.compute.internal"),
        ("china", "/latest/meta-data/services/domain", 200, TEXT, "amazonaws.com.cn"),
        ("china", "/latest/meta-data/services/partition", 200, TEXT, "aws-cn"),
        ("china", "/latest/meta-data/hostname", 200, TEXT, "ip-10-9-8-7.cn-north-1.compute.internal"),
        ("east", "/latest/meta-data/hostname", 200, TEXT, "ip-10-9-8-7.ec2.internal"),
    ];
    run(&fixtures, cases);
}

#[test]
fn derived_interface_follows_rule_r2() {
    let derived = fixtures::parse(json!({
        "id": "i-r2", "mac": ["02:00:00:00:00:01", "02:00:00:00:00:02"], "ipv4": ["10.1.2.3", "10.1.2.4"],
        "ipv6": ["2001:db8::1"]
    }));
    let cases: &[Case<'_>] = &[
        ("r2", MACS, 200, TEXT, "02:00:00:00:00:01/"),
        ("r2", &format!("{MACS}/02:00:00:00:00:01/local-ipv4s"), 200, TEXT, "10.1.2.3"),
        ("r2", &format!("{MACS}/02:00:00:00:00:01/ipv6s"), 200, TEXT, "2001:db8::1"),
        ("r2", &format!("{MACS}/02:00:00:00:00:01/subnet-ipv4-cidr-block"), 404, HTML, NF),
        ("r2", "/latest/meta-data/local-ipv4", 200, TEXT, "10.1.2.3"),
        ("r2", "/latest/meta-data/mac", 200, TEXT, "02:00:00:00:00:01"),
    ];
    run(&[("r2", &derived)], cases);
}

#[test]
fn tags_are_served_only_when_switched_on() {
    let mut doc = fixtures::full_doc();
    doc["imds"] = json!({"tags": "off"});
    let off = fixtures::parse(doc);
    assert!(!body(&get(&off, "/latest/meta-data/")).contains("tags"));
    run(&[("off", &off)], &[("off", "/latest/meta-data/tags/instance/Name", 404, HTML, NF)]);
    let mut doc = json!({"id": "i-notags", "imds": {"tags": "on"}});
    let on_but_empty = fixtures::parse(doc.take());
    run(&[("empty", &on_but_empty)], &[("empty", "/latest/meta-data/tags/", 404, HTML, NF)]);
}

#[test]
fn overrides_replace_create_and_remove_leaves() {
    let mut doc = fixtures::full_doc();
    doc["dialects"] = json!({"ec2": {
        "instance-life-cycle": "spot",
        "instance-type": "c7g.large",
        "placement/availability-zone-id": "euw1-az2",
        "spot/instance-action": "{\"action\": \"terminate\", \"time\": \"2026-08-01T00:02:00Z\"}",
        "public-keys": null,
        "services/partition": null,
        "ami-id/below-a-leaf": "ignored",
        "bad//key": "ignored",
        "/leading": "ignored",
        "instance-id": 5
    }});
    let custom = fixtures::parse(doc);
    let cases: &[Case<'_>] = &[
        ("o", "/latest/meta-data/instance-life-cycle", 200, TEXT, "spot"),
        ("o", "/latest/meta-data/instance-type/", 200, TEXT, "c7g.large"),
        ("o", "/latest/meta-data/placement/", 200, TEXT, "availability-zone\navailability-zone-id\nregion"),
        ("o", "/latest/meta-data/placement/availability-zone-id", 200, TEXT, "euw1-az2"),
        ("o", "/2018-09-24/meta-data/placement/", 200, TEXT, "availability-zone"),
        ("o", "/latest/meta-data/spot/", 200, TEXT, "instance-action"),
        (
            "o",
            "/latest/meta-data/spot/instance-action",
            200,
            TEXT,
            "{\"action\": \"terminate\", \"time\": \"2026-08-01T00:02:00Z\"}",
        ),
        ("o", "/latest/meta-data/public-keys/", 404, HTML, NF),
        ("o", "/latest/meta-data/public-keys/0/openssh-key", 404, HTML, NF),
        ("o", "/latest/meta-data/services/", 200, TEXT, "domain"),
        ("o", "/latest/meta-data/ami-id", 200, TEXT, "ami-0abcdef1234567890"),
        ("o", "/latest/meta-data/instance-id", 200, TEXT, "i-0123456789abcdef0"),
        ("o", "/latest/meta-data/bad", 404, HTML, NF),
        ("o", "/latest/meta-data/leading", 404, HTML, NF),
    ];
    run(&[("o", &custom)], cases);
    let listing = body(&get(&custom, "/latest/meta-data/")).to_owned();
    assert!(listing.contains("\nspot/\n") && !listing.contains("public-keys"), "{listing}");
    let document = get(&custom, "/latest/dynamic/instance-identity/document");
    assert!(body(&document).contains("\"instanceType\" : \"c7g.large\""), "the document follows overrides");
}

#[test]
fn head_answers_like_get_and_other_methods_get_405() {
    let full = fixtures::full();
    for path in ["/", "/latest/meta-data/", "/latest/meta-data/instance-id", "/latest/user-data", "/latest/nope"] {
        assert_eq!(send(&full, Method::HEAD, path), get(&full, path), "HEAD {path}");
    }
    for (method, path) in [
        (Method::POST, "/latest/meta-data/"),
        (Method::PUT, "/latest/meta-data/instance-id"),
        (Method::DELETE, "/latest/meta-data/instance-id"),
        (Method::OPTIONS, "/"),
    ] {
        let response = send(&full, method.clone(), path);
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            response.headers.iter().any(|(name, value)| name == header::ALLOW && value == "GET, HEAD"),
            "{method} {path}"
        );
    }
}

#[test]
fn not_found_page_is_the_339_bytes_ec2_sends() {
    assert_eq!(NOT_FOUND_PAGE.len(), 339);
    let response = get(&fixtures::minimal(), "/latest/meta-data/nope");
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(content_type(&response), HTML);
    assert_eq!(response.body.as_ref(), NOT_FOUND_PAGE.as_bytes());
}
