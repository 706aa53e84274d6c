// Shared helpers for the k6 scripts in this folder (see README.md).
//
// Everything here talks to BASE_URL (env BASE_URL, default
// http://127.0.0.1:8080: nginx in front of the api-nodes and ws-nodes) and
// WS_URL (env WS_URL, default BASE_URL with ws:// and /ws/updates).

import http from 'k6/http';
import { check } from 'k6';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const WS_URL = __ENV.WS_URL || `${BASE_URL.replace(/^http/, 'ws')}/ws/updates`;

// Trend columns in k6's end-of-test summary (p(99) added: the thresholds use it).
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

// The password of every user these scripts register (8 to 128 characters).
export const PASSWORD = __ENV.PASSWORD || 'k6-load-test-password';

// ---------------------------------------------------------------- env knobs

export function envString(name, fallback) {
    const v = __ENV[name];
    return v === undefined || v === '' ? fallback : v;
}

export function envNumber(name, fallback) {
    const v = __ENV[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`env ${name}=${v} is not a number`);
    return n;
}

export function envInt(name, fallback) {
    const n = envNumber(name, fallback);
    if (!Number.isInteger(n)) throw new Error(`env ${name}=${n} is not an integer`);
    return n;
}

// A k6-style duration ("20s", "1m30s", "500ms", or bare seconds) in seconds.
export function durationSecs(text) {
    const s = String(text).trim();
    if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
    const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
    let total = 0;
    let consumed = 0;
    let m;
    while ((m = re.exec(s)) !== null) {
        const n = Number(m[1]);
        total += m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : n * 3600;
        consumed += m[0].length;
    }
    if (consumed === 0 || consumed !== s.length) throw new Error(`bad duration: ${text}`);
    return total;
}

// Think time: THINK_S seconds on average, uniformly 0.5x to 1.5x.
export function thinkSecs(mean) {
    return mean * (0.5 + Math.random());
}

// ------------------------------------------------------------------ helpers

let emailCounter = 0;

// A fresh, unique email per call (VU number, a counter, the clock and a
// random part: unique across VUs, iterations and repeated runs).
export function uniqueEmail(prefix = 'k6') {
    emailCounter += 1;
    const rnd = Math.random().toString(36).slice(2, 10);
    return `${prefix}-${Date.now().toString(36)}-${__VU}-${emailCounter}-${rnd}@example.com`.toLowerCase();
}

// Request params: JSON content type, bearer token when given, a `name` tag
// (so /api/tasks/<id> URLs group into one metric series) and extra tags.
export function params(name, token, extra = {}) {
    const headers = Object.assign({ 'Content-Type': 'application/json' }, extra.headers || {});
    if (token) headers.Authorization = `Bearer ${token}`;
    const p = { headers, tags: Object.assign({ name }, extra.tags || {}) };
    if (extra.responseCallback) p.responseCallback = extra.responseCallback;
    return p;
}

export function authHeaders(token, extra = {}) {
    return Object.assign({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, extra);
}

// The JSON body, or null when the body is not JSON.
export function json(res) {
    try {
        return res.json();
    } catch (e) {
        return null;
    }
}

export function isJsonResponse(res) {
    const ct = res.headers['Content-Type'] || '';
    return ct.indexOf('application/json') === 0 && json(res) !== null;
}

// Checks the status and that the body is JSON (when there is one).
export function checkJson(res, status, what, more = {}) {
    const checks = {};
    checks[`${what}: status ${status}`] = (r) => r.status === status;
    if (status !== 204) checks[`${what}: JSON body`] = (r) => isJsonResponse(r);
    Object.keys(more).forEach((k) => {
        checks[`${what}: ${k}`] = more[k];
    });
    return check(res, checks);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isTask(t) {
    return (
        t !== null &&
        typeof t === 'object' &&
        UUID.test(t.id) &&
        UUID.test(t.userId) &&
        typeof t.title === 'string' &&
        typeof t.version === 'number' &&
        ['TODO', 'IN_PROGRESS', 'DONE'].indexOf(t.status) >= 0
    );
}

// The ETag's version: `"3"` -> 3 (null when missing or malformed).
export function etagVersion(res) {
    const m = /^"(\d+)"$/.exec(res.headers.Etag || '');
    return m ? Number(m[1]) : null;
}

// ----------------------------------------------------------------- requests

// Registers a fresh user. Returns { email, password, token, user } or null.
export function register(prefix = 'k6', tags = {}) {
    const email = uniqueEmail(prefix);
    const res = http.post(
        `${BASE_URL}/api/auth/register`,
        JSON.stringify({ email, password: PASSWORD, name: `k6 ${prefix}` }),
        params('POST /api/auth/register', null, { tags }),
    );
    const body = json(res);
    const ok = checkJson(res, 201, 'register', {
        'token and user': () => body !== null && typeof body.token === 'string' && body.user && body.user.email === email,
    });
    return ok ? { email, password: PASSWORD, token: body.token, user: body.user } : null;
}

// Logs in. Returns { res, token } (token null on failure); `what` names the checks.
export function login(email, password, tags = {}, what = 'login') {
    const res = http.post(
        `${BASE_URL}/api/auth/login`,
        JSON.stringify({ email, password }),
        params('POST /api/auth/login', null, { tags }),
    );
    const body = json(res);
    const ok = checkJson(res, 200, what, {
        'token and user': () => body !== null && typeof body.token === 'string' && body.user && body.user.email === email,
    });
    return { res, token: ok ? body.token : null };
}

// Registers `n` fresh users (for setup()); throws if any fails, since a
// test without its users would only measure errors.
export function registerUsers(n, prefix) {
    const users = [];
    for (let i = 0; i < n; i++) {
        const u = register(prefix);
        if (!u) throw new Error(`setup: registering user ${i + 1} of ${n} failed`);
        users.push(u);
    }
    return users;
}

// Creates a task. Returns { res, task } (task null on failure).
export function createTask(token, body, tags = {}) {
    const res = http.post(`${BASE_URL}/api/tasks`, JSON.stringify(body), params('POST /api/tasks', token, { tags }));
    const task = json(res);
    const ok = checkJson(res, 201, 'create task', {
        'task body': () => isTask(task) && task.title === String(body.title).trim() && task.version === 1,
        'Location header': (r) => task !== null && r.headers.Location === `/api/tasks/${task.id}`,
    });
    return { res, task: ok ? task : null };
}

// GET /api/tasks/:id; pass http.expectedStatuses(404) when a 404 is the point.
export function getTask(token, id, tags = {}, responseCallback = undefined) {
    return http.get(`${BASE_URL}/api/tasks/${id}`, params('GET /api/tasks/:id', token, { tags, responseCallback }));
}

// POST /api/auth/logout (no body, so no Content-Type).
export function logout(token, tags = {}) {
    const res = http.post(`${BASE_URL}/api/auth/logout`, null, {
        headers: { Authorization: `Bearer ${token}` },
        tags: Object.assign({ name: 'POST /api/auth/logout' }, tags),
    });
    check(res, { 'logout: status 204': (r) => r.status === 204 });
    return res;
}
