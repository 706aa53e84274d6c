//! The three scenarios. Each prints a human summary and one `RESULT` JSON
//! line that the bench script collects, and answers whether its targets
//! were met.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::client::WIRE_BYTES_READ;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;
use crate::client::{self, Socket, User};

/// Connections being opened at once.
const OPENING_AT_ONCE: usize = 512;

/// Registers `count` users, 8 at a time (each costs a password hash).
async fn users(args: &Args, http: &reqwest::Client, count: u64) -> anyhow::Result<Vec<User>> {
    let gate = Arc::new(Semaphore::new(8));
    let mut registering = JoinSet::new();
    for _ in 0..count.max(1) {
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let (http, api) = (http.clone(), args.api());
        registering.spawn(async move {
            let user = client::register(&http, &api).await;
            drop(permit);
            user
        });
    }
    let mut users = Vec::new();
    while let Some(user) = registering.join_next().await {
        users.push(user??);
    }
    Ok(users)
}

/// Opens `conns` subscribed connections round-robin over `users`.
async fn open_all(
    ws_url: &str,
    users: &[User],
    conns: usize,
    deflate: bool,
) -> (Vec<(usize, Socket)>, Duration, usize) {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut opening = JoinSet::new();
    for n in 0..conns {
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let (url, token) = (ws_url.to_owned(), users[n % users.len()].token.clone());
        opening.spawn(async move {
            let result = tokio::time::timeout(
                Duration::from_secs(30),
                client::connect_subscribed(&url, &token, client::source(n), deflate),
            )
            .await;
            drop(permit);
            (n, result)
        });
    }
    let mut open = Vec::with_capacity(conns);
    let mut failed = 0;
    while let Some(done) = opening.join_next().await {
        match done {
            Ok((n, Ok(Ok(ws)))) => open.push((n, ws)),
            Ok((_, Ok(Err(err)))) => {
                if failed < 3 {
                    eprintln!("connect failed: {err:#}");
                }
                failed += 1;
            }
            _ => failed += 1,
        }
    }
    (open, started.elapsed(), failed)
}

/// A share as a percentage, or a dash when it is not known.
fn percent(share: Option<f64>) -> String {
    share.map_or("–".to_string(), |s| format!("{:.2} %", s * 100.0))
}

/// The HTTP base of a WebSocket URL (`ws://host:port/ws/updates` →
/// `http://host:port`), where the node serves `/metrics`.
fn ws_base(ws_url: &str) -> String {
    let rest = ws_url.strip_prefix("ws://").unwrap_or(ws_url);
    format!("http://{}", rest.split('/').next().unwrap_or(rest))
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Idle connections: open rate and memory per connection.
pub async fn idle(args: &Args) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    let conns = args.number("conns", 1000) as usize;
    let users = users(args, &http, args.number("users", 100)).await?;
    let pid = args.number("pid", 0) as u32;
    let deflate = args.number("deflate", 0) != 0;
    let before = client::rss_bytes(pid);
    let (open, took, failed) = open_all(&args.ws(), &users, conns, deflate).await;
    let rate = open.len() as f64 / took.as_secs_f64();
    // Let the node settle (allocator, lazily grown buffers) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = client::rss_bytes(pid);
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if !open.is_empty() => {
            Some(a.saturating_sub(b) as f64 / open.len() as f64)
        }
        _ => None,
    };
    println!(
        "idle{}: {} open ({} failed) in {:.2}s = {:.0} conn/s; ws-node RSS {:?} -> {:?} bytes; {} bytes/conn",
        if deflate { " (deflate)" } else { "" },
        open.len(),
        failed,
        took.as_secs_f64(),
        rate,
        before,
        after,
        per_conn.map_or("?".into(), |b| format!("{b:.0}"))
    );
    println!(
        "RESULT {}",
        json!({ "scenario": "ws_idle", "deflate": deflate, "connections": open.len(), "failed": failed, "open_secs": took.as_secs_f64(),
                "open_per_sec": rate, "rss_before": before, "rss_after": after, "bytes_per_conn": per_conn })
    );
    tokio::time::sleep(Duration::from_secs(args.number("hold", 1))).await;
    drop(open);
    Ok(failed == 0)
}

/// Per-connection tallies.
#[derive(Default)]
struct Tally {
    received: AtomicU64,
    gaps: AtomicU64,
    latencies_ms: Mutex<Vec<i64>>,
}

/// The fields of an event the generator reads.
#[derive(serde::Deserialize)]
struct EventHead {
    seq: Option<i64>,
    timestamp: Option<i64>,
}

/// Reads events until `stop`; records latency and seq gaps (into the
/// shared tally at once when `immediate`, else when it stops).
async fn read_events(
    mut ws: Socket,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
    immediate: bool,
) {
    let mut last_seq: Option<i64> = None;
    let mut local = Vec::new();
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let now = client::now_ms();
                    // Only the two numbers: the generator shares the cores
                    // with the node, so it parses as little as it can.
                    let Ok(head) = serde_json::from_str::<EventHead>(&text) else { continue };
                    if let (Some(seq), Some(at)) = (head.seq, head.timestamp) {
                        if last_seq.is_some_and(|last| seq != last + 1) {
                            tally.gaps.fetch_add(1, Ordering::Relaxed);
                        }
                        last_seq = Some(seq);
                        if immediate {
                            tally.latencies_ms.lock().expect("not poisoned").push(now - at);
                        } else {
                            local.push(now - at);
                        }
                        tally.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            _ = stop.changed() => break,
        }
    }
    tally
        .latencies_ms
        .lock()
        .expect("not poisoned")
        .extend(local);
}

/// Subscribers over `users` users while a writer commits at `rate`/s.
pub async fn fanout(args: &Args) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    let conns = args.number("conns", 1000) as usize;
    let user_count = args.number("users", 100);
    let rate = args.number("rate", 100).max(1);
    let secs = args.number("secs", 10).min(600);
    let deflate = args.number("deflate", 0) != 0;
    let described = args.number("description", 0) != 0;
    let users = users(args, &http, user_count).await?;
    let (open, took, failed) = open_all(&args.ws(), &users, conns, deflate).await;
    println!(
        "fanout: {} subscribed ({failed} failed) in {:.2}s",
        open.len(),
        took.as_secs_f64()
    );
    let conns_per_user: Vec<u64> = (0..users.len())
        .map(|u| open.iter().filter(|(n, _)| n % users.len() == u).count() as u64)
        .collect();

    let tally = Arc::new(Tally::default());
    let (stop, stopped) = watch::channel(false);
    let mut readers = JoinSet::new();
    for (_, ws) in open {
        readers.spawn(read_events(ws, tally.clone(), stopped.clone(), false));
    }

    // CPU time of the ws-node (with --pid) and of this generator while the
    // events flow: what the fan-out costs per delivery, and who saturates.
    let node_pid = args.number("pid", 0) as u32;
    let cpu_before = (client::cpu_ms(node_pid), client::cpu_ms(std::process::id()));
    // Bytes on the wire while the events flow (events, and the odd ping).
    let wire_before = WIRE_BYTES_READ.load(Ordering::Relaxed);

    // The writer: `rate` creates per second, round-robin over users, with
    // a bounded number in flight.
    let writes = (rate * secs) as usize;
    let mut written = vec![0u64; users.len()];
    let in_flight = Arc::new(Semaphore::new(64));
    let mut writers = JoinSet::new();
    let started = Instant::now();
    for n in 0..writes {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let (http, api, user) = (http.clone(), args.api(), users[n % users.len()].clone());
        written[n % users.len()] += 1;
        writers.spawn(async move {
            let ok = client::create_task(&http, &api, &user, n as u64, described)
                .await
                .is_ok();
            drop(permit);
            ok
        });
    }
    let mut write_failures = 0;
    while let Some(ok) = writers.join_next().await {
        if !matches!(ok, Ok(true)) {
            write_failures += 1;
        }
    }
    let achieved = writes as f64 / started.elapsed().as_secs_f64();
    let expected: u64 = written
        .iter()
        .zip(&conns_per_user)
        .map(|(w, c)| w * c)
        .sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    while readers.join_next().await.is_some() {}
    let cpu_after = (client::cpu_ms(node_pid), client::cpu_ms(std::process::id()));
    let wire_bytes = WIRE_BYTES_READ.load(Ordering::Relaxed) - wire_before;
    let node_cpu_ms = cpu_after.0.zip(cpu_before.0).map(|(a, b)| a - b);
    let loadgen_cpu_ms = cpu_after.1.zip(cpu_before.1).map(|(a, b)| a - b);
    let mut latencies = tally.latencies_ms.lock().expect("not poisoned").clone();
    latencies.sort_unstable();
    let received = tally.received.load(Ordering::Relaxed);
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
    );
    let wire_per_event = wire_bytes as f64 / received.max(1) as f64;
    println!(
        "fanout: deflate {deflate}, described {described}; {wire_bytes} bytes read = {wire_per_event:.1} per event received"
    );
    println!(
        "fanout: {writes} writes at {achieved:.0}/s ({write_failures} failed); events expected {expected}, received {received}, gaps {}; commit->receipt p50 {p50} ms, p99 {p99} ms, max {max} ms",
        tally.gaps.load(Ordering::Relaxed)
    );
    println!(
        "RESULT {}",
        json!({ "scenario": if users.len() == 1 { "ws_broadcast" } else { "ws_fanout" }, "connections": conns_per_user.iter().sum::<u64>(),
                "users": users.len(), "deflate": deflate, "described": described,
                "wire_bytes": wire_bytes, "wire_bytes_per_event": wire_per_event, "writes": writes, "writes_per_sec": achieved, "write_failures": write_failures,
                "expected": expected, "received": received, "gaps": tally.gaps.load(Ordering::Relaxed),
                "p50_ms": p50, "p99_ms": p99, "max_ms": max,
                "node_cpu_ms": node_cpu_ms, "loadgen_cpu_ms": loadgen_cpu_ms,
                "node_cpu_us_per_delivery": node_cpu_ms.map(|ms| ms as f64 * 1000.0 / received.max(1) as f64) })
    );
    Ok(received == expected && write_failures == 0 && failed == 0)
}

/// One user with many connections, a handful of events.
pub async fn broadcast(args: &Args) -> anyhow::Result<bool> {
    let mut forwarded = Args::from_env();
    forwarded.set("users", "1");
    forwarded.set("rate", &args.number("rate", 1).to_string());
    forwarded.set("secs", &args.number("secs", 5).to_string());
    fanout(&forwarded).await
}

/// Capacity (issue 10, part 3): `users` users with `conns` sockets between
/// them; the writer steps through `--rates` (writes/s, comma-separated),
/// `secs` each. A step passes when every event reached every socket, with
/// no seq gap, no failed write and commit-to-receipt p99 under 10 ms; the
/// steps stop at the first that fails.
///
/// With `--conns 0` (scenario `write_capacity`) nobody subscribes: the
/// same writer against the write path alone, a step passing when no write
/// failed and the writes' send-to-answer p99 is under 10 ms. The two side
/// by side say what the fan-out costs the writer, measured the same way.
/// One capacity step's writes: `writes` tasks at `rate` per second, task
/// numbers from `first_task` on.
struct WriteStep {
    rate: u64,
    writes: usize,
    first_task: u64,
}

/// What one step's writer saw.
struct StepWrites {
    /// Each answered write, ms from when it was due to its answer.
    write_ms: Vec<i64>,
    failures: usize,
    /// Writes per user (by index).
    written: Vec<u64>,
    /// Writes per second reached.
    achieved: f64,
}

/// The capacity steps' writer, on a thread and a runtime of its own, so
/// that the 2,000 socket readers on the main runtime neither delay when a
/// write is sent nor when its answer is timed (only the OS schedules the
/// two, as it would two client machines' worth of work).
fn spawn_writer(
    api: String,
    users: Vec<User>,
) -> tokio::sync::mpsc::UnboundedSender<(WriteStep, oneshot::Sender<StepWrites>)> {
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<(WriteStep, oneshot::Sender<StepWrites>)>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the writer");
        runtime.block_on(async move {
            let http = reqwest::Client::new();
            while let Some((step, done)) = rx.recv().await {
                let _ = done.send(write_step(&http, &api, &users, step).await);
            }
        });
    });
    tx
}

/// Sends one step's writes on schedule (open loop, at most 64 in flight).
async fn write_step(
    http: &reqwest::Client,
    api: &str,
    users: &[User],
    step: WriteStep,
) -> StepWrites {
    let mut written = vec![0u64; users.len()];
    let in_flight = Arc::new(Semaphore::new(64));
    let mut writers = JoinSet::new();
    let started = Instant::now();
    for n in 0..step.writes {
        let due = started + Duration::from_secs_f64(n as f64 / step.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let (http, api, user) = (http.clone(), api.to_owned(), users[n % users.len()].clone());
        written[n % users.len()] += 1;
        let task = step.first_task + n as u64;
        writers.spawn(async move {
            // Send to answer, from when it was due (time waiting for an
            // in-flight slot counts).
            let ok = client::create_task(&http, &api, &user, task, false)
                .await
                .is_ok();
            drop(permit);
            (ok, due.elapsed().as_millis() as i64)
        });
    }
    let mut failures = 0;
    let mut write_ms = Vec::with_capacity(step.writes);
    while let Some(done) = writers.join_next().await {
        match done {
            Ok((true, ms)) => write_ms.push(ms),
            _ => failures += 1,
        }
    }
    StepWrites {
        write_ms,
        failures,
        written,
        achieved: step.writes as f64 / started.elapsed().as_secs_f64(),
    }
}

pub async fn capacity(args: &Args) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    let conns = args.number("conns", 2000) as usize;
    let secs = args.number("secs", 10).min(60);
    let rates: Vec<u64> = args
        .string("rates", "500,1000,1500,2000,2500,3000")
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .filter(|r| *r > 0)
        .take(20)
        .collect();
    let users = users(args, &http, args.number("users", 1000)).await?;
    let (open, _, failed) = if conns == 0 {
        (Vec::new(), Duration::ZERO, 0)
    } else {
        open_all(&args.ws(), &users, conns, false).await
    };
    let conns_per_user: Vec<u64> = (0..users.len())
        .map(|u| open.iter().filter(|(n, _)| n % users.len() == u).count() as u64)
        .collect();
    let tally = Arc::new(Tally::default());
    let (stop, stopped) = watch::channel(false);
    let mut readers = JoinSet::new();
    for (_, ws) in open {
        readers.spawn(read_events(ws, tally.clone(), stopped.clone(), true));
    }
    let node_pid = args.number("pid", 0) as u32;
    let writer = spawn_writer(args.api(), users.clone());
    let mut steps = Vec::new();
    let mut best: Option<(u64, f64)> = None;
    let mut next_task = 0u64;
    for rate in rates {
        tally.received.store(0, Ordering::Relaxed);
        tally.gaps.store(0, Ordering::Relaxed);
        tally.latencies_ms.lock().expect("not poisoned").clear();
        let cpu_before = client::cpu_ms(node_pid);
        let (api, metrics_of_ws) = (args.api(), ws_base(&args.ws()));
        let writes_timed = || {
            client::histogram_within_10ms(
                &http,
                &api,
                "http_request_duration_seconds",
                &["route=\"/api/tasks\"", "method=\"POST\""],
            )
        };
        let sends_timed = || {
            client::histogram_within_10ms(&http, &metrics_of_ws, "ws_fanout_latency_seconds", &[])
        };
        let (server_before, fanout_before) = (writes_timed().await, sends_timed().await);
        let writes = (rate * secs) as usize;
        let (done, answer) = oneshot::channel();
        let step = WriteStep {
            rate,
            writes,
            first_task: next_task,
        };
        writer.send((step, done)).expect("the writer thread runs");
        next_task += writes as u64;
        let StepWrites {
            mut write_ms,
            failures: write_failures,
            written,
            achieved,
        } = answer.await.expect("the writer thread answers");
        write_ms.sort_unstable();
        let write_p99 = percentile(&write_ms, 0.99);
        // Where the writes' tail is: the share over 10 ms as the writer saw
        // them, and as the api-node itself timed them.
        let client_slow =
            write_ms.iter().filter(|ms| **ms >= 10).count() as f64 / write_ms.len().max(1) as f64;
        let slow_share = |after: Option<(f64, f64)>, before: Option<(f64, f64)>| {
            after.zip(before).map(|((count, fast), (count0, fast0))| {
                1.0 - (fast - fast0) / (count - count0).max(1.0)
            })
        };
        let server_slow = slow_share(writes_timed().await, server_before);
        let expected: u64 = written
            .iter()
            .zip(&conns_per_user)
            .map(|(w, c)| w * c)
            .sum();
        let deadline = Instant::now() + Duration::from_secs(10);
        while tally.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let received = tally.received.load(Ordering::Relaxed);
        let gaps = tally.gaps.load(Ordering::Relaxed);
        // The events' share over 10 ms as the ws-node timed them (commit
        // to its write to the socket), beside the readers' own view.
        let fanout_slow = if conns == 0 {
            None
        } else {
            slow_share(sends_timed().await, fanout_before)
        };
        let mut latencies = tally.latencies_ms.lock().expect("not poisoned").clone();
        latencies.sort_unstable();
        let (p50, p99) = if conns == 0 {
            (percentile(&write_ms, 0.5), write_p99)
        } else {
            (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
        };
        let node_cpu_ms = client::cpu_ms(node_pid).zip(cpu_before).map(|(a, b)| a - b);
        let passed = received == expected && gaps == 0 && write_failures == 0 && p99 < 10;
        let events_slow = if conns == 0 {
            0.0
        } else {
            latencies.iter().filter(|ms| **ms >= 10).count() as f64 / latencies.len().max(1) as f64
        };
        println!(
            "capacity: {rate}/s asked, {achieved:.0}/s written ({write_failures} failed, write p99 {write_p99} ms, over 10 ms: {:.2} % as sent, {} as the api-node timed them); events {received}/{expected}, gaps {gaps}; p50 {p50} ms, p99 {p99} ms, over 10 ms: {:.2} % as received, {} as the ws-node timed their sends: {}",
            client_slow * 100.0,
            percent(server_slow),
            events_slow * 100.0,
            percent(fanout_slow),
            if passed { "pass" } else { "FAIL" }
        );
        steps.push(json!({ "rate": rate, "writes_per_sec": achieved, "write_failures": write_failures,
                           "write_p99_ms": write_p99, "writes_over_10ms": client_slow, "server_writes_over_10ms": server_slow,
                           "events_over_10ms": events_slow, "ws_node_sends_over_10ms": fanout_slow,
                           "expected": expected, "received": received, "gaps": gaps, "p50_ms": p50, "p99_ms": p99,
                           "node_cpu_ms": node_cpu_ms, "passed": passed }));
        if !passed {
            break;
        }
        best = Some((rate, achieved));
    }
    let _ = stop.send(true);
    while readers.join_next().await.is_some() {}
    println!(
        "RESULT {}",
        json!({ "scenario": if conns == 0 { "write_capacity" } else { "ws_capacity" }, "connections": conns_per_user.iter().sum::<u64>(), "users": users.len(),
                "failed": failed, "secs": secs, "steps": steps,
                "best_rate": best.map(|b| b.0), "best_writes_per_sec": best.map(|b| b.1) })
    );
    Ok(best.is_some() && failed == 0)
}
