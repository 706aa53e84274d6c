// The client library in Node against the real cluster (BOARD_URL, from
// scripts/browser-check.sh): what the browser tests cannot see from a
// page. A token refreshed in place with AUTH keeps the socket (logging out
// the old token does not close it), and logging out the new one closes it
// with 4001, which the library reports as "log in again".
//
// Node 22 has a global WebSocket; Node 20 has it behind
// --experimental-websocket (browser-check.sh passes it); without one the
// test is skipped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TasksClient, LiveTasks } from '../../src/index.js';

const BASE = process.env.BOARD_URL?.replace(/\/+$/, '');
const skip = !BASE ? 'BOARD_URL is not set: run scripts/browser-check.sh' : typeof WebSocket !== 'function' ? 'no WebSocket in this Node' : false;

/** Resolves with the first value `emitter` emits for `type` that `accept` takes. */
function next(emitter, type, accept = () => true) {
  return new Promise((resolve) => {
    const off = emitter.on(type, (value) => {
      if (accept(value)) {
        off();
        resolve(value);
      }
    });
  });
}

async function logoutRaw(token) {
  const response = await fetch(`${BASE}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 204);
}

test('in Node: live events, a token refreshed in place with AUTH, and 4001 when that token is logged out', { skip, timeout: 60_000 }, async () => {
  const email = `node-${Date.now().toString(36)}@example.com`;
  const client = new TasksClient({ baseUrl: BASE });
  await client.register({ email, password: 'node-password', name: 'Node' });
  const firstToken = client.token;
  const tasks = new LiveTasks(client, { liveOptions: { heartbeatMs: 0 } }).start();
  await tasks.ready;
  assert.equal(tasks.state, 'live');

  // Another device of the same user writes; the event arrives here.
  const elsewhere = new TasksClient({ baseUrl: BASE });
  await elsewhere.login(email, 'node-password');
  let arrived = next(tasks, 'change', (c) => c.cause === 'event');
  const created = await elsewhere.createTask({ title: 'From another device' });
  assert.equal((await arrived).task.id, created.id);

  // A new token (a new login), moved to in place: AUTHENTICATED, same socket.
  const renewed = await new TasksClient({ baseUrl: BASE }).login(email, 'node-password');
  const connects = tasks.live.stats.connects;
  const { exp } = await tasks.live.authenticate(renewed.token);
  assert.ok(exp > Date.now() / 1000, `exp ${exp}`);
  // The old token logged out: the socket lives by the new one now.
  await logoutRaw(firstToken);
  arrived = next(tasks, 'change', (c) => c.cause === 'event');
  const second = await elsewhere.createTask({ title: 'After the old token was logged out' });
  assert.equal((await arrived).task.id, second.id);
  assert.equal(tasks.live.stats.connects, connects, 'no reconnect');
  assert.equal(tasks.live.lastSeq, 2);

  // A token it refuses keeps the connection on the one it has.
  await assert.rejects(tasks.live.authenticate('not-a-token'), (e) => e.code === 'UNAUTHORIZED');

  // The new token logged out: 4001, "log in again".
  const unauthorized = next(tasks, 'unauthorized');
  await logoutRaw(renewed.token);
  assert.equal((await unauthorized).code, 4001);
  assert.equal(tasks.state, 'offline');
  tasks.stop();
});
