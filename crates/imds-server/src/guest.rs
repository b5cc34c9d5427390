//! The guest plane: what VMs reach at `169.254.169.254`.
//!
//! For every request: identify the caller by its source address ([`identify`]), pick its
//! instance from the current view snapshot, hand `(&Instance, &GuestRequest)` to the dialect
//! router in `imds-dialects`, write the bytes. No store access, no lock, no await on the way.
//! An unknown caller gets no instance's data.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::header::{CONTENT_LENGTH, SERVER};
use http::{HeaderValue, Method};
use imds_dialects::{GuestRequest, GuestResponse};

use crate::listener::Peer;
use crate::view::View;

pub mod identify;
pub mod token;

/// The guest plane's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Addresses to listen on (production: `169.254.169.254:80`).
    pub listen: Vec<SocketAddr>,
}

impl Default for Config {
    /// `169.254.169.254:80`, where every cloud image looks.
    fn default() -> Self {
        Self { listen: vec![SocketAddr::from(([169, 254, 169, 254], 80))] }
    }
}

/// The guest router: every path is answered from the current view snapshot.
pub fn router(view: View) -> Router {
    Router::new().fallback(move |request: Request| {
        let view = view.clone();
        async move { answer(&view, request) }
    })
}

/// Answers one guest request from the current snapshot.
fn answer(view: &View, request: Request) -> Response {
    let Some(caller) = request.extensions().get::<Peer>().and_then(identify::caller_ip) else {
        // Guests only ever arrive over TCP; a request without a peer address is a wiring bug.
        tracing::error!("guest request without a TCP peer address");
        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let is_head = request.method() == Method::HEAD;
    let (parts, _body) = request.into_parts();
    let snapshot = view.load();
    let response = match snapshot.by_ip(caller) {
        Some(entry) => {
            let guest_request =
                GuestRequest { method: parts.method, path: parts.uri.path().to_owned(), headers: parts.headers };
            imds_dialects::route(&entry.instance, &guest_request)
        }
        None => {
            tracing::debug!(%caller, "guest request from an unknown address");
            imds_dialects::unknown_caller(caller)
        }
    };
    into_http(response, is_head, caller)
}

fn into_http(response: GuestResponse, is_head: bool, caller: IpAddr) -> Response {
    let length = response.body.len();
    let mut builder = Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    // AWS sends `Server: EC2ws` and always a Content-Length (clients read whole bodies).
    builder = builder.header(SERVER, HeaderValue::from_static("EC2ws")).header(CONTENT_LENGTH, length);
    let body = if is_head { Body::empty() } else { Body::from(response.body) };
    builder.body(body).unwrap_or_else(|error| {
        tracing::error!(%caller, %error, "dialect produced an invalid response");
        http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
    })
}
