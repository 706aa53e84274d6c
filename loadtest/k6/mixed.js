// mixed.js: what a real user does, with think time between steps.
//
// Each VU signs up once (a fresh user of its own), then every iteration is
// one session: log in, list tasks, create a task, read it back, update it
// with If-Match (and see a stale If-Match refused with 412), list again,
// delete it with If-Match, log out. VUs ramp up, hold, and ramp down.
//
// Env: BASE_URL, VUS (10), RAMP_UP (5s), HOLD (15s), RAMP_DOWN (5s),
// THINK_S (1: mean think time in seconds), MAX_FAILED_RATE (0.01),
// P99_MS (250), MIN_CHECKS_RATE (0.99).

import http from 'k6/http';
import { check, sleep } from 'k6';
import {
    BASE_URL,
    checkJson,
    createTask,
    envNumber,
    envString,
    etagVersion,
    getTask,
    isTask,
    json,
    login,
    logout,
    params,
    register,
    thinkSecs,
    SUMMARY_TREND_STATS,
} from './lib.js';

const VUS = envNumber('VUS', 10);
const THINK_S = envNumber('THINK_S', 1);

export const options = {
    summaryTrendStats: SUMMARY_TREND_STATS,
    scenarios: {
        users: {
            executor: 'ramping-vus',
            startVUs: 0,
            stages: [
                { duration: envString('RAMP_UP', '5s'), target: VUS },
                { duration: envString('HOLD', '15s'), target: VUS },
                { duration: envString('RAMP_DOWN', '5s'), target: 0 },
            ],
            gracefulRampDown: '5s',
            gracefulStop: '5s',
        },
    },
    thresholds: {
        http_req_failed: [`rate<${envNumber('MAX_FAILED_RATE', 0.01)}`],
        http_req_duration: [`p(99)<${envNumber('P99_MS', 250)}`],
        checks: [`rate>${envNumber('MIN_CHECKS_RATE', 0.99)}`],
    },
};

// The VU's own account, registered on its first iteration.
let account = null;

export default function () {
    if (account === null) {
        account = register('mixed');
        if (account === null) {
            sleep(1);
            return;
        }
        sleep(thinkSecs(THINK_S));
    }

    // Log in.
    const { token } = login(account.email, account.password);
    if (!token) {
        sleep(1);
        return;
    }
    sleep(thinkSecs(THINK_S));

    // The task list, most recent first.
    let res = http.get(`${BASE_URL}/api/tasks?limit=20`, params('GET /api/tasks', token));
    let body = json(res);
    checkJson(res, 200, 'list tasks', {
        'tasks and nextCursor': () => body !== null && Array.isArray(body.tasks) && 'nextCursor' in body,
    });
    sleep(thinkSecs(THINK_S));

    // A new task.
    const title = `Write the report ${Date.now()}`;
    const created = createTask(token, { title, description: 'k6 mixed scenario', priority: 3 });
    if (!created.task) {
        sleep(1);
        return;
    }
    const id = created.task.id;
    sleep(thinkSecs(THINK_S));

    // Open it.
    res = getTask(token, id);
    const got = json(res);
    checkJson(res, 200, 'get task', {
        'same task': () => isTask(got) && got.id === id && got.title === title,
        'ETag is the version': (r) => got !== null && etagVersion(r) === got.version,
    });
    const version = etagVersion(res) || 1;
    sleep(thinkSecs(THINK_S));

    // Start working on it, only if nobody changed it meanwhile.
    res = http.put(
        `${BASE_URL}/api/tasks/${id}`,
        JSON.stringify({ status: 'IN_PROGRESS', priority: 5 }),
        params('PUT /api/tasks/:id', token, { headers: { 'If-Match': `"${version}"` } }),
    );
    const updated = json(res);
    checkJson(res, 200, 'update task (If-Match)', {
        'version +1': () => isTask(updated) && updated.version === version + 1,
        'fields changed': () => updated !== null && updated.status === 'IN_PROGRESS' && updated.priority === 5,
        'title kept': () => updated !== null && updated.title === title,
        'ETag is the new version': (r) => etagVersion(r) === version + 1,
    });
    sleep(thinkSecs(THINK_S));

    // A second tab still holding the old version: refused with 412.
    res = http.put(
        `${BASE_URL}/api/tasks/${id}`,
        JSON.stringify({ status: 'DONE' }),
        params('PUT /api/tasks/:id (stale)', token, {
            headers: { 'If-Match': `"${version}"` },
            responseCallback: http.expectedStatuses(412),
        }),
    );
    const stale = json(res);
    checkJson(res, 412, 'stale update', {
        'VERSION_MISMATCH': () => stale !== null && stale.code === 'VERSION_MISMATCH',
    });

    // The list again (the write must be visible: read your writes).
    res = http.get(`${BASE_URL}/api/tasks?status=IN_PROGRESS&limit=20`, params('GET /api/tasks', token));
    body = json(res);
    checkJson(res, 200, 'list in progress', {
        'contains the updated task': () =>
            body !== null && Array.isArray(body.tasks) && body.tasks.some((t) => t.id === id && t.version === version + 1),
    });
    sleep(thinkSecs(THINK_S));

    // Done with it: delete, with If-Match.
    res = http.del(`${BASE_URL}/api/tasks/${id}`, null, params('DELETE /api/tasks/:id', token, {
        headers: { 'If-Match': `"${version + 1}"` },
    }));
    checkJson(res, 204, 'delete task');
    res = getTask(token, id, {}, http.expectedStatuses(404));
    check(res, { 'deleted task: 404': (r) => r.status === 404 });
    sleep(thinkSecs(THINK_S));

    // Log out.
    logout(token);
    sleep(thinkSecs(THINK_S));
}
