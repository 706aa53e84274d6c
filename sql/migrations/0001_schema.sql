-- The whole schema of the task backend. PostgreSQL is the only source of
-- truth: Redis holds nothing that cannot be rebuilt from these tables.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    -- The last `seq` handed to one of this user's task events. Advancing it
    -- takes this row's lock, which serialises a user's task writes so that
    -- seq order is commit order.
    event_seq     bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- Emails are stored trimmed and lower-cased, so plain uniqueness is
    -- case-insensitive uniqueness. Named: the code maps it to EMAIL_TAKEN.
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE tasks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text        NOT NULL,
    description text,
    status      text        NOT NULL DEFAULT 'TODO'
                CHECK (status IN ('TODO', 'IN_PROGRESS', 'DONE')),
    priority    smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 10),
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One index per shape of the list query (always `user_id = $1`, keyset on
-- the sort columns, optional equality filters). Each serves its queries as
-- an ordered index scan with no sort step, forwards or backwards:
-- sort createdAt / -createdAt, no filter:
CREATE INDEX tasks_by_user_created ON tasks (user_id, created_at, id);
-- filter priority (any sort: priority is then constant), or sort by priority:
CREATE INDEX tasks_by_user_priority ON tasks (user_id, priority, created_at, id);
-- filter status, sort by createdAt:
CREATE INDEX tasks_by_user_status ON tasks (user_id, status, created_at, id);
-- filter status and sort by priority, or filter status and priority:
CREATE INDEX tasks_by_user_status_priority ON tasks (user_id, status, priority, created_at, id);

-- The outbox: one row per committed task change, written in the same
-- transaction as the change. `payload` is the event's JSON, serialized once.
CREATE TABLE task_events (
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq          bigint      NOT NULL,
    payload      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Set once the event is known to be on Redis; NULL rows are the relay's work.
    published_at timestamptz,
    PRIMARY KEY (user_id, seq)
);
-- The relay's scan: only unpublished rows are indexed, so it stays tiny.
CREATE INDEX task_events_unpublished ON task_events (created_at) WHERE published_at IS NULL;

-- Logged-out tokens, until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        uuid PRIMARY KEY,
    user_id    uuid        NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
-- Every node polls for revocations newer than its watermark.
CREATE INDEX revoked_tokens_by_time ON revoked_tokens (revoked_at);

-- Failed logins, for the rate limits. Successful logins are not recorded.
CREATE TABLE login_failures (
    id        bigserial PRIMARY KEY,
    email     text        NOT NULL,
    client_ip inet        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
-- "the n-th most recent failure for this email / this address":
CREATE INDEX login_failures_by_email ON login_failures (email, failed_at);
CREATE INDEX login_failures_by_client ON login_failures (client_ip, failed_at);
