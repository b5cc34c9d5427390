//! `[net] manage = true`: the per-instance identity rules of the host's `imds` nftables tables,
//! kept equal to the view.
//!
//! [`follow`] renders every instance with `host_interfaces` into chain `inet imds identity` (and
//! `bridge imds ports` on a bridged host) with `imds_net::rules::render_identity` and applies it
//! as one `nft -f` transaction whenever the bindings change, so an instance added, moved or
//! deleted changes its rules before the admin write that did it returns (`View::wait_for` waits
//! for the rules too). Rules fail closed: until the first
//! apply, and for interfaces no instance holds, the base chains `imds net up` made drop what
//! reaches the metadata addresses. Every two seconds it reads the counters of the drop rules and
//! logs forged traffic, naming the instance whose interface sent it.

use std::collections::HashMap;
use std::time::Duration;

use imds_net::rules::{self, Binding};
use tokio_util::sync::CancellationToken;

use crate::view::{Snapshot, View};

/// What the server keeps in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The bridge holding the metadata addresses, when the host is bridged.
    pub bridge: Option<String>,
}

/// Why `serve` with `manage` cannot start.
pub async fn check_tables(config: &Config) -> Result<(), String> {
    let missing = |family: &str| {
        format!("[net] manage is on but nftables table {family} imds is missing: run `imds net up` with the same configuration first")
    };
    match imds_net::nft::list_table("inet").await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(missing("inet")),
        Err(error) => return Err(error.to_string()),
    }
    if config.bridge.is_some() && !matches!(imds_net::nft::list_table("bridge").await, Ok(Some(_))) {
        return Err(missing("bridge"));
    }
    Ok(())
}

/// The bindings of every instance with host interfaces, sorted by id.
pub fn bindings(snapshot: &Snapshot) -> Vec<Binding> {
    let mut bindings: Vec<Binding> = snapshot
        .entries()
        .map(|entry| &entry.instance)
        .filter(|instance| {
            !instance.host_interfaces.is_empty() || !instance.ipv4.is_empty() || !instance.ipv6.is_empty()
        })
        .map(|instance| Binding {
            instance: instance.id.to_string(),
            interfaces: instance.host_interfaces.clone(),
            macs: instance.mac.iter().map(|mac| mac.octets()).collect(),
            ipv4: instance.ipv4.clone(),
            ipv6: instance.ipv6.clone(),
        })
        .collect();
    bindings.sort_by(|a, b| a.instance.cmp(&b.instance));
    bindings
}

/// Keeps the identity rules equal to the view until `shutdown`. Call
/// [`View::gate_on_datapath`] first so that admin writes wait for their rules.
pub async fn follow(view: View, config: Config, shutdown: CancellationToken) {
    let mut reached = view.subscribe();
    let mut applied: Option<Vec<Binding>> = None;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut owners: HashMap<String, (String, Vec<String>)> = HashMap::new();
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let snapshot = view.load();
        let rev = snapshot.rev();
        let wanted = bindings(&snapshot);
        drop(snapshot);
        if applied.as_ref() != Some(&wanted) {
            let script = rules::render_identity(&wanted, config.bridge.as_deref());
            match imds_net::nft::apply(&script).await {
                Ok(()) => {
                    tracing::info!(
                        instances = wanted.iter().filter(|b| !b.interfaces.is_empty()).count(),
                        "identity rules applied"
                    );
                    owners = wanted
                        .iter()
                        .map(|b| (rules::spoof_comment(&b.instance), (b.instance.clone(), b.interfaces.clone())))
                        .collect();
                    // Replaced rules start counting from zero.
                    seen.clear();
                    applied = Some(wanted);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot apply the identity rules; guests keep the previous rules (or none: fail closed); retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
        }
        // Admin writes of `rev` return now (View::wait_for waits for this).
        view.datapath_applied(rev);
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = reached.changed() => if changed.is_err() { return },
            _ = poll.tick() => report_forgeries(&config, &owners, &mut seen).await,
        }
    }
}

/// Logs the drop counters that grew since the last look.
async fn report_forgeries(
    config: &Config,
    owners: &HashMap<String, (String, Vec<String>)>,
    seen: &mut HashMap<String, u64>,
) {
    let families = ["inet"].into_iter().chain(config.bridge.as_ref().map(|_| "bridge"));
    let mut totals: HashMap<String, u64> = HashMap::new();
    for family in families {
        match imds_net::nft::list_table(family).await {
            Ok(Some(table)) => {
                for (_, comment, packets) in imds_net::nft::counters(&table) {
                    if comment.starts_with(rules::SPOOF_COMMENT) {
                        *totals.entry(comment).or_default() += packets;
                    }
                }
            }
            Ok(None) => tracing::error!(family, "nftables table imds is gone: run `imds net up`"),
            Err(error) => tracing::warn!(%error, "cannot read the identity rules' counters"),
        }
    }
    for (comment, total) in totals {
        let before = seen.insert(comment.clone(), total).unwrap_or(0);
        if total > before {
            let (instance, interfaces) = owners.get(&comment).cloned().unwrap_or_default();
            tracing::warn!(
                instance = %instance,
                interfaces = %interfaces.join(","),
                packets = total - before,
                "dropped packets from the instance's host interface carrying another MAC or address (forged source)"
            );
        }
    }
}
