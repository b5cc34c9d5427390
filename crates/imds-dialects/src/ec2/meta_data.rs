//! `meta-data/`: every category EC2 serves, derived from the instance record, each tagged with
//! the API version that introduced it (AWS's "version when category was released"). The list
//! below is the table: order is EC2's (alphabetical) listing order. No I/O.

use imds_model::{Instance, SshKey};

use super::tree::Entry;
use super::{credentials, derived, network, wire};

/// The `meta-data` entry of a version directory, before overrides.
pub(crate) fn meta_data(instance: &Instance) -> Entry {
    let id = instance.id.as_str();
    let some = |value: &str| Some(value.to_owned());
    let (region, zone) = derived::placement(instance);
    let (domain, partition) = derived::partition(instance);
    let primary = instance.primary_interface();
    let public_ipv4 = primary.and_then(|iface| iface.public_ipv4);
    let ipv6 = primary.and_then(|iface| iface.ipv6.first()).map(|cidr| cidr.address).or(instance.ipv6.first().copied());
    let children = vec![
        Entry::text("ami-id", "1.0", Some(ami_id(instance))),
        Entry::text("ami-launch-index", "1.0", Some(instance.launch_index.unwrap_or(0).to_string())),
        Entry::text("ami-manifest-path", "1.0", some(wire::AMI_MANIFEST_PATH)),
        Entry::text("ancestor-ami-ids", "2007-10-10", None),
        Entry::dir("autoscaling", "2021-07-15", vec![Entry::text("target-lifecycle-state", "2021-07-15", None)]),
        Entry::dir(
            "block-device-mapping",
            "2007-12-15",
            vec![
                Entry::text("ami", "2007-12-15", some(wire::ROOT_DEVICE)),
                Entry::text("root", "2007-12-15", some(wire::ROOT_DEVICE)),
            ],
        ),
        Entry::dir(
            "events",
            "2018-08-17",
            vec![
                Entry::dir(
                    "maintenance",
                    "2018-08-17",
                    vec![
                        Entry::text("history", "2018-08-17", some(wire::NO_EVENTS)),
                        Entry::text("scheduled", "2018-08-17", some(wire::NO_EVENTS)),
                    ],
                ),
                Entry::dir("recommendations", "2020-10-27", vec![Entry::text("rebalance", "2020-10-27", None)]),
            ],
        ),
        Entry::text("hostname", "1.0", Some(derived::private_dns_name(instance))),
        credentials::iam(instance),
        credentials::identity_credentials(),
        Entry::text("instance-action", "2008-09-01", some(wire::INSTANCE_ACTION)),
        Entry::text("instance-id", "1.0", some(id)),
        Entry::text("instance-life-cycle", "2019-10-01", some(wire::LIFE_CYCLE)),
        Entry::text("instance-type", "2007-08-29", Some(instance_type(instance).to_owned())),
        Entry::text("ipv6", "2021-01-03", ipv6.map(|ip| ip.to_string())),
        Entry::text("kernel-id", "2008-02-01", None),
        Entry::text("local-hostname", "2007-01-19", Some(derived::private_dns_name(instance))),
        Entry::text("local-ipv4", "1.0", instance.primary_ipv4().map(|ip| ip.to_string())),
        Entry::text("mac", "2011-01-01", instance.primary_mac().map(|mac| mac.to_string())),
        network::network_dir(instance),
        Entry::dir(
            "placement",
            "2008-02-01",
            vec![
                Entry::text("availability-zone", "2008-02-01", zone),
                Entry::text("availability-zone-id", "2019-10-01", None),
                Entry::text("region", "2020-08-24", region),
            ],
        ),
        Entry::text("product-codes", "2007-03-01", None),
        Entry::text("profile", "1.0", some(wire::PROFILE)),
        Entry::text("public-hostname", "2007-01-19", public_ipv4.map(|ip| derived::public_dns_name(instance, ip))),
        Entry::text("public-ipv4", "2007-01-19", public_ipv4.map(|ip| ip.to_string())),
        Entry::dir("public-keys", "1.0", public_keys(&instance.ssh_keys)),
        Entry::text("ramdisk-id", "2007-10-10", None),
        Entry::text("reservation-id", "1.0", Some(derived::hex_id("r-", &["reservation", id], 17))),
        Entry::text("security-groups", "1.0", some(wire::SECURITY_GROUP)),
        Entry::dir(
            "services",
            "2014-02-25",
            vec![
                Entry::text("domain", "2014-02-25", some(domain)),
                Entry::text("partition", "2015-10-20", some(partition)),
            ],
        ),
        Entry::dir(
            "spot",
            "2014-11-05",
            vec![
                Entry::text("instance-action", "2016-11-15", None),
                Entry::text("termination-time", "2014-11-05", None),
            ],
        ),
        Entry::dir("tags", "2021-03-23", vec![Entry::dir("instance", "2021-03-23", tags(instance))]),
    ];
    Entry::dir("meta-data", "1.0", children).labelled("meta-data")
}

/// `ami-id`: `image_id`, else `ami-` + 17 hex digits derived from the instance id.
fn ami_id(instance: &Instance) -> String {
    instance.image_id.clone().unwrap_or_else(|| derived::hex_id("ami-", &["ami", instance.id.as_str()], 17))
}

/// `instance-type`: the record's, else [`wire::DEFAULT_INSTANCE_TYPE`] (`t3.micro`, the type
/// AWS's documentation uses in its examples).
pub(crate) fn instance_type(instance: &Instance) -> &str {
    instance.instance_type.as_deref().unwrap_or(wire::DEFAULT_INSTANCE_TYPE)
}

/// `public-keys/`: `N=name` lines, `N/` → `openssh-key` → the key line plus `\n`.
fn public_keys(keys: &[SshKey]) -> Vec<Entry> {
    keys.iter()
        .enumerate()
        .map(|(index, key)| {
            let line = format!("{}\n", key.key);
            Entry::dir(&index.to_string(), "1.0", vec![Entry::text("openssh-key", "1.0", Some(line))])
                .labelled(format!("{index}={}", key_name(index, key)))
        })
        .collect()
}

pub(crate) use crate::derive::key_name;

/// `tags/instance/<key>` when tags-in-metadata is on. Keys EC2 would refuse to expose (it only
/// allows `[A-Za-z0-9+=.,_:@-]`, not `.`, `..` or `_index`) are left out, so every listed key
/// can be requested verbatim.
fn tags(instance: &Instance) -> Vec<Entry> {
    if !instance.imds.tags_served(false) {
        return Vec::new();
    }
    instance
        .tags
        .iter()
        .filter(|(key, _)| exposable_tag_key(key))
        .map(|(key, value)| Entry::text(key, "2021-03-23", Some(value.clone())))
        .collect()
}

/// Records are refused such keys when tags are on; a record stored before that rule still
/// lists only what EC2 could.
fn exposable_tag_key(key: &str) -> bool {
    imds_model::ec2_metadata_tag_key(key).is_ok()
}
