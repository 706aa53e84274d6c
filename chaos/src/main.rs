//! `chaos`: the fault-injection suite (issues 8 and 12). It runs the real
//! api-node and ws-node binaries as child processes against a throwaway
//! PostgreSQL (the runner's, `scripts/chaos.sh`) and a Redis of its own,
//! keeps a bounded workload and WebSocket clients going, injects one fault
//! after another, and checks everything against PostgreSQL's `task_events`.
//! It exists beside the integration tests because what it breaks (whole
//! processes killed, frozen or drained; Redis and PostgreSQL restarted) is
//! only real with separate processes, and beside `scripts/cluster-check.sh`
//! because that one only restarts nodes politely.
//!
//! Two passes, one run of this binary each. With its own single Redis it
//! injects faults a to i and writes `FAULTS.md`. Given the runner's Redis
//! Cluster (`CHAOS_REDIS_CLUSTER_URL`, `CHAOS_REDIS_CLUSTER_DIR`: 3
//! primaries, 3 replicas) it starts no Redis, gives every node that
//! `redis+cluster://` URL, injects a, c and j (kill -9 of the primary owning
//! the most users' channels, under traffic, until its replica is promoted),
//! leaves out the faults that stop or kill its own Redis (b, e, h), and
//! writes `FAILOVER.md`.
//!
//! Layout:
//! - `settings.rs`: what the runner passes (binaries, `DATABASE_URL`, how to
//!   stop and start PostgreSQL, the state directory, the Redis Cluster);
//!   which faults each pass runs.
//! - `procs.rs`: child processes (start, signal, kill, reap, pid files).
//! - `cluster.rs`: Redis (or the runner's cluster), 2 api-nodes, 2 ws-nodes
//!   on free ports; readiness.
//! - `failover.rs`: the Redis Cluster as fault j sees it (`CLUSTER SLOTS`,
//!   `CLUSTER KEYSLOT`, `cluster_state`, each node's directory and pid).
//! - `workload.rs`: users, and writers marking each write "chaos op N".
//! - `sockets.rs`: clients that resume with `since` after a close and never
//!   resubscribe on a gap; every seq recorded with its arrival time.
//! - `faults.rs`: the faults a to j, one phase each.
//! - `phase.rs`: a phase: its fault, what it may break, notes, verdicts.
//! - `waits.rs`: bounded waits for state (subscribed, caught up, moved).
//! - `db.rs`: the suite's reads of PostgreSQL.
//! - `verify.rs`: the checks, against `task_events`.
//! - `report.rs`: stdout report, and `FAULTS.md` or `FAILOVER.md`.
//!
//! Only 127.0.0.1 is ever contacted, and every loop is bounded in count and
//! time (the whole run by [`RUN_LIMIT`]).

mod cluster;
mod db;
mod failover;
mod faults;
mod phase;
mod procs;
mod report;
mod settings;
mod sockets;
mod verify;
mod waits;
mod workload;

use std::process::{Command, ExitCode};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::db::Db;
use crate::faults::Run;
use crate::phase::Check;
use crate::report::RunInfo;
use crate::settings::Settings;
use crate::sockets::Sockets;
use crate::workload::Workload;

/// The most a run may take, whatever happens.
const RUN_LIMIT: Duration = Duration::from_secs(420);

/// Milliseconds since the epoch (events carry their commit time so).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("chaos: {err:#}");
            return ExitCode::from(2);
        }
    };
    match tokio::time::timeout(RUN_LIMIT, run(&settings)).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(err)) => {
            eprintln!("chaos: the run could not be carried out: {err:#}");
            println!("chaos: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("chaos: the run took over {RUN_LIMIT:?}");
            println!("chaos: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: &Settings) -> anyhow::Result<bool> {
    let started = Instant::now();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let load_before = load_average();
    let deadline = started + RUN_LIMIT;
    let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());

    let keys: Vec<char> = settings.faults();
    match &settings.redis_cluster {
        Some(redis) => eprintln!(
            "[chaos] Redis Cluster pass on {}; migrating, starting 2 api-nodes and 2 ws-nodes; faults {}",
            redis.url,
            keys.iter().collect::<String>()
        ),
        None => eprintln!(
            "[chaos] starting Redis, migrating, starting 2 api-nodes and 2 ws-nodes; faults {}",
            keys.iter().collect::<String>()
        ),
    }
    let mut cluster = Cluster::start(settings, &secret).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    eprintln!("[chaos] registering {} users", settings.users);
    let users = workload::register(&http, &cluster.api_urls(), settings.users).await?;
    let sockets = Sockets::new(cluster.ws_urls(), deadline);
    for (i, user) in users.iter().enumerate() {
        for node in 0..2 {
            sockets.open(i, &user.token, node, "base");
        }
    }
    let db = Db::new(&settings.database_url);
    waits::caught_up(
        &sockets,
        &db,
        &users,
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    eprintln!(
        "[chaos] {} sockets subscribed; {} writes/s from now on",
        sockets.all().len(),
        settings.rate
    );
    let mut workload = Workload::start(cluster.api_urls(), users.clone(), settings.rate, deadline);
    let mut run = Run {
        cluster: &mut cluster,
        workload: &workload,
        sockets: &sockets,
        db: &db,
        users: &users,
        pg_stop: &settings.pg_stop,
        pg_start: &settings.pg_start,
        failed_over: Vec::new(),
    };
    let mut phases = run.all(&keys).await;
    workload.stop().await;
    eprintln!("[chaos] workload stopped; waiting for every socket to catch up");
    let caught_up = waits::caught_up(
        &sockets,
        &db,
        &users,
        Instant::now() + Duration::from_secs(30),
    )
    .await;
    sockets.close_all().await;
    // The last writes' marks are batched, and anything a node failed to
    // mark is the relay's (grace + interval): wait for the outbox to drain.
    let marks_deadline = Instant::now() + Duration::from_secs(15);
    let unpublished = loop {
        let left = db
            .unpublished()
            .await
            .map(|u| u.len())
            .unwrap_or(usize::MAX);
        if left == 0 || Instant::now() >= marks_deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let latest = db.latest_seqs(&ids).await?;
    let events = db.events(&ids).await?;
    let ops = workload.ops();
    let all_sockets = sockets.all();
    let verdict = verify::verify(&mut phases, &users, &ops, &all_sockets, &events, &latest);
    for (phase, f) in phases.iter_mut().zip(&verdict.figures) {
        if phase.key == 'j' {
            phase.notes.push(format!(
                "{} events committed in the phase checked against every socket's stream ({} deliveries): lost {}, duplicated {}, out of order {}, skipped {}; requests failed: {} (of {} writes)",
                f.events,
                f.deliveries,
                f.lost,
                f.duplicated,
                f.out_of_order,
                f.skipped,
                verify::summary(&f.failed),
                f.writes
            ));
        }
    }
    let run_checks = vec![
        Check {
            name: "every fault asked for was carried out".into(),
            ok: phases.len() == keys.len() + 1,
            detail: format!("{} of {}", phases.len() - 1, keys.len()),
        },
        Check {
            name: "at the end every socket had its user's final seq".into(),
            ok: caught_up.is_ok(),
            detail: match &caught_up {
                Ok(()) => format!("{} sockets", all_sockets.len()),
                Err(err) => format!("{err:#}"),
            },
        },
        Check {
            name: "within 15 s of the end every event is marked published (the outbox drains)"
                .into(),
            ok: unpublished == 0,
            detail: match unpublished {
                usize::MAX => "PostgreSQL could not be read".into(),
                n => format!("{n} of {} still unpublished", events.len()),
            },
        },
    ];
    drop(cluster);

    let info = RunInfo {
        date,
        commit: commit(settings),
        profile: settings
            .api_node_bin
            .parent()
            .and_then(|p| p.file_name())
            .map_or("?".into(), |p| p.to_string_lossy().into_owned()),
        binaries: format!(
            "{}, {}",
            settings.api_node_bin.display(),
            settings.ws_node_bin.display()
        ),
        secs: started.elapsed().as_secs_f64(),
        load: (load_before, load_average()),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        users: users.len(),
        sockets: all_sockets.len(),
        rate: settings.rate,
        redis_cluster: settings.redis_cluster.as_ref().map(|c| c.url.clone()),
        run_checks,
    };
    print!("{}", report::text(&phases, &verdict, &info));
    let (_, failed) = report::tally(&phases, &info);
    if let (Some(path), None) = (&settings.faults_md, &settings.only) {
        report::write_markdown(path, &report::markdown(&phases, &verdict, &info))?;
        eprintln!("[chaos] wrote {}", path.display());
    }
    Ok(failed == 0)
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `abc1234`, noting uncommitted changes to the nodes' sources.
fn commit(settings: &Settings) -> String {
    let Some(repo) = &settings.repo else {
        return "unknown commit".into();
    };
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown commit".into();
    };
    match git(&[
        "status",
        "--porcelain",
        "--",
        "api-node",
        "ws-node",
        "shared",
        "chaos",
    ]) {
        Some(dirty) if !dirty.is_empty() => {
            format!("`{head}` (with uncommitted changes to the sources)")
        }
        _ => format!("`{head}`"),
    }
}
