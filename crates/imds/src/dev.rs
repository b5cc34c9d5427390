//! `--dev`: a demo instance for the loopback addresses and the curl lines to try.

use imds_model::{Instance, Limits};

use crate::cli::out::announce;
use imds_server::records;
use imds_server::server::Running;
use imds_store::{Expect, Put, Store, StoreError};
use serde_json::json;

/// The demo instance's id.
pub const DEMO_ID: &str = "i-0123456789abcdef0";

/// The demo instance: what a small EC2 VM in us-east-1 looks like, bound to 127.0.0.1 and ::1.
pub fn demo_instance() -> Instance {
    let doc = json!({
        "id": DEMO_ID,
        "name": "imds-demo",
        "hostname": "imds-demo",
        "domain": "ec2.internal",
        "ipv4": ["127.0.0.1"],
        "ipv6": ["::1"],
        "mac": ["02:00:00:00:00:01"],
        "region": "us-east-1",
        "zone": "us-east-1a",
        "instance_type": "t3.micro",
        "image_id": "ami-0abcdef1234567890",
        "launch_index": 0,
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRoaXMtaXMtdGhlLWRlbW8ta2V5LW9mLWltZHMtZGV2 demo@imds"],
        "tags": {"Name": "imds-demo", "env": "dev"},
        "user_data": "#cloud-config\nhostname: imds-demo\n"
    });
    Instance::parse(&doc, &Limits::default()).expect("the demo instance is valid")
}

/// Creates the demo instance unless it exists; leaves it alone when an address is taken.
pub async fn ensure_demo_instance(store: &dyn Store) -> Result<(), StoreError> {
    let instance = demo_instance();
    let put = Put {
        key: records::instance(&instance.id),
        node: None,
        claims: instance.claims(),
        value: instance.to_bytes(),
        expect: Expect::Absent,
    };
    match store.put(put).await {
        Ok(written) => {
            tracing::info!(id = DEMO_ID, rev = %written.rev, "created the demo instance");
            Ok(())
        }
        Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(StoreError::ClaimConflict { claim, holder }) => {
            tracing::warn!(%claim, %holder, "not creating the demo instance: another instance has its address");
            Ok(())
        }
        Err(other) => Err(other),
    }
}

/// Schedules a spot interruption (terminate) of the demo instance `seconds` from now
/// (`--spot-in`), through the same event-list update the admin API uses. Spot interruptions an
/// earlier start scheduled and that are not over are canceled: the new one is what shows.
pub async fn schedule_spot(store: &std::sync::Arc<dyn Store>, seconds: u64) -> anyhow::Result<()> {
    let now = imds_creds::Clock::system().now();
    let request = json!({"kind": "spot-interruption", "in_seconds": seconds});
    let spec =
        imds_model::EventSpec::parse(&request, now, &[]).map_err(|invalid| anyhow::anyhow!("--spot-in: {invalid}"))?;
    let event = spec.into_event(imds_server::events::random_id(), now);
    let id = imds_model::InstanceId::try_from(DEMO_ID).expect("the demo id is valid");
    let (event_id, at) = (event.id.clone(), event.not_before);
    // Before the server starts: no other writer of this process to take turns with.
    let writers = imds_store::update::Lanes::default();
    imds_server::events::modify(store, &writers, &id, Vec::new, |list: &mut imds_model::InstanceEvents| {
        for old in &mut list.events {
            let spot = matches!(old.kind, imds_model::EventKind::SpotInterruption { .. });
            if spot && matches!(old.state_at(now), imds_model::EventState::Scheduled | imds_model::EventState::Active) {
                old.canceled_at = Some(now);
            }
        }
        let added = list.push(event.clone(), now);
        list.settle(now);
        Ok::<_, StoreError>((added, ()))
    })
    .await?;
    tracing::info!(event = %event_id, at = %imds_model::time::format_rfc3339(at), "scheduled the demo spot interruption");
    Ok(())
}

/// Prints the commands to try against a `--dev` server.
pub fn print_tour(running: &Running) {
    let Some(guest) = running.guest_addrs.iter().find(|a| a.is_ipv4()).or(running.guest_addrs.first()) else {
        return;
    };
    announce!();
    announce!("Try:");
    announce!("  curl http://{guest}/latest/meta-data/");
    announce!("  curl http://{guest}/latest/meta-data/instance-id");
    announce!("  curl http://{guest}/latest/user-data");
    announce!("  curl http://{guest}/latest/meta-data/spot/instance-action");
    if let Some(admin) = running.admin_addr {
        announce!("  curl http://{admin}/v1/instances/{DEMO_ID}");
        announce!("  curl -X PATCH -H 'Content-Type: application/merge-patch+json' -d '{{\"hostname\":\"renamed\"}}' http://{admin}/v1/instances/{DEMO_ID}");
        announce!("  IMDS_ADMIN=http://{admin} imds instance ls");
        announce!("  IMDS_ADMIN=http://{admin} imds event add {DEMO_ID} --kind spot-interruption --in 2m");
    }
}
