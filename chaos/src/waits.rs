//! Waiting for state, each wait bounded: sockets subscribed, caught up with
//! PostgreSQL, moved off a node.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;
use uuid::Uuid;

use crate::db::Db;
use crate::sockets::{lock, Link, Shared, Sockets};
use crate::workload::User;

/// Until every socket is subscribed and has the latest seq of its user as
/// PostgreSQL had it when this began.
pub async fn caught_up(
    sockets: &Sockets,
    db: &Db,
    users: &[User],
    deadline: Instant,
) -> anyhow::Result<()> {
    all_subscribed(&sockets.all(), deadline).await?;
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let latest = loop {
        match db.latest_seqs(&ids).await {
            Ok(latest) => break latest,
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    loop {
        let behind: Vec<String> = sockets
            .all()
            .iter()
            .filter_map(|s| {
                let log = lock(s);
                let want = latest.get(&users[log.user].id).copied().unwrap_or(0);
                let have = log.last_seq().unwrap_or(-1);
                (log.link != Link::Subscribed || have < want).then(|| {
                    format!(
                        "socket {} (user {}, ws-node-{}) at {have} of {want}",
                        log.id,
                        log.user,
                        log.node + 1
                    )
                })
            })
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} sockets not caught up: {}",
                behind.len(),
                behind
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Until each of `sockets` has its `SUBSCRIBED` on its current connection.
pub async fn all_subscribed(sockets: &[Shared], deadline: Instant) -> anyhow::Result<()> {
    loop {
        let waiting: Vec<String> = sockets
            .iter()
            .filter_map(|s| {
                let log = lock(s);
                (log.link != Link::Subscribed).then(|| {
                    format!(
                        "socket {} ({:?} on ws-node-{}{})",
                        log.id,
                        log.link,
                        log.node + 1,
                        log.last_connect_error
                            .as_ref()
                            .map_or(String::new(), |e| format!(", last error: {e}"))
                    )
                })
            })
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} sockets not subscribed: {}",
                waiting.len(),
                waiting
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ws-node holding the most subscribed sockets (ties: the first).
pub fn busiest_ws_node(sockets: &Sockets) -> usize {
    let mut count = [0usize; 2];
    for s in sockets.all() {
        let log = lock(&s);
        if log.link == Link::Subscribed {
            count[log.node] += 1;
        }
    }
    usize::from(count[1] > count[0])
}

/// Sockets subscribed on `node` now.
pub fn sockets_on(sockets: &Sockets, node: usize) -> Vec<Shared> {
    sockets
        .all()
        .into_iter()
        .filter(|s| {
            let log = lock(s);
            log.node == node && log.link == Link::Subscribed
        })
        .collect()
}

/// Until each of `sockets` is subscribed on a node other than `node`.
pub async fn moved_off(
    sockets: &[Shared],
    node: usize,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let left = sockets
            .iter()
            .filter(|s| {
                let log = lock(s);
                log.node == node || log.link != Link::Subscribed
            })
            .count();
        if left == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= within {
            bail!(
                "{left} of {} sockets did not resume on the other node",
                sockets.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
