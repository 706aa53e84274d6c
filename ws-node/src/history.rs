//! Past events, for resuming with `since` and for filling gaps: the
//! recent-event store in Redis first, the PostgreSQL outbox (the truth,
//! which keeps at least the last 1,000 events or 24 hours per user) when
//! Redis lacks them.

use deadpool_postgres::Pool;
use shared::redis_conn::RedisConn;
use shared::redis_keys::RedisKeys;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

/// Reads a user's event history.
#[derive(Clone)]
pub struct History {
    pool: Pool,
    redis: RedisConn,
    keys: RedisKeys,
}

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// PostgreSQL is unreachable.
    #[error("database unavailable: {0}")]
    Database(String),
}

fn db_err(err: impl std::fmt::Display) -> HistoryError {
    HistoryError::Database(err.to_string())
}

impl History {
    /// History over these stores.
    pub fn new(pool: Pool, redis: RedisConn, keys: RedisKeys) -> Self {
        Self { pool, redis, keys }
    }

    /// The user's latest committed seq (0 when none).
    pub async fn latest_seq(&self, user: Uuid) -> Result<i64, HistoryError> {
        let client = self.pool.get().await.map_err(db_err)?;
        let row = client
            .query_opt("SELECT event_seq FROM users WHERE id = $1", &[&user])
            .await
            .map_err(db_err)?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// Latest seqs of many users in one query.
    pub async fn latest_seqs(&self, users: &[Uuid]) -> Result<Vec<(Uuid, i64)>, HistoryError> {
        let client = self.pool.get().await.map_err(db_err)?;
        let rows = client
            .query(
                "SELECT id, event_seq FROM users WHERE id = ANY($1)",
                &[&users],
            )
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The events with `after < seq <= upto`, in order; `None` when some of
    /// them are no longer kept anywhere.
    pub async fn between(
        &self,
        user: Uuid,
        after: i64,
        upto: i64,
    ) -> Result<Option<Vec<Utf8Bytes>>, HistoryError> {
        if upto <= after {
            return Ok(Some(Vec::new()));
        }
        let wanted = (upto - after) as usize;
        let range = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.user_recent_events(user))
            .arg(format!("({after}"))
            .arg(upto)
            .to_owned();
        if let Ok(events) = self.redis.cmd::<Vec<String>>(&range).await {
            if events.len() == wanted {
                return Ok(Some(events.into_iter().map(Utf8Bytes::from).collect()));
            }
        }
        let client = self.pool.get().await.map_err(db_err)?;
        let rows = client
            .query(
                "SELECT payload FROM task_events WHERE user_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
                &[&user, &after, &upto],
            )
            .await
            .map_err(db_err)?;
        if rows.len() != wanted {
            return Ok(None);
        }
        Ok(Some(
            rows.into_iter()
                .map(|row| Utf8Bytes::from(row.get::<_, String>(0)))
                .collect(),
        ))
    }
}
