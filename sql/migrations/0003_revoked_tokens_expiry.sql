-- Revocations are kept only until the token would have expired anyway: the
-- api-nodes' housekeeping deletes older rows (shared/src/revocation.rs,
-- `prune`). This index serves that delete as a range scan of the expired
-- rows alone, so it costs what it removes, not the table's size.
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
