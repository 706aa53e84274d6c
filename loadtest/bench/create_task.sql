-- pgbench: exactly the transaction the api-node runs for POST /api/tasks
-- (api-node/src/task_writes.rs): insert the task, advance the owner's seq,
-- record the outbox event. Users are the bench users, whose ids the bench
-- sets to 00000000-0000-0000-0000-<n>.
\set u random(1, 64)
BEGIN;
INSERT INTO tasks (user_id, title, description, status, priority)
  VALUES (('00000000-0000-0000-0000-' || lpad(:u::text, 12, '0'))::uuid, 'bench task', 'written by the benchmark', 'TODO', 3)
  RETURNING id, user_id, title, description, status, priority, version, created_at, updated_at;
UPDATE users SET event_seq = event_seq + 1
  WHERE id = ('00000000-0000-0000-0000-' || lpad(:u::text, 12, '0'))::uuid RETURNING event_seq \gset
INSERT INTO task_events (user_id, seq, kind, task_id, version, payload)
  VALUES (('00000000-0000-0000-0000-' || lpad(:u::text, 12, '0'))::uuid, :event_seq,
  'TASK_CREATED', '6f1c1b7e-4a39-4c55-9d0e-0c3f8f7a2b11', 1,
  '{"type":"TASK_CREATED","seq":1,"timestamp":1764192600123,"task":{"id":"6f1c1b7e-4a39-4c55-9d0e-0c3f8f7a2b11","userId":"0b6f0e84-9d45-4a0e-8a53-3c2f0a1d9e77","title":"bench task","description":"written by the benchmark","status":"TODO","priority":3,"version":1,"createdAt":"2026-11-26T21:30:00.123Z","updatedAt":"2026-11-26T21:30:00.123Z"}}');
COMMIT;
