// The REST side of the contract: authentication, profile and tasks. One
// client holds one token; changing it (login, register, setToken) tells the
// live connections made from this client, which re-authenticate in place.

import { ApiError, NetworkError, apiErrorFrom } from './errors.js';
import { Emitter } from './emitter.js';
import { LiveConnection } from './live.js';

const JSON_TYPE = 'application/json';

export class TasksClient {
  #token;
  #fetch;
  #events = new Emitter();

  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl]  origin of the API (default: the page's origin in a browser)
   * @param {string|null} [options.token]  a token to start with
   * @param {typeof fetch} [options.fetch]  default: the global fetch
   * @param {any} [options.WebSocket]  default: the global WebSocket (Node < 22 has none: pass one)
   * @param {number} [options.timeoutMs]  per request (default 15 s)
   */
  constructor(options = {}) {
    const base = options.baseUrl ?? globalThis.location?.origin;
    if (!base) throw new TypeError('TasksClient: baseUrl is required outside a browser');
    this.baseUrl = String(base).replace(/\/+$/, '');
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') throw new TypeError('TasksClient: no fetch available; pass options.fetch');
    // Called unbound, a browser's fetch throws "Illegal invocation".
    this.#fetch = options.fetch ? fetchImpl : fetchImpl.bind(globalThis);
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.#token = options.token ?? null;
  }

  /** The current token, or null. */
  get token() {
    return this.#token;
  }

  /** The WebSocket URL of this API (`ws://host/ws/updates`, wss for https). */
  get wsUrl() {
    return this.baseUrl.replace(/^http/, 'ws') + '/ws/updates';
  }

  /** Replaces the token; live connections of this client switch to it with AUTH. */
  setToken(token) {
    if (token === this.#token) return;
    this.#token = token ?? null;
    this.#events.emit('token', this.#token);
  }

  /**
   * Listens to `token` (the token changed: a string or null) and
   * `unauthorized` (an authenticated request was answered 401: the token
   * is no longer good; log in again). Returns a function that stops it.
   */
  on(type, listener) {
    return this.#events.on(type, listener);
  }

  // --- authentication -------------------------------------------------------

  /** POST /api/auth/register; keeps the new token. */
  async register({ email, password, name }) {
    const result = await this.request('POST', '/api/auth/register', { body: { email, password, name }, auth: false });
    this.setToken(result.token);
    return result;
  }

  /** POST /api/auth/login; keeps the token. */
  async login(email, password) {
    const result = await this.request('POST', '/api/auth/login', { body: { email, password }, auth: false });
    this.setToken(result.token);
    return result;
  }

  /**
   * POST /api/auth/logout: the token is revoked everywhere (its sockets close
   * with 4001). The token is forgotten here whatever the answer; a token the
   * server already refuses counts as logged out.
   */
  async logout() {
    if (!this.#token) return;
    try {
      await this.request('POST', '/api/auth/logout', { quietUnauthorized: true });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error;
    } finally {
      this.setToken(null);
    }
  }

  // --- profile --------------------------------------------------------------

  getProfile() {
    return this.request('GET', '/api/profile');
  }

  /** PUT /api/profile with `name` and/or `email`. */
  updateProfile(changes) {
    return this.request('PUT', '/api/profile', { body: changes });
  }

  // --- tasks ----------------------------------------------------------------

  /** GET /api/tasks: one page, `{tasks, nextCursor}`. */
  listTasks(query = {}) {
    return this.request('GET', '/api/tasks', { query });
  }

  /** Every task matching `query`, walking all pages (200 a page unless `query.limit` says). */
  async listAllTasks(query = {}) {
    const tasks = [];
    let cursor;
    do {
      const page = await this.listTasks({ limit: 200, ...query, ...(cursor ? { cursor } : {}) });
      tasks.push(...page.tasks);
      cursor = page.nextCursor;
    } while (cursor);
    return tasks;
  }

  getTask(id) {
    return this.request('GET', `/api/tasks/${encodeURIComponent(id)}`);
  }

  /** POST /api/tasks with `{title, description?, status?, priority?}`. */
  createTask(input) {
    return this.request('POST', '/api/tasks', { body: input });
  }

  /**
   * PUT /api/tasks/:id. With `ifMatch` (a version, or '*') the update
   * applies only to that version; otherwise ApiError `VERSION_MISMATCH`.
   */
  updateTask(id, changes, { ifMatch } = {}) {
    return this.request('PUT', `/api/tasks/${encodeURIComponent(id)}`, { body: changes, ifMatch });
  }

  /** DELETE /api/tasks/:id, honouring `ifMatch` like updateTask. */
  async deleteTask(id, { ifMatch } = {}) {
    await this.request('DELETE', `/api/tasks/${encodeURIComponent(id)}`, { ifMatch });
  }

  // --- live -----------------------------------------------------------------

  /**
   * A LiveConnection on this client's token, which follows its changes
   * (AUTH in place) and checks the token over REST when the socket cannot
   * even open (a browser hides the upgrade's 401). Not started: call start().
   */
  live(options = {}) {
    const connection = new LiveConnection({
      url: this.wsUrl,
      getToken: () => this.#token,
      WebSocket: this.WebSocket,
      validateToken: () => this.#tokenStillGood(),
      ...options,
    });
    const off = this.on('token', (token) => {
      if (token) connection.authenticate(token).catch(() => {});
      else connection.close();
    });
    // After 4001 a new token (a new login) starts it again, resuming with
    // since; after close() it is done with.
    connection.on('state', ({ state, reason }) => {
      if (state === 'offline' && reason === 'closed') off();
    });
    return connection;
  }

  async #tokenStillGood() {
    try {
      await this.request('GET', '/api/profile', { quietUnauthorized: true });
      return true;
    } catch (error) {
      // Only a 401 proves the token bad; any other failure proves nothing.
      return !(error instanceof ApiError && error.status === 401);
    }
  }

  // --- transport ------------------------------------------------------------

  /**
   * One request: JSON in, JSON out. Resolves with the parsed body (null for
   * 204); rejects with ApiError (a non-2xx answer) or NetworkError.
   */
  async request(method, path, { body, query, ifMatch, auth = true, quietUnauthorized = false, headers: extra } = {}) {
    const headers = { accept: JSON_TYPE, ...extra };
    if (auth && this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = JSON_TYPE;
    if (ifMatch !== undefined && ifMatch !== null) headers['if-match'] = ifMatch === '*' ? '*' : `"${ifMatch}"`;
    const url = this.baseUrl + path + queryString(query);
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = controller ? setTimeout(() => controller.abort(), this.timeoutMs) : null;
    let response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller?.signal,
        cache: 'no-store',
      });
    } catch (error) {
      throw new NetworkError(
        controller?.signal.aborted ? `${method} ${path}: no answer within ${this.timeoutMs} ms` : `${method} ${path}: ${error?.message || error}`,
        error,
      );
    } finally {
      if (timer) clearTimeout(timer);
    }
    const parsed = await readBody(response);
    if (response.ok) return parsed;
    const error = apiErrorFrom(response.status, parsed, response.headers.get('retry-after'));
    if (error.status === 401 && auth && this.#token && !quietUnauthorized) {
      this.#events.emit('unauthorized', error);
    }
    throw error;
  }
}

async function readBody(response) {
  if (response.status === 204) return null;
  const text = await response.text().catch(() => '');
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.append(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}
