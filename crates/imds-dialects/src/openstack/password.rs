//! `password`: the write-once secret a guest posts (cloudbase-init posts the admin password
//! encrypted with the instance's SSH key), kept as guest-owned state under
//! `openstack.password`, so an admin replace of the record keeps it.
//!
//! As Nova: `GET` answers the stored text, empty before a write; `POST` stores its body (at most
//! 1020 bytes, else 400) and answers an empty 200, or 409 once a password is stored; an empty
//! body stores nothing; any other method is 400. Nova keeps the password as text: a body that is
//! not UTF-8 is a 400 here.

use http::{Method, StatusCode};
use imds_model::StateWrite;
use serde_json::Value;

use super::{error, wire};
use crate::{GuestRequest, GuestResponse, Subject};

/// The dialect's member in the guest state, and the key under it.
const DIALECT: &str = "openstack";

/// Answers `/openstack/<version>/password`.
pub(crate) fn respond(subject: &Subject<'_>, request: &GuestRequest) -> GuestResponse {
    let stored = subject.state.get(DIALECT, &[wire::PASSWORD]).and_then(Value::as_str);
    match request.method {
        Method::GET => GuestResponse::new(StatusCode::OK, wire::TEXT_PLAIN, stored.unwrap_or("").to_owned()),
        Method::POST => {
            if stored.is_some_and(|password| !password.is_empty()) {
                return conflict();
            }
            if request.body.len() > wire::PASSWORD_MAX_BYTES {
                return error(StatusCode::BAD_REQUEST, wire::TOO_LARGE);
            }
            let Ok(password) = std::str::from_utf8(&request.body) else {
                return error(StatusCode::BAD_REQUEST, wire::NOT_UTF8);
            };
            let written = GuestResponse::new(StatusCode::OK, wire::TEXT_HTML, "");
            if password.is_empty() {
                return written;
            }
            let write = StateWrite {
                dialect: DIALECT.to_owned(),
                path: vec![wire::PASSWORD.to_owned()],
                value: Some(Value::String(password.to_owned())),
                only_if_absent: true,
            };
            written.with_write(write, conflict())
        }
        _ => error(StatusCode::BAD_REQUEST, wire::GET_AND_POST_ONLY),
    }
}

fn conflict() -> GuestResponse {
    error(StatusCode::CONFLICT, wire::CONFLICT)
}
