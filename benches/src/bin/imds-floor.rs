//! The framework floor: a minimal hyper HTTP/1 server on tokio that answers every request with
//! the same bytes. What no server built on this stack can beat; imds is compared against it.
//!
//! Usage: `imds-floor ADDR FILE` (serves FILE's bytes as `text/plain`).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(file)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: imds-floor ADDR FILE");
    };
    let body = Bytes::from(std::fs::read(&file)?);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let body = Arc::new(body);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let body = Arc::clone(&body);
        tokio::spawn(async move {
            let service = service_fn(move |_request: Request<hyper::body::Incoming>| {
                let body = Bytes::clone(&body);
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/plain")
                            .body(Full::new(body))
                            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
                    )
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
