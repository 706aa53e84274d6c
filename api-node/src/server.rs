//! The accept loop: HTTP/1.1 with keep-alive, a cap on open connections, a
//! header read timeout, and a graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::service::handle;
use crate::state::AppState;

/// Serves until `shutdown` completes, then stops accepting and waits (up to
/// the configured grace) for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let config = &state.config;
    // Each open connection holds a permit: past the cap, new clients wait
    // in the kernel's backlog instead of exhausting memory or descriptors.
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let grace = config.shutdown_grace;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("BUG: the connection semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = shared::node_http::accept(&listener) => accepted,
            _ = &mut shutdown => break,
        };
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            // An error (a body that timed out) closes the connection.
            async move { handle(state, req, peer).await }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    // Lame duck: refuse new connections (a balancer's connect fails, so it
    // safely tries another node, even for a POST), and answer every request
    // still arriving on open connections with `Connection: close`. Idle
    // keep-alive connections are left for their client to close (nginx
    // drops idle upstream connections after 5 s): closing them here could
    // race a request the client is sending at that moment, which it could
    // not safely retry.
    drop(listener);
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    tracing::info!("shutting down: draining in-flight requests");
    let deadline = tokio::time::Instant::now() + grace;
    let idle_wait = tokio::time::Instant::now() + grace.min(LAME_DUCK);
    while connections.available_permits() < config.max_connections
        && tokio::time::Instant::now() < idle_wait
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep_until(deadline) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// How long a stopping node keeps idle connections open for their clients
/// to close: longer than nginx's upstream keep-alive timeout.
const LAME_DUCK: Duration = Duration::from_secs(6);
