//! The faults, one phase each, injected in turn while the workload runs.
//! Every phase waits for the state it needs (a node's `/readyz`, every
//! socket's `SUBSCRIBED`, every socket caught up with PostgreSQL's latest
//! seqs) with a bound, never for a fixed time; the fixed pauses are the
//! faults' own lengths and the traffic kept between them.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;
use uuid::Uuid;

use crate::cluster::{Cluster, Kind, READY_TIMEOUT};
use crate::db::Db;
use crate::now_ms;
use crate::phase::{fault, secs, secs_of, Allowed, Phase};
use crate::sockets::{lock, Shared, Sockets};
use crate::waits::{all_subscribed, busiest_ws_node, caught_up, moved_off, sockets_on};
use crate::workload::{User, Workload};

/// How long the system may take to be whole again after a fault.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Traffic before each fault, and after the system settled.
const CALM: Duration = Duration::from_millis(1500);
/// The user whose sockets meet on a node in fault h.
const MEETING_USER: usize = 0;
/// The user whose many sockets reconnect at once in fault i.
const CROWD_USER: usize = 1;
/// How many sockets that user opens.
const CROWD: usize = 30;

/// What a phase works with.
pub struct Run<'a> {
    /// The processes.
    pub cluster: &'a mut Cluster,
    /// The writers.
    pub workload: &'a Workload,
    /// The sockets.
    pub sockets: &'a Sockets,
    /// The truth.
    pub db: &'a Db,
    /// The users.
    pub users: &'a [User],
    /// `CHAOS_PG_STOP`, `CHAOS_PG_START`.
    pub pg_stop: &'a str,
    /// See `pg_stop`.
    pub pg_start: &'a str,
}

impl Run<'_> {
    /// Runs the fault-free start, then each fault in `keys`. A fault that
    /// cannot be carried out (a node does not come back) ends the run there,
    /// with a failed check saying why.
    pub async fn all(&mut self, keys: &[char]) -> Vec<Phase> {
        let mut phases = Vec::new();
        let mut start = Phase::new(
            '0',
            "none (start of the run)",
            "no request fails",
            Allowed::Nothing,
        );
        self.workload.set_phase(0);
        tokio::time::sleep(CALM * 2).await;
        start.notes.push("steady traffic, no fault".into());
        phases.push(start);
        for &key in keys {
            self.workload.set_phase(phases.len());
            let allowed = match key {
                'a' | 'b' => Allowed::NoAnswerFrom(0),
                'f' => Allowed::Unavailable,
                _ => Allowed::Nothing,
            };
            let mut phase = fault(key, allowed);
            eprintln!("[chaos] fault {key}: {}", phase.title);
            tokio::time::sleep(CALM).await;
            let result = match key {
                'a' => self.kill_api_node(&mut phase).await,
                'b' => self.kill_between_commit_and_publish(&mut phase).await,
                'c' => self.kill_ws_node(&mut phase).await,
                'd' => self.drain_ws_node(&mut phase).await,
                'e' => self.kill_redis(&mut phase).await,
                'f' => self.restart_postgres(&mut phase).await,
                'g' => self.freeze_ws_node(&mut phase).await,
                'h' => self.meet_on_a_node(&mut phase).await,
                'i' => self.crowd_reconnects(&mut phase).await,
                _ => unreachable!("BUG: settings accept a to i only"),
            };
            let result = match result {
                Ok(()) => self.settle(&mut phase).await,
                Err(err) => Err(err),
            };
            let failed = result.is_err();
            phase.check(
                "fault carried out and system whole again",
                !failed,
                match result {
                    Ok(()) => format!(
                        "every node ready, every socket subscribed and caught up {} after the fault",
                        secs(phase.settled_ms)
                    ),
                    Err(err) => format!("{err:#}"),
                },
            );
            if !failed {
                tokio::time::sleep(CALM).await;
            }
            phases.push(phase);
            if failed {
                eprintln!("[chaos] fault {key} failed; stopping the run here");
                break;
            }
        }
        phases
    }

    /// Until every node is ready, every socket subscribed, and every socket
    /// has every event up to the latest seqs read at that point.
    async fn settle(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        self.cluster.wait_all_ready(SETTLE_TIMEOUT).await?;
        caught_up(self.sockets, self.db, self.users, deadline).await?;
        if let Some(fault) = phase.fault_ms {
            phase.settled_ms = Some(now_ms() - fault);
        }
        Ok(())
    }

    async fn restart(&mut self, kind: Kind, i: usize, phase: &mut Phase) -> anyhow::Result<()> {
        self.cluster.nodes(kind)[i].proc.start()?;
        let took = self.cluster.wait_ready(kind, i, READY_TIMEOUT).await?;
        let name = self.cluster.nodes(kind)[i].proc.name().to_owned();
        phase
            .notes
            .push(format!("{name} restarted, ready in {}", secs_of(took)));
        Ok(())
    }

    /// a. kill -9 of api-node-1 under traffic; restarted 1.5 s later.
    async fn kill_api_node(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        phase.fault_now();
        self.cluster.api[0].proc.kill()?;
        phase.notes.push("api-node-1 killed (SIGKILL)".into());
        tokio::time::sleep(CALM).await;
        self.restart(Kind::Api, 0, phase).await
    }

    /// b. Redis stopped so publishes time out; writes go through api-node-1
    /// alone and commit unpublished; api-node-1 is killed with them pending;
    /// Redis continues; api-node-2's relay must publish them.
    async fn kill_between_commit_and_publish(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        self.workload.route_to(Some(0));
        let fault = phase.fault_now();
        self.cluster.redis.signal("STOP")?;
        let resumed = self.pending_then_kill(phase, fault).await;
        // Whatever happened, Redis runs again and writes go anywhere.
        self.cluster.redis.signal("CONT")?;
        let continued = Instant::now();
        let (unpublished, relayed_before) = match resumed {
            Ok(found) => found,
            Err(err) => {
                self.workload.route_to(None);
                return Err(err);
            }
        };
        phase.notes.push(format!(
            "Redis continued after {}",
            secs(Some(now_ms() - fault))
        ));
        // Until every event unpublished at the kill is marked published.
        // api-node-1 is dead, so its events can only be the relay's work.
        let deadline = continued + Duration::from_secs(20);
        let mut left = unpublished.len();
        while left > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(n) = self.db.still_unpublished(&unpublished).await {
                left = n;
            }
        }
        let took = continued.elapsed();
        let relayed_after = self.cluster.api_counter(1, "events_relayed_total").await;
        let relayed = relayed_after.zip(relayed_before).map(|(a, b)| a - b);
        // Which of them api-node-1 wrote (by now every request it was
        // sent has ended, so every write is on record).
        let ops = self.workload.ops();
        let mine =
            crate::verify::written_through(self.db, self.users, &ops, &unpublished, 0).await?;
        phase.notes.push(format!(
            "{} events unpublished at the kill, {} of them written through api-node-1",
            unpublished.len(),
            mine.len()
        ));
        phase.check(
            "api-node-1 died holding committed, unpublished events",
            !mine.is_empty(),
            format!(
                "{} of its events were committed and not on Redis when it was killed",
                mine.len()
            ),
        );
        phase.check(
            "the surviving node's relay published every one of them",
            left == 0 && relayed.is_some_and(|r| r >= mine.len() as f64),
            format!(
                "{} still unpublished {} after Redis continued; api-node-2 events_relayed_total +{}",
                left,
                secs_of(took),
                relayed.map_or("?".into(), |r| r.to_string())
            ),
        );
        self.restart(Kind::Api, 0, phase).await?;
        self.workload.route_to(None);
        Ok(())
    }

    /// Part of b: while Redis is stopped, until api-node-1 has committed a
    /// few writes (their publishes time out), then kill it. Returns the
    /// events unpublished then, and api-node-2's relay counter before Redis
    /// continues.
    async fn pending_then_kill(
        &mut self,
        phase: &mut Phase,
        fault: i64,
    ) -> anyhow::Result<(Vec<(Uuid, i64)>, Option<f64>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let acked = self
                .workload
                .ops()
                .iter()
                .filter(|op| op.node == 0 && op.started_ms >= fault && op.outcome.acked())
                .count();
            if acked >= 10 {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "only {acked} writes through api-node-1 were answered while Redis was stopped"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.cluster.api[0].proc.kill()?;
        self.workload.route_to(Some(1));
        phase.notes.push(format!(
            "api-node-1 killed {} after Redis was stopped",
            secs(Some(now_ms() - fault))
        ));
        // What is unpublished now is what api-node-1 left behind, and
        // perhaps a few writes of api-node-2's own (its retries' work).
        let unpublished = self.db.unpublished().await?;
        let relayed = self.cluster.api_counter(1, "events_relayed_total").await;
        Ok((unpublished, relayed))
    }

    /// c. kill -9 of the busier ws-node; its sockets resume on the other.
    async fn kill_ws_node(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let node = busiest_ws_node(self.sockets);
        let moving = sockets_on(self.sockets, node);
        phase.fault_now();
        self.cluster.ws[node].proc.kill()?;
        let took = moved_off(&moving, node, Duration::from_secs(20)).await?;
        phase.notes.push(format!(
            "ws-node-{} killed; its {} sockets resumed on the other node within {}",
            node + 1,
            moving.len(),
            secs_of(took)
        ));
        self.restart(Kind::Ws, node, phase).await
    }

    /// d. SIGTERM of the busier ws-node: it closes every socket with 1001
    /// and exits; they resume on the other.
    async fn drain_ws_node(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let node = busiest_ws_node(self.sockets);
        let moving = sockets_on(self.sockets, node);
        let fault = phase.fault_now();
        self.cluster.ws[node].proc.signal("TERM")?;
        let exited = self.cluster.ws[node]
            .proc
            .wait_exit(Duration::from_secs(15))
            .await;
        let took = Duration::from_millis((now_ms() - fault).max(0) as u64);
        phase.notes.push(format!(
            "ws-node-{} sent SIGTERM holding {} sockets",
            node + 1,
            moving.len()
        ));
        phase.check(
            "the drained ws-node exited cleanly within its grace",
            exited.is_some_and(|s| s.success()),
            match exited {
                Some(status) => format!("exited ({status}) {} after SIGTERM", secs_of(took)),
                None => "still running 15 s after SIGTERM".into(),
            },
        );
        if exited.is_none() {
            self.cluster.ws[node].proc.kill()?;
        }
        moved_off(&moving, node, Duration::from_secs(20)).await?;
        let codes: Vec<Option<u16>> = moving
            .iter()
            .map(|s| {
                let log = lock(s);
                log.closes
                    .iter()
                    .find(|c| c.at_ms >= fault && c.node == node)
                    .and_then(|c| c.code)
            })
            .collect();
        let with_1001 = codes.iter().filter(|c| **c == Some(1001)).count();
        phase.check(
            "every socket of the drained node was closed with 1001",
            with_1001 == moving.len(),
            format!(
                "{with_1001} of {} closed with 1001 (others: {:?})",
                moving.len(),
                codes
                    .iter()
                    .filter(|c| **c != Some(1001))
                    .collect::<Vec<_>>()
            ),
        );
        self.restart(Kind::Ws, node, phase).await
    }

    /// e. Redis killed, 5 s without it, restarted empty on the same port.
    async fn kill_redis(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        phase.fault_now();
        self.cluster.redis.kill()?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.cluster.redis.start()?;
        self.cluster.wait_redis(Duration::from_secs(20)).await?;
        phase
            .notes
            .push("Redis killed, restarted empty after 5 s".into());
        Ok(())
    }

    /// f. PostgreSQL: fast stop, one second down, start.
    async fn restart_postgres(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let fault = phase.fault_now();
        shell(self.pg_stop, "stopping PostgreSQL").await?;
        let stopped = now_ms();
        tokio::time::sleep(Duration::from_secs(1)).await;
        shell(self.pg_start, "starting PostgreSQL").await?;
        phase.notes.push(format!(
            "PostgreSQL stopped in {}, down {}, started (ready) {} after the fault",
            secs(Some(stopped - fault)),
            secs(Some(now_ms() - stopped)),
            secs(Some(now_ms() - fault))
        ));
        Ok(())
    }

    /// g. The busier ws-node frozen for 5 s.
    async fn freeze_ws_node(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let node = busiest_ws_node(self.sockets);
        let frozen = sockets_on(self.sockets, node).len();
        phase.fault_now();
        self.cluster.ws[node].proc.signal("STOP")?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.cluster.ws[node].proc.signal("CONT")?;
        phase.notes.push(format!(
            "ws-node-{} frozen 5 s with {frozen} sockets",
            node + 1
        ));
        Ok(())
    }

    /// h. Redis stopped, so one user's events commit but reach no ws-node;
    /// meanwhile new sockets of that user subscribe on the node where an
    /// older socket of theirs lives; then Redis continues.
    async fn meet_on_a_node(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let user = MEETING_USER;
        let older: Vec<Shared> = self
            .sockets
            .all()
            .into_iter()
            .filter(|s| {
                let log = lock(s);
                log.user == user && log.label == "base"
            })
            .collect();
        let first = older
            .first()
            .context("BUG: the meeting user has no socket")?;
        let node = lock(first).node;
        phase.fault_now();
        let paused = Instant::now();
        self.cluster.redis.signal("STOP")?;
        let result = async {
            let mut committed = 0;
            for _ in 0..3 {
                committed += usize::from(self.workload.create_for(user).await.outcome.acked());
            }
            // Where the older socket stands as the others arrive: behind.
            let older_at = lock(first).last_seq().unwrap_or(0);
            let token = &self.users[user].token;
            let late: Vec<Shared> = (0..3)
                .map(|_| self.sockets.open(user, token, node, "h-late"))
                .collect();
            all_subscribed(&late, Instant::now() + Duration::from_secs(10)).await?;
            let points: Vec<i64> = late.iter().filter_map(|s| lock(s).sub_point).collect();
            committed += usize::from(self.workload.create_for(user).await.outcome.acked());
            tokio::time::sleep_until(paused + Duration::from_secs(3)).await;
            anyhow::Ok((committed, older_at, points))
        }
        .await;
        self.cluster.redis.signal("CONT")?;
        let (committed, older_at, points) = result?;
        phase.notes.push(format!(
            "Redis stopped {}; user {user}: {committed} writes acknowledged meanwhile; 3 new sockets subscribed on ws-node-{} at seqs {points:?} while the older socket there was at {older_at}",
            secs_of(paused.elapsed()),
            node + 1
        ));
        phase.check(
            "the meeting happened: events were late when the new sockets subscribed",
            committed > 0 && points.len() == 3 && points.iter().all(|p| *p > older_at),
            format!(
                "{committed} acknowledged writes while Redis was stopped; new sockets subscribed at {points:?}, the older socket at {older_at}"
            ),
        );
        Ok(())
    }

    /// i. Thirty sockets of one user on one ws-node, which is killed; they
    /// reconnect together to the other node and resume.
    async fn crowd_reconnects(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let user = CROWD_USER;
        // The node with fewer sockets, so the crowd is most of what moves.
        let node = 1 - busiest_ws_node(self.sockets);
        let token = self.users[user].token.clone();
        let crowd: Vec<Shared> = (0..CROWD)
            .map(|_| self.sockets.open(user, &token, node, "i-crowd"))
            .collect();
        all_subscribed(&crowd, Instant::now() + Duration::from_secs(20)).await?;
        let moving = sockets_on(self.sockets, node);
        phase.fault_now();
        self.cluster.ws[node].proc.kill()?;
        // A few writes for that user while they reconnect.
        let writes = async {
            for _ in 0..5 {
                self.workload.create_for(user).await;
            }
        };
        let (took, ()) = tokio::join!(moved_off(&moving, node, Duration::from_secs(20)), writes);
        let took = took?;
        phase.notes.push(format!(
            "ws-node-{} killed holding {} sockets ({CROWD} of user {user}); all resumed on the other node within {}",
            node + 1,
            moving.len(),
            secs_of(took)
        ));
        self.restart(Kind::Ws, node, phase).await
    }
}

/// Runs `command` with `bash -c` (bounded to a minute).
async fn shell(command: &str, what: &str) -> anyhow::Result<()> {
    let mut child = tokio::task::spawn_blocking({
        let command = command.to_owned();
        move || {
            std::process::Command::new("bash")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::null())
                .output()
        }
    });
    let output = tokio::time::timeout(Duration::from_secs(60), &mut child)
        .await
        .with_context(|| format!("{what} took over a minute"))??
        .with_context(|| format!("{what}: could not run bash"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
