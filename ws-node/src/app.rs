//! Building and running a ws-node: [`Application::build`] binds (port 0 in
//! tests) and starts the broker and revocation feeds;
//! [`Application::run_until_stopped`] serves until shutdown, then closes
//! every socket with 1001 so clients resume elsewhere.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use shared::background::Background;
use shared::redis_conn::{RedisConn, RedisTarget};
use shared::redis_keys::RedisKeys;
use shared::revocation::{self, Revocations};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::fanout::Fanout;
use crate::history::History;
use crate::hub::Hub;
use crate::protocol::close;
use crate::state::NodeState;
use crate::user_sockets::UserSockets;
use crate::{broker, front};

/// A node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: Arc<NodeState>,
    /// The broker, the revocation feeds, gap fills: stopped and awaited
    /// once the sockets are closed.
    background: Background,
}

/// How long shutdown waits for the background tasks once sockets are closed.
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

impl Application {
    /// Connects lazily, binds, and starts the background tasks.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = shared::prometheus::handle();
        crate::metrics::register();
        crate::metrics::record_max_connections(config.max_connections);
        let pool = shared::postgres::pool(
            &config.database_url,
            config.db_pool_size,
            config.db_timeout,
            "ws-node",
        )?;
        let redis_target = RedisTarget::parse(&config.redis_url)?;
        let redis = RedisConn::new(&redis_target, Duration::from_millis(500))?;
        let keys = RedisKeys::new(config.redis_namespace.clone());
        let history = History::new(pool.clone(), redis.clone(), keys.clone());
        let (interest_tx, interest_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(config.queue_len, interest_tx));
        let background = Background::new();
        let fanout = Fanout::new(hub.clone(), history.clone(), background.clone());
        let revocations = Arc::new(Revocations::default());

        revocation::load(&revocations, &pool, config.db_timeout).await;
        revocation::spawn_sync(
            revocations.clone(),
            pool.clone(),
            redis_target.clone(),
            keys.clone(),
            &background,
        );
        background.spawn(shared::health::run(
            pool.clone(),
            redis.clone(),
            background.stopping(),
        ));
        background.spawn(close_revoked(
            hub.clone(),
            revocations.clone(),
            revocations.subscribe(),
            background.stopping(),
        ));
        background.spawn(broker::run(
            redis_target,
            redis.clone(),
            keys,
            Arc::new(fanout),
            interest_rx,
            background.clone(),
        ));

        let listener = TcpListener::bind(config.listen_addr).await?;
        let state = Arc::new(NodeState {
            user_sockets: UserSockets::new(config.max_sockets_per_user),
            config,
            hub,
            history,
            revocations,
            pool,
            redis,
            metrics,
        });
        Ok(Self {
            listener,
            state,
            background,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .expect("BUG: a bound listener has an address")
            .port()
    }

    /// Serves until `shutdown` completes; then stops accepting, closes every
    /// socket with 1001 and waits (up to the grace period) for them to go.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "ws-node listening");
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = shared::node_http::accept(&self.listener) => accepted,
                _ = &mut shutdown => break,
            };
            let state = self.state.clone();
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(front::handle(state, req).await) }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "http connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let hub = &self.state.hub;
        tracing::info!(
            connections = hub.open_connections(),
            "shutting down: closing sockets with 1001"
        );
        hub.close_all(close::GOING_AWAY);
        let deadline = tokio::time::Instant::now() + self.state.config.shutdown_grace;
        while hub.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.background.shutdown(BACKGROUND_GRACE).await;
        Ok(())
    }
}

/// Closes the sockets of each token as its revocation becomes known. A
/// listener that fell behind (more revocations at once than the channel
/// holds) has lost some announcements: it then checks every open socket
/// against the whole set, which holds every revocation it missed.
async fn close_revoked(
    hub: Arc<Hub>,
    revocations: Arc<Revocations>,
    mut revoked: broadcast::Receiver<uuid::Uuid>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            jti = revoked.recv() => match jti {
                Ok(jti) => hub.close_token(jti, close::TOKEN),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let tokens = hub.close_revoked(|jti| revocations.is_revoked(jti), close::TOKEN);
                    tracing::warn!(missed, tokens, "revocations lagged; every socket re-checked");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = stop.cancelled() => return,
        }
    }
}
