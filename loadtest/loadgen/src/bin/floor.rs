//! The floor for any HTTP route: a minimal hyper server (HTTP/1.1,
//! keep-alive, the same runtime as the api-node) answering every request
//! with a fixed JSON body the size of a task. The bench measures it in the
//! same run as the api-node, so the api-node's figures are ratios to what
//! this machine can do at all.
//!
//! `floor [ADDR]` (default 127.0.0.1:18999).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &str = r#"{"id":"6f1c1b7e-4a39-4c55-9d0e-0c3f8f7a2b11","userId":"0b6f0e84-9d45-4a0e-8a53-3c2f0a1d9e77","title":"Task Title","description":"Task Description","status":"TODO","priority":1,"version":1,"createdAt":"2026-11-26T21:30:00.123Z","updatedAt":"2026-11-26T21:30:00.123Z"}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18999".into());
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
