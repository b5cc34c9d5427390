//! Long polls (GCE's `?wait_for_change=true`): hold a guest request until what it renders
//! changes, or until its timeout.
//!
//! The waiter subscribes to its instance's change signal ([`Changes`](crate::view::changes::Changes))
//! *before* its first render, then renders again on every signal from the current snapshot and
//! answers as soon as the answer's `ETag` differs from the one the guest named (`last_etag`; or,
//! without one, from the first answer's). A change elsewhere in the instance wakes the waiter,
//! re-renders an identical answer and puts it back to sleep; changes to other instances never
//! wake it. An instance with events is also woken at the next moment its events change what
//! guests see (a notice appearing, a spot time arriving). No timer ticks and no store reads: an idle waiter is a parked future holding its
//! request and a channel receiver. A guest that disconnects drops the future, which drops its
//! subscription.

use std::net::IpAddr;
use std::time::Duration;

use http::{header, StatusCode};
use imds_dialects::gce::Wait;
use imds_dialects::{GuestRequest, GuestResponse};
use imds_model::InstanceId;

use super::{render_for, Plane};

/// Answers `request` (a long poll for instance `id` from `caller`) when its answer changes or
/// `wait` times out.
pub(super) async fn hold(
    plane: &Plane,
    caller: IpAddr,
    id: &InstanceId,
    request: &GuestRequest,
    wait: Wait,
) -> GuestResponse {
    let _waiting = plane.observe.metrics.long_poll();
    let mut subscription = plane.view.changes().subscribe(id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.timeout_secs);
    let mut response = render_for(plane, &plane.view.load(), caller, id, request);
    let Some(current) = etag(&response) else {
        // Errors (and anything without an ETag) answer at once.
        return response;
    };
    let target = wait.last_etag.unwrap_or(current.clone());
    if current != target {
        return response;
    }
    let clock = plane.credentials.0.clock();
    loop {
        // What the instance's events show changes with the clock too: wake at the next change.
        let next_change = plane.view.load().events(id).and_then(|events| events.list.next_change(clock.now()));
        let timed = async {
            match next_change {
                Some(at) => tokio::time::sleep_until(clock.instant_at(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = subscription.changed() => {}
            () = timed => {}
            () = tokio::time::sleep_until(deadline) => return response,
        }
        let next = render_for(plane, &plane.view.load(), caller, id, request);
        if etag(&next).is_none_or(|tag| tag != target) {
            return next;
        }
        response = next;
    }
}

/// The ETag of a 200 answer.
fn etag(response: &GuestResponse) -> Option<String> {
    if response.status != StatusCode::OK {
        return None;
    }
    response.header(&header::ETAG).and_then(|value| value.to_str().ok()).map(str::to_owned)
}
