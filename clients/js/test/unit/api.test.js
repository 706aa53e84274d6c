// TasksClient against a fake fetch: what goes on the wire, and the typed
// errors that come back.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { TasksClient, ApiError, NetworkError, isApiError } from '../../src/index.js';
import { FakeWebSocket, fakeFetch, task, flush } from './fakes.js';

const BASE = 'http://127.0.0.1:8080';
const user = { id: 'u1', email: 'demo@example.com', name: 'Demo', createdAt: '', updatedAt: '' };

beforeEach(() => FakeWebSocket.reset());

test('login posts the credentials and keeps the token for later calls', async () => {
  const fetch = fakeFetch((req) => {
    if (req.url.pathname === '/api/auth/login') return { body: { user, token: 'jwt-1' } };
    return { body: user };
  });
  const client = new TasksClient({ baseUrl: BASE + '/', fetch });
  const tokens = [];
  client.on('token', (t) => tokens.push(t));
  const result = await client.login('demo@example.com', 'demo-password');
  assert.equal(result.token, 'jwt-1');
  assert.equal(client.token, 'jwt-1');
  assert.deepEqual(tokens, ['jwt-1']);
  const [login] = fetch.calls;
  assert.equal(login.method, 'POST');
  assert.equal(login.url.href, `${BASE}/api/auth/login`);
  assert.equal(login.headers['content-type'], 'application/json');
  assert.equal(login.headers.authorization, undefined);
  assert.deepEqual(login.body, { email: 'demo@example.com', password: 'demo-password' });
  await client.getProfile();
  assert.equal(fetch.calls[1].headers.authorization, 'Bearer jwt-1');
});

test('register keeps the new token', async () => {
  const fetch = fakeFetch(() => ({ status: 201, body: { user, token: 'jwt-new' } }));
  const client = new TasksClient({ baseUrl: BASE, fetch });
  await client.register({ email: 'a@b.co', password: 'password1', name: 'A' });
  assert.equal(client.token, 'jwt-new');
  assert.deepEqual(fetch.calls[0].body, { email: 'a@b.co', password: 'password1', name: 'A' });
});

test("an error answer is an ApiError with the contract's code, status and details", async () => {
  const body = {
    statusCode: 400,
    error: 'Bad Request',
    code: 'VALIDATION_ERROR',
    message: 'title must be 1 to 200 characters',
    details: [{ field: 'title', message: 'must be 1 to 200 characters' }],
  };
  const client = new TasksClient({ baseUrl: BASE, token: 't', fetch: fakeFetch(() => ({ status: 400, body })) });
  const error = await client.createTask({ title: '' }).catch((e) => e);
  assert.ok(error instanceof ApiError);
  assert.ok(isApiError(error, 'VALIDATION_ERROR'));
  assert.equal(error.status, 400);
  assert.equal(error.code, 'VALIDATION_ERROR');
  assert.equal(error.message, 'title must be 1 to 200 characters');
  assert.deepEqual(error.details, body.details);
});

test('429 carries Retry-After in seconds', async () => {
  const client = new TasksClient({
    baseUrl: BASE,
    fetch: fakeFetch(() => ({
      status: 429,
      headers: { 'retry-after': '42' },
      body: { statusCode: 429, error: 'Too Many Requests', code: 'RATE_LIMITED', message: 'slow down' },
    })),
  });
  const error = await client.login('a@b.co', 'x').catch((e) => e);
  assert.equal(error.code, 'RATE_LIMITED');
  assert.equal(error.retryAfter, 42);
});

test("an answer that is not the contract's (a proxy's 502 page) still gets a code", async () => {
  const client = new TasksClient({ baseUrl: BASE, token: 't', fetch: fakeFetch(() => ({ status: 502, raw: '<html>bad gateway</html>' })) });
  const error = await client.listTasks().catch((e) => e);
  assert.ok(error instanceof ApiError);
  assert.equal(error.status, 502);
  assert.equal(error.code, 'UNAVAILABLE');
});

test('no answer at all is a NetworkError', async () => {
  const client = new TasksClient({
    baseUrl: BASE,
    token: 't',
    fetch: fakeFetch(() => {
      throw new TypeError('fetch failed');
    }),
  });
  const error = await client.getProfile().catch((e) => e);
  assert.ok(error instanceof NetworkError);
  assert.match(error.message, /fetch failed/);
});

test('updates and deletes send If-Match with the version; 412 is VERSION_MISMATCH', async () => {
  const fetch = fakeFetch((req) => {
    if (req.headers['if-match'] === '"3"') return { body: task('a', { version: 4, status: 'DONE' }) };
    return {
      status: 412,
      body: { statusCode: 412, error: 'Precondition Failed', code: 'VERSION_MISMATCH', message: 'the task has changed' },
    };
  });
  const client = new TasksClient({ baseUrl: BASE, token: 't', fetch });
  const updated = await client.updateTask('a', { status: 'DONE' }, { ifMatch: 3 });
  assert.equal(updated.version, 4);
  assert.equal(fetch.calls[0].method, 'PUT');
  assert.equal(fetch.calls[0].url.pathname, '/api/tasks/a');
  assert.deepEqual(fetch.calls[0].body, { status: 'DONE' });
  const stale = await client.deleteTask('a', { ifMatch: 2 }).catch((e) => e);
  assert.equal(fetch.calls[1].method, 'DELETE');
  assert.equal(fetch.calls[1].headers['if-match'], '"2"');
  assert.ok(isApiError(stale, 'VERSION_MISMATCH'));
  assert.equal(stale.status, 412);
  await client.updateTask('a', { title: 'x' }, { ifMatch: '*' }).catch(() => {});
  assert.equal(fetch.calls[2].headers['if-match'], '*');
});

test('listAllTasks walks every page with the cursor, and query values are encoded', async () => {
  const pages = {
    '': { tasks: [task('a'), task('b')], nextCursor: 'c 1' },
    'c 1': { tasks: [task('c')], nextCursor: null },
  };
  const fetch = fakeFetch((req) => ({ body: pages[req.url.searchParams.get('cursor') ?? ''] }));
  const client = new TasksClient({ baseUrl: BASE, token: 't', fetch });
  const tasks = await client.listAllTasks({ status: 'TODO' });
  assert.deepEqual(tasks.map((t) => t.id), ['a', 'b', 'c']);
  assert.equal(fetch.calls[0].url.search, '?limit=200&status=TODO');
  assert.equal(fetch.calls[1].url.searchParams.get('cursor'), 'c 1');
});

test('a DELETE answered 204 resolves with nothing', async () => {
  const client = new TasksClient({ baseUrl: BASE, token: 't', fetch: fakeFetch(() => ({ status: 204 })) });
  assert.equal(await client.deleteTask('a'), undefined);
});

test('logout revokes and forgets the token, even when the server already refuses it', async () => {
  for (const status of [204, 401]) {
    const fetch = fakeFetch(() =>
      status === 204 ? { status } : { status, body: { statusCode: 401, error: 'Unauthorized', code: 'UNAUTHORIZED', message: 'revoked' } },
    );
    const client = new TasksClient({ baseUrl: BASE, token: 't', fetch });
    let unauthorized = 0;
    client.on('unauthorized', () => unauthorized++);
    await client.logout();
    assert.equal(client.token, null);
    assert.equal(fetch.calls[0].url.pathname, '/api/auth/logout');
    assert.equal(fetch.calls[0].headers.authorization, 'Bearer t');
    assert.equal(unauthorized, 0);
  }
});

test("a 401 on an authenticated call tells the app to log in again", async () => {
  const client = new TasksClient({
    baseUrl: BASE,
    token: 'expired',
    fetch: fakeFetch(() => ({ status: 401, body: { statusCode: 401, error: 'Unauthorized', code: 'UNAUTHORIZED', message: 'expired' } })),
  });
  const seen = [];
  client.on('unauthorized', (e) => seen.push(e.code));
  await assert.rejects(client.listTasks(), (e) => e.status === 401);
  assert.deepEqual(seen, ['UNAUTHORIZED']);
});

test('the WebSocket URL follows the base URL (wss for https)', () => {
  assert.equal(new TasksClient({ baseUrl: 'https://tasks.example', fetch: () => {} }).wsUrl, 'wss://tasks.example/ws/updates');
  assert.equal(new TasksClient({ baseUrl: BASE, fetch: () => {} }).wsUrl, 'ws://127.0.0.1:8080/ws/updates');
});

test('a live connection follows the client token: AUTH in place on a new one, closed on logout', async () => {
  const fetch = fakeFetch((req) => (req.url.pathname === '/api/auth/logout' ? { status: 204 } : { body: { user, token: 'jwt-2' } }));
  const client = new TasksClient({ baseUrl: BASE, token: 'jwt-1', fetch, WebSocket: FakeWebSocket });
  const live = client.live({ heartbeatMs: 0 }).start();
  const ws = FakeWebSocket.last;
  assert.equal(ws.url, 'ws://127.0.0.1:8080/ws/updates?token=jwt-1');
  ws.open();
  ws.receive({ type: 'SUBSCRIBED', seq: 0 });
  await client.login('demo@example.com', 'demo-password');
  assert.deepEqual(ws.messages.at(-1), { type: 'AUTH', token: 'jwt-2' });
  ws.receive({ type: 'AUTHENTICATED', exp: 99 });
  await client.logout();
  await flush();
  assert.equal(live.state, 'offline');
  assert.ok(ws.closedByClient);
});

test('a live connection whose socket cannot open checks the token over REST', async () => {
  const fetch = fakeFetch(() => ({ status: 401, body: { statusCode: 401, error: 'Unauthorized', code: 'UNAUTHORIZED', message: 'revoked' } }));
  const client = new TasksClient({ baseUrl: BASE, token: 'revoked', fetch, WebSocket: FakeWebSocket });
  const live = client.live({ heartbeatMs: 0 });
  const why = new Promise((resolve) => live.on('unauthorized', resolve));
  live.start();
  FakeWebSocket.last.fail();
  await why;
  assert.equal(fetch.calls[0].url.pathname, '/api/profile');
  assert.equal(live.state, 'offline');
  live.close();
});
