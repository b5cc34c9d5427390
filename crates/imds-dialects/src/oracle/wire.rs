//! Oracle Cloud Infrastructure's wire strings.

/// The prefix of every OCI path.
pub const PREFIX: &str = "/opc";
/// The header v2 requires, and its only value.
pub const AUTHORIZATION: &str = "Bearer Oracle";
/// Headers OCI refuses requests for (a proxy on the instance must not relay them).
pub const FORWARDING_HEADERS: &[&str] = &["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"];
/// JSON answers and errors.
pub const JSON: &str = "application/json";
/// Text leaves.
pub const TEXT_PLAIN: &str = "text/plain";
/// The fault domain of every instance (OCI names three per availability domain).
pub const FAULT_DOMAIN: &str = "FAULT-DOMAIN-1";
/// The lifecycle state of a served instance.
pub const RUNNING: &str = "Running";
/// The chassis asset tag of OCI's VMs and bare-metal machines (what cloud-init checks).
pub const CHASSIS_ASSET_TAG: &str = "OracleCloud.com";
