//! Building and running a node: [`Application::build`] binds the listener
//! (port 0 in tests) and starts the background tasks;
//! [`Application::run_until_stopped`] serves until a shutdown signal.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use shared::redis_keys::RedisKeys;
use shared::revocation::{self, Revocations};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::TaskCache;
use crate::config::Config;
use crate::domain::list_query::CursorKey;
use crate::passwords::Passwords;
use crate::publisher::{self, Publisher};
use crate::state::AppState;
use crate::{db, relay, server};
use shared::redis_conn::RedisConn;

/// A node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    /// Tells the background tasks (relay, revocation feeds) to stop.
    stop: watch::Sender<bool>,
}

impl Application {
    /// Connects (lazily: the node starts even if PostgreSQL or Redis is
    /// down, and `/readyz` says so), binds and starts background tasks.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = shared::prometheus::handle();
        crate::metrics::register();
        let pool = db::pool(&config.database_url, config.db_pool_size, config.db_timeout)?;
        let redis_client = redis::Client::open(config.redis_url.as_str())?;
        let redis = RedisConn::new(redis_client.clone(), config.redis_timeout)?;
        let keys = RedisKeys::new(config.redis_namespace.clone());
        let cache = TaskCache::new(
            redis.clone(),
            keys.clone(),
            config.cache_ttl.as_millis() as u64,
        );
        let (publisher, published) = Publisher::new(redis.clone(), keys.clone(), cache.clone());
        let revocations = Arc::new(Revocations::default());
        let (stop, stopped) = watch::channel(false);

        revocation::load(&revocations, &pool, config.db_timeout).await;
        revocation::spawn_sync(
            revocations.clone(),
            pool.clone(),
            redis_client,
            keys.clone(),
            stopped.clone(),
        );
        tokio::spawn(publisher::run_marker(pool.clone(), published));
        tokio::spawn(publisher.clone().run_retries());
        let limit_window = config
            .email_limit
            .window
            .max(config.client_limit.window)
            .max(config.register_limit.window);
        tokio::spawn(relay::run(
            pool.clone(),
            publisher.clone(),
            config.relay_interval,
            config.relay_grace,
            limit_window,
            stopped,
        ));

        let listener = TcpListener::bind(config.listen_addr).await?;
        let passwords = Passwords::new(config.hash_concurrency, config.hash_queue_len);
        let cursor_key = CursorKey::new(config.jwt.derive_key(CursorKey::PURPOSE));
        let state = Arc::new(AppState {
            config,
            pool,
            redis,
            keys,
            revocations,
            passwords,
            cache,
            publisher,
            metrics,
            cursor_key,
            draining: AtomicBool::new(false),
        });
        Ok(Self {
            listener,
            state,
            stop,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .expect("BUG: a bound listener has an address")
            .port()
    }

    /// Serves until `shutdown` completes, drains, and stops the background
    /// tasks.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "api-node listening");
        server::serve(self.listener, self.state, shutdown).await;
        let _ = self.stop.send(true);
        Ok(())
    }
}
