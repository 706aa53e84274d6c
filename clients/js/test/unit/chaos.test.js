// The promise of LiveConnection under a hostile network: a simulated
// server that duplicates events, loses some (gaps), closes sockets at
// random, refuses connects and answers RESYNC_REQUIRED now and then. Over
// many seeded runs the app must see each event once, in seq order (a
// resync restarts the count from its seq), and catch up at the end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiveConnection } from '../../src/index.js';
import { FakeWebSocket, FakeClock } from './fakes.js';

// A small seeded PRNG (mulberry32): each failing seed can be replayed.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const event = (seq) => ({ type: 'TASK_CREATED', seq, timestamp: 0, task: { id: `t${seq}`, version: 1 } });

function run(seed, steps) {
  const rand = prng(seed);
  const clock = new FakeClock();
  FakeWebSocket.reset();
  let latest = 0; // the server's log: events 1..latest
  const sockets = new Map(); // FakeWebSocket -> {sent: last seq sent to it, or null before SUBSCRIBED}
  const live = new LiveConnection({
    url: 'ws://server/ws/updates',
    token: 't',
    WebSocket: FakeWebSocket,
    timers: clock,
    random: rand,
    heartbeatMs: 0,
    backoff: { initialMs: 10, maxMs: 200 },
  });

  const app = { expected: null, seen: 0, violations: [] };
  live.on('subscribed', ({ seq, resumed }) => {
    if (!resumed) app.expected = seq + 1; // a snapshot at seq
  });
  live.on('event', (e) => {
    if (e.seq !== app.expected) app.violations.push(`got ${e.seq}, expected ${app.expected}`);
    app.expected = e.seq + 1;
    app.seen += 1;
  });

  // The server's side of each socket: answers what the client sent.
  const serve = (ws, chaos) => {
    const state = sockets.get(ws);
    while (ws.sent.length > state.read) {
      const message = JSON.parse(ws.sent[state.read++]);
      if (message.type !== 'SUBSCRIBE_TASKS') continue;
      const since = message.since;
      if (since !== undefined) {
        if (since > latest || (chaos && rand() < 0.05)) {
          // A prefix, sometimes, then RESYNC_REQUIRED (history failed part way).
          const upto = since < latest ? since + Math.floor(rand() * (latest - since)) : since;
          for (let s = since + 1; s <= upto; s++) ws.receive(event(s));
          ws.receive({ type: 'RESYNC_REQUIRED', seq: latest });
        } else {
          for (let s = since + 1; s <= latest; s++) ws.receive(event(s));
        }
      }
      ws.receive({ type: 'SUBSCRIBED', seq: latest });
      state.sent = latest;
    }
  };

  live.start();
  for (let step = 0; step < steps; step++) {
    const r = rand();
    if (r < 0.3) latest += 1; // a commit
    // Every open socket: answer, then push events with mischief.
    for (const ws of FakeWebSocket.instances) {
      if (ws.readyState === FakeWebSocket.CONNECTING) {
        if (rand() < 0.2) ws.fail();
        else {
          ws.open();
          sockets.set(ws, { read: 0, sent: null });
        }
        continue;
      }
      if (ws.readyState !== FakeWebSocket.OPEN || !sockets.has(ws)) continue;
      serve(ws, true);
      const state = sockets.get(ws);
      if (state.sent === null) continue;
      while (state.sent < latest && ws.readyState === FakeWebSocket.OPEN) {
        const m = rand();
        if (m < 0.05) state.sent += 1; // lost on the way: a gap
        else if (m < 0.1 && state.sent > 0) ws.receive(event(Math.max(1, state.sent - Math.floor(rand() * 3)))); // a duplicate
        else ws.receive(event(++state.sent));
        serve(ws, true);
      }
      if (rand() < 0.05) ws.serverClose(rand() < 0.5 ? 1001 : 1006);
    }
    clock.advance(Math.floor(rand() * 50));
  }
  // Calm: no more mischief; let it catch up. One more commit: an event
  // lost at the very end shows only by the gap before the next one (the
  // server keeps each socket's stream whole; the client can only notice).
  latest += 1;
  for (let i = 0; i < 200 && !(live.state === 'live' && live.lastSeq === latest); i++) {
    for (const ws of FakeWebSocket.instances) {
      if (ws.readyState === FakeWebSocket.CONNECTING) {
        ws.open();
        sockets.set(ws, { read: 0, sent: null });
      }
      if (ws.readyState === FakeWebSocket.OPEN && sockets.has(ws)) {
        serve(ws, false);
        const state = sockets.get(ws);
        while (state.sent !== null && state.sent < latest) ws.receive(event(++state.sent));
        serve(ws, false);
      }
    }
    clock.advance(250);
  }
  live.close();
  return { app, latest, live };
}

test('under duplicates, gaps, closes, refused connects and resyncs: once each, in order, caught up', () => {
  let totalSeen = 0;
  let resyncs = 0;
  let gaps = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const { app, latest, live } = run(seed, 300);
    assert.deepEqual(app.violations, [], `seed ${seed}`);
    assert.equal(live.lastSeq, latest, `seed ${seed}: caught up`);
    totalSeen += app.seen;
    resyncs += live.stats.resyncs;
    gaps += live.stats.gaps;
  }
  // The runs did exercise what they are for.
  console.log(`chaos: ${totalSeen} events seen, ${gaps} gaps, ${resyncs} resyncs over 300 runs`);
  assert.ok(totalSeen > 10_000, `events seen: ${totalSeen}`);
  assert.ok(resyncs > 50, `resyncs: ${resyncs}`);
  assert.ok(gaps > 100, `gaps: ${gaps}`);
});
