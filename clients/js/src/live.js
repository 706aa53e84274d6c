// The live side of the contract: one WebSocket at a time to /ws/updates,
// subscribed to the user's task events, kept alive through anything the
// network or the servers do.
//
// What it promises the app: every `event` it emits has the next seq after
// the one before (never twice, never out of order); when it cannot promise
// that (the server no longer keeps the missed events) it says so with a
// `subscribed` whose `resumed` is false, and the app refetches its tasks.
//
// How: it keeps the last seq it handed on. After any close it reconnects
// with exponential backoff and jitter and resubscribes with `since`; a seq
// it has passed is dropped; a seq beyond the next one (a gap) makes it
// resubscribe with `since` on the same socket, and what arrives meanwhile
// past the gap is dropped (the replay sends it again, in order).

import { ApiError } from './errors.js';
import { Emitter } from './emitter.js';
import { backoffDelay } from './backoff.js';

const OPEN = 1; // WebSocket.OPEN, also for constructors that lack the statics

/** Close codes of the contract. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001, // the node is shutting down: reconnect (elsewhere)
  POLICY: 1008, // too many messages, or reading too slowly
  TOO_BIG: 1009, // a message over 16 KiB
  UNAUTHORIZED: 4001, // token expired or revoked: log in again
});

const EVENT_TYPES = new Set(['TASK_CREATED', 'TASK_UPDATED', 'TASK_DELETED']);
// Resubscribing after SUBSCRIBED still leaves seqs missing: try this often,
// then give up on resuming and resync (refetch) instead.
const MAX_INCOMPLETE_RESUMES = 3;

export class LiveConnection {
  #events = new Emitter();
  #ws = null;
  #opened = false;
  #awaiting = null; // 'fresh' | 'resume' while a SUBSCRIBE_TASKS waits for SUBSCRIBED
  #resync = false; // RESYNC_REQUIRED seen, SUBSCRIBED to follow
  #incompleteResumes = 0;
  #attempt = 0;
  #retryTimer = null;
  #heartbeatTimer = null;
  #heard = true; // anything received since the last heartbeat tick
  #pendingAuth = [];
  #token;
  #onOnline = null;

  /**
   * @param {object} options
   * @param {string} options.url  ws(s)://host/ws/updates
   * @param {string} [options.token]  or:
   * @param {() => string|null} [options.getToken]  asked at every connect
   * @param {any} [options.WebSocket]  default: the global WebSocket
   * @param {number|null} [options.since]  resume after this seq (a seq the app already holds)
   * @param {object} [options.backoff]  {initialMs, maxMs, factor, jitter}
   * @param {number} [options.heartbeatMs]  PING after this long without a message; still nothing a period later: reconnect (default 15 s; 0: off)
   * @param {() => Promise<boolean>} [options.validateToken]  asked when a socket fails to open: false means the token is refused
   * @param {() => number} [options.random]
   * @param {{setTimeout: Function, clearTimeout: Function}} [options.timers]
   */
  constructor(options) {
    if (!options?.url) throw new TypeError('LiveConnection: url is required');
    this.url = options.url;
    this.#token = options.token ?? null;
    this.getToken = options.getToken ?? null;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new TypeError('LiveConnection: no WebSocket available (Node < 22): pass options.WebSocket');
    }
    this.backoff = options.backoff ?? {};
    this.heartbeatMs = options.heartbeatMs ?? 15_000;
    this.validateToken = options.validateToken ?? null;
    this.random = options.random ?? Math.random;
    this.timers = options.timers ?? { setTimeout: globalThis.setTimeout.bind(globalThis), clearTimeout: globalThis.clearTimeout.bind(globalThis) };
    /** The seq of the last event handed on (or the subscription point); null before the first SUBSCRIBED. */
    this.lastSeq = options.since ?? null;
    /** 'idle' | 'connecting' | 'live' | 'reconnecting' | 'offline' */
    this.state = 'idle';
    /** Why the state is what it is (the close code, 'closed', 'unauthorized', 'network', ...). */
    this.reason = null;
    /** True once stopped for good: close() or 4001. authenticate() with a new token starts again after 4001. */
    this.stopped = false;
    /** Counters, for the curious and for tests. */
    this.stats = { connects: 0, duplicates: 0, gaps: 0, resubscribes: 0, resyncs: 0 };
  }

  /**
   * `state` {state, reason}; `event` (a TASK_* message, in seq order, once);
   * `subscribed` {seq, resumed}: resumed false means "refetch your tasks,
   * then apply events after seq"; `unauthorized` {code, reason}: log in
   * again; `message` (any other server message); `error`.
   */
  on(type, listener) {
    return this.#events.on(type, listener);
  }

  /** Connects (once; later calls do nothing while running). */
  start() {
    if (this.#ws || this.#retryTimer || (this.state !== 'idle' && this.state !== 'offline')) return this;
    this.stopped = false;
    this.#attempt = 0;
    this.#setState(this.lastSeq === null ? 'connecting' : 'reconnecting', null);
    this.#connect();
    return this;
  }

  /** Stops for good: closes the socket, no reconnection. */
  close() {
    this.stopped = true;
    this.#teardown(true);
    this.#setState('offline', 'closed');
  }

  /** Drops the socket now and reconnects at once (resuming with since). */
  reconnect() {
    if (this.stopped) return;
    this.#teardown(true);
    this.#attempt = 0;
    this.#setState('reconnecting', 'reconnect');
    this.#connect();
  }

  /**
   * Moves the connection to a new token of the same user without
   * reconnecting (AUTH). Resolves with {exp} on AUTHENTICATED, or
   * {exp: null} when no socket is open (the next connect uses the token);
   * rejects with ApiError UNAUTHORIZED when the server refuses the token
   * (the connection keeps its old one).
   */
  authenticate(token) {
    this.#token = token;
    if (this.stopped && this.reason === 'unauthorized') {
      this.stopped = false;
      this.start();
      return Promise.resolve({ exp: null });
    }
    if (!this.#opened || !this.#send({ type: 'AUTH', token })) return Promise.resolve({ exp: null });
    return new Promise((resolve, reject) => this.#pendingAuth.push({ resolve, reject }));
  }

  /** Sends a PING now (the answer is a `message` of type PONG). */
  ping() {
    return this.#send({ type: 'PING' });
  }

  // --- the socket -----------------------------------------------------------

  #currentToken() {
    return this.getToken ? this.getToken() : this.#token;
  }

  #connect() {
    this.#retryTimer = null;
    if (this.stopped) return;
    const token = this.#currentToken();
    if (!token) {
      this.#unauthorized(null, 'no token');
      return;
    }
    if (globalThis.navigator?.onLine === false && typeof globalThis.addEventListener === 'function') {
      this.#waitForNetwork();
      return;
    }
    const url = `${this.url}${this.url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    let ws;
    try {
      ws = new this.WebSocket(url);
    } catch (error) {
      this.#events.emit('error', error);
      this.#scheduleReconnect(null);
      return;
    }
    this.stats.connects += 1;
    this.#ws = ws;
    this.#opened = false;
    ws.onopen = () => {
      if (ws !== this.#ws) return;
      this.#opened = true;
      this.#heard = true;
      this.#subscribe();
      this.#startHeartbeat();
    };
    ws.onmessage = (message) => {
      if (ws !== this.#ws) return;
      this.#heard = true;
      this.#onMessage(message.data);
    };
    ws.onerror = () => {
      // A close always follows; it carries what there is to know.
    };
    ws.onclose = (close) => {
      if (ws !== this.#ws) return;
      this.#onClose(close?.code ?? 1006, close?.reason ?? '');
    };
  }

  #subscribe() {
    const resume = this.lastSeq !== null;
    this.#awaiting = resume ? 'resume' : 'fresh';
    this.#send(resume ? { type: 'SUBSCRIBE_TASKS', since: this.lastSeq } : { type: 'SUBSCRIBE_TASKS' });
  }

  #send(message) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(JSON.stringify(message));
      return true;
    } catch (error) {
      this.#events.emit('error', error);
      return false;
    }
  }

  #onMessage(data) {
    if (typeof data !== 'string') {
      this.#events.emit('error', new Error('a binary WebSocket message (the contract sends JSON text)'));
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      this.#events.emit('error', new Error('a WebSocket message that is not JSON'));
      return;
    }
    if (!message || typeof message !== 'object') return;
    if (EVENT_TYPES.has(message.type)) return this.#onEvent(message);
    switch (message.type) {
      case 'SUBSCRIBED':
        return this.#onSubscribed(message.seq);
      case 'RESYNC_REQUIRED':
        this.#resync = true;
        return;
      case 'AUTHENTICATED':
        this.#pendingAuth.shift()?.resolve({ exp: message.exp ?? null });
        return;
      case 'ERROR':
        return this.#onError(message);
      default:
        this.#events.emit('message', message);
    }
  }

  #onEvent(event) {
    const seq = event.seq;
    // Before SUBSCRIBED on a fresh subscription, or after RESYNC_REQUIRED,
    // there is no point to count from: the snapshot to come covers it.
    if (!Number.isSafeInteger(seq) || this.lastSeq === null || this.#resync) return;
    if (seq <= this.lastSeq) {
      this.stats.duplicates += 1;
      return;
    }
    if (seq !== this.lastSeq + 1) {
      this.stats.gaps += 1;
      this.#resubscribe();
      return;
    }
    this.lastSeq = seq;
    this.#events.emit('event', event);
  }

  // A gap: ask again from the last seq held. One request at a time; what
  // arrives past the gap meanwhile is dropped and comes again in the replay.
  #resubscribe() {
    if (this.#awaiting) return;
    this.stats.resubscribes += 1;
    this.#subscribe();
  }

  #onSubscribed(seq) {
    if (!Number.isSafeInteger(seq)) return;
    this.#awaiting = null;
    let resumed = true;
    if (this.#resync || this.lastSeq === null || this.lastSeq > seq) {
      // A fresh start, a resync, or a server whose history is behind what
      // was already handed on: the app's tasks must come from a snapshot.
      if (this.#resync || this.lastSeq !== null) this.stats.resyncs += 1;
      this.#resync = false;
      this.lastSeq = seq;
      resumed = false;
    } else if (this.lastSeq < seq) {
      // SUBSCRIBED promises everything up to seq was sent: some went missing.
      this.#incompleteResumes += 1;
      if (this.#incompleteResumes <= MAX_INCOMPLETE_RESUMES) {
        this.#resubscribe();
        return;
      }
      this.stats.resyncs += 1;
      this.lastSeq = seq;
      resumed = false;
    }
    this.#incompleteResumes = 0;
    this.#attempt = 0;
    this.#setState('live', null);
    this.#events.emit('subscribed', { seq, resumed });
  }

  #onError(message) {
    if (message.code === 'UNAUTHORIZED' && this.#pendingAuth.length > 0) {
      this.#pendingAuth.shift().reject(new ApiError({ status: 401, code: 'UNAUTHORIZED', message: message.message }));
      return;
    }
    if (this.#awaiting && message.code === 'UNAVAILABLE') {
      // The node could not read history to subscribe: try another.
      this.#teardown(true);
      this.#scheduleReconnect(null);
      return;
    }
    this.#events.emit('error', new ApiError({ status: 0, code: message.code || 'ERROR', message: message.message }));
  }

  #onClose(code, reason) {
    const opened = this.#opened;
    this.#teardown(false);
    if (this.stopped) return;
    if (code === CloseCode.UNAUTHORIZED) {
      this.#unauthorized(code, reason);
      return;
    }
    this.#scheduleReconnect(code);
    // A browser shows an upgrade refused with 401 as a bare 1006: ask the
    // API whether the token is still good before retrying forever.
    if (!opened && this.validateToken) {
      Promise.resolve()
        .then(() => this.validateToken())
        .then((good) => {
          if (good === false && !this.stopped && !this.#ws) this.#unauthorized(code, 'token refused');
        })
        .catch(() => {});
    }
  }

  #unauthorized(code, reason) {
    this.stopped = true;
    this.#teardown(true);
    this.#setState('offline', 'unauthorized');
    this.#events.emit('unauthorized', { code, reason });
  }

  #scheduleReconnect(code) {
    if (this.stopped || this.#retryTimer) return;
    // Closed for our own behaviour (flooding, reading slowly, too big): do
    // not come straight back.
    if (code === CloseCode.POLICY || code === CloseCode.TOO_BIG) this.#attempt = Math.max(this.#attempt, 3);
    const delay = backoffDelay(this.#attempt, this.backoff, this.random);
    this.#attempt += 1;
    this.#setState('reconnecting', code);
    this.#retryTimer = this.timers.setTimeout(() => this.#connect(), delay);
  }

  #waitForNetwork() {
    this.#setState('offline', 'network');
    if (this.#onOnline) return;
    this.#onOnline = () => {
      globalThis.removeEventListener('online', this.#onOnline);
      this.#onOnline = null;
      if (this.stopped) return;
      this.#attempt = 0;
      this.#setState('reconnecting', 'network');
      this.#connect();
    };
    globalThis.addEventListener('online', this.#onOnline);
  }

  // Forgets the socket (its late callbacks are ignored) and the timers.
  #teardown(closeSocket) {
    const ws = this.#ws;
    this.#ws = null;
    this.#opened = false;
    this.#awaiting = null;
    this.#resync = false;
    this.#stopHeartbeat();
    if (this.#retryTimer) {
      this.timers.clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    if (this.#onOnline && this.stopped) {
      globalThis.removeEventListener?.('online', this.#onOnline);
      this.#onOnline = null;
    }
    // AUTH waiting for an answer that will not come: the token is stored,
    // and the next connect uses it.
    for (const pending of this.#pendingAuth.splice(0)) pending.resolve({ exp: null });
    if (ws && closeSocket) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
      try {
        ws.close(1000, 'client closing');
      } catch {
        // Already closing or closed.
      }
    }
  }

  // The server pings at the protocol level, which a browser answers by
  // itself but cannot see; a silent socket (a dead peer behind a live
  // proxy) is only found by asking: a PING when nothing came for a
  // heartbeat, and a reconnect when the next heartbeat still heard nothing.
  #startHeartbeat() {
    this.#stopHeartbeat();
    if (!this.heartbeatMs) return;
    let pinged = false;
    const tick = () => {
      if (this.#heard) {
        this.#heard = false;
        pinged = false;
      } else if (!pinged) {
        pinged = this.#send({ type: 'PING' });
      } else {
        this.#teardown(true);
        this.#scheduleReconnect('heartbeat');
        return;
      }
      this.#heartbeatTimer = this.timers.setTimeout(tick, this.heartbeatMs);
    };
    this.#heartbeatTimer = this.timers.setTimeout(tick, this.heartbeatMs);
  }

  #stopHeartbeat() {
    if (this.#heartbeatTimer) {
      this.timers.clearTimeout(this.#heartbeatTimer);
      this.#heartbeatTimer = null;
    }
  }

  #setState(state, reason) {
    if (this.state === state && this.reason === reason) return;
    this.state = state;
    this.reason = reason;
    this.#events.emit('state', { state, reason });
  }
}
