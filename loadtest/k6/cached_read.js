// cached_read.js: read-heavy load on one task, served from Redis.
//
// setup() registers a user and creates one task (the write puts it in the
// cache). Then VUS VUs GET /api/tasks/:id back to back, without think
// time, for DURATION. Each response's X-Cache header feeds the Rate metric
// `cache_hit` (HIT = 1; MISS or missing = 0).
//
// Env: BASE_URL, VUS (64), DURATION (20s), P99_MS (5: p99 of the reads),
// MIN_HIT_RATE (0.95).

import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { SUMMARY_TREND_STATS, createTask, envInt, envNumber, envString, getTask, register } from './lib.js';

const cacheHit = new Rate('cache_hit');

export const options = {
    summaryTrendStats: SUMMARY_TREND_STATS,
    scenarios: {
        reads: {
            executor: 'constant-vus',
            vus: envInt('VUS', 64),
            duration: envString('DURATION', '20s'),
        },
    },
    thresholds: {
        // Only the reads (setup's register and create are not what is measured).
        'http_req_duration{scenario:reads}': [`p(99)<${envNumber('P99_MS', 5)}`],
        http_req_failed: ['rate==0'],
        cache_hit: [`rate>${envNumber('MIN_HIT_RATE', 0.95)}`],
        checks: ['rate==1'],
    },
};

export function setup() {
    const user = register('cached-read');
    if (!user) throw new Error('setup: register failed');
    const { task } = createTask(user.token, { title: 'A task read many times', description: 'k6 cached_read', priority: 2 });
    if (!task) throw new Error('setup: create task failed');
    return { token: user.token, id: task.id };
}

export default function (data) {
    const res = getTask(data.token, data.id);
    const hit = res.headers['X-Cache'] === 'HIT';
    cacheHit.add(hit);
    // A cheap body check: no JSON parse per request, so k6 spends its CPU
    // on sending, not on checking.
    check(res, {
        'get task: status 200': (r) => r.status === 200,
        'get task: the task': (r) => typeof r.body === 'string' && r.body.indexOf(`"id":"${data.id}"`) >= 0,
        'get task: ETag "1"': (r) => r.headers.Etag === '"1"',
    });
}
