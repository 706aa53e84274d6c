// The live board in a real browser: headless Chromium (Debian's) driven by
// Playwright, against the local cluster scripts/browser-check.sh brings up
// (nginx at BOARD_URL serving the board, 2 api-nodes, 2 ws-nodes).
//
// Every wait is on state (a selector, a condition in the page, an answer),
// never a fixed sleep. Screenshots go to ARTIFACTS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const { BOARD_URL, RUN_DIR, CLUSTER_ENV, ARTIFACTS, REPO } = process.env;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const skip = BOARD_URL ? false : 'BOARD_URL is not set: run scripts/browser-check.sh';
const BASE = BOARD_URL?.replace(/\/+$/, '');
const suffix = Date.now().toString(36);
const WAIT = 20_000;

let browser;
const pageErrors = [];
const consoleErrors = [];

// --- helpers -------------------------------------------------------------------

async function api(method, route, { token, body, ifMatch } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body) headers['content-type'] = 'application/json';
  if (ifMatch !== undefined) headers['if-match'] = `"${ifMatch}"`;
  const response = await fetch(BASE + route, { method, headers, body: body && JSON.stringify(body) });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return parsed;
}

async function register(label) {
  const email = `${label}-${suffix}@example.com`;
  const password = `${label}-password`;
  const { token, user } = await api('POST', '/api/auth/register', { body: { email, password, name: `${label} ${suffix}` } });
  return { email, password, token, user };
}

async function allTasks(token) {
  const tasks = [];
  let cursor = null;
  do {
    const page = await api('GET', `/api/tasks?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token });
    tasks.push(...page.tasks);
    cursor = page.nextCursor;
  } while (cursor);
  return tasks;
}

// Records, in the page, every state the connection indicator takes and
// every WebSocket close code (a wrapper around the page's WebSocket).
function instrument() {
  window.__states = [];
  window.__wsCloses = [];
  window.__everShown = []; // the id of every card ever put in the page
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('close', (event) => window.__wsCloses.push(event.code));
    }
  };
  document.addEventListener('DOMContentLoaded', () => {
    const indicator = document.getElementById('connection');
    const note = () => {
      if (window.__states.at(-1) !== indicator.dataset.state) window.__states.push(indicator.dataset.state);
    };
    note();
    new MutationObserver(note).observe(indicator, { attributes: true, attributeFilter: ['data-state'] });
    new MutationObserver((mutations) => {
      for (const mutation of mutations) {
        for (const node of mutation.addedNodes) {
          const id = node.dataset?.taskId;
          if (id && !window.__everShown.includes(id)) window.__everShown.push(id);
        }
      }
    }).observe(document.body, { childList: true, subtree: true });
  });
}

// Uncaught errors fail the run; console errors are kept in ARTIFACTS
// (a refused connect while a node is down, a 412 are expected there), and
// a Content-Security-Policy refusal fails the run too.
function watch(page) {
  page.on('pageerror', (error) => pageErrors.push(error));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    consoleErrors.push(`${page.url()}: ${message.text()}`);
    if (/Content.Security.Policy/i.test(message.text())) pageErrors.push(new Error(message.text()));
  });
}

async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(instrument);
  return context;
}

async function open(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  watch(page);
  await page.goto(BOARD_URL);
  return page;
}

async function logIn(page, { email, password }) {
  await page.locator('#login-view').waitFor();
  await page.fill('#login-form input[name="email"]', email);
  await page.fill('#login-form input[name="password"]', password);
  await page.click('#login-submit');
  await boardReady(page);
}

async function boardReady(page) {
  await page.locator('#connection[data-state="live"]').waitFor();
  await page.locator('#loading').waitFor({ state: 'hidden' });
}

function card(page, title) {
  return page.locator('.card', { has: page.locator('.card-title', { hasText: title }) });
}

function cardIn(page, status, title) {
  return page.locator(`.column[data-status="${status}"] .card`, { has: page.locator('.card-title', { hasText: title }) });
}

// In that column with no write of this page in flight (a drag shows the
// card in its new column before the server has answered).
function settledIn(page, status, title) {
  return page.locator(`.column[data-status="${status}"] .card:not(.pending)`, { has: page.locator('.card-title', { hasText: title }) });
}

// Until the board shows exactly `tasks` (ids, statuses, versions), live.
async function converged(page, tasks) {
  const expected = tasks.map(({ id, status, version }) => ({ id, status, version: String(version) }));
  await page.waitForFunction(converges, expected).catch(async (error) => {
    const shown = await page.evaluate(() => ({
      state: document.getElementById('connection').dataset.state,
      cards: [...document.querySelectorAll('.card')].map((c) => `${c.dataset.taskId.slice(0, 8)} ${c.closest('.column').dataset.status} v${c.dataset.version}`),
    }));
    const want = expected.map((t) => `${t.id.slice(0, 8)} ${t.status} v${t.version}`);
    throw new Error(`${error.message}\nthe board (${shown.state}): ${shown.cards.sort().join(', ')}\nexpected: ${want.sort().join(', ')}`);
  });
}

// Runs in the page.
function converges(expected) {
  if (document.getElementById('connection').dataset.state !== 'live') return false;
  const cards = [...document.querySelectorAll('.card')];
  if (cards.length !== expected.length) return false;
  const byId = new Map(cards.map((c) => [c.dataset.taskId, c]));
  return expected.every((t) => {
    const c = byId.get(t.id);
    return c && c.dataset.version === t.version && c.closest('.column').dataset.status === t.status;
  });
}

// Every card id once, exactly the ids given.
async function assertNoDuplicates(page, ids) {
  const shown = await page.$$eval('.card', (cards) => cards.map((c) => c.dataset.taskId));
  assert.equal(new Set(shown).size, shown.length, `a card shown twice: ${shown}`);
  assert.deepEqual([...shown].sort(), [...ids].sort());
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function pidOf(name) {
  return Number((await readFile(path.join(RUN_DIR, `${name}.pid`), 'utf8')).trim());
}

// Starts a ws-node again with the cluster's own start_node (scripts/cluster.sh).
async function startNode(name) {
  const script = `source "$CLUSTER_ENV" && source scripts/services.sh && source scripts/cluster.sh && start_node ${name}`;
  await run('bash', ['-c', script], { cwd: REPO, env: { ...process.env, REPO } });
}

async function kill9(name) {
  const pid = await pidOf(name);
  process.kill(pid, 'SIGKILL');
  // Gone when kill -0 fails (or it is a zombie waiting for its parent).
  for (;;) {
    try {
      process.kill(pid, 0);
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      if (!stat || stat.split(') ')[1]?.startsWith('Z')) return;
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// --- the run ---------------------------------------------------------------------

// One user (two browser contexts, each logged in with its own token) and
// another user who must never see the first one's tasks.
let owner;
let other;
let ownerToken;
let b; // context B's page
let c; // context C's page
let d; // the other user's page

before(async () => {
  if (skip) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  owner = await register('owner');
  other = await register('other');
  ownerToken = owner.token;
});

after(async () => {
  await browser?.close();
  if (ARTIFACTS) await writeFile(path.join(ARTIFACTS, 'console-errors.txt'), consoleErrors.join('\n') + '\n');
  assert.deepEqual(pageErrors.map(String), [], 'no uncaught error in any page');
});

test('the demo account logs in from the prefilled form; a change made with curl appears live; the socket is compressed', { skip, timeout: 60_000 }, async () => {
  const context = await newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  watch(page);
  // The WebSocket upgrade as the browser saw it (Chrome DevTools Protocol).
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const handshake = new Promise((resolve) => {
    let offered;
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => (offered = header(e.request.headers, 'sec-websocket-extensions')));
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) =>
      resolve({ offered, status: e.response.status, agreed: header(e.response.headers, 'sec-websocket-extensions') }),
    );
  });
  await page.goto(BOARD_URL);
  await page.locator('#login-view').waitFor();
  assert.equal(await page.inputValue('#login-form input[name="email"]'), 'demo@example.com');
  await page.click('#login-submit');
  await boardReady(page);

  const { status, offered, agreed } = await handshake;
  assert.equal(status, 101);
  assert.match(offered ?? '', /permessage-deflate/, 'Chromium offers permessage-deflate');
  assert.match(agreed ?? '', /permessage-deflate/, `the server agreed to permessage-deflate (answer: ${agreed})`);

  // The README's curl, as a person would type it.
  const login = await run('curl', ['-s', '-X', 'POST', `${BASE}/api/auth/login`, '-H', 'content-type: application/json',
    '-d', '{"email":"demo@example.com","password":"demo-password"}']);
  const token = JSON.parse(login.stdout).token;
  const title = `From curl ${suffix}`;
  const created = await run('curl', ['-s', '-X', 'POST', `${BASE}/api/tasks`, '-H', `authorization: Bearer ${token}`,
    '-H', 'content-type: application/json', '-d', JSON.stringify({ title, priority: 9 })]);
  const task = JSON.parse(created.stdout);
  await cardIn(page, 'TODO', title).waitFor();
  await run('curl', ['-s', '-X', 'PUT', `${BASE}/api/tasks/${task.id}`, '-H', `authorization: Bearer ${token}`,
    '-H', 'if-match: "1"', '-H', 'content-type: application/json', '-d', '{"status":"DONE"}']);
  await cardIn(page, 'DONE', title).waitFor();
  await screenshot(page, '1-demo-board');
  await context.close();
});

test('a new user creates an account on the board and sees a change made with curl appear live', { skip, timeout: 60_000 }, async () => {
  const context = await newContext();
  const page = await open(context);
  await page.locator('#login-view').waitFor();
  await page.click('#mode-toggle');
  const email = `newcomer-${suffix}@example.com`;
  await page.fill('#login-form input[name="email"]', email);
  await page.fill('#login-form input[name="password"]', 'newcomer-password');
  await page.fill('#login-form input[name="name"]', 'Newcomer');
  await page.click('#login-submit');
  await boardReady(page);
  assert.equal(await page.textContent('#user-name'), 'Newcomer');
  assert.equal(await page.locator('.card').count(), 0);

  const login = await run('curl', ['-s', '-X', 'POST', `${BASE}/api/auth/login`, '-H', 'content-type: application/json',
    '-d', JSON.stringify({ email, password: 'newcomer-password' })]);
  const token = JSON.parse(login.stdout).token;
  await run('curl', ['-s', '-X', 'POST', `${BASE}/api/tasks`, '-H', `authorization: Bearer ${token}`,
    '-H', 'content-type: application/json', '-d', '{"title":"Hello from curl","status":"IN_PROGRESS"}']);
  await cardIn(page, 'IN_PROGRESS', 'Hello from curl').waitFor();
  await screenshot(page, '1-new-user-board');
  await context.close();
});

function header(headers, name) {
  const key = Object.keys(headers ?? {}).find((k) => k.toLowerCase() === name);
  return key ? headers[key] : undefined;
}

test('two contexts of one user: create, drag, edit and delete in one appear in the other', { skip, timeout: 60_000 }, async () => {
  b = await open(await newContext());
  c = await open(await newContext());
  d = await open(await newContext());
  await logIn(b, owner);
  await logIn(c, owner);
  await logIn(d, other);
  // The other user has a task of their own, made in their board.
  await d.fill('#new-task input[name="title"]', `Other's own ${suffix}`);
  await d.click('#new-task button[type="submit"]');
  await card(d, `Other's own ${suffix}`).waitFor();

  // Create in B: it appears in C.
  const title = `Write the report ${suffix}`;
  await b.fill('#new-task input[name="title"]', title);
  await b.fill('#new-task input[name="priority"]', '5');
  await b.click('#new-task button[type="submit"]');
  await cardIn(c, 'TODO', title).waitFor();

  // Drag in C to "In progress": B follows.
  await cardIn(c, 'TODO', title).dragTo(c.locator('.column[data-status="IN_PROGRESS"] .cards'));
  await cardIn(b, 'IN_PROGRESS', title).waitFor();
  await settledIn(c, 'IN_PROGRESS', title).waitFor();

  // Edit in B: C shows the new title.
  await card(b, title).click();
  await b.fill('#edit-form input[name="title"]', `${title} (edited)`);
  await b.fill('#edit-form textarea[name="description"]', 'Numbers from Q3, then the summary.');
  await b.click('#save-task');
  await b.locator('#editor').waitFor({ state: 'hidden' });
  await card(c, `${title} (edited)`).waitFor();
  await screenshot(b, '2-two-contexts-b');
  await screenshot(c, '2-two-contexts-c');

  // Delete in C: gone from B.
  const doomed = `Short-lived ${suffix}`;
  await c.fill('#new-task input[name="title"]', doomed);
  await c.click('#new-task button[type="submit"]');
  await card(b, doomed).waitFor();
  await card(c, doomed).click();
  await c.click('#delete-task');
  await card(b, doomed).waitFor({ state: 'detached' });
  await card(c, doomed).waitFor({ state: 'detached' });

  const tasks = await allTasks(ownerToken);
  await converged(b, tasks);
  await converged(c, tasks);
});

test('412 VERSION_MISMATCH: the editor shows the newer version and lets the user choose', { skip, timeout: 60_000 }, async () => {
  const task = await api('POST', '/api/tasks', { token: ownerToken, body: { title: `Plan the trip ${suffix}`, priority: 2 } });
  await card(b, task.title).waitFor();
  await card(b, task.title).click();
  await b.fill('#edit-form input[name="title"]', `Plan the trip (mine) ${suffix}`);
  // Meanwhile, elsewhere:
  const theirs = await api('PUT', `/api/tasks/${task.id}`, {
    token: ownerToken,
    ifMatch: 1,
    body: { title: `Plan the trip (theirs) ${suffix}`, priority: 8 },
  });
  await b.locator('#changed-elsewhere').waitFor(); // the live event reached the open editor
  await b.click('#save-task');
  await b.locator('#conflict').waitFor();
  assert.equal(await b.textContent('#newer-title'), theirs.title);
  assert.equal(await b.textContent('#newer-priority'), '8');
  assert.match(await b.textContent('#conflict-text'), /version 2/);
  await screenshot(b, '3-version-mismatch');
  // Theirs is in the board already; the form still holds the user's edit.
  assert.equal(await b.inputValue('#edit-form input[name="title"]'), `Plan the trip (mine) ${suffix}`);
  await b.click('#keep-mine');
  await b.locator('#editor').waitFor({ state: 'hidden' });
  // Only the field the user changed was written: the title theirs, the priority kept.
  const final = await api('GET', `/api/tasks/${task.id}`, { token: ownerToken });
  assert.equal(final.title, `Plan the trip (mine) ${suffix}`);
  assert.equal(final.priority, 8);
  assert.equal(final.version, 3);
  await card(c, final.title).waitFor();
});

test('a bad network between board and ws-node: duplicates and a lost event show each card once; a stale drag is answered kindly', { skip, timeout: 60_000 }, async () => {
  const context = await newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  watch(page);
  // Playwright sits between the page and the ws-node: every frame passes
  // through here, where events can be doubled, lost or held back.
  const network = { mode: 'pass', dropNext: false, held: [], route: null };
  await page.routeWebSocket(/\/ws\/updates/, (ws) => {
    const server = ws.connectToServer();
    network.route = ws;
    ws.onMessage((message) => server.send(message));
    server.onMessage((message) => {
      const event = typeof message === 'string' && /"type":"TASK_/.test(message);
      if (!event) return ws.send(message);
      if (network.mode === 'hold') return network.held.push(message);
      if (network.dropNext) {
        network.dropNext = false;
        return;
      }
      ws.send(message);
      if (network.mode === 'duplicate') ws.send(message);
    });
  });
  await page.goto(BOARD_URL);
  await logIn(page, owner);

  // Every event twice: each card still once.
  network.mode = 'duplicate';
  const doubled = [];
  for (let i = 0; i < 3; i++) {
    doubled.push(await api('POST', '/api/tasks', { token: ownerToken, body: { title: `Doubled ${i} ${suffix}` } }));
  }
  await converged(page, await allTasks(ownerToken));

  // One event lost: the next one shows the gap, the client resubscribes
  // with since, and the replay brings the lost one (no reload happens).
  network.dropNext = true;
  const lost = await api('POST', '/api/tasks', { token: ownerToken, body: { title: `Lost on the way ${suffix}` } });
  const next = await api('POST', '/api/tasks', { token: ownerToken, body: { title: `Shows the gap ${suffix}` } });
  await card(page, next.title).waitFor();
  await card(page, lost.title).waitFor();
  const tasks = await allTasks(ownerToken);
  await converged(page, tasks);
  await assertNoDuplicates(page, tasks.map((t) => t.id));

  // Events held back: the board still shows version 1 when it is dragged.
  network.mode = 'hold';
  await api('PUT', `/api/tasks/${lost.id}`, { token: ownerToken, ifMatch: 1, body: { priority: 7 } });
  await card(page, lost.title).dragTo(page.locator('.column[data-status="DONE"] .cards'));
  await page.locator('#toast').waitFor();
  const text = await page.textContent('#toast .toast-text');
  assert.match(text, /changed elsewhere \(now version 2: To do, priority 7\)/);
  assert.match(text, /not moved to Done/);
  await settledIn(page, 'TODO', lost.title).waitFor(); // back where the server has it
  await screenshot(page, '3-stale-drag');
  await page.click('#toast .toast-action'); // "Move to Done anyway"
  await settledIn(page, 'DONE', lost.title).waitFor();
  // Let the held events through, late and in order: they change nothing.
  network.mode = 'pass';
  for (const message of network.held.splice(0)) network.route.send(message);
  const final = await allTasks(ownerToken);
  await converged(page, final);
  await assertNoDuplicates(page, final.map((t) => t.id));
  assert.equal(final.find((t) => t.id === lost.id).version, 3);
  await context.close();
});

test('RESYNC_REQUIRED from the server: the board refetches its tasks, deletions included', { skip, timeout: 60_000 }, async () => {
  const context = await newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  watch(page);
  // Between page and node: events can be lost, and the `since` of a
  // resubscription pushed past the latest seq, which the contract answers
  // with RESYNC_REQUIRED (as when too many events were missed).
  const network = { lose: false, future: false, resyncs: 0, route: null };
  await page.routeWebSocket(/\/ws\/updates/, (ws) => {
    const server = ws.connectToServer();
    network.route = ws;
    ws.onMessage((message) => {
      // Only the first resubscription after the close: one that follows
      // (a reconnect on a slow host, a gap) resumes as usual, so exactly
      // one RESYNC_REQUIRED is the test's and any other would be a loop.
      if (network.future && typeof message === 'string' && message.includes('"since"')) {
        message = JSON.stringify({ ...JSON.parse(message), since: 1e12 });
        network.future = false;
      }
      server.send(message);
    });
    server.onMessage((message) => {
      if (typeof message === 'string' && message.includes('"RESYNC_REQUIRED"')) network.resyncs += 1;
      if (network.lose && typeof message === 'string' && /"type":"TASK_/.test(message)) return;
      ws.send(message);
    });
  });
  await page.goto(BOARD_URL);
  await logIn(page, owner);
  const before = await allTasks(ownerToken);

  // Changes the board never hears of.
  network.lose = true;
  const added = await api('POST', '/api/tasks', { token: ownerToken, body: { title: `Missed while away ${suffix}`, status: 'DONE' } });
  const gone = before.find((t) => t.title.startsWith('Doubled 0'));
  await api('DELETE', `/api/tasks/${gone.id}`, { token: ownerToken });
  const changed = before.find((t) => t.title.startsWith('Doubled 1'));
  await api('PUT', `/api/tasks/${changed.id}`, { token: ownerToken, body: { status: 'IN_PROGRESS' } });
  await card(page, gone.title).waitFor(); // still shown: nothing reached the board

  // The socket drops; the resubscription gets RESYNC_REQUIRED; the board reloads.
  network.lose = false;
  network.future = true;
  await page.evaluate(() => (window.__states = ['live']));
  await network.route.close({ code: 1001, reason: 'going away' });
  const tasks = await allTasks(ownerToken);
  await converged(page, tasks);
  await assertNoDuplicates(page, tasks.map((t) => t.id));
  assert.equal(network.resyncs, 1);
  await settledIn(page, 'DONE', added.title).waitFor();
  await card(page, gone.title).waitFor({ state: 'detached' });
  assert.ok((await page.evaluate(() => window.__states)).includes('reconnecting'));
  await context.close();
});

test('a ws-node killed -9 under both boards: each reconnects, resumes, and both converge with no duplicate', { skip, timeout: 120_000 }, async () => {
  const made = [];
  const outage = async (label) => {
    // Changes while a node is down: created, updated, deleted through the
    // API, and one through board B itself.
    for (let i = 0; i < 3; i++) {
      made.push(await api('POST', '/api/tasks', { token: ownerToken, body: { title: `${label} ${i} ${suffix}`, priority: i } }));
    }
    await api('PUT', `/api/tasks/${made.at(-1).id}`, { token: ownerToken, ifMatch: 1, body: { status: 'DONE' } });
    await api('DELETE', `/api/tasks/${made.at(-2).id}`, { token: ownerToken });
    await b.fill('#new-task input[name="title"]', `${label} from B ${suffix}`);
    await b.click('#new-task button[type="submit"]');
    await card(b, `${label} from B ${suffix}`).waitFor();
    const tasks = await allTasks(ownerToken);
    await converged(b, tasks);
    await converged(c, tasks);
    await assertNoDuplicates(b, tasks.map((t) => t.id));
    await assertNoDuplicates(c, tasks.map((t) => t.id));
  };
  await b.evaluate(() => (window.__states = ['live']));
  await c.evaluate(() => (window.__states = ['live']));

  // Node 1 dies; its sockets move to node 2. Then node 1 is back and node
  // 2 dies: every socket was on one of them, so both boards lose theirs.
  await kill9('ws-node-1');
  await outage('While ws-node-1 is down');
  await startNode('ws-node-1');
  await kill9('ws-node-2');
  await outage('While ws-node-2 is down');
  await screenshot(b, '4-after-ws-node-kills-b');
  await screenshot(c, '4-after-ws-node-kills-c');

  for (const [name, page] of [['B', b], ['C', c]]) {
    const states = await page.evaluate(() => window.__states);
    assert.ok(states.includes('reconnecting'), `board ${name} lost its socket and came back: ${states}`);
    assert.equal(states.at(-1), 'live');
  }
  await startNode('ws-node-2');
});

test("another user's board never shows those tasks", { skip, timeout: 30_000 }, async () => {
  const mine = await allTasks(other.token);
  assert.equal(mine.length, 1);
  await converged(d, mine);
  await assertNoDuplicates(d, mine.map((t) => t.id));
  const titles = await d.$$eval('.card-title', (els) => els.map((e) => e.textContent));
  assert.deepEqual(titles, [`Other's own ${suffix}`]);
  // Not now, and not at any moment while the owner's boards were busy.
  assert.deepEqual(await d.evaluate(() => window.__everShown), mine.map((t) => t.id));
  const owners = new Set((await allTasks(ownerToken)).map((t) => t.id));
  assert.ok(owners.size > 10, `the owner has tasks (${owners.size})`);
  await screenshot(d, '5-other-user-board');
});

test('logout in one tab moves the other tab of that session to the login screen (4001)', { skip, timeout: 60_000 }, async () => {
  const context = await newContext();
  const first = await open(context);
  await logIn(first, owner);
  // The second tab shares the first one's session (its token, in localStorage).
  const second = await open(context);
  await boardReady(second);
  await first.click('#logout');
  await first.locator('#login-view').waitFor();
  assert.match(await first.textContent('#login-message'), /logged out/);
  await second.locator('#login-view').waitFor();
  assert.match(await second.textContent('#login-message'), /session has ended/);
  assert.ok((await second.evaluate(() => window.__wsCloses)).includes(4001), 'the socket was closed with 4001');
  assert.equal(await second.getAttribute('#connection', 'data-state'), 'offline');
  await screenshot(second, '6-logged-out-elsewhere');
  // The same user's other sessions (their own tokens) go on.
  assert.equal(await b.getAttribute('#connection', 'data-state'), 'live');
  const task = await api('POST', '/api/tasks', { token: ownerToken, body: { title: `After the logout ${suffix}` } });
  await card(b, task.title).waitFor();
  await context.close();
});
