//! Values EC2 has but the canonical record does not: deterministic ids (`ami-…`, `r-…`,
//! `eni-…`, a 12-digit account), placement and timestamps. Pure functions of the record; no I/O,
//! no clock, no randomness — the same record always renders the same bytes.

use imds_model::Instance;

use super::wire;

pub(crate) use crate::ids::fnv1a;

/// `prefix` + `len` lower-case hex digits derived from `parts`, e.g. `ami-0a1b…` (17 digits).
pub(crate) fn hex_id(prefix: &str, parts: &[&str], len: usize) -> String {
    let mut hex = String::with_capacity(len + 16);
    let mut round = 0u32;
    while hex.len() < len {
        let counter = round.to_string();
        let mut salted = parts.to_vec();
        salted.push(&counter);
        hex.push_str(&format!("{:016x}", fnv1a(&salted)));
        round += 1;
    }
    hex.truncate(len);
    format!("{prefix}{hex}")
}

/// The owning AWS account: `account.id`, else a 12-digit number derived from the instance id.
pub(crate) fn account_id(instance: &Instance) -> String {
    match instance.account.as_ref().and_then(|account| account.id.as_deref()) {
        Some(id) => id.to_owned(),
        None => format!("{:012}", fnv1a(&["account", instance.id.as_str()]) % 1_000_000_000_000),
    }
}

/// `(region, availability zone)`: each from the record, the region derived from the zone by
/// dropping its trailing letter (`us-east-1a` → `us-east-1`), the zone from the region by
/// appending `a`. Both `None` when the record has neither.
pub(crate) fn placement(instance: &Instance) -> (Option<String>, Option<String>) {
    let zone = instance.zone.clone().or_else(|| instance.region.as_ref().map(|region| format!("{region}a")));
    let region = instance.region.clone().or_else(|| {
        let zone = instance.zone.as_deref()?;
        let region = zone.strip_suffix(|c: char| c.is_ascii_lowercase())?;
        (!region.is_empty()).then(|| region.to_owned())
    });
    (region, zone)
}

/// `created_at` at second precision (`2026-08-01T00:00:00Z`), else the Unix epoch.
pub(crate) fn created(instance: &Instance) -> String {
    // The model guarantees `YYYY-MM-DDTHH:MM:SS[.fraction]Z`: the first 19 bytes are the seconds.
    match instance.created_at.as_deref().and_then(|at| at.get(..19)) {
        Some(seconds) => format!("{seconds}Z"),
        None => wire::EPOCH.to_owned(),
    }
}

/// The instance's private DNS name: its hostname (with its domain when it has one), else EC2's
/// IP-based form `ip-10-0-0-1.<region>.compute.internal` (`ec2.internal` in us-east-1), else
/// (no IPv4) EC2's resource-based form `<instance-id>.<region>.compute.internal`.
pub(crate) fn private_dns_name(instance: &Instance) -> String {
    if let Some(host) = &instance.hostname {
        return match &instance.domain {
            Some(domain) if !host.contains('.') => format!("{host}.{domain}"),
            _ => host.clone(),
        };
    }
    match instance.primary_ipv4() {
        Some(ip) => ip_dns_name(instance, ip),
        None => internal_name(instance, instance.id.as_str()),
    }
}

/// EC2's IP-based private name for `ip`: `ip-10-0-0-1.<region>.compute.internal`.
pub(crate) fn ip_dns_name(instance: &Instance, ip: std::net::Ipv4Addr) -> String {
    internal_name(instance, &format!("ip-{}", ip.to_string().replace('.', "-")))
}

fn internal_name(instance: &Instance, host: &str) -> String {
    match placement(instance).0.as_deref() {
        None | Some(wire::US_EAST_1) => format!("{host}.ec2.internal"),
        Some(region) => format!("{host}.{region}.compute.internal"),
    }
}

/// EC2's public DNS name for `ip`: `ec2-203-0-113-7.compute-1.amazonaws.com` in us-east-1,
/// `ec2-203-0-113-7.<region>.compute.amazonaws.com` elsewhere.
pub(crate) fn public_dns_name(instance: &Instance, ip: std::net::Ipv4Addr) -> String {
    let host = format!("ec2-{}", ip.to_string().replace('.', "-"));
    match placement(instance).0.as_deref() {
        None | Some(wire::US_EAST_1) => format!("{host}.compute-1.amazonaws.com"),
        Some(region) => format!("{host}.{region}.compute.amazonaws.com"),
    }
}

/// `(services/domain, services/partition)` for the instance's region.
pub(crate) fn partition(instance: &Instance) -> (&'static str, &'static str) {
    match placement(instance).0 {
        Some(region) if region.starts_with("cn-") => wire::CHINA_PARTITION,
        _ => wire::AWS_PARTITION,
    }
}
