// realtime-tasks-client: the browser (and Node) client of the real-time
// task backend. No dependencies; see index.d.ts for the types.
//
//   api.js      TasksClient: register/login/logout, profile, tasks (REST)
//   live.js     LiveConnection: the WebSocket, resumable and self-healing
//   store.js    LiveTasks: a snapshot plus live events, always current
//   errors.js   ApiError (the contract's code, status, details), NetworkError
//   backoff.js  reconnection delays
//   emitter.js  the listeners behind every `on`

export { TasksClient } from './api.js';
export { LiveConnection, CloseCode } from './live.js';
export { LiveTasks } from './store.js';
export { ApiError, NetworkError, isApiError } from './errors.js';
export { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export { Emitter } from './emitter.js';

/** The task statuses of the contract, in board order. */
export const STATUSES = Object.freeze(['TODO', 'IN_PROGRESS', 'DONE']);
