//! Azure's WireServer listener (`[guest] azure_wireserver_listen`, off by default): the goal
//! state and health report of [`imds_dialects::azure::wireserver`], for the caller the guest
//! plane admits (the same identification, registration hold and throttle budget; see
//! [`routers`](super::routers)). Nothing else is served there.

use http::Method;

use imds_dialects::azure::wireserver;

use super::{admit, into_http, Admitted, Arrival, Arrived, Note, Plane, Refusals, Request, Response};

/// Answers one WireServer request for the caller the guest plane identifies.
pub(super) async fn answer(plane: &Plane, request: Request, arrival: Arrival) -> Response {
    // The WireServer's requests show in the connection metrics only: the note is not counted.
    let mut note = Note::new(request.uri().path(), &plane.settings);
    let Some(arrived) = Arrived::new(request, &arrival, None) else {
        return Arrived::no_peer();
    };
    let admitted = admit(plane, arrived, Refusals::Status, &mut note).await;
    let Admitted { request, is_head, entry, .. } = match admitted {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let response = wireserver::respond(&entry.instance, &request);
    if request.method == Method::POST {
        match wireserver::health_report(&request.body) {
            Some(report) => tracing::info!(
                id = %entry.instance.id,
                state = %report.state,
                substatus = report.substatus.as_deref().unwrap_or(""),
                description = report.description.as_deref().unwrap_or(""),
                status = response.status.as_u16(),
                "azure health report"
            ),
            None => {
                tracing::info!(id = %entry.instance.id, status = response.status.as_u16(), "azure health report unreadable")
            }
        }
    } else {
        tracing::debug!(id = %entry.instance.id, path = %request.path, status = response.status.as_u16(), "WireServer request");
    }
    into_http(response, is_head)
}
