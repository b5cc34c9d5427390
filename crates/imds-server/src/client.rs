//! A minimal HTTP/1.1 client for the admin API (over TCP or a Unix socket) and for tests.
//!
//! One request per connection, whole bodies in memory: the admin API's payloads are small and
//! the CLI makes a handful of calls. Tests use [`Client::from_source`] to call the guest plane
//! from a chosen source address, as a VM would.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a request failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where we tried.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("request to {endpoint} failed: {message}")]
    Http {
        /// Where.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// No answer in time.
    #[error("no answer from {endpoint} within {timeout:?}")]
    Timeout {
        /// Where.
        endpoint: String,
        /// The limit.
        timeout: Duration,
    },
}

/// An HTTP client bound to one server.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    source: Option<IpAddr>,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A client for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint, source: None, token: None, timeout: Duration::from_secs(30) }
    }

    /// A TCP client whose connections leave from `source` (tests acting as a guest).
    pub fn from_source(server: SocketAddr, source: IpAddr) -> Self {
        Self { source: Some(source), ..Self::new(Endpoint::Tcp(server)) }
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Overall time limit of one request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where this client connects.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A GET.
    pub async fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Response, ClientError> {
        let endpoint = self.describe();
        let body = body.into();
        let exchange = self.exchange(method, path, headers, body);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { endpoint, timeout: self.timeout }),
        }
    }

    fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(addr) => format!("http://{addr}"),
            Endpoint::Unix(path) => path.display().to_string(),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let endpoint = self.describe();
        let http_error = |message: String| ClientError::Http { endpoint: endpoint.clone(), message };
        let mut request = Request::builder().method(method).uri(path);
        let host = match &self.endpoint {
            Endpoint::Tcp(addr) => addr.to_string(),
            Endpoint::Unix(_) => "localhost".to_owned(),
        };
        request = request.header(http::header::HOST, host);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value).map_err(|e| http_error(e.to_string()))?);
        }
        let request = request.body(Full::new(body)).map_err(|e| http_error(e.to_string()))?;
        let response = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let stream = self
                    .connect_tcp(*addr)
                    .await
                    .map_err(|source| ClientError::Connect { endpoint: endpoint.clone(), source })?;
                round_trip(TokioIo::new(stream), request).await
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| ClientError::Connect { endpoint: endpoint.clone(), source })?;
                round_trip(TokioIo::new(stream), request).await
            }
        };
        response.map_err(http_error)
    }

    async fn connect_tcp(&self, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        let Some(source) = self.source else {
            return tokio::net::TcpStream::connect(addr).await;
        };
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(addr).await
    }
}

async fn round_trip<S>(io: TokioIo<S>, request: Request<Full<Bytes>>) -> Result<Response, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    driver.abort();
    Ok(Response { status: parts.status, headers: parts.headers, body })
}
