// LiveTasks: a snapshot plus live events. Whatever the order in which the
// snapshot, the events and the app's own writes arrive, the tasks held end
// up as the server has them, with no task twice and none come back.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { TasksClient, LiveTasks } from '../../src/index.js';
import { FakeWebSocket, FakeClock, task, flush } from './fakes.js';

beforeEach(() => FakeWebSocket.reset());

/** A store whose snapshot the test hands over when it wants (`snapshots.next(tasks)`). */
function setup() {
  const waiting = [];
  const client = new TasksClient({ baseUrl: 'http://api', token: 't', fetch: () => {}, WebSocket: FakeWebSocket });
  client.listAllTasks = () => new Promise((resolve) => waiting.push(resolve));
  const clock = new FakeClock();
  const store = new LiveTasks(client, { liveOptions: { timers: clock, heartbeatMs: 0, random: () => 0 } });
  const changes = [];
  store.on('change', (c) => changes.push(c.cause));
  store.start();
  const ws = FakeWebSocket.last;
  ws.open();
  const snapshots = {
    get pending() {
      return waiting.length;
    },
    async next(tasks) {
      waiting.shift()(tasks);
      await flush();
    },
  };
  return { store, ws, snapshots, changes, clock };
}

const created = (seq, t) => ({ type: 'TASK_CREATED', seq, timestamp: 0, task: t });
const updated = (seq, t) => ({ type: 'TASK_UPDATED', seq, timestamp: 0, task: t });
const deleted = (seq, id) => ({ type: 'TASK_DELETED', seq, timestamp: 0, task: { id } });
const titles = (store) => Object.fromEntries(store.list().map((t) => [t.id, `${t.title}@${t.version}`]));

test('loads a snapshot after SUBSCRIBED, then applies events on top', async () => {
  const { store, ws, snapshots, changes } = setup();
  assert.equal(snapshots.pending, 0, 'no snapshot before the subscription point is known');
  ws.receive({ type: 'SUBSCRIBED', seq: 4 });
  assert.equal(snapshots.pending, 1);
  await snapshots.next([task('a', { title: 'A' })]);
  await store.ready;
  ws.receive(created(5, task('b', { title: 'B' })));
  ws.receive(updated(6, task('a', { title: 'A2', version: 2 })));
  assert.deepEqual(titles(store), { a: 'A2@2', b: 'B@1' });
  assert.deepEqual(changes, ['snapshot', 'event', 'event']);
});

test('events arriving while the snapshot loads wait, and those it already holds change nothing', async () => {
  const { store, ws, snapshots } = setup();
  ws.receive({ type: 'SUBSCRIBED', seq: 0 });
  ws.receive(created(1, task('a', { title: 'A' })));
  ws.receive(updated(2, task('a', { title: 'A2', version: 2 })));
  ws.receive(created(3, task('b', { title: 'B' })));
  ws.receive(deleted(4, 'b'));
  ws.receive(created(5, task('c', { title: 'C' })));
  // The snapshot was read after event 3: it has a@2 and b, not c.
  await snapshots.next([task('a', { title: 'A2', version: 2 }), task('b', { title: 'B' })]);
  assert.deepEqual(titles(store), { a: 'A2@2', c: 'C@1' });
});

test('a task deleted never comes back, whatever arrives after', async () => {
  const { store, ws, snapshots } = setup();
  ws.receive({ type: 'SUBSCRIBED', seq: 0 });
  await snapshots.next([task('a', { title: 'A' })]);
  store.remove('a'); // deleted here; its older update and the deletion's event still to come
  ws.receive(updated(1, task('a', { title: 'late', version: 2 })));
  ws.receive(deleted(2, 'a'));
  store.apply(task('a', { version: 3 }));
  assert.deepEqual(titles(store), {});
});

test("the app's own write shows at once, and its event changes nothing", async () => {
  const { store, ws, snapshots, changes } = setup();
  ws.receive({ type: 'SUBSCRIBED', seq: 0 });
  await snapshots.next([]);
  store.apply(task('a', { title: 'mine' }));
  ws.receive(created(1, task('a', { title: 'mine' })));
  // An older copy (a slow answer) never replaces a newer one.
  store.apply(task('a', { title: 'newer', version: 2 }));
  store.apply(task('a', { title: 'older' }));
  assert.deepEqual(titles(store), { a: 'newer@2' });
  assert.deepEqual(changes, ['snapshot', 'local', 'local']);
});

test('RESYNC_REQUIRED after a reconnect reloads, and what waited before is dropped', async () => {
  const { store, ws, snapshots, clock } = setup();
  ws.receive({ type: 'SUBSCRIBED', seq: 1 });
  await snapshots.next([task('a', { title: 'A' })]);
  ws.serverClose(1001);
  clock.runNext();
  const again = FakeWebSocket.last;
  again.open();
  assert.deepEqual(again.messages, [{ type: 'SUBSCRIBE_TASKS', since: 1 }]);
  again.receive({ type: 'RESYNC_REQUIRED', seq: 5000 });
  again.receive({ type: 'SUBSCRIBED', seq: 5000 });
  assert.equal(snapshots.pending, 1);
  again.receive(updated(5001, task('b', { title: 'B2', version: 2 })));
  // Meanwhile a was deleted and b created (events the server no longer had).
  await snapshots.next([task('b', { title: 'B' })]);
  assert.deepEqual(titles(store), { b: 'B2@2' });
});

test('a failed snapshot is retried, keeping the events that waited', async () => {
  const client = new TasksClient({ baseUrl: 'http://api', token: 't', fetch: () => {}, WebSocket: FakeWebSocket });
  let calls = 0;
  client.listAllTasks = async () => {
    calls += 1;
    if (calls === 1) throw new Error('503');
    return [task('a', { title: 'A' })];
  };
  const store = new LiveTasks(client, { liveOptions: { heartbeatMs: 0 } });
  const errors = [];
  store.on('error', (e) => errors.push(e));
  store.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'SUBSCRIBED', seq: 0 });
  await flush();
  ws.receive(created(1, task('b', { title: 'B' })));
  await store.ready;
  assert.equal(calls, 2);
  assert.equal(errors.length, 1);
  assert.deepEqual(titles(store), { a: 'A@1', b: 'B@1' });
  store.stop();
});
