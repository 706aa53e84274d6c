-- Each outbox row names its change beside the JSON: the event's kind, the
-- task's id and (unless deleted) its new version. The publisher and the
-- relay route, cache and tombstone an event from these columns without
-- parsing the payload. Nullable, and not backfilled: rows written before
-- this migration, or by a node not yet upgraded during a rolling upgrade,
-- have them NULL, and the relay reads those from the payload instead.
ALTER TABLE task_events
    ADD COLUMN kind    text,
    ADD COLUMN task_id uuid,
    ADD COLUMN version bigint;
