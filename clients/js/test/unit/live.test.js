// LiveConnection against a fake WebSocket and a fake clock: the protocol
// of the contract's WebSocket section, as the client side must keep it.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { LiveConnection, ApiError } from '../../src/index.js';
import { FakeWebSocket, FakeClock, flush } from './fakes.js';

let clock;
beforeEach(() => {
  FakeWebSocket.reset();
  clock = new FakeClock();
});

function connection(options = {}) {
  const live = new LiveConnection({
    url: 'ws://127.0.0.1:8080/ws/updates',
    token: 't1',
    WebSocket: FakeWebSocket,
    timers: clock,
    random: () => 0, // the whole delay: exact figures
    heartbeatMs: 0,
    ...options,
  });
  const seen = { events: [], states: [], subscribed: [], unauthorized: [] };
  live.on('event', (e) => seen.events.push(e.seq));
  live.on('state', (s) => seen.states.push(s.state));
  live.on('subscribed', (s) => seen.subscribed.push(s));
  live.on('unauthorized', (u) => seen.unauthorized.push(u));
  return { live, seen };
}

const event = (seq, id = `t${seq}`) => ({ type: 'TASK_UPDATED', seq, timestamp: 0, task: { id, version: seq } });

/** Starts and subscribes fresh at `seq`; returns the socket. */
function liveAt(live, seq) {
  live.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'SUBSCRIBED', seq });
  return ws;
}

test('subscribes on open with the token in the URL, and is live on SUBSCRIBED', () => {
  const { live, seen } = connection();
  live.start();
  const ws = FakeWebSocket.last;
  assert.equal(ws.token, 't1');
  assert.equal(live.state, 'connecting');
  ws.open();
  assert.deepEqual(ws.messages, [{ type: 'SUBSCRIBE_TASKS' }]);
  ws.receive({ type: 'SUBSCRIBED', seq: 7 });
  assert.equal(live.state, 'live');
  assert.equal(live.lastSeq, 7);
  assert.deepEqual(seen.subscribed, [{ seq: 7, resumed: false }]);
  assert.deepEqual(seen.states, ['connecting', 'live']);
});

test('hands on events in seq order, each once: duplicates are dropped', () => {
  const { live, seen } = connection();
  const ws = liveAt(live, 0);
  for (const seq of [1, 2, 2, 1, 3]) ws.receive(event(seq));
  assert.deepEqual(seen.events, [1, 2, 3]);
  assert.equal(live.stats.duplicates, 2);
});

test('a gap makes it resubscribe with since, once, and the replay fills it in order', () => {
  const { live, seen } = connection();
  const ws = liveAt(live, 10);
  ws.receive(event(11));
  ws.receive(event(13)); // 12 went missing
  ws.receive(event(14)); // still past the gap: dropped, no second request
  assert.deepEqual(ws.messages.slice(1), [{ type: 'SUBSCRIBE_TASKS', since: 11 }]);
  for (const seq of [12, 13, 14]) ws.receive(event(seq));
  ws.receive({ type: 'SUBSCRIBED', seq: 14 });
  ws.receive(event(15));
  assert.deepEqual(seen.events, [11, 12, 13, 14, 15]);
  assert.equal(live.stats.gaps, 2);
  assert.equal(live.stats.resubscribes, 1);
  assert.deepEqual(seen.subscribed.at(-1), { seq: 14, resumed: true });
});

test('an event before the first SUBSCRIBED is not handed on (the snapshot covers it)', () => {
  const { live, seen } = connection();
  live.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive(event(5));
  ws.receive({ type: 'SUBSCRIBED', seq: 5 });
  ws.receive(event(6));
  assert.deepEqual(seen.events, [6]);
});

test('after a close it reconnects with backoff and resumes with since', () => {
  const { live, seen } = connection();
  const first = liveAt(live, 0);
  first.receive(event(1));
  first.receive(event(2));
  first.serverClose(1006);
  assert.equal(live.state, 'reconnecting');
  assert.deepEqual(clock.pending, [500]);
  clock.advance(500);
  const second = FakeWebSocket.last;
  assert.notEqual(second, first);
  second.open();
  assert.deepEqual(second.messages, [{ type: 'SUBSCRIBE_TASKS', since: 2 }]);
  for (const seq of [2, 3, 4]) second.receive(event(seq)); // 2 again: dropped
  second.receive({ type: 'SUBSCRIBED', seq: 4 });
  assert.equal(live.state, 'live');
  assert.deepEqual(seen.events, [1, 2, 3, 4]);
  assert.deepEqual(seen.subscribed.at(-1), { seq: 4, resumed: true });
});

test('the delays grow exponentially up to the cap, with jitter, and start over once live', () => {
  let r = 0;
  const { live } = connection({ random: () => r, backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 } });
  live.start();
  const delays = [];
  for (let i = 0; i < 6; i++) {
    FakeWebSocket.last.fail();
    delays.push(clock.runNext());
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
  // Jitter takes up to half off: random 1 gives half the ceiling.
  r = 1;
  FakeWebSocket.last.fail();
  assert.equal(clock.runNext(), 500);
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'SUBSCRIBED', seq: 0 });
  ws.serverClose(1001);
  assert.deepEqual(clock.pending, [50]);
});

test('a 1008 or 1009 close does not come straight back', () => {
  const { live } = connection();
  liveAt(live, 0).serverClose(1008);
  assert.deepEqual(clock.pending, [4000]);
});

test('RESYNC_REQUIRED: events until SUBSCRIBED are dropped, and SUBSCRIBED says resumed: false', () => {
  const { live, seen } = connection();
  const first = liveAt(live, 3);
  first.serverClose(1001);
  clock.runNext();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'RESYNC_REQUIRED', seq: 2000 });
  ws.receive(event(1999));
  ws.receive({ type: 'SUBSCRIBED', seq: 2000 });
  ws.receive(event(2001));
  assert.deepEqual(seen.events, [2001]);
  assert.deepEqual(seen.subscribed.at(-1), { seq: 2000, resumed: false });
  assert.equal(live.stats.resyncs, 1);
});

test('a SUBSCRIBED above what was replayed asks again, and resyncs if it keeps happening', () => {
  const { live, seen } = connection();
  const ws = liveAt(live, 5);
  ws.receive(event(7)); // gap: asks since 5
  ws.receive({ type: 'SUBSCRIBED', seq: 7 }); // but 6 and 7 never came
  assert.deepEqual(ws.messages.at(-1), { type: 'SUBSCRIBE_TASKS', since: 5 });
  for (let i = 0; i < 3; i++) ws.receive({ type: 'SUBSCRIBED', seq: 7 });
  assert.deepEqual(seen.subscribed.at(-1), { seq: 7, resumed: false });
  assert.equal(live.lastSeq, 7);
  ws.receive(event(8));
  assert.deepEqual(seen.events, [8]);
});

test('close 4001 means log in again: offline, unauthorized, no reconnection', () => {
  const { live, seen } = connection();
  liveAt(live, 0).serverClose(4001, 'token revoked');
  assert.equal(live.state, 'offline');
  assert.equal(live.reason, 'unauthorized');
  assert.deepEqual(seen.unauthorized, [{ code: 4001, reason: 'token revoked' }]);
  clock.advance(60_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('a new token after 4001 starts again and resumes where it was', () => {
  const { live } = connection();
  const ws = liveAt(live, 0);
  ws.receive(event(1));
  ws.serverClose(4001);
  live.authenticate('t2');
  const again = FakeWebSocket.last;
  assert.equal(again.token, 't2');
  again.open();
  assert.deepEqual(again.messages, [{ type: 'SUBSCRIBE_TASKS', since: 1 }]);
});

test('AUTH refreshes the token in place; a refused token keeps the old one', async () => {
  const { live } = connection();
  const ws = liveAt(live, 0);
  const accepted = live.authenticate('t2');
  assert.deepEqual(ws.messages.at(-1), { type: 'AUTH', token: 't2' });
  ws.receive({ type: 'AUTHENTICATED', exp: 1234 });
  assert.deepEqual(await accepted, { exp: 1234 });
  const refused = live.authenticate('bad');
  ws.receive({ type: 'ERROR', code: 'UNAUTHORIZED', message: 'no' });
  await assert.rejects(refused, (e) => e instanceof ApiError && e.code === 'UNAUTHORIZED');
  assert.equal(FakeWebSocket.instances.length, 1, 'no reconnect for a token refresh');
  // The next connect uses the latest token given.
  ws.serverClose(1006);
  clock.runNext();
  assert.equal(FakeWebSocket.last.token, 'bad');
});

test('getToken is asked at every connect', () => {
  let token = 'a';
  const { live } = connection({ token: undefined, getToken: () => token });
  liveAt(live, 0);
  token = 'b';
  FakeWebSocket.last.serverClose(1001);
  clock.runNext();
  assert.equal(FakeWebSocket.last.token, 'b');
});

test('a silent socket is pinged, then dropped and replaced', () => {
  const { live } = connection({ heartbeatMs: 1000 });
  const ws = liveAt(live, 0);
  clock.advance(1000); // heard SUBSCRIBED since the start: nothing to do
  clock.advance(1000); // silent for a period: PING
  assert.deepEqual(ws.messages.at(-1), { type: 'PING' });
  ws.receive({ type: 'PONG', timestamp: 1 });
  clock.advance(1000);
  clock.advance(1000); // PING again
  assert.equal(ws.messages.filter((m) => m.type === 'PING').length, 2);
  clock.advance(1000); // no answer: dropped
  assert.ok(ws.closedByClient, 'the silent socket is closed');
  assert.equal(live.state, 'reconnecting');
  clock.runNext();
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('a socket that never opens makes it ask whether the token is still good', async () => {
  let asked = 0;
  const { live, seen } = connection({
    validateToken: async () => {
      asked += 1;
      return false;
    },
  });
  live.start();
  FakeWebSocket.last.fail();
  await flush();
  assert.equal(asked, 1);
  assert.equal(live.state, 'offline');
  assert.equal(seen.unauthorized.length, 1);
  clock.advance(60_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('a token that is still good keeps it retrying', async () => {
  const { live } = connection({ validateToken: async () => true });
  live.start();
  FakeWebSocket.last.fail();
  await flush();
  assert.equal(live.state, 'reconnecting');
  clock.runNext();
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('messages of a socket it has left are ignored', () => {
  const { live, seen } = connection();
  const old = liveAt(live, 0);
  live.reconnect();
  const fresh = FakeWebSocket.last;
  old.receive(event(1));
  old.serverClose(1006);
  assert.deepEqual(seen.events, []);
  assert.equal(FakeWebSocket.instances.length, 2);
  fresh.open();
  assert.deepEqual(fresh.messages, [{ type: 'SUBSCRIBE_TASKS', since: 0 }]);
});

test('close() stops for good', () => {
  const { live } = connection();
  const ws = liveAt(live, 0);
  live.close();
  assert.ok(ws.closedByClient);
  assert.equal(live.state, 'offline');
  assert.equal(live.reason, 'closed');
  clock.advance(60_000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test('UNAVAILABLE in answer to SUBSCRIBE_TASKS makes it try another node', () => {
  const { live } = connection();
  live.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'ERROR', code: 'UNAVAILABLE', message: 'try again shortly' });
  assert.ok(ws.closedByClient);
  clock.runNext();
  assert.equal(FakeWebSocket.instances.length, 2);
});

test('without a WebSocket (Node < 22) it asks for one', () => {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = undefined;
  try {
    assert.throws(() => new LiveConnection({ url: 'ws://x/ws/updates', token: 't' }), /pass options.WebSocket/);
  } finally {
    globalThis.WebSocket = saved;
  }
});
