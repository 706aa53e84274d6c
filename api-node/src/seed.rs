//! `api-node seed`: demo users with a few tasks. Safe to repeat: a user
//! that exists already is left as it is.

use crate::cache::TaskCache;
use crate::config::Config;
use crate::db::{self, users, DbError};
use crate::domain::task_input::NewTask;
use crate::passwords::Passwords;
use crate::publisher::Publisher;
use crate::task_writes;
use shared::redis_conn::{RedisConn, RedisTarget};
use shared::redis_keys::RedisKeys;

/// The demo login the README names.
pub const DEMO_USERS: &[(&str, &str)] = &[
    ("demo@example.com", "Demo User"),
    ("alice@example.com", "Alice Example"),
];
/// Every demo user's password.
pub const DEMO_PASSWORD: &str = "demo-password";

const DEMO_TASKS: &[(&str, &str, i64)] = &[
    ("Try the API", "TODO", 5),
    ("Open two WebSocket clients", "IN_PROGRESS", 8),
    ("Read the README", "DONE", 2),
];

/// Loads the demo data.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let pool = db::pool(&config.database_url, 2, config.db_timeout)?;
    let redis = RedisConn::new(
        &RedisTarget::parse(&config.redis_url)?,
        config.redis_timeout,
    )?;
    let keys = RedisKeys::new(config.redis_namespace.clone());
    let cache = TaskCache::new(
        redis.clone(),
        keys.clone(),
        config.cache_ttl.as_millis() as u64,
    );
    let (publisher, _published) = Publisher::new(redis, keys, cache);
    // One at a time, so the queue never fills.
    let passwords = Passwords::new(1, DEMO_USERS.len());
    for (email, name) in DEMO_USERS {
        let hash = passwords.hash(DEMO_PASSWORD.to_owned()).await?;
        let client = pool.get().await?;
        let user = match users::insert(&client, email, name, &hash).await {
            Ok(user) => user,
            Err(DbError::EmailTaken) => {
                tracing::info!(email, "demo user exists; left as it is");
                continue;
            }
            Err(err) => anyhow::bail!("seeding {email}: {err}"),
        };
        drop(client);
        for (title, status, priority) in DEMO_TASKS {
            let body =
                serde_json::json!({ "title": title, "status": status, "priority": priority });
            let new = NewTask::parse(body.as_object().cloned().unwrap_or_default())
                .map_err(|err| anyhow::anyhow!("BUG: demo task is invalid: {err}"))?;
            task_writes::create(&pool, &publisher, user.id, new)
                .await
                .map_err(|err| anyhow::anyhow!("seeding tasks: {err}"))?;
        }
        tracing::info!(email, "demo user created");
    }
    Ok(())
}
