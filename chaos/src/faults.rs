//! The faults, one phase each, injected in turn while the workload runs.
//! Every phase waits for the state it needs (a node's `/readyz`, every
//! socket's `SUBSCRIBED`, every socket caught up with PostgreSQL's latest
//! seqs) with a bound, never for a fixed time; the fixed pauses are the
//! faults' own lengths and the traffic kept between them.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::time::Instant;
use uuid::Uuid;

use crate::cluster::{Cluster, Kind, NAMESPACE, READY_TIMEOUT};
use crate::db::Db;
use crate::failover;
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
/// How long a killed primary's replica may take to be promoted, and the
/// cluster to say `cluster_state:ok` again (cluster-node-timeout 2 s: about
/// 4 s here).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);

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
    /// The users whose channels were on the primary fault j killed.
    pub failed_over: Vec<usize>,
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
                'f' | 'j' => Allowed::Unavailable,
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
                'j' => self.fail_over_redis(&mut phase).await,
                _ => unreachable!("BUG: settings accept a to j only"),
            };
            let result = match result {
                Ok(()) => self.settle(&mut phase).await,
                Err(err) => Err(err),
            };
            if key == 'j' && result.is_ok() {
                self.reads_agree(&mut phase).await;
            }
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
        let ready = now_ms();
        caught_up(self.sockets, self.db, self.users, deadline).await?;
        if let Some(fault) = phase.fault_ms {
            phase.settled_ms = Some(now_ms() - fault);
            // The failover's notes tell the two apart.
            if phase.key == 'j' {
                phase.notes.push(format!(
                    "after the kill: every api-node and ws-node ready (`/readyz`) {}, then every socket subscribed and caught up with PostgreSQL {}",
                    secs(Some(ready - fault)),
                    secs(phase.settled_ms)
                ));
            }
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
        self.cluster.redis()?.signal("STOP")?;
        let resumed = self.pending_then_kill(phase, fault).await;
        // Whatever happened, Redis runs again and writes go anywhere.
        self.cluster.redis()?.signal("CONT")?;
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
        self.cluster.redis()?.kill()?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.cluster.redis()?.start()?;
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
        self.cluster.redis()?.signal("STOP")?;
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
        self.cluster.redis()?.signal("CONT")?;
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

    /// j. kill -9 of the Redis Cluster primary that owns the most of the
    /// workload's users' channels, under traffic; its replica is promoted.
    /// Waits (bounded, polling) until another node owns its slots and every
    /// surviving node says `cluster_state:ok`; the killed node stays down.
    async fn fail_over_redis(&mut self, phase: &mut Phase) -> anyhow::Result<()> {
        let cluster = self
            .cluster
            .redis_cluster
            .clone()
            .context("BUG: fault j without a Redis Cluster")?;
        let nodes = failover::node_dirs(&cluster.dir)?;
        let mut ports: Vec<u16> = cluster.seeds.clone();
        ports.extend(
            nodes
                .iter()
                .map(|n| n.port)
                .filter(|p| !cluster.seeds.contains(p)),
        );
        let (asked, before) = failover::slots_from_any(&ports).await?;
        let channels: Vec<String> = self
            .users
            .iter()
            .map(|u| format!("{NAMESPACE}:{{{}}}:events", u.id))
            .collect();
        let slots = failover::keyslots(asked, &channels).await?;
        // Each user's primary, then the primary with the most users (ties:
        // the lowest port, so a run is reproducible).
        let mut owner_of = Vec::with_capacity(slots.len());
        for (user, slot) in slots.iter().enumerate() {
            let range = before
                .iter()
                .find(|r| r.holds(*slot))
                .with_context(|| format!("no primary owns slot {slot} (user {user})"))?;
            owner_of.push(range.primary);
        }
        let mut counts: Vec<(u16, usize)> = Vec::new();
        for range in &before {
            if !counts.iter().any(|(p, _)| *p == range.primary) {
                let n = owner_of.iter().filter(|p| **p == range.primary).count();
                counts.push((range.primary, n));
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let (victim, owned) = counts[0];
        let victim_ranges: Vec<&failover::SlotRange> =
            before.iter().filter(|r| r.primary == victim).collect();
        let replicas: Vec<u16> = victim_ranges
            .iter()
            .flat_map(|r| r.replicas.iter().copied())
            .collect();
        let node = nodes.iter().find(|n| n.port == victim).with_context(|| {
            format!(
                "no node directory under {} is the primary on port {victim}",
                cluster.dir.display()
            )
        })?;
        let pid = failover::pid_of(node)?;
        let reported = failover::reported_pid(victim).await?;
        if reported != pid {
            bail!(
                "{}/redis.pid says {pid}, but the node on :{victim} says it is process {reported}",
                node.path.display()
            );
        }
        self.failed_over = (0..self.users.len())
            .filter(|u| owner_of[*u] == victim)
            .collect();
        let survivors: Vec<u16> = ports.iter().copied().filter(|p| *p != victim).collect();

        let fault = phase.fault_now();
        let status = std::process::Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .status()
            .context("running kill(1)")?;
        if !status.success() {
            bail!("kill -s KILL {pid} (the Redis primary on :{victim}) failed");
        }
        phase.notes.push(format!(
            "Redis primary 127.0.0.1:{victim} ({}, pid {pid}) killed with SIGKILL under traffic; it owned slots {} and the channels of {owned} of {} users (per primary: {}); its replica: {}",
            node.name,
            victim_ranges
                .iter()
                .map(|r| format!("{}-{}", r.start, r.end))
                .collect::<Vec<_>>()
                .join(", "),
            self.users.len(),
            counts
                .iter()
                .map(|(p, n)| format!(":{p} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            replicas
                .iter()
                .map(|p| format!(":{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        // Until another node serves every slot the killed one did.
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        let promoted = loop {
            if let Ok((_, now)) = failover::slots_from_any(&survivors).await {
                let owners: Vec<Option<u16>> = victim_ranges
                    .iter()
                    .map(|old| {
                        now.iter()
                            .find(|r| r.holds(old.start) && r.holds(old.end))
                            .map(|r| r.primary)
                    })
                    .collect();
                if owners.iter().all(|o| o.is_some_and(|p| p != victim)) {
                    break owners[0].unwrap_or_default();
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "no replica of the killed primary :{victim} was promoted within {FAILOVER_TIMEOUT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let promoted_after = now_ms() - fault;
        let dead = failover::gone(pid);
        // Until every surviving node says the cluster is whole.
        let ok_after = loop {
            let mut not_ok = Vec::new();
            for &port in &survivors {
                if !failover::state_ok(port).await {
                    not_ok.push(port);
                }
            }
            if not_ok.is_empty() {
                break now_ms() - fault;
            }
            if Instant::now() >= deadline {
                bail!(
                    "nodes {not_ok:?} did not say cluster_state:ok within {FAILOVER_TIMEOUT:?} of the kill"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        phase.notes.push(format!(
            "127.0.0.1:{promoted} ({}) promoted {} after the kill; cluster_state:ok on all {} surviving nodes {} after it",
            if replicas.contains(&promoted) {
                "its replica"
            } else {
                "not its replica"
            },
            secs(Some(promoted_after)),
            survivors.len(),
            secs(Some(ok_after))
        ));
        phase.check(
            "the killed primary's own replica took over its slots",
            replicas.contains(&promoted) && dead,
            format!(
                ":{victim} killed ({}); :{promoted} serves its slots {} after the kill (its replicas were {replicas:?})",
                if dead { "gone" } else { "STILL RUNNING" },
                secs(Some(promoted_after))
            ),
        );
        // Writes of the moved users acknowledged while their primary was
        // down: what the failover has to carry over.
        let moved: Vec<usize> = self.failed_over.clone();
        let during = self
            .workload
            .ops()
            .iter()
            .filter(|op| {
                moved.contains(&op.user)
                    && op.started_ms >= fault
                    && op.started_ms <= fault + promoted_after
                    && op.outcome.acked()
            })
            .count();
        phase.check(
            "under traffic: writes of the killed primary's users were acknowledged before the promotion",
            owned > 0 && during > 0,
            format!(
                "{during} writes of its {owned} users acknowledged between the kill and the promotion"
            ),
        );
        Ok(())
    }

    /// Part of j, once the system is whole again: every task of the users
    /// whose primary was killed, read through both api-nodes (their cache is
    /// on the promoted replica now), is at least as new as PostgreSQL had it
    /// just before, and a task deleted there is gone. An older version would
    /// be a write the failover lost from the cache: a wrong answer.
    async fn reads_agree(&mut self, phase: &mut Phase) {
        let result = async {
            let ids: Vec<Uuid> = self.failed_over.iter().map(|u| self.users[*u].id).collect();
            let truth = latest_tasks(&self.db.events(&ids).await?);
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?;
            let api = self.cluster.api_urls();
            let mut checked = 0;
            let mut wrong = Vec::new();
            for (i, ((user, task), version)) in truth.iter().enumerate() {
                let Some(owner) = self.users.iter().position(|u| u.id == *user) else {
                    continue;
                };
                let token = &self.users[owner].token;
                for base in &api {
                    let response = http
                        .get(format!("{base}/api/tasks/{task}"))
                        .bearer_auth(token)
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    let got = body["version"].as_i64();
                    checked += 1;
                    let ok = match (version, status) {
                        (None, 404) => true,
                        (Some(v), 200) => got.is_some_and(|g| g >= *v),
                        // Deleted since PostgreSQL was read: recheck below.
                        (Some(_), 404) => {
                            let now = latest_tasks(&self.db.events(&[*user]).await?);
                            now.get(&(*user, *task)).is_some_and(Option::is_none)
                        }
                        _ => false,
                    };
                    if !ok && wrong.len() < 5 {
                        wrong.push(format!(
                            "task {i} of user {owner} via {base}: {status} version {got:?}, PostgreSQL had {version:?}"
                        ));
                    }
                }
            }
            anyhow::Ok((truth.len(), checked, wrong))
        }
        .await;
        match result {
            Ok((tasks, checked, wrong)) => phase.check(
                "reads after the failover agree with PostgreSQL (no older cached version, no deleted task)",
                wrong.is_empty(),
                format!(
                    "{tasks} tasks of the moved users, {checked} reads through both api-nodes; wrong: {}",
                    if wrong.is_empty() {
                        "none".into()
                    } else {
                        wrong.join("; ")
                    }
                ),
            ),
            Err(err) => phase.check(
                "reads after the failover agree with PostgreSQL (no older cached version, no deleted task)",
                false,
                format!("the reads could not be made: {err:#}"),
            ),
        }
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

/// Each task's latest state in `events`: its version, or `None` once
/// deleted.
fn latest_tasks(
    events: &[crate::db::StoredEvent],
) -> std::collections::BTreeMap<(Uuid, Uuid), Option<i64>> {
    let mut tasks = std::collections::BTreeMap::new();
    for event in events {
        let value: serde_json::Value = serde_json::from_str(&event.payload).unwrap_or_default();
        let Some(task) = value["task"]["id"].as_str().and_then(|id| id.parse().ok()) else {
            continue;
        };
        let state = match value["type"].as_str() {
            Some("TASK_DELETED") => None,
            _ => value["task"]["version"].as_i64(),
        };
        tasks.insert((event.user, task), state);
    }
    tasks
}
