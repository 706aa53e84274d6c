// websocket.js: fan-out of task events to many subscribed sockets.
//
// setup() registers USERS users. Scenario `subscribers`: SOCKETS VUs each
// open one WebSocket (socket i belongs to user i % USERS, so every user
// has SOCKETS / USERS sockets), send SUBSCRIBE_TASKS and, for every
// TASK_* event, record
//   - ws_delivery_ms: Date.now() - event.timestamp (the commit time), ms;
//   - ws_events: one per event received;
//   - ws_seq_gaps: one per event whose seq is not the previous seq + 1
//     (a gap, a duplicate or a reordering; the first event must follow the
//     seq that SUBSCRIBED announced).
// Scenario `writer` starts SUBSCRIBE_S seconds later (time to connect and
// subscribe) and creates tasks through the REST API at WRITE_RATE per
// second for DURATION, round-robin over the same users. GRACE_S seconds
// after the writer's end, each socket asks for its user's latest seq on a
// second, short-lived connection (SUBSCRIBE_TASKS answers SUBSCRIBED with
// it) and counts what it should have received (ws_events_expected = latest
// - the seq it subscribed at) and what it did not (ws_events_missing).
//
// Expected events = writes x sockets per user. The threshold on ws_events
// uses EXPECTED_EVENTS, by default WRITE_RATE x DURATION x SOCKETS / USERS
// (what the writer does when it keeps its rate; ws_writes has the same
// threshold for the writes themselves); ws_events_missing == 0 is the exact
// per-socket check, whatever the writer managed.
//
// Env: BASE_URL, WS_URL, SOCKETS (50), USERS (5; must divide SOCKETS),
// WRITE_RATE (20/s), DURATION (20s), SUBSCRIBE_S (3), GRACE_S (3),
// WS_P99_MS (10), EXPECTED_EVENTS (computed; 0 turns that threshold off).

import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import {
    SUMMARY_TREND_STATS,
    WS_URL,
    createTask,
    durationSecs,
    envInt,
    envNumber,
    envString,
    registerUsers,
} from './lib.js';

const SOCKETS = envInt('SOCKETS', 50);
const USERS = envInt('USERS', 5);
const WRITE_RATE = envInt('WRITE_RATE', 20);
const DURATION = envString('DURATION', '20s');
const DURATION_S = durationSecs(DURATION);
const SUBSCRIBE_S = envNumber('SUBSCRIBE_S', 3);
const GRACE_S = envNumber('GRACE_S', 3);
if (USERS < 1 || SOCKETS < USERS || SOCKETS % USERS !== 0) {
    throw new Error(`USERS (${USERS}) must divide SOCKETS (${SOCKETS}): every user gets the same number of sockets`);
}
const EXPECTED_WRITES = Math.floor(WRITE_RATE * DURATION_S);
const EXPECTED_EVENTS = envInt('EXPECTED_EVENTS', EXPECTED_WRITES * (SOCKETS / USERS));

const delivery = new Trend('ws_delivery_ms');
const events = new Counter('ws_events');
const gaps = new Counter('ws_seq_gaps');
const expectedEvents = new Counter('ws_events_expected');
const missing = new Counter('ws_events_missing');
const subscribed = new Counter('ws_subscribed');
const wsErrors = new Counter('ws_errors');
const writes = new Counter('ws_writes');

const thresholds = {
    ws_delivery_ms: [`p(99)<${envNumber('WS_P99_MS', 10)}`],
    ws_seq_gaps: ['count==0'],
    ws_events_missing: ['count==0'],
    ws_subscribed: [`count==${SOCKETS}`],
    ws_errors: ['count==0'],
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
};
if (EXPECTED_EVENTS > 0) {
    thresholds.ws_events = [`count>=${EXPECTED_EVENTS}`];
    thresholds.ws_writes = [`count>=${EXPECTED_WRITES}`];
}

export const options = {
    summaryTrendStats: SUMMARY_TREND_STATS,
    scenarios: {
        subscribers: {
            executor: 'per-vu-iterations',
            exec: 'subscriber',
            vus: SOCKETS,
            iterations: 1,
            maxDuration: `${Math.ceil(SUBSCRIBE_S + DURATION_S + GRACE_S + 20)}s`,
        },
        writer: {
            executor: 'constant-arrival-rate',
            exec: 'writer',
            startTime: `${SUBSCRIBE_S}s`,
            rate: WRITE_RATE,
            timeUnit: '1s',
            duration: DURATION,
            preAllocatedVUs: Math.max(2, Math.ceil(WRITE_RATE / 4)),
            maxVUs: Math.max(10, WRITE_RATE * 2),
            gracefulStop: `${Math.max(1, Math.floor(GRACE_S))}s`,
        },
    },
    thresholds,
};

export function setup() {
    return { tokens: registerUsers(USERS, 'ws').map((u) => u.token) };
}

function url(token) {
    return `${WS_URL}?token=${encodeURIComponent(token)}`;
}

// The user's latest seq, read on a short-lived connection; calls back with
// null when it does not come within 5 s.
function latestSeq(token, done) {
    let answered = false;
    const probe = new WebSocket(url(token));
    const timer = setTimeout(() => {
        if (!answered) {
            answered = true;
            probe.close();
            done(null);
        }
    }, 5000);
    probe.onopen = () => probe.send(JSON.stringify({ type: 'SUBSCRIBE_TASKS' }));
    probe.onmessage = (e) => {
        let msg = null;
        try {
            msg = JSON.parse(e.data);
        } catch (err) {
            return;
        }
        if (msg.type === 'SUBSCRIBED' && !answered) {
            answered = true;
            clearTimeout(timer);
            probe.close();
            done(msg.seq);
        }
    };
    probe.onerror = () => {
        if (!answered) {
            answered = true;
            clearTimeout(timer);
            done(null);
        }
    };
}

export function subscriber(data) {
    const index = exec.scenario.iterationInTest; // 0 .. SOCKETS-1
    const token = data.tokens[index % USERS];
    // Make every counter exist (a threshold on an empty metric is useless).
    [events, gaps, expectedEvents, missing, subscribed, wsErrors].forEach((c) => c.add(0));

    let baseline = null; // the seq SUBSCRIBED announced
    let last = null; // the highest seq seen
    let closing = false;
    let received = 0;

    const ws = new WebSocket(url(token));
    ws.onopen = () => ws.send(JSON.stringify({ type: 'SUBSCRIBE_TASKS' }));
    ws.onmessage = (e) => {
        const now = Date.now();
        let msg = null;
        try {
            msg = JSON.parse(e.data);
        } catch (err) {
            wsErrors.add(1, { kind: 'not_json' });
            return;
        }
        switch (msg.type) {
            case 'SUBSCRIBED':
                if (baseline === null) {
                    baseline = msg.seq;
                    last = msg.seq;
                    subscribed.add(1);
                }
                break;
            case 'TASK_CREATED':
            case 'TASK_UPDATED':
            case 'TASK_DELETED':
                if (last === null) {
                    // Without `since`, nothing may come before SUBSCRIBED.
                    wsErrors.add(1, { kind: 'event_before_subscribed' });
                    return;
                }
                received += 1;
                events.add(1);
                delivery.add(now - msg.timestamp);
                if (msg.seq !== last + 1) {
                    gaps.add(1);
                    console.warn(`socket ${index}: seq ${msg.seq} after ${last}`);
                }
                if (msg.seq > last) last = msg.seq;
                break;
            default:
                wsErrors.add(1, { kind: String(msg.type) });
                console.warn(`socket ${index}: unexpected message ${e.data}`);
        }
    };
    ws.onerror = (e) => {
        if (!closing) {
            wsErrors.add(1, { kind: 'error' });
            console.error(`socket ${index}: ${e.error}`);
        }
    };
    ws.onclose = () => {
        if (!closing) {
            wsErrors.add(1, { kind: 'closed_early' });
            console.error(`socket ${index}: closed by the server`);
        }
    };

    // GRACE_S after the writer's last write: compare with the latest seq.
    const finishAt = exec.scenario.startTime + (SUBSCRIBE_S + DURATION_S + GRACE_S) * 1000;
    setTimeout(() => {
        latestSeq(token, (latest) => {
            const ok = check(latest, { 'latest seq read at the end': (l) => l !== null });
            if (ok && baseline !== null) {
                expectedEvents.add(latest - baseline);
                if (latest > last) {
                    missing.add(latest - last);
                    console.warn(`socket ${index}: last seq ${last}, latest ${latest}`);
                }
            }
            check(baseline, { 'subscribed': (b) => b !== null });
            check(received, { 'received events': (n) => n > 0 });
            closing = true;
            ws.close();
        });
    }, Math.max(0, finishAt - Date.now()));
}

export function writer(data) {
    const i = exec.scenario.iterationInTest;
    const token = data.tokens[i % USERS];
    const { task } = createTask(token, { title: `ws fan-out ${i}`, priority: i % 11 });
    if (task) writes.add(1);
}
