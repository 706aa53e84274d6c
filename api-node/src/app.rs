//! Building and running a node: [`Application::build`] binds the listener
//! (port 0 in tests) and starts the background tasks;
//! [`Application::run_until_stopped`] serves until a shutdown signal.

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use shared::background::Background;
use shared::redis_keys::RedisKeys;
use shared::revocation::{self, Revocations};
use tokio::net::TcpListener;

use crate::cache::TaskCache;
use crate::config::Config;
use crate::domain::list_query::CursorKey;
use crate::passwords::Passwords;
use crate::publisher::{self, Publisher};
use crate::state::AppState;
use crate::{db, relay, server};
use shared::redis_conn::{RedisConn, RedisTarget};

/// A node, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    /// The relay, the revocation feeds, the dependency check and the
    /// publisher's helpers.
    background: Background,
}

/// How long shutdown waits for the background tasks once requests are done.
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

impl Application {
    /// Connects (lazily: the node starts even if PostgreSQL or Redis is
    /// down, and `/readyz` says so), binds and starts background tasks.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = shared::prometheus::handle();
        crate::metrics::register();
        let pool = db::pool(&config.database_url, config.db_pool_size, config.db_timeout)?;
        let redis_target = RedisTarget::parse(&config.redis_url)?;
        let redis = RedisConn::new(&redis_target, config.redis_timeout)?
            .waiting_for_replicas(config.redis_wait_replicas);
        let keys = RedisKeys::new(config.redis_namespace.clone());
        let cache = TaskCache::new(
            redis.clone(),
            keys.clone(),
            config.cache_ttl.as_millis() as u64,
        );
        let (publisher, published) = Publisher::new(redis.clone(), keys.clone(), cache.clone());
        let revocations = Arc::new(Revocations::default());
        let background = Background::new();

        revocation::load(&revocations, &pool, config.db_timeout).await;
        revocation::spawn_sync(
            revocations.clone(),
            pool.clone(),
            redis_target,
            keys.clone(),
            &background,
        );
        // These two end by themselves once the node's last handle on the
        // publisher is gone (after the relay has stopped).
        background.spawn(publisher::run_marker(pool.clone(), published));
        background.spawn(publisher.clone().run_retries());
        let limit_window = config
            .email_limit
            .window
            .max(config.client_limit.window)
            .max(config.register_limit.window);
        background.spawn(shared::health::run(
            pool.clone(),
            redis.clone(),
            background.stopping(),
        ));
        background.spawn(relay::run(
            pool.clone(),
            publisher.clone(),
            config.relay_interval,
            config.relay_grace,
            limit_window,
            background.stopping(),
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

    /// Serves until `shutdown` completes, drains, and stops the background
    /// tasks.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "api-node listening");
        server::serve(self.listener, self.state, shutdown).await;
        self.background.shutdown(BACKGROUND_GRACE).await;
        Ok(())
    }
}
