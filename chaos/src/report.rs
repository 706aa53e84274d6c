//! The run's report: a readable one on stdout, and `FAULTS.md` (the matrix
//! of faults × what was checked × figures, with the run's date and commit);
//! the Redis Cluster pass writes the same shape as `FAILOVER.md`.

use std::fmt::Write as _;
use std::path::Path;

use crate::phase::{secs, Check, Phase};
use crate::verify::{summary, Figures, Verdict, COMMON_CHECKS};

/// What is known about the run as a whole.
pub struct RunInfo {
    /// UTC date and time it started.
    pub date: String,
    /// `abc1234`, with a word on uncommitted node changes.
    pub commit: String,
    /// `debug` or `release`.
    pub profile: String,
    /// The node binaries run.
    pub binaries: String,
    /// Seconds it took, start to verdict.
    pub secs: f64,
    /// The 1-minute load average before and after.
    pub load: (String, String),
    /// Cores.
    pub cores: usize,
    /// Users, sockets per user, writes per second.
    pub users: usize,
    /// Sockets opened in all.
    pub sockets: usize,
    /// Writes per second asked for.
    pub rate: u32,
    /// The runner's Redis Cluster (its URL), in the cluster pass.
    pub redis_cluster: Option<String>,
    /// Checks that concern the run as a whole.
    pub run_checks: Vec<Check>,
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn ms(v: Option<i64>) -> String {
    v.map_or("—".into(), |v| format!("{v} ms"))
}

/// Checks passed and failed over the whole run.
pub fn tally(phases: &[Phase], info: &RunInfo) -> (usize, usize) {
    let all = phases
        .iter()
        .flat_map(|p| &p.checks)
        .chain(&info.run_checks);
    all.fold((0, 0), |(pass, fail), c| {
        if c.ok {
            (pass + 1, fail)
        } else {
            (pass, fail + 1)
        }
    })
}

/// The readable report.
pub fn text(phases: &[Phase], verdict: &Verdict, info: &RunInfo) -> String {
    let mut out = String::new();
    let redis = match &info.redis_cluster {
        Some(url) => format!("Redis Cluster (3 primaries, 3 replicas: {url})"),
        None => "Redis".into(),
    };
    let _ = writeln!(
        out,
        "chaos: 2 api-nodes, 2 ws-nodes, {redis}, PostgreSQL; {} users, {} sockets, {} writes/s; {} build; {} at {}; {:.0} s",
        info.users, info.sockets, info.rate, info.profile, info.commit, info.date, info.secs
    );
    let _ = writeln!(out, "nodes: {}", info.binaries);
    for (phase, f) in phases.iter().zip(&verdict.figures) {
        let _ = writeln!(out, "\n[{}] {}", phase.key, phase.title);
        let _ = writeln!(
            out,
            "    writes {} ({} acknowledged; failed: {}); committed without an answer {}",
            f.writes,
            f.acked,
            summary(&f.failed),
            f.committed_unanswered
        );
        let _ = writeln!(
            out,
            "    events {} committed, {} deliveries; {} reconnects ({}); commit→receipt max {} (p99 {})",
            f.events,
            f.deliveries,
            f.reconnects,
            summary(&f.close_reasons),
            ms(f.max_delay_ms),
            ms(f.p99_delay_ms)
        );
        let _ = writeln!(
            out,
            "    recovered (first success after the last failure) {}; whole again {}",
            secs(f.recover_ms),
            secs(phase.settled_ms)
        );
        for note in &phase.notes {
            let _ = writeln!(out, "    · {note}");
        }
        for check in &phase.checks {
            let _ = writeln!(
                out,
                "    {} {} — {}",
                mark(check.ok),
                check.name,
                check.detail
            );
        }
        if phase.checks.iter().any(|c| !c.ok) {
            for example in &f.examples {
                let _ = writeln!(out, "      ! {example}");
            }
        }
    }
    let _ = writeln!(out, "\n[run]");
    for check in &info.run_checks {
        let _ = writeln!(
            out,
            "    {} {} — {}",
            mark(check.ok),
            check.name,
            check.detail
        );
    }
    let (passed, failed) = tally(phases, info);
    let _ = writeln!(out, "\nchaos: {passed} passed, {failed} failed");
    out
}

fn matrix_row(phase: &Phase, f: &Figures) -> String {
    let result = if phase.checks.iter().all(|c| c.ok) {
        format!("pass ({})", phase.checks.len())
    } else {
        format!(
            "**FAIL** ({} of {})",
            phase.checks.iter().filter(|c| !c.ok).count(),
            phase.checks.len()
        )
    };
    format!(
        "| {} | {} | {} | {} ({}) | {} | {} / {} | {} · {} · {} · {} | {} | {} | {} | {} |",
        phase.key,
        phase.title,
        phase.checks_what,
        f.writes,
        summary(&f.failed),
        f.committed_unanswered,
        f.events,
        f.deliveries,
        f.lost,
        f.duplicated,
        f.out_of_order,
        f.skipped,
        secs(f.recover_ms),
        secs(phase.settled_ms),
        ms(f.max_delay_ms),
        result
    )
}

/// `FAULTS.md`, or in the Redis Cluster pass `FAILOVER.md`.
pub fn markdown(phases: &[Phase], verdict: &Verdict, info: &RunInfo) -> String {
    let mut out = if info.redis_cluster.is_some() {
        failover_intro(phases, info)
    } else {
        faults_intro(phases, info)
    };
    for (phase, f) in phases.iter().zip(&verdict.figures) {
        let _ = writeln!(out, "{}", matrix_row(phase, f));
    }
    let _ = writeln!(out, "\n## What happened in each phase (last run)\n");
    for phase in phases {
        let _ = writeln!(out, "**{}. {}**", phase.key, phase.title);
        for note in &phase.notes {
            let _ = writeln!(out, "- {note}");
        }
        for check in phase.checks.iter().skip(COMMON_CHECKS) {
            let _ = writeln!(
                out,
                "- {}: {} — {}",
                mark(check.ok).to_lowercase(),
                check.name,
                check.detail
            );
        }
        for check in phase.checks.iter().take(COMMON_CHECKS).filter(|c| !c.ok) {
            let _ = writeln!(out, "- **fail**: {} — {}", check.name, check.detail);
        }
        let _ = writeln!(out);
    }
    for check in &info.run_checks {
        let _ = writeln!(
            out,
            "- run: {}: {} — {}",
            mark(check.ok).to_lowercase(),
            check.name,
            check.detail
        );
    }
    out
}

/// `FAULTS.md` up to the matrix's rows.
/// The workload and clients of a run, the same in both files.
fn workload(info: &RunInfo) -> String {
    format!(
        "- **Workload**: {users} users; one writer per user creates, updates and
  deletes that user's own tasks, {rate} writes/s in all, alternating over
  both api-nodes. Each write is marked `chaos op N` (a deletion is known by
  its task id), so its event is found in `task_events`.
- **Clients**: two sockets per user to start with ({sockets} by the end),
  each on a chosen ws-node. After any close a socket reconnects to the
  other node and resumes with `SUBSCRIBE_TASKS` + `since` = the last seq it
  got. It **never** resubscribes on a gap: the server alone must keep each
  socket's stream whole. Every seq is recorded with its arrival time.
",
        users = info.users,
        rate = info.rate,
        sockets = info.sockets,
    )
}

fn faults_intro(phases: &[Phase], info: &RunInfo) -> String {
    let (passed, failed) = tally(phases, info);
    let mut out = String::new();
    let _ = write!(
        out,
        "# Faults

What the system does when its parts fail, measured by the chaos suite
(`chaos/`). This file is written by every full run of it; the figures are
the last run's.

**Last run:** {date}, commit {commit}, {profile} build, {cores} cores (load average {load0} before, {load1} after), {secs:.0} s: **{passed} checks passed, {failed} failed**.

## How to run it

```sh
bash scripts/chaos.sh                    # builds (debug), runs every fault, rewrites FAULTS.md
BUILD_PROFILE=release bash scripts/chaos.sh
CHAOS_ONLY=b,h bash scripts/chaos.sh     # some faults only (FAULTS.md is left alone)
```

`scripts/test.sh` runs it after the cluster check (`SKIP_CHAOS=1` skips
it). The script starts a throwaway PostgreSQL under `.local/chaos-<pid>/`
(wiped at exit; node logs are kept in `.local/chaos-failed/` when it fails)
and the suite runs everything else itself, on free ports of 127.0.0.1: a
Redis it can kill, restart empty, stop and continue, two api-nodes and two
ws-nodes (the real binaries), no balancer. The last line of its output is
`chaos: N passed, M failed`; it exits non-zero on any failed check.

## What runs

{workload}- **Faults**, one phase each, in turn, with the workload running. Each
  phase waits for the state it needs (`/readyz`, `SUBSCRIBED`, every socket
  caught up with PostgreSQL's latest seqs), never a fixed time.
- **Truth**: PostgreSQL's `task_events` and `users.event_seq`.

## Checked in every phase

1. **Streams whole**: per socket, over all its reconnects, every event of
   its user after its first `SUBSCRIBED` up to the final seq received once
   (lost, duplicated), in order (out of order), each one previous + 1
   (skipped). Events count in the phase they were committed in.
2. **Writes against `task_events`**: every acknowledged write is there;
   a write answered with an error status never committed; every event comes
   from a write. Writes committed without any HTTP answer (the node died)
   are counted, and allowed.
3. **No HTTP 500.**
4. **Failed requests only as the fault allows**: none, except unanswered
   requests to a killed api-node (a, b) and `503 UNAVAILABLE` while
   PostgreSQL restarts (f).
5. **Whole again** within 30 s: every node ready, every socket subscribed
   and caught up.

{MATRIX_HEAD}",
        date = info.date,
        commit = info.commit,
        profile = info.profile,
        cores = info.cores,
        load0 = info.load.0,
        load1 = info.load.1,
        secs = info.secs,
        workload = workload(info),
    );
    out
}

/// What the matrix's columns mean, and its head: the same in both files.
const MATRIX_HEAD: &str = "*Recover* is fault → first successful write after the last failed one;
*whole again* is fault → every node ready and every socket caught up;
*max delay* is the longest commit → receipt time of an event committed in
the phase.

## The matrix (last run)

| | fault | also checked | writes (failed) | committed, no answer | events / deliveries | lost · dup · order · skip | recover | whole again | max delay | checks |
|---|---|---|---|---|---|---|---|---|---|---|
";

/// `FAILOVER.md` up to the matrix's rows: the same shape as `FAULTS.md`,
/// for the Redis Cluster pass.
fn failover_intro(phases: &[Phase], info: &RunInfo) -> String {
    let (passed, failed) = tally(phases, info);
    let faults = phases
        .iter()
        .filter(|p| p.key != '0')
        .map(|p| format!("**{}** ({})", p.key, p.title))
        .collect::<Vec<_>>()
        .join("; ");
    let mut out = String::new();
    let _ = write!(
        out,
        "# Failover

What the system does when a Redis Cluster primary dies under traffic,
measured by the Redis Cluster pass of the chaos suite (`chaos/`, issue 12).
This file is written by every full cluster pass; the figures are the last
run's. The faults of the single-Redis pass are in [`FAULTS.md`](FAULTS.md).

**Last run:** {date}, commit {commit}, {profile} build, {cores} cores (load average {load0} before, {load1} after), {secs:.0} s: **{passed} checks passed, {failed} failed**.

## How to run it

```sh
bash scripts/chaos.sh                          # both passes: FAULTS.md, then this file
CHAOS_CLUSTER=only bash scripts/chaos.sh       # the Redis Cluster pass alone (rewrites FAILOVER.md)
CHAOS_CLUSTER=0 bash scripts/chaos.sh          # the single-Redis pass alone
CHAOS_CLUSTER=only CHAOS_ONLY=j bash scripts/chaos.sh   # the failover alone (FAILOVER.md is left alone)
```

`scripts/test.sh` runs it after the cluster check (`SKIP_CHAOS=1` skips
it). After the single-Redis pass, `scripts/chaos.sh` starts a throwaway
Redis Cluster, 3 primaries and 3 replicas (`start_redis_cluster` of
`scripts/services.sh`: cluster-node-timeout 2 s, no persistence), under
`.local/chaos-<pid>/redis-cluster/`, and a fresh database on its throwaway
PostgreSQL, and runs the suite again with `CHAOS_REDIS_CLUSTER_URL` and
`CHAOS_REDIS_CLUSTER_DIR` set. The suite then starts no Redis of its own:
every node gets `REDIS_URL={url}`, so events go over sharded pub/sub
(SPUBLISH/SSUBSCRIBE on `chaos:{{<user>}}:events`, on the primary owning
that slot) and api-nodes end each publish pipeline with `WAIT 1`. The faults
that stop or kill the suite's own Redis (b, e, h) are not run here. When
the pass fails, its logs and the Redis nodes' are kept in
`.local/chaos-failed/cluster/`. The last line of its output is
`chaos: N passed, M failed`; it exits non-zero on any failed check.

## What runs

{workload}- **Faults**, one phase each, in turn, with the workload running: {faults}.
  For the failover (j) the suite asks the cluster which slot each user's
  channel is in (`CLUSTER KEYSLOT`) and who owns it (`CLUSTER SLOTS`),
  picks the primary owning the most users' channels, takes its pid from its
  node directory's `redis.pid` (checked to be a running `redis-server`, the
  one the node itself reports), kills it with `kill -9`, and waits, polling
  with a bound, until another node serves its slots and every surviving
  node says `cluster_state:ok`. The killed node stays down for the rest of
  the pass. Each phase then waits for every node's `/readyz` and every
  socket subscribed and caught up with PostgreSQL's latest seqs, never a
  fixed time.
- **Truth**: PostgreSQL's `task_events` and `users.event_seq`.

## Checked in every phase

1. **Streams whole**: per socket, over all its reconnects and the
   failover, every event of its user after its first `SUBSCRIBED` up to the
   final seq received once (lost, duplicated), in order (out of order),
   each one previous + 1 (skipped). Events count in the phase they were
   committed in.
2. **Writes against `task_events`**: every acknowledged write is there;
   a write answered with an error status never committed; every event comes
   from a write.
3. **No HTTP 500.**
4. **Failed requests only as the fault allows**: none, except brief
   `503 UNAVAILABLE` during the failover (j).
5. **Whole again** within 30 s: every node ready, every socket subscribed
   and caught up.

The failover also checks that the killed primary's own replica took over,
that writes of its users were acknowledged while it was down (the pass ran
under traffic), and that afterwards every task of those users, read through
both api-nodes, is at least as new as PostgreSQL had it (no older version
from a cache that lost a write in the failover).

{MATRIX_HEAD}",
        date = info.date,
        commit = info.commit,
        profile = info.profile,
        cores = info.cores,
        load0 = info.load.0,
        load1 = info.load.1,
        secs = info.secs,
        workload = workload(info),
        url = info.redis_cluster.as_deref().unwrap_or("?"),
    );
    out
}

/// Writes `FAULTS.md` (or `FAILOVER.md`).
pub fn write_markdown(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)?;
    Ok(())
}
