//! The floors for any HTTP route: a minimal hyper server (HTTP/1.1,
//! keep-alive, the same runtime as the api-node). The bench measures them
//! in the same run as the api-node, so the api-node's figures are ratios to
//! what this machine can do at all.
//!
//! - `floor [ADDR]` (default 127.0.0.1:18999) answers every request with a
//!   fixed JSON body the size of a task.
//! - `floor ADDR REDIS_URL` is the **cached-read floor**: each request does
//!   one Redis GET through the same `redis` crate and the same multiplexed
//!   `ConnectionManager` as the api-node, and answers with the value (the
//!   same task JSON, stored once at start-up). No auth, no routing, no
//!   metrics: no design with a shared cache can answer a read faster.
//! - `floor ADDR REDIS_URL PAD` is that floor padded: `PAD` iterations of
//!   busy work per request before the GET (a multiply-add the compiler
//!   cannot drop, ~9 instructions each). Padded to the api-node's count of
//!   instructions per read, it tells what those extra instructions alone
//!   cost in throughput and p99, apart from how the node is built.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use redis::aio::ConnectionManager;
use tokio::net::TcpListener;

const BODY: &str = r#"{"id":"6f1c1b7e-4a39-4c55-9d0e-0c3f8f7a2b11","userId":"0b6f0e84-9d45-4a0e-8a53-3c2f0a1d9e77","title":"Task Title","description":"Task Description","status":"TODO","priority":1,"version":1,"createdAt":"2026-11-26T21:30:00.123Z","updatedAt":"2026-11-26T21:30:00.123Z"}"#;
const KEY: &str = "floor:{cached-read}:task";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18999".into());
    let redis = match args.next() {
        Some(url) => {
            let mut conn = ConnectionManager::new(redis::Client::open(url)?).await?;
            redis::cmd("SET")
                .arg(KEY)
                .arg(BODY)
                .query_async::<()>(&mut conn)
                .await?;
            Some(conn)
        }
        None => None,
    };
    let pad: u64 = args.next().map_or(Ok(0), |n| n.parse())?;
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let redis = redis.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let redis = redis.clone();
                async move {
                    busy(pad);
                    let body = match redis {
                        Some(mut conn) => {
                            let value: Option<Vec<u8>> = redis::cmd("GET")
                                .arg(KEY)
                                .query_async(&mut conn)
                                .await
                                .unwrap_or_default();
                            Bytes::from(value.unwrap_or_default())
                        }
                        None => Bytes::from_static(BODY.as_bytes()),
                    };
                    let mut response = Response::new(Full::new(body));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `iterations` rounds of work that cannot be optimised away.
fn busy(iterations: u64) {
    let mut x = 0_u64;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    std::hint::black_box(x);
}
