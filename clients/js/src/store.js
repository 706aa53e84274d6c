// LiveTasks: the user's tasks kept current. A snapshot over REST, then the
// live events on top, in seq order; a new snapshot whenever the connection
// cannot resume (first subscription, RESYNC_REQUIRED).
//
// The snapshot is read after SUBSCRIBED (seq S), so it holds at least every
// change up to S; events after S that arrive while it loads wait, and are
// then applied in order. Each is applied only when it is newer than what is
// held (a task's version), so an event the snapshot already reflects
// changes nothing, and a deleted task (ids are never reused) never comes
// back. The app's own writes go through apply()/remove() at once, and
// their events change nothing when they arrive.

import { ApiError } from './errors.js';
import { Emitter } from './emitter.js';
import { backoffDelay } from './backoff.js';

export class LiveTasks {
  #client;
  #events = new Emitter();
  #tasks = new Map();
  #deleted = new Set();
  #buffer = null; // events waiting for the snapshot being loaded
  #generation = 0;
  #offs = [];
  #readyResolve;
  #retryTimer = null;

  /**
   * @param {import('./api.js').TasksClient} client
   * @param {object} [options]
   * @param {import('./live.js').LiveConnection} [options.live]  default: client.live(options.liveOptions)
   * @param {object} [options.liveOptions]
   */
  constructor(client, options = {}) {
    this.#client = client;
    this.live = options.live ?? client.live(options.liveOptions);
    /** True once a snapshot is in. */
    this.loaded = false;
    /** Resolves when the first snapshot is in. */
    this.ready = new Promise((resolve) => (this.#readyResolve = resolve));
  }

  /**
   * `change` {cause: 'snapshot'|'event'|'local', task?, event?}; `state`
   * (the connection's, {state, reason}); `unauthorized`; `error`.
   */
  on(type, listener) {
    return this.#events.on(type, listener);
  }

  /** Every task held, in no particular order. */
  list() {
    return [...this.#tasks.values()];
  }

  get(id) {
    return this.#tasks.get(id);
  }

  /** The connection's state: 'connecting' | 'live' | 'reconnecting' | 'offline'. */
  get state() {
    return this.live.state;
  }

  start() {
    const live = this.live;
    this.#offs.push(
      live.on('subscribed', ({ resumed }) => {
        if (!resumed) this.#reload();
      }),
      live.on('event', (event) => this.#onEvent(event)),
      live.on('state', (state) => this.#events.emit('state', state)),
      live.on('unauthorized', (why) => this.#events.emit('unauthorized', why)),
      live.on('error', (error) => this.#events.emit('error', error)),
    );
    live.start();
    return this;
  }

  stop() {
    for (const off of this.#offs.splice(0)) off();
    this.#generation += 1;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.live.close();
  }

  /** Takes a task the app got from its own write (create, update), if newer than what is held. */
  apply(task) {
    if (this.#upsert(task)) this.#events.emit('change', { cause: 'local', task });
  }

  /** Forgets a task the app deleted itself. */
  remove(id) {
    const had = this.#tasks.has(id);
    this.#forget(id);
    if (had) this.#events.emit('change', { cause: 'local', task: { id } });
  }

  // A new subscription point: what waited for an earlier snapshot is
  // covered by this one (and, across a resync, may predate missed events).
  #reload() {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#buffer = [];
    this.#load(0);
  }

  async #load(attempt) {
    const generation = ++this.#generation;
    let tasks;
    try {
      tasks = await this.#client.listAllTasks();
    } catch (error) {
      if (generation !== this.#generation) return;
      if (error instanceof ApiError && error.status === 401) {
        this.#events.emit('unauthorized', { code: 401, reason: error.message });
        return;
      }
      this.#events.emit('error', error);
      this.#retryTimer = setTimeout(() => this.#load(attempt + 1), backoffDelay(attempt));
      return;
    }
    if (generation !== this.#generation) return;
    this.#tasks = new Map();
    for (const task of tasks) {
      if (!this.#deleted.has(task.id)) this.#tasks.set(task.id, task);
    }
    const waiting = this.#buffer;
    this.#buffer = null;
    for (const event of waiting) this.#applyEvent(event);
    this.loaded = true;
    this.#events.emit('change', { cause: 'snapshot' });
    this.#readyResolve();
  }

  #onEvent(event) {
    if (this.#buffer) {
      this.#buffer.push(event);
      return;
    }
    if (this.#applyEvent(event)) this.#events.emit('change', { cause: 'event', event, task: event.task });
  }

  #applyEvent(event) {
    const task = event.task;
    if (!task || typeof task.id !== 'string') return false;
    if (event.type === 'TASK_DELETED') {
      const had = this.#tasks.has(task.id);
      this.#forget(task.id);
      return had;
    }
    return this.#upsert(task);
  }

  #upsert(task) {
    if (this.#deleted.has(task.id)) return false;
    const held = this.#tasks.get(task.id);
    if (held && held.version >= task.version) return false;
    this.#tasks.set(task.id, task);
    return true;
  }

  #forget(id) {
    this.#deleted.add(id);
    this.#tasks.delete(id);
  }
}
