// Test doubles: a WebSocket the test drives by hand, a clock the test
// advances, and a fetch that answers from a table.

/** A fake WebSocket: every instance is recorded; the test opens, feeds and closes it. */
export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  /** @type {FakeWebSocket[]} */
  static instances = [];

  static reset() {
    FakeWebSocket.instances = [];
  }

  static get last() {
    return FakeWebSocket.instances.at(-1);
  }

  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    this.closedByClient = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeWebSocket.instances.push(this);
  }

  /** The token in the URL. */
  get token() {
    return new URL(this.url).searchParams.get('token');
  }

  /** Messages the client sent, parsed. */
  get messages() {
    return this.sent.map((text) => JSON.parse(text));
  }

  send(text) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error('send on a socket that is not open');
    this.sent.push(text);
  }

  close(code = 1000, reason = '') {
    this.closedByClient = { code, reason };
    this.readyState = FakeWebSocket.CLOSED;
  }

  // --- the server's side ---

  open() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.({});
  }

  receive(message) {
    this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
  }

  serverClose(code, reason = '') {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason });
  }

  /** The upgrade failed (refused, 401, 429): browsers say error, then close 1006. */
  fail() {
    this.readyState = FakeWebSocket.CLOSED;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: '' });
  }
}

/** A manual clock: timers fire only when the test advances it. */
export class FakeClock {
  now = 0;
  #timers = new Map();
  #next = 1;

  setTimeout = (fn, ms) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (id) => {
    this.#timers.delete(id);
  };

  /** Delays of the timers pending, soonest first. */
  get pending() {
    return [...this.#timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  /** Runs every timer due within `ms`, in order (timers they set included). */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let due = null;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && (!due || timer.at < due[1].at)) due = [id, timer];
      }
      if (!due) break;
      this.#timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = end;
  }

  /** Runs the next timer, whenever it is due; returns its delay. */
  runNext() {
    const delay = this.pending[0];
    if (delay === undefined) return undefined;
    this.advance(delay);
    return delay;
  }
}

/**
 * A fetch answering from `handler(request)`, which returns
 * {status, body, headers} or throws (a network failure). Requests are
 * recorded with their parsed JSON body.
 */
export function fakeFetch(handler) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const request = {
      url: new URL(url),
      method: init.method ?? 'GET',
      headers: Object.fromEntries(Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
      body: init.body === undefined ? undefined : JSON.parse(init.body),
    };
    calls.push(request);
    const answer = await handler(request);
    const status = answer.status ?? 200;
    const text = answer.raw ?? (answer.body === undefined ? '' : JSON.stringify(answer.body));
    return new Response(status === 204 ? null : text, {
      status,
      headers: { 'content-type': answer.raw ? 'text/html' : 'application/json', ...(answer.headers ?? {}) },
    });
  };
  fetch.calls = calls;
  return fetch;
}

/** A task as the API returns it. */
export function task(id, fields = {}) {
  return {
    id,
    userId: 'u1',
    title: `task ${id}`,
    description: null,
    status: 'TODO',
    priority: 0,
    version: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...fields,
  };
}

/** Lets pending promise callbacks run. */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}
