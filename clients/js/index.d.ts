// Types of realtime-tasks-client (src/index.js). The wire shapes follow the
// backend's contract: camelCase fields, RFC 3339 timestamps, UUID ids.

export type TaskStatus = 'TODO' | 'IN_PROGRESS' | 'DONE';

/** The task statuses, in board order. */
export declare const STATUSES: readonly TaskStatus[];

export interface User {
  id: string;
  email: string;
  name: string;
  createdAt: string;
  updatedAt: string;
}

export interface Task {
  id: string;
  userId: string;
  title: string;
  description: string | null;
  status: TaskStatus;
  /** 0 to 10. */
  priority: number;
  /** 1 on create, +1 on every update; the ETag. */
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface AuthResult {
  user: User;
  token: string;
}

export interface NewTask {
  title: string;
  description?: string | null;
  status?: TaskStatus;
  priority?: number;
}

export type TaskChanges = Partial<Pick<Task, 'title' | 'description' | 'status' | 'priority'>>;

export interface TaskQuery {
  status?: TaskStatus;
  priority?: number;
  sort?: '-createdAt' | 'createdAt' | '-priority' | 'priority';
  /** 1 to 200. */
  limit?: number;
  cursor?: string;
}

export interface TaskPage {
  tasks: Task[];
  nextCursor: string | null;
}

/** A version to match, or '*' for any. */
export type IfMatch = number | '*';

export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'INVALID_JSON'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'EMAIL_TAKEN'
  | 'VERSION_MISMATCH'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | (string & {});

export interface FieldError {
  field: string;
  message: string;
}

/** A non-2xx answer, with the contract's error body. */
export declare class ApiError extends Error {
  readonly name: 'ApiError';
  /** The HTTP status (0 for an ERROR message on the WebSocket). */
  readonly status: number;
  readonly code: ErrorCode;
  /** Every invalid field, for VALIDATION_ERROR. */
  readonly details?: FieldError[];
  /** Seconds, from Retry-After (429, 503). */
  readonly retryAfter: number | null;
  /** The parsed body as received. */
  readonly body: unknown;
  constructor(init: { status: number; code: string; message?: string; details?: FieldError[]; retryAfter?: number | null; body?: unknown });
}

/** No answer at all: offline, refused, timed out. */
export declare class NetworkError extends Error {
  readonly name: 'NetworkError';
  readonly cause?: unknown;
}

export declare function isApiError(error: unknown, code?: ErrorCode): error is ApiError;

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface BackoffOptions {
  /** First delay ceiling (default 500 ms). */
  initialMs?: number;
  /** Largest delay (default 30 s). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** The random share of each delay, 0 to 1 (default 0.5). */
  jitter?: number;
}

export declare const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>>;

/** The delay before reconnection attempt `attempt` (0-based). */
export declare function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

export type Unsubscribe = () => void;

export interface TasksClientOptions {
  /** The API's origin; defaults to the page's origin in a browser. */
  baseUrl?: string;
  token?: string | null;
  fetch?: typeof fetch;
  /** Defaults to the global WebSocket (Node 22+, browsers). */
  WebSocket?: WebSocketConstructor | unknown;
  /** Per request; default 15 s. */
  timeoutMs?: number;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined | null>;
  ifMatch?: IfMatch;
  /** Send the token (default true). */
  auth?: boolean;
  headers?: Record<string, string>;
}

export declare class TasksClient {
  constructor(options?: TasksClientOptions);
  readonly baseUrl: string;
  readonly token: string | null;
  /** ws(s)://host/ws/updates */
  readonly wsUrl: string;
  timeoutMs: number;

  /** Replaces the token; live connections made from this client re-authenticate in place (AUTH). */
  setToken(token: string | null): void;
  /** `token`: the token changed. `unauthorized`: an authenticated request got 401 (log in again). */
  on(type: 'token', listener: (token: string | null) => void): Unsubscribe;
  on(type: 'unauthorized', listener: (error: ApiError) => void): Unsubscribe;

  register(input: { email: string; password: string; name: string }): Promise<AuthResult>;
  login(email: string, password: string): Promise<AuthResult>;
  /** Revokes the token (its sockets close with 4001) and forgets it. */
  logout(): Promise<void>;

  getProfile(): Promise<User>;
  updateProfile(changes: { name?: string; email?: string }): Promise<User>;

  listTasks(query?: TaskQuery): Promise<TaskPage>;
  /** Every page of `query`. */
  listAllTasks(query?: Omit<TaskQuery, 'cursor'>): Promise<Task[]>;
  getTask(id: string): Promise<Task>;
  createTask(input: NewTask): Promise<Task>;
  /** Rejects with ApiError VERSION_MISMATCH (412) when `ifMatch` is no longer the task's version. */
  updateTask(id: string, changes: TaskChanges, options?: { ifMatch?: IfMatch }): Promise<Task>;
  deleteTask(id: string, options?: { ifMatch?: IfMatch }): Promise<void>;

  /** A live connection on this client's token (not started). */
  live(options?: Partial<LiveConnectionOptions>): LiveConnection;

  /** Any request: resolves with the parsed JSON body (null for 204). */
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T>;
}

export type TaskEvent =
  | { type: 'TASK_CREATED'; seq: number; timestamp: number; task: Task }
  | { type: 'TASK_UPDATED'; seq: number; timestamp: number; task: Task }
  | { type: 'TASK_DELETED'; seq: number; timestamp: number; task: { id: string } };

export type ConnectionState = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'offline';

export interface StateChange {
  state: ConnectionState;
  /**
   * Why: a close code or 'heartbeat' while reconnecting; 'closed' (close()),
   * 'unauthorized' (4001 or a refused token: log in again) or 'network'
   * (the browser is offline) when offline.
   */
  reason: number | string | null;
}

export interface Subscribed {
  seq: number;
  /** False: the events in between are not to be had; refetch the tasks, then apply events after `seq`. */
  resumed: boolean;
}

export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  POLICY: 1008;
  TOO_BIG: 1009;
  UNAUTHORIZED: 4001;
}>;

export interface LiveConnectionOptions {
  /** ws(s)://host/ws/updates */
  url: string;
  token?: string | null;
  /** Asked at every connect (instead of `token`). */
  getToken?: () => string | null;
  WebSocket?: WebSocketConstructor | unknown;
  /** Resume after this seq (one the app already holds). */
  since?: number | null;
  backoff?: BackoffOptions;
  /** PING after this long without a message; still nothing a period later: reconnect. Default 15 s; 0 turns it off. */
  heartbeatMs?: number;
  /** Asked when a socket fails to open; false means the token is refused (→ unauthorized). */
  validateToken?: () => Promise<boolean>;
  random?: () => number;
  timers?: { setTimeout: (fn: () => void, ms: number) => unknown; clearTimeout: (handle: unknown) => void };
}

export declare class LiveConnection {
  constructor(options: LiveConnectionOptions);
  readonly url: string;
  /** The seq of the last event handed on (or the subscription point). */
  readonly lastSeq: number | null;
  readonly state: ConnectionState;
  readonly reason: number | string | null;
  /** Stopped for good (close(), or 4001 until authenticate() with a new token). */
  readonly stopped: boolean;
  readonly stats: { connects: number; duplicates: number; gaps: number; resubscribes: number; resyncs: number };

  on(type: 'state', listener: (change: StateChange) => void): Unsubscribe;
  /** Task events, each once, in seq order. */
  on(type: 'event', listener: (event: TaskEvent) => void): Unsubscribe;
  on(type: 'subscribed', listener: (subscribed: Subscribed) => void): Unsubscribe;
  on(type: 'unauthorized', listener: (why: { code: number | null; reason: string }) => void): Unsubscribe;
  /** PONG, UNSUBSCRIBED and any other server message. */
  on(type: 'message', listener: (message: { type: string; [key: string]: unknown }) => void): Unsubscribe;
  on(type: 'error', listener: (error: Error) => void): Unsubscribe;

  start(): this;
  close(): void;
  /** Drops the socket and reconnects at once, resuming with since. */
  reconnect(): void;
  /** AUTH in place; {exp: null} when no socket is open (the next connect uses the token). */
  authenticate(token: string): Promise<{ exp: number | null }>;
  ping(): boolean;
}

export interface TasksChange {
  cause: 'snapshot' | 'event' | 'local';
  task?: Task | { id: string };
  event?: TaskEvent;
}

/** The user's tasks, a snapshot plus live events, kept current. */
export declare class LiveTasks {
  constructor(client: TasksClient, options?: { live?: LiveConnection; liveOptions?: Partial<LiveConnectionOptions> });
  readonly live: LiveConnection;
  readonly loaded: boolean;
  /** Resolves when the first snapshot is in. */
  readonly ready: Promise<void>;
  readonly state: ConnectionState;

  on(type: 'change', listener: (change: TasksChange) => void): Unsubscribe;
  on(type: 'state', listener: (change: StateChange) => void): Unsubscribe;
  on(type: 'unauthorized', listener: (why: { code: number | null; reason: string }) => void): Unsubscribe;
  on(type: 'error', listener: (error: Error) => void): Unsubscribe;

  start(): this;
  stop(): void;
  list(): Task[];
  get(id: string): Task | undefined;
  /** A task from the app's own write, kept if newer than the one held. */
  apply(task: Task): void;
  /** A task the app deleted itself. */
  remove(id: string): void;
}

export declare class Emitter {
  on(type: string, listener: (value: any) => void): Unsubscribe;
  once(type: string, listener: (value: any) => void): Unsubscribe;
  emit(type: string, value?: unknown): void;
}
