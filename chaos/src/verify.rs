//! Everything checked against PostgreSQL's `task_events` once the run is
//! over: which write made each event, whether each socket got every event
//! of its user after its first subscription point exactly once and in
//! order, and what each phase cost in failed requests and delay. Events
//! belong to the phase in which they were committed (their `timestamp`);
//! writes to the phase in which they were sent.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use uuid::Uuid;

use crate::db::{Db, StoredEvent};
use crate::phase::{Allowed, Check, Phase};
use crate::sockets::{lock, Shared};
use crate::workload::{Kind, Op, Outcome, User};

/// An event's payload, as far as the checks need it.
struct Payload {
    kind: Option<Kind>,
    /// N of "chaos op N" (created and updated tasks).
    mark: Option<u64>,
    task: Option<Uuid>,
    timestamp: i64,
}

fn parse(payload: &str) -> Payload {
    let value: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let kind = match value["type"].as_str() {
        Some("TASK_CREATED") => Some(Kind::Create),
        Some("TASK_UPDATED") => Some(Kind::Update),
        Some("TASK_DELETED") => Some(Kind::Delete),
        _ => None,
    };
    Payload {
        kind,
        mark: value["task"]["title"]
            .as_str()
            .and_then(|t| t.strip_prefix("chaos op "))
            .and_then(|n| n.parse().ok()),
        task: value["task"]["id"].as_str().and_then(|id| id.parse().ok()),
        timestamp: value["timestamp"].as_i64().unwrap_or(0),
    }
}

/// The write (index into `ops`) behind each event, if one matches: same
/// user, same kind, and the mark (or, for a deletion, the task id).
fn writer_of(users: &[User], ops: &[Op], events: &[StoredEvent]) -> Vec<Option<usize>> {
    let by_mark: HashMap<u64, usize> = ops.iter().enumerate().map(|(i, op)| (op.n, i)).collect();
    let deletions: HashMap<Uuid, usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.kind == Kind::Delete)
        .filter_map(|(i, op)| op.task.map(|t| (t, i)))
        .collect();
    let user_index: HashMap<Uuid, usize> =
        users.iter().enumerate().map(|(i, u)| (u.id, i)).collect();
    events
        .iter()
        .map(|event| {
            let payload = parse(&event.payload);
            let op = match payload.kind? {
                Kind::Delete => deletions.get(&payload.task?)?,
                _ => by_mark.get(&payload.mark?)?,
            };
            let op_ref = &ops[*op];
            (Some(op_ref.kind) == payload.kind && user_index.get(&event.user) == Some(&op_ref.user))
                .then_some(*op)
        })
        .collect()
}

/// Of the events `keys`, those whose write went to api-node `node`.
pub async fn written_through(
    db: &Db,
    users: &[User],
    ops: &[Op],
    keys: &[(Uuid, i64)],
    node: usize,
) -> anyhow::Result<Vec<(Uuid, i64)>> {
    let wanted: HashSet<(Uuid, i64)> = keys.iter().copied().collect();
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let events: Vec<StoredEvent> = db
        .events(&ids)
        .await?
        .into_iter()
        .filter(|e| wanted.contains(&(e.user, e.seq)))
        .collect();
    let writers = writer_of(users, ops, &events);
    Ok(events
        .iter()
        .zip(writers)
        .filter(|(_, op)| op.is_some_and(|op| ops[op].node == node))
        .map(|(e, _)| (e.user, e.seq))
        .collect())
}

/// One phase's figures.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Writes sent.
    pub writes: usize,
    /// Writes acknowledged (2xx).
    pub acked: usize,
    /// Writes not acknowledged, by outcome.
    pub failed: BTreeMap<String, usize>,
    /// Failures the fault does not allow, by outcome.
    pub disallowed: BTreeMap<String, usize>,
    /// Answers with status 500.
    pub http_500: usize,
    /// Writes committed though they got no answer (allowed).
    pub committed_unanswered: usize,
    /// Acknowledged writes with no event ("chaos op N").
    pub acked_missing: Vec<u64>,
    /// Writes answered with an error that committed anyway.
    pub error_committed: Vec<u64>,
    /// Events no write of the suite explains.
    pub unexplained: usize,
    /// Events committed in the phase.
    pub events: usize,
    /// Events received (first copies) by all sockets.
    pub deliveries: usize,
    /// Events a socket never got (after its subscription point).
    pub lost: usize,
    /// Events a socket got twice (or at/below its subscription point).
    pub duplicated: usize,
    /// Events that came after a later one.
    pub out_of_order: usize,
    /// Times a socket's next event was not previous + 1.
    pub skipped: usize,
    /// `RESYNC_REQUIRED` answers.
    pub resyncs: usize,
    /// Sockets that never got a `SUBSCRIBED`.
    pub never_subscribed: usize,
    /// Connections closed (socket reconnects).
    pub reconnects: usize,
    /// Why they closed: `1001`, `read failed`, ...
    pub close_reasons: BTreeMap<String, usize>,
    /// The longest commit → receipt delay of an event committed here.
    pub max_delay_ms: Option<i64>,
    /// Its 99th percentile.
    pub p99_delay_ms: Option<i64>,
    /// Fault → the first success after the last failed request.
    pub recover_ms: Option<i64>,
    /// Examples of what went wrong, for the report.
    pub examples: Vec<String>,
}

/// What the run showed, phase by phase.
pub struct Verdict {
    /// One per phase, in order.
    pub figures: Vec<Figures>,
}

/// The phase a moment belongs to.
fn phase_of(phases: &[Phase], ms: i64) -> usize {
    phases.iter().rposition(|p| p.start_ms <= ms).unwrap_or(0)
}

fn allowed(allowed: Allowed, op: &Op) -> bool {
    match (allowed, &op.outcome) {
        (Allowed::NoAnswerFrom(node), Outcome::NoAnswer(_)) => op.node == node,
        (Allowed::Unavailable, Outcome::Answered(503, Some(code))) => code == "UNAVAILABLE",
        _ => false,
    }
}

/// Checks the run and adds each phase's common checks to it.
pub fn verify(
    phases: &mut [Phase],
    users: &[User],
    ops: &[Op],
    sockets: &[Shared],
    events: &[StoredEvent],
    latest: &HashMap<Uuid, i64>,
) -> Verdict {
    let mut figures = vec![Figures::default(); phases.len()];
    let phase_of_op = |op: &Op| op.phase.min(phases.len() - 1);

    // Writes against events.
    let writers = writer_of(users, ops, events);
    let mut committed = vec![false; ops.len()];
    let mut commit_ms: HashMap<(Uuid, i64), i64> = HashMap::new();
    for (event, writer) in events.iter().zip(&writers) {
        let timestamp = parse(&event.payload).timestamp;
        commit_ms.insert((event.user, event.seq), timestamp);
        let f = &mut figures[phase_of(phases, timestamp)];
        f.events += 1;
        match writer {
            Some(op) => committed[*op] = true,
            None => {
                f.unexplained += 1;
                if f.examples.len() < 8 {
                    f.examples.push(format!(
                        "event seq {} of user {} matches no write: {}",
                        event.seq, event.user, event.payload
                    ));
                }
            }
        }
    }
    for (op, committed) in ops.iter().zip(&committed) {
        let i = phase_of_op(op);
        let f = &mut figures[i];
        f.writes += 1;
        if op.outcome.acked() {
            f.acked += 1;
            if !committed {
                f.acked_missing.push(op.n);
            }
            continue;
        }
        *f.failed.entry(op.outcome.label()).or_default() += 1;
        if !allowed(phases[i].allowed, op) {
            *f.disallowed.entry(op.outcome.label()).or_default() += 1;
        }
        if matches!(op.outcome, Outcome::Answered(500, _)) {
            f.http_500 += 1;
        }
        if *committed {
            match op.outcome {
                Outcome::NoAnswer(_) => f.committed_unanswered += 1,
                Outcome::Answered(..) => f.error_committed.push(op.n),
            }
        }
    }

    // Time to recover: fault → first success after the last failure.
    for (i, phase) in phases.iter().enumerate() {
        let last_failure = ops
            .iter()
            .filter(|op| phase_of_op(op) == i && !op.outcome.acked())
            .map(|op| op.started_ms)
            .max();
        if let Some(last) = last_failure {
            let first_success = ops
                .iter()
                .filter(|op| op.outcome.acked() && op.started_ms > last)
                .map(|op| op.finished_ms)
                .min();
            let from = phase.fault_ms.unwrap_or(phase.start_ms);
            figures[i].recover_ms = first_success.map(|s| s - from);
        }
    }

    // Every socket's stream.
    let mut delays: Vec<Vec<i64>> = vec![Vec::new(); phases.len()];
    for socket in sockets {
        let log = lock(socket);
        let user = users[log.user].id;
        for close in &log.closes {
            let f = &mut figures[phase_of(phases, close.at_ms)];
            f.reconnects += 1;
            let why = match close.code {
                Some(code) => format!("close {code}"),
                None => close.why.split(':').next().unwrap_or("").to_owned(),
            };
            *f.close_reasons.entry(why).or_default() += 1;
        }
        for at in &log.resyncs {
            figures[phase_of(phases, *at)].resyncs += 1;
        }
        let Some(start) = log.sub_point else {
            let f = &mut figures[phase_of(phases, log.opened_ms)];
            f.never_subscribed += 1;
            f.examples
                .push(format!("socket {} never got SUBSCRIBED", log.id));
            continue;
        };
        let last = latest.get(&user).copied().unwrap_or(0);
        let mut seen = HashSet::new();
        let mut previous = start;
        for r in &log.received {
            let i = phase_of(phases, r.commit_ms);
            let f = &mut figures[i];
            if r.seq <= start || !seen.insert(r.seq) {
                f.duplicated += 1;
                if f.examples.len() < 8 {
                    f.examples.push(format!(
                        "socket {} (user {}) got seq {} again",
                        log.id, log.user, r.seq
                    ));
                }
                continue;
            }
            f.deliveries += 1;
            delays[i].push(r.at_ms - r.commit_ms);
            if r.seq < previous {
                f.out_of_order += 1;
                if f.examples.len() < 8 {
                    f.examples.push(format!(
                        "socket {} (user {}) got seq {} after {previous}",
                        log.id, log.user, r.seq
                    ));
                }
            } else if r.seq > previous + 1 {
                f.skipped += 1;
                if f.examples.len() < 8 {
                    f.examples.push(format!(
                        "socket {} ({}, user {}) got seq {} right after {previous}",
                        log.id, log.label, log.user, r.seq
                    ));
                }
            }
            previous = previous.max(r.seq);
        }
        let mut lost: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        for seq in start + 1..=last {
            if !seen.contains(&seq) {
                let at = commit_ms.get(&(user, seq)).copied().unwrap_or(0);
                lost.entry(phase_of(phases, at)).or_default().push(seq);
            }
        }
        for (i, seqs) in lost {
            let f = &mut figures[i];
            f.lost += seqs.len();
            if f.examples.len() < 8 {
                f.examples.push(format!(
                    "socket {} ({}, user {}, subscribed at {start}) never got seqs {seqs:?}",
                    log.id, log.label, log.user
                ));
            }
        }
    }
    for (f, mut d) in figures.iter_mut().zip(delays) {
        d.sort_unstable();
        f.max_delay_ms = d.last().copied();
        f.p99_delay_ms = (!d.is_empty()).then(|| d[(d.len() - 1) * 99 / 100]);
    }

    for (phase, f) in phases.iter_mut().zip(&figures) {
        add_common_checks(phase, f);
    }
    Verdict { figures }
}

/// How many checks every phase gets from [`verify`] (they come first).
pub const COMMON_CHECKS: usize = 4;

fn add_common_checks(phase: &mut Phase, f: &Figures) {
    let whole = f.lost + f.duplicated + f.out_of_order + f.skipped + f.resyncs + f.never_subscribed;
    let common = [
        Check {
            name: "every socket's stream whole: nothing lost, duplicated, out of order or skipped"
                .into(),
            ok: whole == 0,
            detail: format!(
                "{} events committed, {} deliveries; lost {}, duplicated {}, out of order {}, skipped {}, resync {}, never subscribed {}",
                f.events,
                f.deliveries,
                f.lost,
                f.duplicated,
                f.out_of_order,
                f.skipped,
                f.resyncs,
                f.never_subscribed
            ),
        },
        Check {
            name: "writes against task_events: every acknowledged write there, no error-answered write committed, every event from a write".into(),
            ok: f.acked_missing.is_empty() && f.error_committed.is_empty() && f.unexplained == 0,
            detail: format!(
                "{} writes, {} acknowledged; acknowledged but missing {:?}; answered with an error but committed {:?}; committed without an answer {} (allowed); events with no write {}",
                f.writes,
                f.acked,
                f.acked_missing,
                f.error_committed,
                f.committed_unanswered,
                f.unexplained
            ),
        },
        Check {
            name: "no HTTP 500".into(),
            ok: f.http_500 == 0,
            detail: format!("{} answers with 500", f.http_500),
        },
        Check {
            name: "requests failed only as the fault allows".into(),
            ok: f.disallowed.is_empty(),
            detail: format!(
                "failed: {}; not allowed: {}",
                summary(&f.failed),
                summary(&f.disallowed)
            ),
        },
    ];
    debug_assert_eq!(common.len(), COMMON_CHECKS);
    phase.checks.splice(0..0, common);
}

/// `3× 503 UNAVAILABLE, 1× no answer (connect failed)`, or `none`.
pub fn summary(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(label, n)| format!("{n}× {label}"))
        .collect::<Vec<_>>()
        .join(", ")
}
