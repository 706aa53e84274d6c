//! Past events, for resuming with `since` and for filling gaps: the
//! recent-event store in Redis first, the PostgreSQL outbox (the truth,
//! which keeps at least the last 1,000 events or 24 hours per user) when
//! Redis lacks them.
//!
//! Past events are only ever read a page at a time ([`History::pages`]):
//! at most [`PAGE`] events per query, and the caller sends a page on before
//! it asks for the next. Whatever a user's history holds, one replay or gap
//! fill holds at most one page in memory (events are at most ~11 KB of
//! ASCII, ~40 KB at four bytes a character, so ~1.1 MB, at worst ~4 MB).

use deadpool_postgres::Pool;
use shared::redis_conn::RedisConn;
use shared::redis_keys::RedisKeys;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

/// The contract's resume window in events: a resume, or a gap, of more
/// than this many events is not replayed (the client resyncs).
pub const RESUME_WINDOW: i64 = 1_000;

/// The most events one query reads.
pub const PAGE: i64 = 100;

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
    /// Some of the events asked for are no longer kept anywhere.
    #[error("events no longer kept")]
    Gone,
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

    /// The events with `after < seq <= upto`, in order, read one page at a
    /// time as the caller asks for them.
    pub fn pages(&self, user: Uuid, after: i64, upto: i64) -> Pages<'_> {
        Pages {
            history: self,
            user,
            next: Pager { after, upto },
        }
    }

    /// Exactly the events `after < seq <= upto` (at most [`PAGE`] of them),
    /// in order; [`HistoryError::Gone`] when some are no longer kept.
    async fn page(
        &self,
        user: Uuid,
        after: i64,
        upto: i64,
    ) -> Result<Vec<Utf8Bytes>, HistoryError> {
        let wanted = (upto - after) as usize;
        // A seq is one event, so the range alone bounds the reply; the
        // LIMIT says so to the reader and to Redis.
        let range = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.user_recent_events(user))
            .arg(format!("({after}"))
            .arg(upto)
            .arg("LIMIT")
            .arg(0)
            .arg(wanted)
            .to_owned();
        if let Ok(events) = self.redis.cmd::<Vec<String>>(&range).await {
            if events.len() == wanted {
                return Ok(events.into_iter().map(Utf8Bytes::from).collect());
            }
        }
        let client = self.pool.get().await.map_err(db_err)?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT payload FROM task_events
                         WHERE user_id = $1 AND seq > $2 AND seq <= $3
                         ORDER BY seq LIMIT $4",
                    )
                    .await
                    .map_err(db_err)?,
                &[&user, &after, &upto, &(wanted as i64)],
            )
            .await
            .map_err(db_err)?;
        if rows.len() != wanted {
            return Err(HistoryError::Gone);
        }
        Ok(rows
            .into_iter()
            .map(|row| Utf8Bytes::from(row.get::<_, String>(0)))
            .collect())
    }
}

/// A replay in progress: see [`History::pages`].
pub struct Pages<'a> {
    history: &'a History,
    user: Uuid,
    next: Pager,
}

impl Pages<'_> {
    /// The next page (1 to [`PAGE`] events, in seq order), `None` once
    /// every event has been read. On an error the replay is over: what was
    /// read before it stands, nothing after it follows.
    pub async fn next(&mut self) -> Result<Option<Vec<Utf8Bytes>>, HistoryError> {
        let Some((after, upto)) = self.next.take() else {
            return Ok(None);
        };
        match self.history.page(self.user, after, upto).await {
            Ok(page) => Ok(Some(page)),
            Err(err) => {
                self.next = Pager::done();
                Err(err)
            }
        }
    }
}

/// Cuts `after < seq <= upto` into consecutive ranges of at most [`PAGE`].
#[derive(Debug, Clone, Copy)]
struct Pager {
    after: i64,
    upto: i64,
}

impl Pager {
    fn done() -> Self {
        Self { after: 0, upto: 0 }
    }

    /// The next range `(after, upto)`, if any is left.
    fn take(&mut self) -> Option<(i64, i64)> {
        if self.upto <= self.after {
            return None;
        }
        let from = self.after;
        self.after = self.upto.min(from + PAGE);
        Some((from, self.after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(after: i64, upto: i64) -> Vec<(i64, i64)> {
        let mut pager = Pager { after, upto };
        std::iter::from_fn(|| pager.take()).collect()
    }

    #[test]
    fn a_replay_is_cut_into_pages_of_at_most_page_events_covering_it_exactly() {
        for (after, upto) in [
            (0, 1_000),
            (7, 1_007),
            (41, 300),
            (5, 6),
            (0, 100),
            (0, 101),
        ] {
            let pages = ranges(after, upto);
            assert!(
                pages.iter().all(|(a, u)| u > a && u - a <= PAGE),
                "{pages:?}"
            );
            assert_eq!(pages.first().unwrap().0, after);
            assert_eq!(pages.last().unwrap().1, upto);
            assert!(pages.windows(2).all(|w| w[0].1 == w[1].0), "{pages:?}");
        }
        assert_eq!(ranges(0, 1_000).len(), 10);
        assert_eq!(ranges(0, 101), [(0, 100), (100, 101)]);
    }

    #[test]
    fn nothing_to_replay_is_no_page() {
        assert!(ranges(5, 5).is_empty());
        assert!(ranges(9, 5).is_empty());
    }
}
