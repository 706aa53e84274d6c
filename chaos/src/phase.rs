//! A phase of the run: the fault it injects, which failed requests it may
//! cause, what happened, and its checks' verdicts.

use std::time::Duration;

use crate::now_ms;

/// Which failed requests a fault may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// None: writes never depend on what this fault breaks.
    Nothing,
    /// Requests to this api-node may get no answer (it was killed).
    NoAnswerFrom(usize),
    /// `503 UNAVAILABLE` (PostgreSQL is down).
    Unavailable,
}

/// One check's verdict.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// The figures behind it.
    pub detail: String,
}

/// One phase of the run.
#[derive(Debug, Clone)]
pub struct Phase {
    /// `0` for the fault-free start, else `a`..`j`.
    pub key: char,
    /// The fault, in a few words.
    pub title: &'static str,
    /// What is checked beyond what every phase checks.
    pub checks_what: &'static str,
    /// When the phase began (ms since the epoch).
    pub start_ms: i64,
    /// When the fault was injected.
    pub fault_ms: Option<i64>,
    /// Which failed requests it may cause.
    pub allowed: Allowed,
    /// Fault → every node ready and every socket subscribed and caught up.
    pub settled_ms: Option<i64>,
    /// What happened, for the report.
    pub notes: Vec<String>,
    /// This phase's own checks (the common ones are added when verifying).
    pub checks: Vec<Check>,
}

impl Phase {
    /// A phase starting now.
    pub fn new(
        key: char,
        title: &'static str,
        checks_what: &'static str,
        allowed: Allowed,
    ) -> Self {
        Self {
            key,
            title,
            checks_what,
            start_ms: now_ms(),
            fault_ms: None,
            allowed,
            settled_ms: None,
            notes: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Records a check's verdict.
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// Marks the fault as injected now.
    pub fn fault_now(&mut self) -> i64 {
        let now = now_ms();
        self.fault_ms = Some(now);
        now
    }
}

/// The faults in the order they run: key, title, what is checked.
pub const FAULTS: [(char, &str, &str); 10] = [
    ('a', "kill -9 of an api-node, restarted", "only the killed node's requests may go unanswered; recovery"),
    ('b', "api-node killed between commit and publish (Redis stopped, writes through it, kill -9, Redis continued)", "it held committed, unpublished events; the surviving node's relay published every one while it was dead"),
    ('c', "kill -9 of a ws-node, restarted", "its sockets resume on the other node with `since`"),
    ('d', "SIGTERM of a ws-node (drain), restarted", "it exits within its grace; every socket it held was closed with 1001"),
    ('e', "Redis killed (kill -9) for 5 s, restarted empty", "no write fails; events committed meanwhile arrive after it is back"),
    ('f', "PostgreSQL restarted (fast stop, 1 s down, start)", "requests fail only with 503 UNAVAILABLE, never 500"),
    ('g', "a ws-node frozen (SIGSTOP) for 5 s, then SIGCONT", "its sockets get every event once it runs again"),
    ('h', "sockets of one user meet on a node while events are late (Redis stopped 3 s, new sockets subscribe beside an older one)", "the older socket still gets the late events (issue 8, defect 1)"),
    ('i', "30 sockets of one user on a ws-node that is killed", "all 30 reconnect at once to the other node and resume"),
    ('j', "kill -9 of the Redis Cluster primary that owns the most users' channels, under traffic; its replica is promoted", "its own replica takes over; writes of its users were acknowledged while it was down; requests fail only with 503 UNAVAILABLE; reads afterwards agree with PostgreSQL"),
];

/// The phase of fault `key`.
pub fn fault(key: char, allowed: Allowed) -> Phase {
    let (_, title, checks_what) = FAULTS
        .iter()
        .find(|(k, _, _)| *k == key)
        .expect("BUG: unknown fault");
    Phase::new(key, title, checks_what, allowed)
}

/// `1.23 s`, or `—`.
pub fn secs(ms: Option<i64>) -> String {
    ms.map_or("—".into(), |ms| format!("{:.2} s", ms as f64 / 1000.0))
}

/// `1.23 s`.
pub fn secs_of(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
