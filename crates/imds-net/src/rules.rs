//! The nftables rules imds owns, rendered as `nft -f` scripts.
//!
//! `inet imds` (every host):
//!
//! - chain `input` (hook input): traffic from a guest interface goes to chain `guest`; anything
//!   else to `169.254.0.0/16` (and to the other metadata addresses: the IPv6 ones, a dialect's
//!   own such as `100.100.100.200`) that did not come from `lo` is
//!   dropped — the Go mock's `iptables -I INPUT -d 169.254.0.0/16 ! -i lo -j DROP` as the floor;
//! - chain `guest`: the admin ports are dropped whatever address they bind; new connections
//!   (SYNs) to the guest ports above `[net] syn_per_second` (and its burst) from one source
//!   address are counted and dropped, per address through the dynamic sets `syn4` and `syn6`
//!   (established connections are never touched); the guest ports on
//!   the metadata addresses pass (with `manage`: only through chain `identity`); everything
//!   else to the metadata addresses is dropped;
//! - chain `identity` (written by the running server, never by `up`): per instance with
//!   `host_interfaces`, packets from those interfaces must carry the instance's MACs and
//!   addresses, or they are counted and dropped; then they are accepted. A packet no rule
//!   accepts returns and is dropped: an empty chain fails closed.
//!
//! `bridge imds` (when the metadata interface is a bridge): chain `prerouting` jumps to chain
//! `ports` (written by the server: per instance, frames from its bridge ports must carry its MACs
//! and IPs, the libvirt "clean-traffic" idea) and, with `manage`, drops what reaches the metadata
//! addresses from a port no instance holds.
//!
//! `up` never flushes the server's chains, so running it again changes nothing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::HostConfig;

/// The table both families use.
pub const TABLE: &str = "imds";
/// The comment prefix of rules that drop forged traffic; what follows is the instance id.
pub const SPOOF_COMMENT: &str = "imds forged source of ";
/// The comment of the rules that drop SYNs over a source's rate.
pub const SYN_COMMENT: &str = "imds connection rate";

/// One instance's identity on the host: what its host interfaces may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The instance id (only letters, digits and `-_.:` survive into the rule comment).
    pub instance: String,
    /// Host-side interface names of the instance's NICs (taps, veths, bridge ports).
    pub interfaces: Vec<String>,
    /// Its MACs.
    pub macs: Vec<[u8; 6]>,
    /// Its IPv4 addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// Its IPv6 addresses.
    pub ipv6: Vec<Ipv6Addr>,
}

/// The comment of an instance's counted drop rules.
pub fn spoof_comment(instance: &str) -> String {
    let clean: String = instance
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.:".contains(c) { c } else { '_' })
        .take(100)
        .collect();
    format!("{SPOOF_COMMENT}{clean}")
}

fn set<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|item| item.to_string()).collect();
    format!("{{ {} }}", items.join(", "))
}

fn quoted_set<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    set(names.into_iter().map(|name| format!("\"{name}\"")))
}

fn mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn v4(config: &HostConfig) -> Vec<Ipv4Addr> {
    config.addresses.iter().filter_map(|ip| if let IpAddr::V4(ip) = ip { Some(*ip) } else { None }).collect()
}

fn v6(config: &HostConfig) -> Vec<Ipv6Addr> {
    config.addresses.iter().filter_map(|ip| if let IpAddr::V6(ip) = ip { Some(*ip) } else { None }).collect()
}

/// The script `imds net up` runs: creates or refreshes both tables' base chains, leaves the
/// server's chains (`identity`, `ports`) as they are. `bridge`: the bridge holding the
/// metadata addresses, if any.
pub fn render_up(config: &HostConfig, bridge: Option<&str>) -> String {
    let mut s = String::new();
    let ports = set(config.guest_ports.iter());
    let md4 = v4(config);
    let md6 = v6(config);
    let _ = writeln!(s, "add table inet {TABLE}");
    let _ = writeln!(s, "add chain inet {TABLE} input {{ type filter hook input priority -10; policy accept; }}");
    let _ = writeln!(s, "flush chain inet {TABLE} input");
    let _ = writeln!(s, "add chain inet {TABLE} guest");
    let _ = writeln!(s, "flush chain inet {TABLE} guest");
    let _ = writeln!(s, "add chain inet {TABLE} identity");
    for pattern in &config.guest_interfaces {
        let _ = writeln!(s, "add rule inet {TABLE} input iifname \"{pattern}\" jump guest");
    }
    let _ = writeln!(s, "add rule inet {TABLE} input iifname != \"lo\" ip daddr 169.254.0.0/16 drop");
    // A dialect's own address outside link-local (Alibaba's 100.100.100.200) is as closed.
    let outside: Vec<Ipv4Addr> = md4.iter().copied().filter(|ip| !ip.is_link_local()).collect();
    if !outside.is_empty() {
        let _ = writeln!(s, "add rule inet {TABLE} input iifname != \"lo\" ip daddr {} drop", set(&outside));
    }
    if !md6.is_empty() {
        let _ = writeln!(s, "add rule inet {TABLE} input iifname != \"lo\" ip6 daddr {} drop", set(&md6));
    }
    if !config.admin_ports.is_empty() {
        let _ = writeln!(s, "add rule inet {TABLE} guest tcp dport {} drop", set(&config.admin_ports));
    }
    if config.syn_per_second > 0 && !config.guest_ports.is_empty() {
        // One element per source address, forgotten a minute after its last SYN; `up` empties
        // the sets so a changed rate applies at once.
        for (set_name, family, kind) in [("syn4", "ipv4", "ip"), ("syn6", "ipv6", "ip6")] {
            let _ =
                writeln!(s, "add set inet {TABLE} {set_name} {{ type {family}_addr; flags dynamic; timeout 60s; }}");
            let _ = writeln!(s, "flush set inet {TABLE} {set_name}");
            let _ = writeln!(
                s,
                "add rule inet {TABLE} guest meta nfproto {family} tcp dport {ports} tcp flags & (syn | ack) == syn add @{set_name} {{ {kind} saddr limit rate over {}/second burst {} packets }} counter drop comment \"{SYN_COMMENT}\"",
                config.syn_per_second, config.syn_burst
            );
        }
    } else {
        // Turned off: the sets an earlier `up` made go too (`add` first: absent is no error).
        for (set_name, family) in [("syn4", "ipv4"), ("syn6", "ipv6")] {
            let _ =
                writeln!(s, "add set inet {TABLE} {set_name} {{ type {family}_addr; flags dynamic; timeout 60s; }}");
            let _ = writeln!(s, "delete set inet {TABLE} {set_name}");
        }
    }
    let pass = if config.manage { "jump identity" } else { "accept" };
    if !md4.is_empty() && !config.guest_ports.is_empty() {
        let _ = writeln!(s, "add rule inet {TABLE} guest ip daddr {} tcp dport {ports} {pass}", set(&md4));
    }
    if !md6.is_empty() && !config.guest_ports.is_empty() {
        let _ = writeln!(s, "add rule inet {TABLE} guest ip6 daddr {} tcp dport {ports} {pass}", set(&md6));
    }
    let _ = writeln!(s, "add rule inet {TABLE} guest ip daddr 169.254.0.0/16 drop");
    if !outside.is_empty() {
        let _ = writeln!(s, "add rule inet {TABLE} guest ip daddr {} drop", set(&outside));
    }
    if !md6.is_empty() {
        let _ = writeln!(s, "add rule inet {TABLE} guest ip6 daddr {} drop", set(&md6));
    }
    if bridge.is_some() {
        let _ = writeln!(s, "add table bridge {TABLE}");
        let _ = writeln!(
            s,
            "add chain bridge {TABLE} prerouting {{ type filter hook prerouting priority -200; policy accept; }}"
        );
        let _ = writeln!(s, "flush chain bridge {TABLE} prerouting");
        let _ = writeln!(s, "add chain bridge {TABLE} ports");
        let _ = writeln!(s, "add rule bridge {TABLE} prerouting jump ports");
        if config.manage {
            if !md4.is_empty() {
                let _ = writeln!(s, "add rule bridge {TABLE} prerouting ip daddr {} drop", set(&md4));
            }
            if !md6.is_empty() {
                let _ = writeln!(s, "add rule bridge {TABLE} prerouting ip6 daddr {} drop", set(&md6));
            }
        }
    }
    s
}

/// The script `imds net down` runs: deletes both tables (absent ones are no error: `add` first).
pub fn render_down() -> String {
    format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\nadd table bridge {TABLE}\ndelete table bridge {TABLE}\n"
    )
}

/// The script the server runs on every view change: replaces chain `identity` (and `ports` when
/// `bridge` is set) with `bindings`, in one transaction.
pub fn render_identity(bindings: &[Binding], bridge: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "flush chain inet {TABLE} identity");
    let claimed4: BTreeSet<Ipv4Addr> = bindings.iter().flat_map(|b| b.ipv4.iter().copied()).collect();
    let claimed6: BTreeSet<Ipv6Addr> = bindings.iter().flat_map(|b| b.ipv6.iter().copied()).collect();
    for binding in bindings.iter().filter(|b| !b.interfaces.is_empty()) {
        let comment = spoof_comment(&binding.instance);
        let ifs = quoted_set(binding.interfaces.iter().map(String::as_str));
        let drop = format!("counter drop comment \"{comment}\"");
        let rule = |s: &mut String, family: &str, chain: &str, matches: &str| {
            let _ = writeln!(s, "add rule {family} {TABLE} {chain} iifname {ifs} {matches} {drop}");
        };
        for (family, chain) in [("inet", "identity")].into_iter().chain(bridge.map(|_| ("bridge", "ports"))) {
            if !binding.macs.is_empty() {
                rule(&mut s, family, chain, &format!("ether saddr != {}", set(binding.macs.iter().map(mac))));
            }
            let bridged = family == "bridge";
            // A port's DHCP and ARP probes come from 0.0.0.0, IPv6 neighbour discovery from ::
            // and link-local addresses: these never identify anyone.
            let (any4, any6) = if bridged { ("0.0.0.0, ", "::, fe80::/10, ") } else { ("", "fe80::/10, ") };
            if binding.ipv4.is_empty() {
                if !claimed4.is_empty() {
                    rule(&mut s, family, chain, &format!("ip saddr {}", set(&claimed4)));
                }
            } else {
                let own = binding.ipv4.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                rule(&mut s, family, chain, &format!("ip saddr != {{ {any4}{own} }}"));
                if bridged {
                    rule(&mut s, family, chain, &format!("arp saddr ip != {{ {any4}{own} }}"));
                }
            }
            if binding.ipv6.is_empty() {
                if !claimed6.is_empty() {
                    rule(&mut s, family, chain, &format!("ip6 saddr {}", set(&claimed6)));
                }
            } else {
                let own = binding.ipv6.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                rule(&mut s, family, chain, &format!("ip6 saddr != {{ {any6}{own} }}"));
            }
            // What passed the instance's checks is its own: it may reach the metadata address.
            let _ = writeln!(s, "add rule {family} {TABLE} {chain} iifname {ifs} accept");
        }
    }
    if let Some(bridge) = bridge {
        // The bridge's ports were checked in `bridge imds`: what arrives over it is clean.
        let _ = writeln!(s, "add rule inet {TABLE} identity iifname \"{bridge}\" accept");
        s.insert_str(0, &format!("flush chain bridge {TABLE} ports\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pattern;

    fn config(manage: bool) -> HostConfig {
        HostConfig {
            guest_interfaces: vec![Pattern::parse("tap*").unwrap()],
            interface: "imds0".into(),
            addresses: vec!["169.254.169.254".parse().unwrap(), "fd00:ec2::254".parse().unwrap()],
            guest_ports: vec![80],
            admin_ports: vec![8998],
            manage,
            syn_per_second: 100,
            syn_burst: 200,
        }
    }

    #[test]
    fn up_never_flushes_the_identity_chain() {
        let script = render_up(&config(true), None);
        assert!(script.contains("add chain inet imds identity\n"));
        assert!(!script.contains("flush chain inet imds identity"));
        assert!(script.contains("guest ip daddr { 169.254.169.254 } tcp dport { 80 } jump identity"));
        assert!(script.contains("guest tcp dport { 8998 } drop"));
        assert!(script.contains("input iifname != \"lo\" ip daddr 169.254.0.0/16 drop"));
        assert!(!script.contains("bridge"));
        let unmanaged = render_up(&config(false), Some("br0"));
        assert!(unmanaged.contains("tcp dport { 80 } accept"));
        assert!(unmanaged.contains("add chain bridge imds ports\n"));
    }

    #[test]
    fn a_dialects_own_addresses_and_ports_pass_and_are_closed_elsewhere() {
        let mut bound = config(true);
        bound.addresses.extend(["169.254.170.2".parse::<IpAddr>().unwrap(), "100.100.100.200".parse().unwrap()]);
        bound.addresses.push("fd00:ec2::23".parse().unwrap());
        bound.guest_ports = vec![80, 8080];
        let script = render_up(&bound, None);
        assert!(script.contains(
            "guest ip daddr { 169.254.169.254, 169.254.170.2, 100.100.100.200 } tcp dport { 80, 8080 } jump identity"
        ));
        assert!(script.contains("guest ip6 daddr { fd00:ec2::254, fd00:ec2::23 } tcp dport { 80, 8080 } jump identity"));
        // Link-local addresses are covered by 169.254.0.0/16; the others are named.
        assert!(script.contains("input iifname != \"lo\" ip daddr { 100.100.100.200 } drop"));
        assert!(script.contains("guest ip daddr { 100.100.100.200 } drop"));
        assert!(!render_up(&config(true), None).contains("{ 100.100.100.200 }"));
    }

    #[test]
    fn syns_over_a_sources_rate_are_dropped_before_the_metadata_rules() {
        let mut limited = config(true);
        limited.guest_ports = vec![80, 8080];
        let script = render_up(&limited, None);
        assert!(script.contains("add set inet imds syn4 { type ipv4_addr; flags dynamic; timeout 60s; }\n"));
        assert!(script.contains("add set inet imds syn6 { type ipv6_addr; flags dynamic; timeout 60s; }\n"));
        assert!(script.contains("flush set inet imds syn4\n"));
        let v4 = "add rule inet imds guest meta nfproto ipv4 tcp dport { 80, 8080 } tcp flags & (syn | ack) == syn add @syn4 { ip saddr limit rate over 100/second burst 200 packets } counter drop comment \"imds connection rate\"";
        let v6 = "add rule inet imds guest meta nfproto ipv6 tcp dport { 80, 8080 } tcp flags & (syn | ack) == syn add @syn6 { ip6 saddr limit rate over 100/second burst 200 packets } counter drop comment \"imds connection rate\"";
        let at = |needle: &str| script.find(needle).unwrap_or_else(|| panic!("{needle} missing from {script}"));
        // After the admin ports' drop, before anything is accepted or sent to `identity`.
        assert!(at("guest tcp dport { 8998 } drop") < at(v4));
        assert!(at(v4) < at(v6));
        assert!(at(v6) < at("guest ip daddr { 169.254.169.254 } tcp dport { 80, 8080 } jump identity"));

        limited.syn_per_second = 5;
        limited.syn_burst = 7;
        assert!(render_up(&limited, None).contains("limit rate over 5/second burst 7 packets"));

        limited.syn_per_second = 0;
        let off = render_up(&limited, None);
        assert!(!off.contains("limit rate"), "{off}");
        assert!(!off.contains("flush set"), "{off}");
        assert!(off.contains("delete set inet imds syn4\n") && off.contains("delete set inet imds syn6\n"));
        // `down` deletes the table, and the sets with it.
        assert!(render_down().contains("delete table inet imds\n"));
    }

    #[test]
    fn identity_rules_pin_addresses_to_interfaces() {
        let bindings = [
            Binding {
                instance: "vm-a".into(),
                interfaces: vec!["tap-a".into()],
                macs: vec![[2, 0, 0, 0, 0, 0xa]],
                ipv4: vec!["192.0.2.11".parse().unwrap()],
                ipv6: vec![],
            },
            Binding {
                instance: "vm \"m\"".into(),
                interfaces: vec!["tap-m".into()],
                macs: vec![[2, 0, 0, 0, 0, 0xb]],
                ipv4: vec![],
                ipv6: vec![],
            },
        ];
        let script = render_identity(&bindings, None);
        assert!(script.starts_with("flush chain inet imds identity\n"));
        assert!(script.contains(
            "iifname { \"tap-a\" } ether saddr != { 02:00:00:00:00:0a } counter drop comment \"imds forged source of vm-a\""
        ));
        assert!(script.contains("iifname { \"tap-a\" } ip saddr != { 192.0.2.11 } counter drop"));
        // An instance known by MAC only may call from any address but another instance's.
        assert!(script.contains(
            "iifname { \"tap-m\" } ip saddr { 192.0.2.11 } counter drop comment \"imds forged source of vm__m_\""
        ));
        assert!(script.contains("iifname { \"tap-a\" } accept"));
        let bridged = render_identity(&bindings, Some("br0"));
        assert!(bridged.starts_with("flush chain bridge imds ports\n"));
        assert!(bridged
            .contains("add rule bridge imds ports iifname { \"tap-a\" } arp saddr ip != { 0.0.0.0, 192.0.2.11 }"));
        assert!(bridged.contains("add rule inet imds identity iifname \"br0\" accept"));
    }
}
