//! The values a dialect exchanges with the server: the [`GuestRequest`] it reads and the
//! [`GuestResponse`] it answers, which may carry a [`GuestWrite`] for the server to apply.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use imds_model::{Dialect, EventId, StateWrite};

/// What a dialect sees of a guest's HTTP request.
#[derive(Debug, Clone)]
pub struct GuestRequest {
    /// The request method.
    pub method: Method,
    /// The raw path, without the query string, exactly as sent (no percent-decoding).
    pub path: String,
    /// The raw query string (after `?`, not decoded), if the request had one.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body (empty for `GET`; the server bounds its size).
    pub body: Bytes,
    /// The dialect the listener the request arrived on is bound to (`[guest.dialect_listen]`),
    /// if any: then that dialect answers every path, and nothing else does.
    pub bound: Option<Dialect>,
    /// The TCP source port the guest connected from, when the connection is the guest's own
    /// (`None` behind a trusted proxy, whose port says nothing of the guest). Scaleway serves
    /// user data only to privileged ports (below 1024).
    pub source_port: Option<u16>,
}

impl GuestRequest {
    /// A request with no headers and no body; `target` is the path with an optional `?query`.
    pub fn new(method: Method, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (target, None),
        };
        Self {
            method,
            path: path.to_owned(),
            query,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            bound: None,
            source_port: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Marks the request as arrived on a listener bound to `dialect`.
    pub fn on_listener_of(mut self, dialect: Dialect) -> Self {
        self.bound = Some(dialect);
        self
    }

    /// Sets the TCP source port the guest connected from.
    pub fn from_port(mut self, port: u16) -> Self {
        self.source_port = Some(port);
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A guest's write to its instance's [`GuestState`](imds_model::GuestState), carried by the response that acknowledges
/// it. The server applies `write` atomically in the store and sends the carrying response; when
/// `write.only_if_absent` finds a value already set it sends `conflict` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestWrite {
    /// The change.
    pub write: StateWrite,
    /// The answer when the value is already set (write-once values).
    pub conflict: GuestResponse,
}

/// What a dialect answers: sent to the guest as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResponse {
    /// The status code.
    pub status: StatusCode,
    /// Headers, `Content-Type` included; `Content-Length` is added by the server.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body bytes.
    pub body: Bytes,
    /// The IP TTL (IPv6 hop limit) the response must leave with; `None` for the system default.
    /// EC2 limits its token replies this way so that they die one hop too far from the VM.
    pub hop_limit: Option<u8>,
    /// A write to apply before this response is sent.
    pub write: Option<Box<GuestWrite>>,
    /// Events of the instance a guest starts now (Azure's scheduled-event approval): the
    /// server records it in each event before this response is sent.
    pub start_events: Vec<EventId>,
}

impl GuestResponse {
    /// A response with one `Content-Type` header (and room for the few a dialect adds).
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = Vec::with_capacity(4);
        headers.push((http::header::CONTENT_TYPE, HeaderValue::from_static(content_type)));
        Self { status, headers, body: body.into(), hop_limit: None, write: None, start_events: Vec::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Attaches a guest write the server applies before sending this response.
    pub fn with_write(mut self, write: StateWrite, conflict: GuestResponse) -> Self {
        self.write = Some(Box::new(GuestWrite { write, conflict }));
        self
    }

    /// Asks the server to start the instance's events `ids` before sending this response.
    pub fn with_start_events(mut self, ids: Vec<EventId>) -> Self {
        self.start_events = ids;
        self
    }

    /// The first value of header `name`, if the response has it.
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}
