// login_storm.js: many users logging in at once, and how ordinary reads
// fare meanwhile.
//
// Scenario `storm`: LOGIN_VUS VUs log in back to back (no think time) with
// the correct password, over STORM_USERS users registered in setup().
// Each login runs an argon2id verification; the api-node bounds them with
// a semaphore (HASH_CONCURRENCY) so that a storm queues logins instead of
// starving other requests. Scenario `reads`: cached GETs of one task at a
// constant arrival rate (READ_RATE per second) during the storm: their p99
// shows whether the storm starves other requests.
//
// Only correct passwords are used: the server rate-limits FAILED logins
// (per email and per client address), and a storm of failures would turn
// into 429s, which is another test.
//
// Env: BASE_URL, LOGIN_VUS (16), STORM_USERS (8), DURATION (20s),
// READ_RATE (50), READ_P99_MS (20), MIN_LOGIN_RATE (0: logins/s that the
// storm must reach; 0 means only "some logins succeeded").

import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
    SUMMARY_TREND_STATS,
    createTask,
    envInt,
    envNumber,
    envString,
    getTask,
    login,
    registerUsers,
} from './lib.js';

const logins = new Counter('logins'); // successful logins (count and rate/s)
const loginFailed = new Rate('login_failed'); // 1 for each login that did not succeed
const loginMs = new Trend('login_ms', true); // duration of each login request
const cacheHit = new Rate('cache_hit'); // X-Cache: HIT ratio of the reads

const DURATION = envString('DURATION', '20s');
const READ_RATE = envInt('READ_RATE', 50);
const MIN_LOGIN_RATE = envNumber('MIN_LOGIN_RATE', 0);

export const options = {
    summaryTrendStats: SUMMARY_TREND_STATS,
    scenarios: {
        storm: {
            executor: 'constant-vus',
            exec: 'storm',
            vus: envInt('LOGIN_VUS', 16),
            duration: DURATION,
            gracefulStop: '10s',
        },
        reads: {
            executor: 'constant-arrival-rate',
            exec: 'reads',
            rate: READ_RATE,
            timeUnit: '1s',
            duration: DURATION,
            preAllocatedVUs: Math.max(5, Math.ceil(READ_RATE / 5)),
            maxVUs: Math.max(20, READ_RATE),
        },
    },
    thresholds: {
        'http_req_duration{scenario:reads}': [`p(99)<${envNumber('READ_P99_MS', 20)}`],
        'http_req_failed{scenario:reads}': ['rate==0'],
        'http_req_failed{scenario:storm}': ['rate==0'],
        login_failed: ['rate==0'],
        logins: [MIN_LOGIN_RATE > 0 ? `rate>=${MIN_LOGIN_RATE}` : 'count>0'],
        checks: ['rate==1'],
    },
};

export function setup() {
    const users = registerUsers(envInt('STORM_USERS', 8), 'storm');
    const { task } = createTask(users[0].token, { title: 'Read during the login storm', priority: 1 });
    if (!task) throw new Error('setup: create task failed');
    return {
        users: users.map((u) => ({ email: u.email, password: u.password })),
        token: users[0].token,
        id: task.id,
    };
}

let next = 0;

export function storm(data) {
    // Each VU walks the users from its own offset, so they are all in use.
    const u = data.users[(__VU + next++) % data.users.length];
    const { res, token } = login(u.email, u.password);
    loginMs.add(res.timings.duration);
    loginFailed.add(token === null);
    if (token !== null) logins.add(1);
}

export function reads(data) {
    const res = getTask(data.token, data.id);
    cacheHit.add(res.headers['X-Cache'] === 'HIT');
    check(res, {
        'read during storm: status 200': (r) => r.status === 200,
        'read during storm: the task': (r) => typeof r.body === 'string' && r.body.indexOf(`"id":"${data.id}"`) >= 0,
    });
}
