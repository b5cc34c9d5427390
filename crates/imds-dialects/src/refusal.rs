//! Refusals: the answers a request gets before any dialect reads an instance's data, in the
//! shape of the dialect the request speaks.
//!
//! Three things refuse a request whatever it asks: its source address matches no instance
//! ([`Refusal::UnknownCaller`]), its instance is over its request budget
//! ([`Refusal::Throttled`]), or its instance's metadata endpoint is switched off
//! (`imds.endpoint: disabled`, [`Refusal::Disabled`]). The router picks the dialect first (from
//! the path, or MMDS for an instance whose MMDS is configured), then [`refuse`] renders the
//! refusal as that dialect's real service would, so clients that tell "not here" from "broken"
//! (SDK credential chains, cloud-init's retry rules) take the path they take on the real cloud:
//!
//! | dialect | unknown caller | disabled | throttled |
//! |---|---|---|---|
//! | EC2 | 403, text naming the address | 403 EC2 page | 429 EC2 page |
//! | MMDS | — (chosen only for a known instance) | 404 `Resource not found: <path>.` | 429 text |
//! | GCE | 404 Google page | 403 Google page | 429 Google page |
//! | Azure | 404 `{"error":"Not found"}`; token: 400 `Identity not found` | same as unknown | 429 `{"error":"Too many requests"}` |
//! | OpenStack | 404 Nova page | 403 WebOb page | 429 WebOb page |
//! | DigitalOcean, Hetzner | 404 `404 page not found` | 403 `Forbidden` | 429 `Too Many Requests` |
//! | NoCloud | 404 `404 Not Found` | 403 `403 Forbidden` | 429 `429 Too Many Requests` |
//! | Alibaba, Tencent | 404 HTML page | 403 HTML page | 429 HTML page |
//! | Vultr, UpCloud | as DigitalOcean | as DigitalOcean | as DigitalOcean |
//! | Linode | 404 `{"errors":[{"reason":"Not found"}]}` | 403 `…"Forbidden"…` | 429 `…"Too Many Requests"…` |
//! | Scaleway | 404 `Not Found` | 403 `Forbidden` | 429 `Too Many Requests` |
//! | Exoscale | 404 Apache page | 403 Apache page | 429 Apache page |
//! | Exoscale's password server | 200 `saved_password` (no password) | same | 429 text |
//!
//! A request on a listener bound to a dialect the instance has not enabled
//! ([`Refusal::NotServed`]) gets that dialect's unknown-caller answer (EC2's: its not-found page).
//!
//! None of them carries any instance's data. GCE's ping (`/` with `Metadata-Flavor: Google`) is
//! EC2's path, so a refused ping lacks the flavor header and google-auth concludes it is not on
//! GCE; Azure's token endpoint answers as for a VM without identity, which azure-identity's
//! chain takes as "unavailable, try the next credential".

use http::StatusCode;
use serde_json::json;

use crate::{Dialect, GuestRequest, GuestResponse};

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No instance is registered for this source address.
    UnknownCaller(std::net::IpAddr),
    /// The instance is over its request budget.
    Throttled,
    /// The instance's metadata endpoint is switched off (`imds.endpoint: disabled`).
    Disabled,
    /// The request arrived on a listener bound to a dialect the instance has not enabled: that
    /// dialect's not-found answer, as if the service were not there.
    NotServed,
}

/// `refusal` of `request`, in the shape of `dialect`.
pub fn refuse(dialect: Dialect, request: &GuestRequest, refusal: Refusal) -> GuestResponse {
    match dialect {
        Dialect::Ec2 => ec2(refusal),
        Dialect::Mmds => mmds(request, refusal),
        Dialect::Gce => gce(request, refusal),
        Dialect::Azure => azure(request, refusal),
        Dialect::OpenStack => openstack(refusal),
        Dialect::DigitalOcean | Dialect::Hetzner | Dialect::Vultr | Dialect::UpCloud => go_text(refusal),
        Dialect::NoCloud => nocloud(refusal),
        Dialect::Alibaba | Dialect::Tencent => html_page(refusal),
        Dialect::Linode => linode(refusal),
        Dialect::Scaleway => scaleway(refusal),
        Dialect::Exoscale => exoscale(request, refusal),
    }
}

/// Linode answers errors as JSON: `{"errors": [{"reason": …}]}`.
fn linode(refusal: Refusal) -> GuestResponse {
    let reason = match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => "Not found",
        Refusal::Disabled => "Forbidden",
        Refusal::Throttled => "Too Many Requests",
    };
    GuestResponse::new(
        status_of(refusal, StatusCode::NOT_FOUND),
        "application/json",
        crate::linode::wire::error(reason),
    )
}

fn scaleway(refusal: Refusal) -> GuestResponse {
    let body = match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => "Not Found\n",
        Refusal::Disabled => "Forbidden\n",
        Refusal::Throttled => "Too Many Requests\n",
    };
    text(status_of(refusal, StatusCode::NOT_FOUND), body)
}

/// Exoscale's metadata is the virtual router's Apache (its error pages); its password server
/// (the listener bound to it) tells a VM it has no password to fetch with `saved_password`,
/// which cloud-init takes as "no password".
fn exoscale(request: &GuestRequest, refusal: Refusal) -> GuestResponse {
    use crate::exoscale::wire;
    if request.bound == Some(Dialect::Exoscale) {
        return match refusal {
            Refusal::Throttled => text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"),
            _ => GuestResponse::new(StatusCode::OK, wire::TEXT, wire::SAVED_PASSWORD),
        };
    }
    match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => crate::exoscale::not_found(&request.path),
        Refusal::Disabled => GuestResponse::new(
            StatusCode::FORBIDDEN,
            wire::TEXT_HTML,
            wire::error_page("403 Forbidden", "You don't have permission to access this resource."),
        ),
        Refusal::Throttled => GuestResponse::new(
            StatusCode::TOO_MANY_REQUESTS,
            wire::TEXT_HTML,
            wire::error_page("429 Too Many Requests", "The user has sent too many requests in a given amount of time."),
        ),
    }
}

fn ec2(refusal: Refusal) -> GuestResponse {
    use crate::ec2::wire;
    let response = match refusal {
        // A 404 with EC2's not-found page would make a misconfigured guest believe it runs
        // outside any cloud; a 403 whose body names the address tells the operator what to
        // register.
        Refusal::UnknownCaller(caller) => GuestResponse::new(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            format!("imds: no instance is registered for source address {caller}\n"),
        ),
        Refusal::Disabled => {
            GuestResponse::new(StatusCode::FORBIDDEN, wire::TEXT_HTML, wire::error_page("403 - Forbidden"))
        }
        Refusal::NotServed => return crate::ec2_shaped(crate::ec2::not_found()),
        Refusal::Throttled => GuestResponse::new(
            StatusCode::TOO_MANY_REQUESTS,
            wire::TEXT_HTML,
            wire::error_page("429 - Too Many Requests"),
        ),
    };
    crate::ec2_shaped(response)
}

fn mmds(request: &GuestRequest, refusal: Refusal) -> GuestResponse {
    use crate::mmds::wire;
    match refusal {
        Refusal::Throttled => GuestResponse::new(StatusCode::TOO_MANY_REQUESTS, wire::TEXT_PLAIN, "Too many requests."),
        // Firecracker has no "forbidden": what it does not serve is not found.
        Refusal::UnknownCaller(_) | Refusal::Disabled | Refusal::NotServed => {
            let raw = match &request.query {
                Some(query) => format!("{}?{query}", request.path),
                None => request.path.clone(),
            };
            GuestResponse::new(StatusCode::NOT_FOUND, wire::TEXT_PLAIN, wire::not_found(&raw))
        }
    }
}

fn gce(request: &GuestRequest, refusal: Refusal) -> GuestResponse {
    let path = crate::gce::wire::escape(&request.path);
    match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => crate::gce::error(
            StatusCode::NOT_FOUND,
            "Not Found",
            &format!("The requested URL <code>{path}</code> was not found on this server."),
        ),
        Refusal::Disabled => crate::gce::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("Your client does not have permission to get URL <code>{path}</code> from this server."),
        ),
        Refusal::Throttled => crate::gce::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "The metadata server is receiving too many requests from this VM.",
        ),
    }
}

fn azure(request: &GuestRequest, refusal: Refusal) -> GuestResponse {
    use crate::azure::wire;
    let json = |status: StatusCode, body: serde_json::Value| GuestResponse::new(status, wire::JSON, body.to_string());
    let identity = request.path.starts_with("/metadata/identity");
    match refusal {
        Refusal::Throttled => json(StatusCode::TOO_MANY_REQUESTS, json!({"error": "Too many requests"})),
        // What Azure answers a VM that has no managed identity: credential chains move on.
        Refusal::UnknownCaller(_) | Refusal::Disabled | Refusal::NotServed if identity => json(
            StatusCode::BAD_REQUEST,
            json!({"error": wire::OAUTH_INVALID_REQUEST, "error_description": wire::IDENTITY_NOT_FOUND}),
        ),
        Refusal::UnknownCaller(_) | Refusal::Disabled | Refusal::NotServed => {
            json(StatusCode::NOT_FOUND, json!({"error": wire::NOT_FOUND}))
        }
    }
}

fn openstack(refusal: Refusal) -> GuestResponse {
    let page = match refusal {
        // Nova answers an address it knows no instance for with its 404.
        Refusal::UnknownCaller(_) | Refusal::NotServed => crate::openstack::wire::NOT_FOUND,
        Refusal::Disabled => ("403 Forbidden", "Access was denied to this resource."),
        Refusal::Throttled => {
            ("429 Too Many Requests", "The client has sent too many requests in a given amount of time.")
        }
    };
    crate::openstack::error(status_of(refusal, StatusCode::NOT_FOUND), page)
}

/// DigitalOcean's and Hetzner's servers answer errors as Go's `net/http` does.
fn go_text(refusal: Refusal) -> GuestResponse {
    let body = match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => "404 page not found\n",
        Refusal::Disabled => "Forbidden\n",
        Refusal::Throttled => "Too Many Requests\n",
    };
    text(status_of(refusal, StatusCode::NOT_FOUND), body)
}

fn nocloud(refusal: Refusal) -> GuestResponse {
    let body = match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => "404 Not Found\n",
        Refusal::Disabled => "403 Forbidden\n",
        Refusal::Throttled => "429 Too Many Requests\n",
    };
    text(status_of(refusal, StatusCode::NOT_FOUND), body)
}

/// Alibaba's and Tencent's HTML pages (403 for a switched-off endpoint, as Alibaba's
/// `HttpEndpoint: disabled`).
fn html_page(refusal: Refusal) -> GuestResponse {
    let title = match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => "404 Not Found",
        Refusal::Disabled => "403 Forbidden",
        Refusal::Throttled => "429 Too Many Requests",
    };
    GuestResponse::new(
        status_of(refusal, StatusCode::NOT_FOUND),
        crate::alibaba::wire::TEXT_HTML,
        crate::alibaba::wire::error_page(title),
    )
}

fn text(status: StatusCode, body: &'static str) -> GuestResponse {
    GuestResponse::new(status, "text/plain; charset=utf-8", body)
}

/// The status of a refusal whose unknown-caller form is `unknown`.
fn status_of(refusal: Refusal, unknown: StatusCode) -> StatusCode {
    match refusal {
        Refusal::UnknownCaller(_) | Refusal::NotServed => unknown,
        Refusal::Disabled => StatusCode::FORBIDDEN,
        Refusal::Throttled => StatusCode::TOO_MANY_REQUESTS,
    }
}
