// Type-checked, never run (scripts/browser-check.sh: tsc --noEmit): an app's
// use of the library, through the package's own name and `exports`, must
// compile against index.d.ts under --strict. A declaration that drifts from
// the code shows here (the runtime side is in test/unit).

import {
  ApiError,
  CloseCode,
  LiveConnection,
  LiveTasks,
  NetworkError,
  STATUSES,
  TasksClient,
  backoffDelay,
  isApiError,
  type ConnectionState,
  type Task,
  type TaskEvent,
  type TaskStatus,
} from 'realtime-tasks-client';

export async function app(render: (tasks: Task[]) => void, indicator: (state: ConnectionState) => void): Promise<void> {
  const client = new TasksClient({ baseUrl: 'http://127.0.0.1:8080', timeoutMs: 5000 });
  const { user, token } = await client.login('demo@example.com', 'demo-password');
  const name: string = user.name;
  client.setToken(token);
  client.on('unauthorized', (error) => error.code satisfies string);

  const page = await client.listTasks({ status: 'TODO', sort: '-priority', limit: 10 });
  const cursor: string | null = page.nextCursor;
  const all: Task[] = await client.listAllTasks({ priority: 3 });
  const created = await client.createTask({ title: 'x', description: null, status: 'IN_PROGRESS', priority: 2 });
  try {
    await client.updateTask(created.id, { status: 'DONE' }, { ifMatch: created.version });
    await client.deleteTask(created.id, { ifMatch: '*' });
  } catch (error) {
    if (isApiError(error, 'VERSION_MISMATCH')) {
      const e: ApiError = error;
      const fields: string[] = (e.details ?? []).map((d) => d.field);
      const retry: number | null = e.retryAfter;
      void [fields, retry, e.status];
    } else if (error instanceof NetworkError) {
      void error.message;
    }
  }

  const tasks = new LiveTasks(client, { liveOptions: { heartbeatMs: 10_000, backoff: { initialMs: 250, jitter: 1 } } }).start();
  await tasks.ready;
  tasks.on('change', ({ cause }) => {
    if (cause !== 'local') render(tasks.list());
  });
  tasks.on('state', ({ state, reason }) => {
    indicator(state);
    void reason;
  });
  tasks.on('unauthorized', ({ code }) => code === CloseCode.UNAUTHORIZED);
  tasks.apply(created);
  tasks.remove(created.id);

  const live: LiveConnection = client.live({ since: 42 });
  live.on('event', (event: TaskEvent) => {
    if (event.type === 'TASK_DELETED') void event.task.id;
    else void event.task.title;
  });
  live.on('subscribed', ({ seq, resumed }) => void (resumed ? seq : client.listAllTasks()));
  const { exp } = await live.start().authenticate(token);
  const seq: number | null = live.lastSeq;
  const statuses: readonly TaskStatus[] = STATUSES;
  const delay: number = backoffDelay(3, { maxMs: 1000 });
  void [name, cursor, all, exp, seq, statuses, delay];
  live.close();
  await client.logout();
}
