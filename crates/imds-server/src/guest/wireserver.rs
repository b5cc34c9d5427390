//! Azure's WireServer listener (`[guest] azure_wireserver_listen`, off by default): the goal
//! state and health report of [`imds_dialects::azure::wireserver`], for the caller identified as
//! on the guest plane (same view, same throttle budget). Nothing else is served there.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::Method;
use http_body_util::BodyExt;

use imds_dialects::azure::wireserver;
use imds_dialects::GuestRequest;

use super::throttle::Throttle;
use super::{elapsed_nanos, identify, into_http, MAX_BODY};
use crate::listener::Peer;
use crate::view::View;

struct Wire {
    view: View,
    throttle: Throttle,
    clock: tokio::time::Instant,
}

/// The WireServer router.
pub fn router(view: View, config: &super::Config) -> Router {
    let wire = Arc::new(Wire { view, throttle: config.throttle, clock: tokio::time::Instant::now() });
    Router::new().fallback(move |request: Request| {
        let wire = Arc::clone(&wire);
        async move { answer(&wire, request).await }
    })
}

async fn answer(wire: &Wire, request: Request) -> Response {
    let Some(caller) = request.extensions().get::<Peer>().and_then(identify::caller_ip) else {
        tracing::error!("WireServer request without a TCP peer address");
        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let is_head = request.method() == Method::HEAD;
    let (parts, body) = request.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return http::StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let snapshot = wire.view.load();
    let Some(entry) = snapshot.by_ip(caller) else {
        tracing::debug!(%caller, "WireServer request from an unknown address");
        return http::StatusCode::FORBIDDEN.into_response();
    };
    if !entry.throttle.try_take(wire.throttle, elapsed_nanos(wire.clock)) {
        return http::StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let request = GuestRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        bound: None,
        source_port: None,
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
    into_http(response, is_head, caller)
}
