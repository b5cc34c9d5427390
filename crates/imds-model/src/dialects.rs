//! [`Dialect`]: the dialects imds serves, by name and by path ([`Dialect::for_path`], with the
//! deployment's [`DialectSettings`]); [`Dialects`]: which of them an instance answers and its
//! per-dialect override blocks.
//!
//! In JSON: `{"enabled": ["ec2", "gce"], "gce": {...}, "azure": {...}}`. Every key other than
//! `enabled` names a dialect and holds an object stored verbatim; `imds-dialects` interprets it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Deployment-wide dialect settings (from the server's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialectSettings {
    /// Where NoCloud is served, with leading and trailing `/` (default `/nocloud/`).
    pub nocloud_prefix: Cow<'static, str>,
}

impl DialectSettings {
    /// The defaults.
    pub const DEFAULT: DialectSettings = DialectSettings { nocloud_prefix: Cow::Borrowed("/nocloud/") };
}

impl Default for DialectSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The dialects imds serves: the names `dialects.enabled` and override blocks use, and the
/// dialect a guest path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// AWS EC2 IMDS: `/`, `/latest/…`, dated versions; also every path no other dialect claims.
    Ec2,
    /// Firecracker MMDS: every path, for an instance whose MMDS is configured.
    Mmds,
    /// GCE: `/computeMetadata/…`.
    Gce,
    /// Azure: `/metadata/{instance,identity,attested,scheduledevents,versions,…}`.
    Azure,
    /// OpenStack: `/openstack…`.
    OpenStack,
    /// DigitalOcean: `/metadata/v1`, `/metadata/v1.json`, `/metadata/v1/…`.
    DigitalOcean,
    /// NoCloud over HTTP: under [`DialectSettings::nocloud_prefix`].
    NoCloud,
    /// Hetzner: `/hetzner/v1/…`.
    Hetzner,
    /// Alibaba Cloud ECS: only on a listener bound to it (`100.100.100.200`).
    Alibaba,
    /// Tencent Cloud CVM: only on a listener bound to it (`169.254.0.23`).
    Tencent,
    /// Linode (Akamai): `/v1`, `/v1/…` (`/v1/token`, `/v1/instance`, …).
    Linode,
    /// Vultr: `/v1.json`; also `/latest/…`, which EC2 claims first.
    Vultr,
    /// Scaleway: never by path; only on a listener address bound to it (169.254.42.42).
    Scaleway,
    /// UpCloud: `/metadata/v1.json`, which DigitalOcean claims first.
    UpCloud,
    /// Exoscale (CloudStack): EC2's paths, which EC2 claims first; its password server on a
    /// listener address bound to it (port 8080).
    Exoscale,
}

/// Azure's top-level categories under `/metadata/`.
const AZURE_CATEGORIES: &[&str] =
    &["instance", "identity", "attested", "scheduledevents", "versions", "loadbalancer", "reprovisiondata"];

impl Dialect {
    /// The name used in `dialects.enabled` and override blocks.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Ec2 => "ec2",
            Dialect::Mmds => "mmds",
            Dialect::Gce => "gce",
            Dialect::Azure => "azure",
            Dialect::OpenStack => "openstack",
            Dialect::DigitalOcean => "digitalocean",
            Dialect::NoCloud => "nocloud",
            Dialect::Hetzner => "hetzner",
            Dialect::Alibaba => "alibaba",
            Dialect::Tencent => "tencent",
            Dialect::Linode => "linode",
            Dialect::Vultr => "vultr",
            Dialect::Scaleway => "scaleway",
            Dialect::UpCloud => "upcloud",
            Dialect::Exoscale => "exoscale",
        }
    }

    /// Every dialect, in declaration order.
    pub const ALL: [Dialect; 15] = [
        Dialect::Ec2,
        Dialect::Mmds,
        Dialect::Gce,
        Dialect::Azure,
        Dialect::OpenStack,
        Dialect::DigitalOcean,
        Dialect::NoCloud,
        Dialect::Hetzner,
        Dialect::Alibaba,
        Dialect::Tencent,
        Dialect::Linode,
        Dialect::Vultr,
        Dialect::Scaleway,
        Dialect::UpCloud,
        Dialect::Exoscale,
    ];

    /// The dialect called `name` (as in `dialects.enabled`), if imds serves it.
    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Every dialect's name, comma-separated (for error messages).
    pub fn names() -> String {
        Dialect::ALL.map(Dialect::name).join(", ")
    }

    /// The dialect a path belongs to when the instance enables every dialect: the first of
    /// [`Dialect::claimants`] (docs/dialects.md, "Routing"). MMDS is not chosen by path;
    /// dialects served at an address of their own (Alibaba, Tencent, Scaleway) only on a
    /// listener bound to them.
    pub fn for_path(path: &str, settings: &DialectSettings) -> Dialect {
        Dialect::claimants(path, settings)[0]
    }

    /// Every dialect that serves `path`, the default first (docs/dialects.md, "Routing"); never
    /// empty. Where several clouds use the same path (EC2's `/latest/…` is also Vultr's and
    /// Exoscale's, DigitalOcean's `/metadata/v1.json` also UpCloud's), the instance's
    /// `dialects.enabled` picks one of them ([`Dialects::for_path`]).
    pub fn claimants(path: &str, settings: &DialectSettings) -> &'static [Dialect] {
        const EC2: &[Dialect] = &[Dialect::Ec2, Dialect::Exoscale];
        let nocloud = settings.nocloud_prefix.trim_end_matches('/');
        if path.starts_with("/computeMetadata/") || path == "/computeMetadata" {
            &[Dialect::Gce]
        } else if path == "/metadata/v1.json" {
            &[Dialect::DigitalOcean, Dialect::UpCloud]
        } else if path == "/metadata/v1" || path.starts_with("/metadata/v1/") {
            &[Dialect::DigitalOcean]
        } else if let Some(rest) = path.strip_prefix("/metadata/") {
            let category = rest.split('/').next().unwrap_or("");
            if AZURE_CATEGORIES.contains(&category) {
                &[Dialect::Azure]
            } else {
                EC2
            }
        } else if path == "/openstack" || path.starts_with("/openstack/") {
            &[Dialect::OpenStack]
        } else if path == "/hetzner" || path.starts_with("/hetzner/") {
            &[Dialect::Hetzner]
        } else if path == "/v1.json" {
            &[Dialect::Vultr]
        } else if path == "/v1" || path.starts_with("/v1/") {
            &[Dialect::Linode]
        } else if path == "/latest" || path.starts_with("/latest/") {
            &[Dialect::Ec2, Dialect::Vultr, Dialect::Exoscale]
        } else if !nocloud.is_empty() && (path == nocloud || path.starts_with(&settings.nocloud_prefix[..])) {
            &[Dialect::NoCloud]
        } else {
            EC2
        }
    }
}

/// Per-instance dialect selection and overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialects {
    /// Dialects this instance answers; `None` means all of them.
    pub enabled: Option<Vec<Dialect>>,
    /// Override blocks keyed by dialect name, each a JSON object kept verbatim.
    pub overrides: BTreeMap<String, Value>,
}

impl Dialects {
    /// Whether nothing is set (the record then omits `dialects`).
    pub fn is_empty(&self) -> bool {
        self.enabled.is_none() && self.overrides.is_empty()
    }

    /// Whether `dialect` is enabled for this instance.
    pub fn is_enabled(&self, dialect: Dialect) -> bool {
        self.enabled.as_ref().is_none_or(|list| list.contains(&dialect))
    }

    /// The dialect that answers `path` for this instance: of the dialects that serve it
    /// ([`Dialect::claimants`]), the first in `enabled`'s order, or the default when the
    /// instance enables every dialect or none of them (the router then answers as if the path
    /// did not exist).
    pub fn for_path(&self, path: &str, settings: &DialectSettings) -> Dialect {
        let claimants = Dialect::claimants(path, settings);
        match &self.enabled {
            Some(enabled) => enabled.iter().copied().find(|d| claimants.contains(d)).unwrap_or(claimants[0]),
            None => claimants[0],
        }
    }

    /// The override block for `dialect`, if any.
    pub fn override_for(&self, dialect: &str) -> Option<&Value> {
        self.overrides.get(dialect)
    }
}

impl Serialize for Dialects {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(enabled) = &self.enabled {
            let names: Vec<&str> = enabled.iter().map(|d| d.name()).collect();
            map.serialize_entry("enabled", &names)?;
        }
        for (name, block) in &self.overrides {
            map.serialize_entry(name, block)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for dialect in Dialect::ALL {
            assert_eq!(Dialect::from_name(dialect.name()), Some(dialect));
        }
        assert_eq!(Dialect::from_name("oracle"), None);
        assert_eq!(
            Dialect::names(),
            "ec2, mmds, gce, azure, openstack, digitalocean, nocloud, hetzner, alibaba, tencent, linode, vultr, scaleway, upcloud, exoscale"
        );
    }

    #[test]
    fn enabled_defaults_to_all() {
        let all = Dialects::default();
        assert!(all.is_empty());
        assert!(all.is_enabled(Dialect::Gce));
        let some = Dialects {
            enabled: Some(vec![Dialect::Ec2]),
            overrides: BTreeMap::from([("gce".to_owned(), json!({"zone": "z"}))]),
        };
        assert!(some.is_enabled(Dialect::Ec2));
        assert!(!some.is_enabled(Dialect::Gce));
        assert_eq!(some.override_for("gce"), Some(&json!({"zone": "z"})));
        assert_eq!(serde_json::to_value(&some).unwrap(), json!({"enabled": ["ec2"], "gce": {"zone": "z"}}));
    }

    fn enabling(names: &[&str]) -> Dialects {
        Dialects {
            enabled: Some(names.iter().map(|n| Dialect::from_name(n).unwrap()).collect()),
            overrides: BTreeMap::new(),
        }
    }

    #[test]
    fn a_shared_path_goes_to_the_first_enabled_claimant() {
        let settings = DialectSettings::DEFAULT;
        let all = Dialects::default();
        assert_eq!(all.for_path("/metadata/v1.json", &settings), Dialect::DigitalOcean);
        assert_eq!(all.for_path("/latest/meta-data/", &settings), Dialect::Ec2);
        assert_eq!(all.for_path("/1.0/meta-data/", &settings), Dialect::Ec2);
        assert_eq!(enabling(&["upcloud"]).for_path("/metadata/v1.json", &settings), Dialect::UpCloud);
        assert_eq!(enabling(&["upcloud"]).for_path("/metadata/v1/hostname", &settings), Dialect::DigitalOcean);
        assert_eq!(enabling(&["vultr"]).for_path("/latest/meta-data/", &settings), Dialect::Vultr);
        assert_eq!(enabling(&["vultr"]).for_path("/1.0/meta-data/", &settings), Dialect::Ec2);
        assert_eq!(enabling(&["exoscale"]).for_path("/1.0/meta-data/", &settings), Dialect::Exoscale);
        assert_eq!(enabling(&["exoscale", "vultr"]).for_path("/latest/user-data", &settings), Dialect::Exoscale);
        assert_eq!(enabling(&["vultr", "exoscale"]).for_path("/latest/user-data", &settings), Dialect::Vultr);
        assert_eq!(
            enabling(&["digitalocean", "upcloud"]).for_path("/metadata/v1.json", &settings),
            Dialect::DigitalOcean
        );
        assert_eq!(enabling(&["gce"]).for_path("/metadata/v1.json", &settings), Dialect::DigitalOcean);
        assert_eq!(all.for_path("/v1.json", &settings), Dialect::Vultr);
        assert_eq!(all.for_path("/v1/instance", &settings), Dialect::Linode);
        assert_eq!(all.for_path("/v1", &settings), Dialect::Linode);
        assert_eq!(all.for_path("/v1x", &settings), Dialect::Ec2);
        assert!(Dialect::ALL.iter().all(|d| [Dialect::Scaleway, Dialect::Alibaba, Dialect::Tencent].contains(d)
            || *d == Dialect::Mmds
            || [
                "/",
                "/latest/",
                "/metadata/v1.json",
                "/v1/",
                "/v1.json",
                "/computeMetadata/",
                "/metadata/instance",
                "/openstack/",
                "/hetzner/",
                "/nocloud/"
            ]
            .iter()
            .any(|p| Dialect::claimants(p, &settings).contains(d))));
    }
}
