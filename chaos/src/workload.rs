//! The bounded workload: users registered over the API, and one writer per
//! user creating, updating and deleting that user's own tasks at a steady
//! pace, spread over both api-nodes. Every write is marked "chaos op N"
//! (title, and description on create) so its event can be found in
//! `task_events`; a deletion is found by its task id (each task is deleted
//! at most once). Every request and its outcome is recorded.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::now_ms;

/// Each request's own limit: longer than the nodes' database timeout, so a
/// slow answer is still an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);
/// `route` value meaning "alternate over every api-node".
const ANY_NODE: usize = usize::MAX;

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    /// Its id.
    pub id: Uuid,
    /// A token for it.
    pub token: String,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// POST /api/tasks.
    Create,
    /// PUT /api/tasks/:id.
    Update,
    /// DELETE /api/tasks/:id.
    Delete,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer: status, and the error body's `code` if any.
    Answered(u16, Option<String>),
    /// No HTTP answer at all (refused, reset, timed out).
    NoAnswer(String),
}

impl Outcome {
    /// A 2xx answer.
    pub fn acked(&self) -> bool {
        matches!(self, Outcome::Answered(status, _) if (200..300).contains(status))
    }

    /// How it is counted in the report: `201`, `503 UNAVAILABLE`, `no answer: refused`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Answered(status, Some(code)) => format!("{status} {code}"),
            Outcome::Answered(status, None) => status.to_string(),
            Outcome::NoAnswer(why) => format!("no answer ({why})"),
        }
    }
}

/// One write request.
#[derive(Debug, Clone)]
pub struct Op {
    /// Its number: the "chaos op N" mark.
    pub n: u64,
    /// Its user (index).
    pub user: usize,
    /// What it did.
    pub kind: Kind,
    /// Which api-node it went to.
    pub node: usize,
    /// The phase running when it started.
    pub phase: usize,
    /// The task it touched (for a create: the one created, if answered).
    pub task: Option<Uuid>,
    /// When it was sent and when it ended (ms since the epoch).
    pub started_ms: i64,
    /// When it ended.
    pub finished_ms: i64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Registers `n` users, alternating over the api-nodes, a few at a time
/// (each costs a password hash).
pub async fn register(
    http: &reqwest::Client,
    api: &[String],
    n: usize,
) -> anyhow::Result<Vec<User>> {
    let run = Uuid::new_v4().simple().to_string();
    let registrations = (0..n).map(|i| {
        let url = format!("{}/api/auth/register", api[i % api.len()]);
        let body = json!({
            "email": format!("chaos-{}-{i}@example.com", &run[..12]),
            "password": "chaos-password-0123",
            "name": format!("Chaos {i}"),
        });
        async move {
            let reply: Value = http
                .post(url)
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id = reply["user"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .context("no user id in the register reply")?;
            let token = reply["token"]
                .as_str()
                .context("no token in the register reply")?
                .to_owned();
            anyhow::Ok((i, User { id, token }))
        }
    });
    let mut users: Vec<(usize, User)> = stream::iter(registrations)
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    users.sort_by_key(|(i, _)| *i);
    Ok(users.into_iter().map(|(_, u)| u).collect())
}

/// What the writers share.
struct Shared {
    http: reqwest::Client,
    api: Vec<String>,
    users: Vec<User>,
    ops: Mutex<Vec<Op>>,
    next_op: AtomicU64,
    /// Which api-node takes the writes: one of them, or `ANY_NODE`.
    route: AtomicUsize,
    /// Alternation over the nodes.
    turn: AtomicUsize,
    phase: AtomicUsize,
}

/// The running writers.
pub struct Workload {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    writers: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts one writer per user; together they write `rate` times a
    /// second until stopped or `deadline`.
    pub fn start(api: Vec<String>, users: Vec<User>, rate: u32, deadline: Instant) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("BUG: a plain HTTP client builds");
        let shared = Arc::new(Shared {
            http,
            api,
            users,
            ops: Mutex::default(),
            next_op: AtomicU64::new(1),
            route: AtomicUsize::new(ANY_NODE),
            turn: AtomicUsize::new(0),
            phase: AtomicUsize::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let count = shared.users.len();
        let period = Duration::from_secs_f64(count as f64 / f64::from(rate.max(1)));
        let writers = (0..count)
            .map(|user| {
                // Staggered, so the writes are spread evenly over time.
                let first = Instant::now() + period.mul_f64(user as f64 / count as f64);
                tokio::spawn(writer(
                    shared.clone(),
                    user,
                    first,
                    period,
                    deadline,
                    stopped.clone(),
                ))
            })
            .collect();
        Self {
            shared,
            stop,
            writers,
        }
    }

    /// Sends every write to api-node `node`, or alternates (`None`).
    pub fn route_to(&self, node: Option<usize>) {
        self.shared
            .route
            .store(node.unwrap_or(ANY_NODE), Ordering::SeqCst);
    }

    /// Marks the writes that start from now on as phase `phase`'s.
    pub fn set_phase(&self, phase: usize) {
        self.shared.phase.store(phase, Ordering::SeqCst);
    }

    /// One extra create for `user`, recorded like every other write.
    pub async fn create_for(&self, user: usize) -> Op {
        let mut tasks = Vec::new();
        write(&self.shared, user, Kind::Create, None, &mut tasks).await
    }

    /// Every write so far.
    pub fn ops(&self) -> Vec<Op> {
        self.shared.ops.lock().expect("BUG: poisoned").clone()
    }

    /// Stops the writers and waits (bounded) for their last requests.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        for writer in self.writers.drain(..) {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, writer).await;
        }
    }
}

/// A small deterministic generator: the workload is the same every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// One user's writes, one at a time (so two writes never race on a task).
async fn writer(
    shared: Arc<Shared>,
    user: usize,
    mut next: Instant,
    period: Duration,
    deadline: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (user as u64 + 1));
    let mut tasks: Vec<Uuid> = Vec::new();
    while Instant::now() < deadline {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        next += period;
        // A write slower than the period delays the next; it never bunches.
        next = next.max(Instant::now());
        let (kind, task) = match (tasks.len(), dice.roll(20)) {
            (n, _) if n < 3 => (Kind::Create, None),
            (_, 0..=6) => (Kind::Create, None),
            (n, 7..=13) => (Kind::Update, Some(tasks[dice.roll(n as u64) as usize])),
            (n, _) => {
                // Never touched again whatever the answer: a deletion with
                // no answer may have committed.
                let task = tasks.swap_remove(dice.roll(n as u64) as usize);
                (Kind::Delete, Some(task))
            }
        };
        write(&shared, user, kind, task, &mut tasks).await;
    }
}

/// Sends one write and records it; a created task joins `tasks`.
async fn write(
    shared: &Shared,
    user: usize,
    kind: Kind,
    task: Option<Uuid>,
    tasks: &mut Vec<Uuid>,
) -> Op {
    let n = shared.next_op.fetch_add(1, Ordering::SeqCst);
    let node = match shared.route.load(Ordering::SeqCst) {
        ANY_NODE => shared.turn.fetch_add(1, Ordering::Relaxed) % shared.api.len(),
        node => node,
    };
    let phase = shared.phase.load(Ordering::SeqCst);
    let base = &shared.api[node];
    let mark = format!("chaos op {n}");
    let token = &shared.users[user].token;
    let request = match (kind, task) {
        (Kind::Create, _) => shared
            .http
            .post(format!("{base}/api/tasks"))
            .json(&json!({ "title": mark, "description": mark })),
        (Kind::Update, Some(id)) => shared
            .http
            .put(format!("{base}/api/tasks/{id}"))
            .json(&json!({ "title": mark, "priority": n % 11 })),
        (Kind::Delete, Some(id)) => shared.http.delete(format!("{base}/api/tasks/{id}")),
        (_, None) => unreachable!("BUG: an update or delete without a task"),
    }
    .bearer_auth(token);
    let started_ms = now_ms();
    let (outcome, created) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Option<Value> = response.json().await.ok();
            let code = body
                .as_ref()
                .and_then(|b| b["code"].as_str())
                .map(str::to_owned);
            let created = body
                .as_ref()
                .and_then(|b| b["id"].as_str())
                .and_then(|id| id.parse::<Uuid>().ok());
            (Outcome::Answered(status, code), created)
        }
        Err(err) => (Outcome::NoAnswer(describe(&err)), None),
    };
    let task = match kind {
        Kind::Create if outcome.acked() => {
            if let Some(id) = created {
                tasks.push(id);
            }
            created
        }
        _ => task,
    };
    let op = Op {
        n,
        user,
        kind,
        node,
        phase,
        task,
        started_ms,
        finished_ms: now_ms(),
        outcome,
    };
    shared.ops.lock().expect("BUG: poisoned").push(op.clone());
    op
}

/// A short name for a request that got no answer.
fn describe(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "connect failed".into()
    } else if err.is_timeout() {
        "timed out".into()
    } else {
        "connection lost".into()
    }
}
