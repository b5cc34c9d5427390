//! `imds net up|down|status`: the host datapath for the configuration `serve` uses.
//!
//! `up` puts the metadata addresses on the interface imds owns and the `imds` nftables tables in
//! place (idempotent: a second run changes nothing); `down` removes exactly those; `status`
//! shows what is in place and what differs from the configuration (exit 1 on a difference).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use imds_net::{link, nft, rules, HostConfig, MetadataInterface};

use crate::cli::common::{emit, Format, Global};
use crate::cli::out::{errln, outln};
use crate::cli::serve::{self, ServeArgs};

/// `imds net ...`
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Add the metadata addresses and the imds nftables tables (idempotent).
    Up(NetArgs),
    /// Remove what `up` added: its addresses, its dummy interface, the imds tables.
    Down(NetArgs),
    /// Show what is in place and what differs from the configuration.
    Status(NetArgs),
}

/// The configuration, as for `serve`.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// TOML configuration file (env IMDS_CONFIG).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

fn load(args: &NetArgs) -> Result<HostConfig, ExitCode> {
    let serve_args = ServeArgs { config: args.config.clone(), ..ServeArgs::default() };
    match serve::load(&serve_args, &|key| std::env::var(key).ok()) {
        Ok(config) => Ok(config.net),
        Err(problems) => {
            errln!("imds: invalid configuration:");
            for problem in problems {
                errln!("  - {problem}");
            }
            Err(ExitCode::from(2))
        }
    }
}

/// Runs the subcommand.
pub async fn run(command: NetCommand, global: &Global) -> ExitCode {
    let result = match command {
        NetCommand::Up(args) => match load(&args) {
            Ok(config) => up(&config).await,
            Err(code) => return code,
        },
        NetCommand::Down(args) => match load(&args) {
            Ok(_) => down().await,
            Err(code) => return code,
        },
        NetCommand::Status(args) => match load(&args) {
            Ok(config) => return status(&config, global.format(Format::Table)).await,
            Err(code) => return code,
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            errln!("imds net: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks that every exact guest interface name exists; wildcards may match nothing yet.
fn check_patterns(config: &HostConfig, links: &[link::Link]) -> Result<Vec<String>, imds_net::NetError> {
    let mut notes = Vec::new();
    for pattern in &config.guest_interfaces {
        if links.iter().any(|link| pattern.matches(&link.name)) {
            continue;
        }
        if pattern.is_wildcard() {
            notes.push(format!("net.guest_interfaces: {pattern} matches no interface yet (taps appear as VMs start)"));
        } else {
            return Err(imds_net::NetError::Config(format!(
                "net.guest_interfaces: no interface is named {pattern}; create it first or fix the name"
            )));
        }
    }
    Ok(notes)
}

async fn up(config: &HostConfig) -> Result<(), imds_net::NetError> {
    for line in apply_up(config).await? {
        outln!("{line}");
    }
    Ok(())
}

/// What `imds net up` does, returning what it did (one line each, the summary last); `serve`
/// runs it again on SIGHUP.
pub async fn apply_up(config: &HostConfig) -> Result<Vec<String>, imds_net::NetError> {
    let handle = link::connect()?;
    let links = link::links(&handle).await?;
    let mut notes = check_patterns(config, &links)?;
    if config.addresses.is_empty() {
        return Err(imds_net::NetError::Config(
            "guest.listen has no address to put on the host (only loopback or unspecified ones)".into(),
        ));
    }
    let placement = link::place(&handle, &config.interface, true).await?;
    notes.extend(placement.notes.iter().cloned());
    let bridge = match &placement.kind {
        MetadataInterface::Bridge(name) => Some(name.as_str()),
        _ => None,
    };
    // The rules first: the addresses appear only once guests are filtered.
    nft::apply(&rules::render_up(config, bridge)).await?;
    let present = link::addresses(&handle).await?;
    for ip in &config.addresses {
        if link::add_address(&handle, &placement.link, *ip, &present).await? {
            notes.push(format!("added {ip} to {}", placement.link.name));
        }
    }
    notes.push(format!(
        "imds net is up: metadata addresses on {}, nftables table inet imds{}{}",
        placement.link.name,
        if bridge.is_some() { " and bridge imds" } else { "" },
        if config.manage { " (identity rules kept by `imds serve`; until then guests are refused)" } else { "" }
    ));
    Ok(notes)
}

async fn down() -> Result<(), imds_net::NetError> {
    let had_inet = nft::show_table("inet").await?.is_some();
    let had_bridge = nft::show_table("bridge").await?.is_some();
    nft::apply(&rules::render_down()).await?;
    let handle = link::connect()?;
    let removed = link::remove_ours(&handle).await?;
    for line in &removed {
        outln!("removed {line}");
    }
    if had_inet {
        outln!("removed nftables table inet imds");
    }
    if had_bridge {
        outln!("removed nftables table bridge imds");
    }
    if removed.is_empty() && !had_inet && !had_bridge {
        outln!("nothing to remove");
    }
    Ok(())
}

async fn status(config: &HostConfig, format: Format) -> ExitCode {
    let report = match gather(config).await {
        Ok(report) => report,
        Err(error) => {
            errln!("imds net: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let drift = report["drift"].as_array().map_or(0, Vec::len);
    if format != Format::Table {
        emit(&report, format, None);
    } else {
        outln!("{:<28} {:<10} DETAIL", "WHAT", "STATE");
        for item in report["items"].as_array().into_iter().flatten() {
            outln!(
                "{:<28} {:<10} {}",
                item["what"].as_str().unwrap_or_default(),
                item["state"].as_str().unwrap_or_default(),
                item["detail"].as_str().unwrap_or_default()
            );
        }
        for line in report["drift"].as_array().into_iter().flatten() {
            outln!("drift: {}", line.as_str().unwrap_or_default());
        }
    }
    if drift == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn gather(config: &HostConfig) -> Result<serde_json::Value, imds_net::NetError> {
    use serde_json::json;
    let handle = link::connect()?;
    let links = link::links(&handle).await?;
    let addresses = link::addresses(&handle).await?;
    let placement = link::place(&handle, &config.interface, false).await?;
    let name_of = |index: u32| links.iter().find(|l| l.index == index).map_or("?".to_owned(), |l| l.name.clone());
    let mut items = Vec::new();
    let mut drift = Vec::new();
    for ip in &config.addresses {
        let found: Vec<&link::Address> = addresses.iter().filter(|a| a.ip == *ip).collect();
        match found.first() {
            Some(address) => items.push(json!({
                "what": format!("address {ip}"), "state": "present",
                "detail": format!("on {}{}", name_of(address.index), if address.ours { " (added by imds)" } else { " (not added by imds)" }),
            })),
            None => {
                items.push(json!({"what": format!("address {ip}"), "state": "missing", "detail": format!("expected on {}", placement.link.name)}));
                drift.push(format!("address {ip} is not on this host"));
            }
        }
    }
    for stray in addresses.iter().filter(|a| a.ours && !config.addresses.contains(&a.ip)) {
        drift.push(format!("address {} on {} was added by imds but is not configured", stray.ip, name_of(stray.index)));
    }
    let bridge = match &placement.kind {
        MetadataInterface::Bridge(name) => Some(name.clone()),
        _ => None,
    };
    if let Some(name) = &bridge {
        let fixed = link::bridge_mac_is_fixed(name);
        items.push(json!({
            "what": format!("bridge {name} MAC"),
            "state": match fixed { Some(true) => "fixed", Some(false) => "from ports", None => "unknown" },
            "detail": if fixed == Some(false) { "a VM joining can change the gateway's MAC: set one" } else { "" },
        }));
    }
    let expected = rules::render_up(config, bridge.as_deref());
    for family in ["inet", "bridge"] {
        let wanted = family == "inet" || bridge.is_some();
        let table = nft::list_table(family).await?;
        match (&table, wanted) {
            (Some(table), _) => {
                let chains = nft::chains(table);
                for chain in ["input", "guest", "identity", "prerouting", "ports"] {
                    let prefix = format!("add chain {family} imds {chain}");
                    if !expected.lines().any(|l| l.starts_with(&prefix)) {
                        continue;
                    }
                    let rules_wanted =
                        expected.lines().filter(|l| l.starts_with(&format!("add rule {family} imds {chain} "))).count();
                    let rules_there = nft::rule_count(table, chain);
                    let present = chains.iter().any(|c| c == chain);
                    let server_owned = chain == "identity" || chain == "ports";
                    items.push(json!({
                        "what": format!("chain {family} imds {chain}"),
                        "state": if present { "present" } else { "missing" },
                        "detail": format!("{rules_there} rules{}", if server_owned { " (kept by imds serve)" } else { "" }),
                    }));
                    if !present {
                        drift.push(format!("chain {family} imds {chain} is missing"));
                    } else if !server_owned && rules_there != rules_wanted {
                        drift.push(format!("chain {family} imds {chain} has {rules_there} rules; the configuration gives {rules_wanted}"));
                    }
                }
                let forged: u64 = nft::counters(table)
                    .iter()
                    .filter(|(_, comment, _)| comment.starts_with(rules::SPOOF_COMMENT))
                    .map(|(_, _, packets)| packets)
                    .sum();
                if forged > 0 {
                    items.push(json!({"what": format!("forged packets ({family})"), "state": "dropped", "detail": forged.to_string()}));
                }
                let over_rate: u64 = nft::counters(table)
                    .iter()
                    .filter(|(_, comment, _)| comment == rules::SYN_COMMENT)
                    .map(|(_, _, packets)| packets)
                    .sum();
                if over_rate > 0 {
                    items.push(json!({"what": format!("SYNs over a source's rate ({family})"), "state": "dropped", "detail": over_rate.to_string()}));
                }
                if !wanted {
                    drift.push(format!("table {family} imds exists but {} is not a bridge", config.interface));
                }
            }
            (None, true) => {
                items.push(json!({"what": format!("table {family} imds"), "state": "missing", "detail": ""}));
                drift.push(format!("nftables table {family} imds is missing"));
            }
            (None, false) => {}
        }
    }
    let patterns: Vec<serde_json::Value> = config
        .guest_interfaces
        .iter()
        .map(|pattern| {
            let matches: Vec<&str> = links.iter().filter(|l| pattern.matches(&l.name)).map(|l| l.name.as_str()).collect();
            items.push(json!({"what": format!("guest interfaces {pattern}"), "state": if matches.is_empty() { "none" } else { "matched" }, "detail": matches.join(" ")}));
            json!({"pattern": pattern.as_str(), "matches": matches})
        })
        .collect();
    Ok(json!({
        "interface": placement.link.name,
        "interface_kind": match placement.kind { MetadataInterface::Bridge(_) => "bridge", MetadataInterface::Dummy(_) => "dummy", MetadataInterface::Loopback => "loopback" },
        "manage": config.manage,
        "guest_interfaces": patterns,
        "items": items,
        "drift": drift,
    }))
}
