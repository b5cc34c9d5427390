//! The GCE tree of one instance, built from its record, its `dialects.gce` overrides and its
//! guest attributes. Pure: the same inputs always give the same tree.

use std::net::Ipv4Addr;

use base64::Engine as _;
use imds_model::{Dialect, GuestState, Instance, SshKey};
use serde_json::Value;

use super::overrides::Overrides;
use super::tree::{Credential, Dir, Entry, Leaf, Node};
use super::wire;
use crate::derive::{self, Nic};
use crate::ids::fnv1a;

/// Names and numbers the tree repeats: computed once.
pub(crate) struct Names {
    pub(crate) id: u64,
    pub(crate) project_id: String,
    pub(crate) project_number: u64,
    pub(crate) zone: String,
    pub(crate) name: String,
}

impl Names {
    pub(crate) fn new(instance: &Instance, overrides: &Overrides<'_>) -> Self {
        let id = derive::numeric_id(instance, Dialect::Gce.name(), "id");
        let account = instance.account.as_ref();
        let account_id = account.and_then(|a| a.id.as_deref());
        let numeric_account = account_id.filter(|id| is_decimal(id));
        let project_id = overrides
            .str("project_id")
            .or_else(|| account.and_then(|a| a.name.as_deref()))
            .or(account_id.filter(|id| !is_decimal(id)))
            .unwrap_or(wire::DEFAULT_PROJECT)
            .to_owned();
        let project_number = overrides
            .u64("project_number")
            .or_else(|| numeric_account.and_then(|id| id.parse().ok()))
            .unwrap_or_else(|| fnv1a(&["gce-project", &project_id]) % 1_000_000_000_000);
        let zone = overrides
            .str("zone")
            .map(str::to_owned)
            .or_else(|| instance.zone.clone())
            .or_else(|| instance.region.as_ref().map(|region| format!("{region}-a")))
            .unwrap_or_else(|| wire::DEFAULT_ZONE.to_owned());
        let name = instance
            .name
            .clone()
            .or_else(|| instance.hostname.as_ref().map(|h| h.split('.').next().unwrap_or(h).to_owned()))
            .unwrap_or_else(|| instance.id.as_str().to_owned());
        Self { id, project_id, project_number, zone, name }
    }
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// What the instance's events show at the moment of the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Live {
    /// `instance/maintenance-event`.
    pub(crate) maintenance_event: &'static str,
    /// `instance/preempted`.
    pub(crate) preempted: bool,
}

impl Live {
    /// What `events` show at `now` (no events: `NONE`, `FALSE`).
    ///
    /// A maintenance event shows from its notice until it ends: `MIGRATE_ON_HOST_MAINTENANCE`
    /// for `system-maintenance` (GCE live-migrates), `TERMINATE_ON_HOST_MAINTENANCE` for the
    /// codes that stop or restart the instance. A spot interruption shows
    /// `TERMINATE_ON_HOST_MAINTENANCE` from its notice and `preempted` `TRUE` from its time on.
    pub(crate) fn at(events: Option<&imds_model::InstanceEvents>, now: u64) -> Self {
        use imds_model::event::{EventKind, EventState, MaintenanceCode};
        let mut live = Live { maintenance_event: wire::NO_MAINTENANCE, preempted: false };
        let mut migrate = false;
        let mut terminate = false;
        for event in events.iter().flat_map(|events| events.events.iter()).filter(|event| event.live_at(now)) {
            match event.kind {
                EventKind::SpotInterruption { .. } => {
                    terminate = true;
                    live.preempted |= event.state_at(now) == EventState::Active;
                }
                EventKind::ScheduledMaintenance { code: MaintenanceCode::SystemMaintenance } => migrate = true,
                EventKind::ScheduledMaintenance { .. } => terminate = true,
                EventKind::RebalanceRecommendation | EventKind::TargetLifecycleState { .. } => {}
            }
        }
        if terminate {
            live.maintenance_event = wire::TERMINATE_ON_HOST_MAINTENANCE;
        } else if migrate {
            live.maintenance_event = wire::MIGRATE_ON_HOST_MAINTENANCE;
        }
        live
    }
}

/// The `/computeMetadata/v1/` directory.
pub(crate) fn root(instance: &Instance, state: &GuestState, overrides: &Overrides<'_>, live: Live) -> Dir {
    let names = Names::new(instance, overrides);
    let project_attributes = project_attributes(overrides);
    let instance_attributes = instance_attributes(instance, overrides);
    let guest_attributes_on = guest_attributes_enabled(&instance_attributes, &project_attributes);
    let project = Entry::dir(
        "project",
        vec![
            Entry::new("attributes", Node::Dir(project_attributes)),
            Entry::text("project-id", names.project_id.clone()),
            Entry::new("numeric-project-id", Node::Leaf(Leaf::Number(names.project_number))),
        ],
    );
    let instance_dir = Entry::dir(
        "instance",
        instance_entries(instance, state, overrides, &names, instance_attributes, guest_attributes_on, live),
    );
    Dir::sorted(vec![instance_dir, project])
}

/// Whether guest attributes are on: the instance attribute, else the project attribute.
pub(crate) fn guest_attributes_enabled(instance: &Dir, project: &Dir) -> bool {
    let read = |dir: &Dir| match dir.get(wire::ENABLE_GUEST_ATTRIBUTES).map(|e| &e.node) {
        Some(Node::Leaf(Leaf::Text(value))) => Some(value.eq_ignore_ascii_case("true")),
        _ => None,
    };
    read(instance).or_else(|| read(project)).unwrap_or(false)
}

fn instance_entries(
    instance: &Instance,
    state: &GuestState,
    overrides: &Overrides<'_>,
    names: &Names,
    attributes: Dir,
    guest_attributes_on: bool,
    live: Live,
) -> Vec<Entry> {
    let project_number = names.project_number;
    let hostname =
        overrides.str("hostname").map(str::to_owned).unwrap_or_else(|| match (&instance.hostname, &instance.domain) {
            (Some(host), Some(domain)) if !host.contains('.') => format!("{host}.{domain}"),
            (Some(host), _) if host.contains('.') => host.clone(),
            (host, _) => {
                let short = host.as_deref().unwrap_or(&names.name);
                format!("{short}.{}.c.{}.internal", names.zone, names.project_id)
            }
        });
    let machine_type =
        overrides.str("machine_type").or(instance.instance_type.as_deref()).unwrap_or(wire::DEFAULT_MACHINE_TYPE);
    let tags = overrides.strings("tags").unwrap_or_default();
    let preemptible = overrides.bool("preemptible").unwrap_or(false);
    let upper = |b: bool| if b { "TRUE" } else { "FALSE" };
    let mut entries = vec![
        Entry::new("attributes", Node::Dir(attributes)),
        Entry::text("description", overrides.str("description").unwrap_or("")),
        Entry::text("hostname", hostname),
        Entry::new("id", Node::Leaf(Leaf::Number(names.id))),
        Entry::text("machine-type", format!("projects/{project_number}/machineTypes/{machine_type}")),
        Entry::text("maintenance-event", live.maintenance_event),
        Entry::text("name", names.name.clone()),
        Entry::new(
            "network-interfaces",
            Node::Dir(Dir::array(network_interfaces(instance, overrides, project_number))),
        ),
        Entry::text("preempted", upper(live.preempted)),
        Entry::dir(
            "scheduling",
            vec![
                Entry::text("automatic-restart", upper(!preemptible)),
                Entry::text("on-host-maintenance", if preemptible { "TERMINATE" } else { "MIGRATE" }),
                Entry::text("preemptible", upper(preemptible)),
            ],
        ),
        Entry::dir("service-accounts", service_accounts(instance, overrides, names)),
        Entry::new("tags", Node::Leaf(Leaf::JsonList(tags))),
        Entry::text("zone", format!("projects/{project_number}/zones/{}", names.zone)),
    ];
    if let Some(cpu) = overrides.str("cpu_platform") {
        entries.push(Entry::text("cpu-platform", cpu));
    }
    let image = overrides.str("image").map(str::to_owned).or_else(|| {
        instance.image_id.as_ref().map(|image| {
            if image.contains('/') {
                image.clone()
            } else {
                format!("projects/{}/global/images/{image}", names.project_id)
            }
        })
    });
    if let Some(image) = image {
        entries.push(Entry::text("image", image));
    }
    if guest_attributes_on {
        entries.push(Entry::new("guest-attributes", Node::Dir(guest_attributes(state))).not_recursive());
    }
    entries
}

/// The guest attributes directory: one sub-directory per namespace.
pub(crate) fn guest_attributes(state: &GuestState) -> Dir {
    let namespaces = state.get("gce", &[wire::GUEST_ATTRIBUTES]).and_then(Value::as_object);
    let entries = namespaces
        .into_iter()
        .flatten()
        .filter_map(|(ns, keys)| {
            let keys = keys.as_object()?;
            let leaves = keys
                .iter()
                .filter_map(|(key, value)| {
                    Some(Entry::user(key.clone(), Node::Leaf(Leaf::Text(value.as_str()?.to_owned()))))
                })
                .collect();
            Some(Entry::user(ns.clone(), Node::Dir(Dir::sorted(leaves))))
        })
        .collect();
    Dir::sorted(entries)
}

fn project_attributes(overrides: &Overrides<'_>) -> Dir {
    let entries = overrides
        .attributes("project_attributes")
        .into_iter()
        .filter_map(|(name, value)| Some(Entry::user(name.to_owned(), Node::Leaf(Leaf::Text(value?.to_owned())))))
        .collect();
    Dir::sorted(entries)
}

/// Instance attributes: `ssh-keys` and `user-data` (with `user-data-encoding` for binary data)
/// from the record, then the override's attributes (a `null` removes one).
fn instance_attributes(instance: &Instance, overrides: &Overrides<'_>) -> Dir {
    let mut attributes: Vec<(String, String)> = Vec::new();
    if !instance.ssh_keys.is_empty() {
        let default_user = instance.default_user.as_deref().unwrap_or(wire::DEFAULT_SSH_USER);
        let lines: Vec<String> = instance.ssh_keys.iter().map(|key| ssh_key_line(key, default_user)).collect();
        attributes.push(("ssh-keys".to_owned(), lines.join("\n")));
    }
    if let Some(user_data) = &instance.user_data {
        match std::str::from_utf8(user_data.as_bytes()) {
            Ok(text) => attributes.push(("user-data".to_owned(), text.to_owned())),
            Err(_) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(user_data.as_bytes());
                attributes.push(("user-data".to_owned(), encoded));
                attributes.push(("user-data-encoding".to_owned(), "base64".to_owned()));
            }
        }
    }
    for (name, value) in overrides.attributes("attributes") {
        attributes.retain(|(existing, _)| existing != name);
        if let Some(value) = value {
            attributes.push((name.to_owned(), value.to_owned()));
        }
    }
    Dir::sorted(attributes.into_iter().map(|(name, value)| Entry::user(name, Node::Leaf(Leaf::Text(value)))).collect())
}

/// `user:key`, and for an expiring key the `google-ssh {"userName","expireOn"}` comment cloud-init
/// and the guest agent read.
fn ssh_key_line(key: &SshKey, default_user: &str) -> String {
    let user = key.user.as_deref().unwrap_or(default_user);
    match &key.expires {
        None => format!("{user}:{}", key.key),
        Some(expires) => {
            let mut parts = key.key.splitn(3, ' ');
            let (kind, blob) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            let meta = serde_json::json!({"userName": user, "expireOn": expires});
            format!("{user}:{kind} {blob} google-ssh {meta}")
        }
    }
}

fn network_interfaces(instance: &Instance, overrides: &Overrides<'_>, project_number: u64) -> Vec<Node> {
    // GCE always lists `nic0`, even for a record with no address at all.
    let mut nics = derive::nics(instance);
    if nics.is_empty() {
        nics.push(Nic::dhcp(None, None, None));
    }
    let nameservers: Vec<String> = instance
        .network
        .as_ref()
        .map(|n| n.nameservers.iter().filter(|ip| ip.is_ipv4()).map(ToString::to_string).collect())
        .unwrap_or_default();
    let network =
        overrides.str("network").map_or_else(|| format!("projects/{project_number}/networks/default"), str::to_owned);
    nics.iter()
        .map(|iface| {
            let first = iface.ipv4.first();
            let ip = iface.first_ipv4();
            let mut entries = vec![
                Entry::new(
                    "access-configs",
                    Node::Dir(Dir::array(
                        iface
                            .public_ipv4
                            .map(|public| {
                                Node::Dir(Dir::sorted(vec![
                                    Entry::text("external-ip", public.to_string()),
                                    Entry::text("type", wire::ONE_TO_ONE_NAT),
                                ]))
                            })
                            .into_iter()
                            .collect(),
                    )),
                ),
                Entry::new("dns-servers", Node::Leaf(Leaf::Lines(nameservers.clone()))),
                Entry::new("forwarded-ips", Node::Dir(Dir::array(Vec::new()))),
                Entry::new("ip-aliases", Node::Dir(Dir::array(Vec::new()))),
                Entry::new("mtu", Node::Leaf(Leaf::Number(u64::from(iface.mtu.unwrap_or(wire::DEFAULT_MTU))))),
                Entry::text("network", network.clone()),
            ];
            if let Some(ip) = ip {
                entries.push(Entry::text("ip", ip.to_string()));
            }
            if let Some(mac) = iface.mac {
                entries.push(Entry::text("mac", mac.to_string()));
            }
            if let Some(cidr) = first {
                entries.push(Entry::text("subnetmask", netmask(cidr.prefix).to_string()));
                let gateway = cidr.gateway.or_else(|| iface.ipv4.iter().find_map(|c| c.gateway));
                if let Some(gateway) = gateway {
                    entries.push(Entry::text("gateway", gateway.to_string()));
                }
            }
            Node::Dir(Dir::sorted(entries))
        })
        .collect()
}

fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    Ipv4Addr::from(bits)
}

/// `default/` and `<email>/` when the record has a role (rule R3), else nothing.
fn service_accounts(instance: &Instance, overrides: &Overrides<'_>, names: &Names) -> Vec<Entry> {
    let Some(role) = &instance.iam_role else {
        return Vec::new();
    };
    let email = overrides
        .str("service_account_email")
        .map_or_else(|| format!("{}@{}.iam.gserviceaccount.com", role.as_str(), names.project_id), str::to_owned);
    let scopes = overrides.strings("scopes").unwrap_or_else(|| vec![wire::DEFAULT_SCOPE.to_owned()]);
    let account = |aliases: Vec<String>| {
        Node::Dir(Dir::sorted(vec![
            Entry::new("aliases", Node::Leaf(Leaf::Lines(aliases))),
            Entry::text("email", email.clone()),
            Entry::new("identity", Node::Leaf(Leaf::Credential(Credential::Identity { email: email.clone() })))
                .not_recursive(),
            Entry::new("scopes", Node::Leaf(Leaf::Lines(scopes.clone()))),
            Entry::new("token", Node::Leaf(Leaf::Credential(Credential::Token))).not_recursive(),
        ]))
    };
    vec![
        Entry::user("default".to_owned(), account(vec!["default".to_owned()])),
        Entry::user(email.clone(), account(Vec::new())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
    }
}
