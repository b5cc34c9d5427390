//! Platform hints: the SMBIOS values a VMM must present so that cloud-init in a stock image picks
//! a dialect's datasource (docs/platform-hints.md). cloud-init chooses its datasource from DMI before
//! it talks to any metadata server, so without these values an image never tries the dialect.
//!
//! [`smbios`] is a pure function of the record, the dialect and the deployment settings. Serials
//! that cloud-init compares with metadata are the dialect's own id (DigitalOcean `droplet_id`,
//! Hetzner `instance-id`), so they follow the same overrides. The record's `platform.smbios`
//! object (keys `manufacturer`, `product`, `version`, `serial`, `uuid`, `sku`, `family`,
//! `asset_tag`; string values) wins over every derived field. [`Smbios::qemu_args`] renders the
//! values as QEMU `-smbios` arguments.

use imds_model::Instance;
use serde::Serialize;
use serde_json::Value;

use crate::{Dialect, Settings};

/// Azure's chassis asset tag, which cloud-init's ds-identify looks for.
const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";
/// The link-local address guests reach imds at.
const METADATA_HOST: &str = "169.254.169.254";

/// The SMBIOS (DMI) values for one instance and dialect. Absent fields: whatever the VMM
/// presents by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Smbios {
    /// System manufacturer (type 1; DMI `sys_vendor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Product name (type 1; DMI `product_name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Product version (type 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// System serial number (type 1; DMI `product_serial`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// System UUID (type 1; DMI `product_uuid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// SKU number (type 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Family (type 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Chassis asset tag (type 3; DMI `chassis_asset_tag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset_tag: Option<String>,
}

/// The keys `platform.smbios` may hold.
pub const SMBIOS_KEYS: &[&str] =
    &["manufacturer", "product", "version", "serial", "uuid", "sku", "family", "asset_tag"];

impl Smbios {
    /// QEMU arguments presenting these values: `-smbios type=1,…` and, with an asset tag,
    /// `-smbios type=3,asset=…`. Commas inside values are doubled, as QEMU's option parser
    /// requires; the strings are not shell-quoted.
    pub fn qemu_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let type1: Vec<String> = [
            ("manufacturer", &self.manufacturer),
            ("product", &self.product),
            ("version", &self.version),
            ("serial", &self.serial),
            ("uuid", &self.uuid),
            ("sku", &self.sku),
            ("family", &self.family),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={}", v.replace(',', ",,"))))
        .collect();
        if !type1.is_empty() {
            args.push("-smbios".to_owned());
            args.push(format!("type=1,{}", type1.join(",")));
        }
        if let Some(tag) = &self.asset_tag {
            args.push("-smbios".to_owned());
            args.push(format!("type=3,asset={}", tag.replace(',', ",,")));
        }
        args
    }
}

/// The NoCloud hint pointing guests at `http://169.254.169.254<prefix>`.
///
/// `ds=nocloud-net`, not `ds=nocloud`: cloud-init up to 23.x runs `ds=nocloud` in local mode,
/// before the network is up, where an `http` seed cannot be read (the boot ends on
/// DataSourceNone); `ds=nocloud-net` selects network mode there, and newer versions still
/// accept it (as the legacy spelling of the same thing).
pub fn nocloud_seed(settings: &Settings) -> String {
    format!("ds=nocloud-net;s=http://{METADATA_HOST}{}", settings.nocloud_prefix)
}

/// The SMBIOS values for `instance` seen through `dialect`; `None` for MMDS (Firecracker
/// presents no SMBIOS).
pub fn smbios(instance: &Instance, dialect: Dialect, settings: &Settings) -> Option<Smbios> {
    let id = instance.id.as_str();
    let uuid = is_uuid(id).then(|| id.to_ascii_lowercase());
    let derived = match dialect {
        // Containers have no SMBIOS of their own.
        Dialect::Mmds | Dialect::Container => return None,
        Dialect::Ec2 => {
            // ds-identify knows EC2 by a product UUID and serial that both start with `ec2`;
            // the vendor alone is not enough. Any id gets one: the record's UUID, else the
            // derived one (rule R1), its first three digits replaced.
            let ec2 = format!("ec2{}", &crate::ids::instance_uuid(instance).hyphenated().to_string()[3..]);
            Smbios {
                manufacturer: Some("Amazon EC2".into()),
                product: instance.instance_type.clone(),
                serial: Some(ec2.clone()),
                uuid: Some(ec2),
                asset_tag: Some("Amazon EC2".into()),
                ..Smbios::default()
            }
        }
        Dialect::Gce => Smbios {
            manufacturer: Some("Google".into()),
            product: Some("Google Compute Engine".into()),
            serial: Some(format!("GoogleCloud-{:016X}", crate::ids::fnv1a(&["gce-serial", id]))),
            uuid,
            ..Smbios::default()
        },
        Dialect::Azure => Smbios {
            manufacturer: Some("Microsoft Corporation".into()),
            product: Some("Virtual Machine".into()),
            uuid,
            asset_tag: Some(AZURE_ASSET_TAG.into()),
            ..Smbios::default()
        },
        Dialect::OpenStack => Smbios {
            manufacturer: Some("OpenStack Foundation".into()),
            product: Some("OpenStack Nova".into()),
            serial: uuid.clone(),
            uuid,
            ..Smbios::default()
        },
        Dialect::DigitalOcean => Smbios {
            manufacturer: Some("DigitalOcean".into()),
            product: Some("Droplet".into()),
            serial: Some(crate::digitalocean::droplet_id(instance).to_string()),
            uuid,
            ..Smbios::default()
        },
        Dialect::Hetzner => Smbios {
            manufacturer: Some("Hetzner".into()),
            product: Some("vServer".into()),
            serial: Some(crate::hetzner::instance_id(instance).to_string()),
            uuid,
            ..Smbios::default()
        },
        Dialect::NoCloud => Smbios { serial: Some(nocloud_seed(settings)), uuid, ..Smbios::default() },
        // cloud-init's AliYun datasource and ds-identify check the product name; the serial is
        // `meta-data/serial-number` (the instance UUID, rule R1).
        Dialect::Alibaba => {
            let serial = crate::ids::instance_uuid(instance).to_string();
            Smbios {
                manufacturer: Some("Alibaba Cloud".into()),
                product: Some("Alibaba Cloud ECS".into()),
                serial: Some(serial.clone()),
                uuid: Some(serial),
                ..Smbios::default()
            }
        }
        // cloud-init's Oracle datasource and ds-identify check the chassis asset tag; the system
        // UUID has the instance's lifespan (its `check_instance_id`).
        Dialect::Oracle => Smbios {
            uuid: Some(crate::ids::instance_uuid(instance).to_string()),
            asset_tag: Some(crate::oracle::wire::CHASSIS_ASSET_TAG.into()),
            ..Smbios::default()
        },
        // What Tencent's CVMs present (no cloud-init datasource checks it).
        Dialect::Tencent => Smbios {
            manufacturer: Some("Tencent Cloud".into()),
            product: Some("CVM".into()),
            serial: Some(crate::ids::instance_uuid(instance).to_string()),
            uuid: Some(crate::ids::instance_uuid(instance).to_string()),
            ..Smbios::default()
        },
        // cloud-init's Akamai datasource compares the serial with `/v1/instance`'s `id`.
        Dialect::Linode => Smbios {
            manufacturer: Some(crate::linode::wire::MANUFACTURER.into()),
            product: Some(crate::linode::wire::PRODUCT.into()),
            serial: Some(crate::linode::instance_id(instance).to_string()),
            uuid,
            ..Smbios::default()
        },
        // cloud-init's Vultr datasource compares the serial (the SUBID) with the system UUID on
        // reboot, and takes `instance-v2-id` as the instance id: all three are the same.
        Dialect::Vultr => {
            let id = crate::vultr::instance_v2_id(instance);
            Smbios {
                manufacturer: Some(crate::vultr::wire::MANUFACTURER.into()),
                product: Some(crate::vultr::wire::PRODUCT.into()),
                serial: Some(id.clone()),
                uuid: Some(id),
                ..Smbios::default()
            }
        }
        Dialect::Scaleway => Smbios {
            manufacturer: Some(crate::scaleway::wire::MANUFACTURER.into()),
            product: Some(crate::scaleway::wire::PRODUCT.into()),
            uuid: Some(crate::ids::instance_uuid(instance).to_string()),
            ..Smbios::default()
        },
        // cloud-init's UpCloud datasource takes the system UUID as the server's and compares
        // it with `instance_id`.
        Dialect::UpCloud => Smbios {
            manufacturer: Some(crate::upcloud::wire::MANUFACTURER.into()),
            product: Some("Cloud Server".into()),
            uuid: Some(crate::upcloud::instance_id(instance)),
            ..Smbios::default()
        },
        // ds-identify and cloud-init's Exoscale datasource want a product name `Exoscale…`.
        Dialect::Exoscale => Smbios {
            manufacturer: Some(crate::exoscale::wire::MANUFACTURER.into()),
            product: Some(crate::exoscale::wire::PRODUCT.into()),
            uuid: Some(crate::ids::instance_uuid(instance).to_string()),
            ..Smbios::default()
        },
    };
    Some(apply_platform(derived, instance.platform.as_deref()))
}

/// The dialect named by the record's `platform.dialect`, if it names one imds serves.
pub fn platform_dialect(instance: &Instance) -> Option<Dialect> {
    instance.platform.as_ref()?.get("dialect")?.as_str().and_then(Dialect::from_name)
}

/// Lets the record's `platform.smbios` string values win over the derived ones.
fn apply_platform(mut smbios: Smbios, platform: Option<&Value>) -> Smbios {
    let Some(given) = platform.and_then(|p| p.get("smbios")).and_then(Value::as_object) else {
        return smbios;
    };
    for (key, value) in given {
        let Some(value) = value.as_str().map(str::to_owned) else { continue };
        let slot = match key.as_str() {
            "manufacturer" => &mut smbios.manufacturer,
            "product" => &mut smbios.product,
            "version" => &mut smbios.version,
            "serial" => &mut smbios.serial,
            "uuid" => &mut smbios.uuid,
            "sku" => &mut smbios.sku,
            "family" => &mut smbios.family,
            "asset_tag" => &mut smbios.asset_tag,
            _ => continue,
        };
        *slot = Some(value);
    }
    smbios
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hex form.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imds_model::Limits;
    use serde_json::json;

    fn parse(doc: Value) -> Instance {
        Instance::parse(&doc, &Limits::default()).unwrap()
    }

    #[test]
    fn qemu_args_double_commas_and_add_the_chassis() {
        let smbios = Smbios {
            manufacturer: Some("A,B".into()),
            serial: Some("ds=nocloud;s=http://x/".into()),
            asset_tag: Some("t".into()),
            ..Smbios::default()
        };
        assert_eq!(
            smbios.qemu_args(),
            ["-smbios", "type=1,manufacturer=A,,B,serial=ds=nocloud;s=http://x/", "-smbios", "type=3,asset=t"]
        );
        assert!(Smbios::default().qemu_args().is_empty());
    }

    #[test]
    fn platform_block_wins() {
        let instance =
            parse(json!({"id": "42", "platform": {"dialect": "hetzner", "smbios": {"serial": "9", "product": "p"}}}));
        let smbios = smbios(&instance, Dialect::Hetzner, &Settings::DEFAULT).unwrap();
        assert_eq!(smbios.serial.as_deref(), Some("9"));
        assert_eq!(smbios.product.as_deref(), Some("p"));
        assert_eq!(smbios.manufacturer.as_deref(), Some("Hetzner"));
        assert_eq!(platform_dialect(&instance), Some(Dialect::Hetzner));
    }

    #[test]
    fn uuids_are_recognised() {
        assert!(is_uuid("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!is_uuid("0f8fad5b-d9cb-469f-a165-70867728950"));
        assert!(!is_uuid("web-1"));
    }
}
