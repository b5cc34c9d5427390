//! EC2's JSON leaves: the instance identity document (`dynamic/instance-identity/document`) and
//! `iam/info`, in AWS's pretty style (2-space indent, `" : "` separators, no trailing newline).
//! Pure rendering; no I/O, no clock (times come from the record and the credentials).

use serde_json::Value;

use imds_model::Instance;

use super::tree::{Entry, NEWEST};
use super::{derived, wire};

/// Renders a flat JSON object the way EC2 does: one `"key" : value` per line, 2-space indent.
pub(crate) fn render_flat(fields: &[(&str, Value)]) -> String {
    let lines: Vec<String> = fields.iter().map(|(key, value)| format!("  {} : {value}", Value::from(*key))).collect();
    format!("{{\n{}\n}}", lines.join(",\n"))
}

/// A string value, or JSON `null` when absent.
fn text_or_null(value: Option<&str>) -> Value {
    value.map_or(Value::Null, Value::from)
}

/// The identity document, read from the resolved `meta-data` tree (overrides applied) so it
/// always agrees with what `meta-data/` serves. Keys in AWS's order; all 15 present.
pub(crate) fn document(instance: &Instance, meta_data: &Entry) -> String {
    let leaf = |path: &str| text_or_null(meta_data.text_at(path, NEWEST));
    render_flat(&[
        ("accountId", Value::from(derived::account_id(instance))),
        ("architecture", Value::from(wire::ARCHITECTURE)),
        ("availabilityZone", leaf("placement/availability-zone")),
        ("billingProducts", Value::Null),
        ("devpayProductCodes", Value::Null),
        ("marketplaceProductCodes", Value::Null),
        ("imageId", leaf("ami-id")),
        ("instanceId", leaf("instance-id")),
        ("instanceType", leaf("instance-type")),
        ("kernelId", Value::Null),
        ("pendingTime", Value::from(derived::created(instance))),
        ("privateIp", leaf("local-ipv4")),
        ("ramdiskId", Value::Null),
        ("region", leaf("placement/region")),
        ("version", Value::from(wire::IDENTITY_VERSION)),
    ])
}

/// `iam/info` for `role`: the instance profile is named after the role (the record has no
/// separate profile name); its id is `AIPA` + 17 characters derived from account and role.
/// `last_updated`: when the role's credentials were last updated (EC2 moves it with them).
pub(crate) fn iam_info(instance: &Instance, role: &str, last_updated: &str) -> String {
    let account = derived::account_id(instance);
    let (_, partition) = derived::partition(instance);
    let profile_id = derived::hex_id("", &["instance-profile", &account, role], 17).to_ascii_uppercase();
    render_flat(&[
        ("Code", Value::from("Success")),
        ("LastUpdated", Value::from(last_updated)),
        ("InstanceProfileArn", Value::from(format!("arn:{partition}:iam::{account}:instance-profile/{role}"))),
        ("InstanceProfileId", Value::from(format!("AIPA{profile_id}"))),
    ])
}
