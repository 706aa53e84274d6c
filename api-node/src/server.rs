//! The accept loop: HTTP/1.1 with keep-alive, a cap on open connections, an
//! idle timeout that also bounds slow headers, and a graceful drain on
//! shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

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
    let open = OpenConnections::default();
    let mut builder = http1::Builder::new();
    // No hyper timer: its header read timeout costs a boxed timer per
    // request; `Activity::idle_for` bounds slow headers per connection
    // instead.
    builder.keep_alive(true);
    let idle_timeout = config.header_read_timeout;
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
        let activity = Arc::new(Activity::default());
        let connection = Arc::new(Connection {
            state: state.clone(),
            activity: activity.clone(),
        });
        let service = service_fn(move |req| {
            let connection = connection.clone();
            connection.activity.started.fetch_add(1, Ordering::Relaxed);
            // An error (a body that timed out) closes the connection.
            async move {
                let answered = handle(&connection.state, req, peer).await;
                connection.activity.finished.fetch_add(1, Ordering::Relaxed);
                answered
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let (id, finish) = open.add();
        // Ending in any way, aborted included: the connection leaves the
        // map and gives its permit back.
        let ended_guard = Ended {
            open: open.clone(),
            id,
            _permit: permit,
        };
        let serving = tokio::spawn(async move {
            let _ended = ended_guard;
            tokio::pin!(connection);
            let ended = tokio::select! {
                biased;
                ended = connection.as_mut() => ended,
                _ = finish => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
        // Its own task: polled by its timer only, not on every request.
        // Aborting the connection's task drops (closes) the connection, as
        // hyper's own header timeout would.
        let abort = serving.abort_handle();
        tokio::spawn(async move {
            if activity.idle_for(idle_timeout, &abort).await {
                abort.abort();
            }
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
    // Then every connection finishes its request in flight and closes; an
    // idle one closes at once. All permits back = all connections ended.
    open.finish_all();
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = connections.acquire_many(all) => tracing::info!("all connections drained"),
        _ = tokio::time::sleep_until(deadline) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// How long a stopping node keeps idle connections open for their clients
/// to close: longer than nginx's upstream keep-alive timeout.
const LAME_DUCK: Duration = Duration::from_secs(6);

/// The open connections' finish signals. Each connection waits on a
/// one-shot receiver of its own: a lock-free check when its task runs,
/// where one channel shared by all (hyper-util's `GracefulShutdown`) took
/// a lock on every poll of every connection, a few percent of a cached
/// read's CPU (loadtest/NOTES.md). The map's lock is taken only when a
/// connection opens or closes.
#[derive(Clone, Default)]
struct OpenConnections(Arc<Mutex<Open>>);

#[derive(Default)]
struct Open {
    next_id: u64,
    finish: HashMap<u64, oneshot::Sender<()>>,
}

impl OpenConnections {
    /// A new connection's id and the receiver that tells it to finish.
    fn add(&self) -> (u64, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut open = self.lock();
        let id = open.next_id;
        open.next_id += 1;
        open.finish.insert(id, tx);
        (id, rx)
    }

    fn remove(&self, id: u64) {
        self.lock().finish.remove(&id);
    }

    /// Tells every open connection to finish.
    fn finish_all(&self) {
        for (_, tx) in self.lock().finish.drain() {
            let _ = tx.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Nothing panics while holding it; a poisoned map is still sound.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes an ended connection from the map; its permit goes with it.
struct Ended {
    open: OpenConnections,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.open.remove(self.id);
    }
}

/// What one connection's requests share. A request clones this `Arc`,
/// which only its own connection touches, instead of the node-wide
/// state's, whose reference count every request on every core would
/// otherwise bounce between the cores' caches.
struct Connection {
    state: Arc<AppState>,
    /// Shared with the idle check's task, which must not keep the node's
    /// state alive after the connection ended.
    activity: Arc<Activity>,
}

/// What a connection's requests have done, for its idle timeout: how many
/// reached the service (their head was read whole) and how many it has
/// answered. Two uncontended atomic adds per request.
#[derive(Default)]
struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
}

impl Activity {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.started.load(Ordering::Relaxed),
            self.finished.load(Ordering::Relaxed),
        )
    }

    /// Whether the connection has been idle for at least `timeout` (at
    /// most 1.5 × it), checked until its task `serving` ends (then false):
    /// no request in the service, and none read whole or answered
    /// meanwhile. That covers a client that never completes its
    /// headers (`HEADER_READ_TIMEOUT_SECS`), an idle keep-alive connection
    /// (hyper's header timeout closed those too), and a client that stops
    /// reading its response. A request the service is working on, its body
    /// included (that has its own deadline), never counts as idle.
    async fn idle_for(&self, timeout: Duration, serving: &AbortHandle) -> bool {
        let mut tick = tokio::time::interval(timeout / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let (mut seen, mut quiet) = (self.snapshot(), 0);
        loop {
            tick.tick().await;
            if serving.is_finished() {
                return false;
            }
            let now = self.snapshot();
            if now == seen && now.0 == now.1 {
                quiet += 1;
                if quiet == 2 {
                    return true;
                }
            } else {
                (seen, quiet) = (now, 0);
            }
        }
    }
}
