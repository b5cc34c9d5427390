//! The `/metadata/instance` document: `compute`, `network` and (on request) `extended`, every
//! primitive a string, fields in Azure's documented (alphabetical) order, each tagged with the
//! API version that introduced it so older versions see older documents.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use imds_model::{Instance, MacAddr};
use serde_json::{json, Map, Value};

use super::overrides::Overrides;
use super::wire;
use crate::derive;

/// One field and the first API version that has it.
struct Field {
    name: &'static str,
    since: &'static str,
    value: Value,
}

fn field(name: &'static str, since: &'static str, value: impl Into<Value>) -> Field {
    Field { name, since, value: value.into() }
}

/// The fields visible at `version`, as an object in the given order.
fn object(fields: Vec<Field>, version: &str) -> Value {
    let map: Map<String, Value> =
        fields.into_iter().filter(|f| f.since <= version).map(|f| (f.name.to_owned(), f.value)).collect();
    Value::Object(map)
}

/// The whole document at `version`; `extended` adds the `extended` section (from 2021-03-01).
pub(crate) fn render(instance: &Instance, version: &str, extended: bool) -> Value {
    let overrides = Overrides::new(instance.dialects.override_for("azure"));
    let mut document = Map::new();
    document.insert("compute".to_owned(), compute(instance, &overrides, version));
    document.insert("network".to_owned(), network(instance));
    if extended && version >= wire::EXTENDED_SINCE {
        let pps_type = overrides.str("ppsType").unwrap_or(wire::PPS_TYPE);
        document.insert("extended".to_owned(), json!({"compute": {"hasCustomData": "false", "ppsType": pps_type}}));
    }
    Value::Object(document)
}

/// `compute.vmId`: the override, else the instance's UUID (rule R1: the id itself when it is a
/// UUID, else derived, the same as OpenStack's `uuid`), always lower-case hyphenated.
pub fn vm_id(instance: &Instance) -> String {
    let overrides = Overrides::new(instance.dialects.override_for("azure"));
    overrides
        .str("vmId")
        .and_then(|text| uuid::Uuid::try_parse(text).ok())
        .unwrap_or_else(|| crate::ids::instance_uuid(instance))
        .hyphenated()
        .to_string()
}

/// A MAC in Azure's form: 12 upper-case hex digits, no separators.
pub fn mac(mac: MacAddr) -> String {
    mac.octets().iter().map(|octet| format!("{octet:02X}")).collect()
}

fn compute(instance: &Instance, o: &Overrides<'_>, version: &str) -> Value {
    let text = |key: &str, derived: Option<&str>, default: &str| -> String {
        o.str(key).or(derived).unwrap_or(default).to_owned()
    };
    let name = text("name", instance.name.as_deref().or(instance.hostname.as_deref()), "");
    // Azure always has an admin user (a VM cannot be created without one): the portal's default.
    let admin = text("adminUsername", instance.default_user.as_deref(), wire::DEFAULT_ADMIN_USERNAME);
    let computer_name = text("computerName", instance.hostname.as_deref().or(instance.name.as_deref()), "");
    let subscription = text("subscriptionId", instance.account.as_ref().and_then(|a| a.id.as_deref()), "");
    let group = text("resourceGroupName", None, "");
    let resource_id = o.str("resourceId").map(str::to_owned).unwrap_or_else(|| {
        if subscription.is_empty() || group.is_empty() || name.is_empty() {
            String::new()
        } else {
            format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}")
        }
    });
    // Azure zones are "1", "2", "3"; a canonical zone such as `eu-west-1b` is not one.
    let canonical_zone = instance.zone.as_deref().filter(|z| !z.is_empty() && z.bytes().all(|b| b.is_ascii_digit()));
    let os_type = text("osType", None, wire::OS_TYPE);
    let (publisher, offer, sku, image_version) =
        (text("publisher", None, ""), text("offer", None, ""), text("sku", None, ""), text("version", None, ""));
    let disable_password = instance.password_auth.map_or(String::new(), |allowed| (!allowed).to_string());
    let public_keys: Vec<Value> = instance
        .ssh_keys
        .iter()
        .map(|key| {
            let user = key.user.as_deref().filter(|u| !u.is_empty()).unwrap_or(admin.as_str());
            let path = format!("/home/{user}/.ssh/authorized_keys");
            json!({"keyData": key.key, "path": path})
        })
        .collect();
    let tags: Vec<String> = derive::tags(instance).map(|(k, v)| format!("{k}:{v}")).collect();
    let tags_list: Vec<Value> = derive::tags(instance).map(|(k, v)| json!({"name": k, "value": v})).collect();
    let mut security = Map::new();
    for (key, default) in [("secureBootEnabled", "false"), ("virtualTpmEnabled", "false")] {
        security.insert(key.to_owned(), Value::from(default));
    }
    for (key, value) in o.entries("securityProfile") {
        security.insert(key.to_owned(), Value::from(value));
    }
    let plan = json!({
        "name": o.nested("plan", "name").unwrap_or(""),
        "product": o.nested("plan", "product").unwrap_or(""),
        "publisher": o.nested("plan", "publisher").unwrap_or(""),
    });
    let os_profile = object(
        vec![
            field("adminUsername", "2020-07-15", admin),
            field("computerName", "2020-07-15", computer_name),
            field("disablePasswordAuthentication", "2020-10-01", disable_password),
        ],
        version,
    );
    let storage = json!({
        "dataDisks": [],
        "imageReference": {
            "id": instance.image_id.as_deref().unwrap_or(""),
            "offer": offer,
            "publisher": publisher,
            "sku": sku,
            "version": image_version,
        },
        "osDisk": {
            "caching": "ReadWrite",
            "createOption": "FromImage",
            "diskSizeGB": "",
            "diffDiskSettings": {"option": ""},
            "encryptionSettings": {"enabled": "false"},
            "image": {"uri": ""},
            "managedDisk": {"id": "", "storageAccountType": ""},
            "name": "",
            "osType": os_type,
            "vhd": {"uri": ""},
            "writeAcceleratorEnabled": "false",
        },
        "resourceDisk": {"size": ""},
    });
    let user_data = instance.user_data.as_ref().map_or(String::new(), |data| data.to_base64());
    object(
        vec![
            field("azEnvironment", "2018-10-01", text("azEnvironment", None, wire::AZ_ENVIRONMENT)),
            field("customData", "2019-02-01", ""),
            field("evictionPolicy", "2020-12-01", text("evictionPolicy", None, "")),
            field("licenseType", "2020-09-01", text("licenseType", None, "")),
            field("location", "2017-04-02", text("location", instance.region.as_deref(), "")),
            field("name", "2017-04-02", name),
            field("offer", "2017-04-02", offer),
            field("osProfile", "2020-07-15", os_profile),
            field("osType", "2017-04-02", os_type),
            field("placementGroupId", "2017-08-01", text("placementGroupId", None, "")),
            field("plan", "2018-04-02", plan),
            field("platformFaultDomain", "2017-04-02", text("platformFaultDomain", None, "0")),
            field("platformUpdateDomain", "2017-04-02", text("platformUpdateDomain", None, "0")),
            field("priority", "2020-12-01", text("priority", None, wire::PRIORITY)),
            field("provider", "2018-10-01", wire::PROVIDER),
            field("publicKeys", "2018-04-02", public_keys),
            field("publisher", "2017-04-02", publisher),
            field("resourceGroupName", "2017-08-01", group),
            field("resourceId", "2019-03-11", resource_id),
            field("securityProfile", "2020-06-01", Value::Object(security)),
            field("sku", "2017-04-02", sku),
            field("storageProfile", "2019-06-01", storage),
            field("subscriptionId", "2017-08-01", subscription),
            field("tags", "2017-08-01", tags.join(";")),
            field("tagsList", "2019-06-04", tags_list),
            field("userData", "2021-01-01", user_data),
            field("version", "2017-04-02", image_version),
            field("vmId", "2017-04-02", vm_id(instance)),
            field("vmScaleSetName", "2017-12-01", text("vmScaleSetName", None, "")),
            field("vmSize", "2017-04-02", text("vmSize", instance.instance_type.as_deref(), "")),
            field("zone", "2017-12-01", text("zone", canonical_zone, "")),
        ],
        version,
    )
}

/// `network.interface[]`: the guest's interfaces (rule R2, `derive::nics`). The first IPv4
/// address of an interface carries its public IPv4.
fn network(instance: &Instance) -> Value {
    let interfaces: Vec<Value> = derive::nics(instance)
        .iter()
        .map(|nic| {
            let addresses: Vec<Ipv4Addr> = nic.ipv4.iter().map(|cidr| cidr.address).chain(nic.bare_ipv4).collect();
            let mut subnets = BTreeSet::new();
            let subnet: Vec<Value> = nic
                .ipv4
                .iter()
                .filter(|cidr| subnets.insert((cidr.network(), cidr.prefix)))
                .map(|cidr| json!({"address": cidr.network().to_string(), "prefix": cidr.prefix.to_string()}))
                .collect();
            let ipv6: Vec<Value> = nic
                .ipv6
                .iter()
                .map(|cidr| cidr.address)
                .chain(nic.bare_ipv6)
                .map(|address| json!({"privateIpAddress": address.to_string()}))
                .collect();
            interface(&addresses, nic.public_ipv4, subnet, ipv6, nic.mac)
        })
        .collect();
    json!({"interface": interfaces})
}

fn interface(
    addresses: &[Ipv4Addr],
    public: Option<Ipv4Addr>,
    subnet: Vec<Value>,
    ipv6: Vec<Value>,
    mac_address: Option<MacAddr>,
) -> Value {
    let ip_address: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(i, address)| {
            let public = public.filter(|_| i == 0).map_or(String::new(), |ip| ip.to_string());
            json!({"privateIpAddress": address.to_string(), "publicIpAddress": public})
        })
        .collect();
    json!({
        "ipv4": {"ipAddress": ip_address, "subnet": subnet},
        "ipv6": {"ipAddress": ipv6},
        "macAddress": mac_address.map_or(String::new(), mac),
    })
}
