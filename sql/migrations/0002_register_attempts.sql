-- Registrations per client address, for the registration rate limit. A row
-- is written (under an advisory lock per address) before the password is
-- hashed, so concurrent registrations cannot all pass the check; one whose
-- hash is refused (queue full) deletes its row again.
CREATE TABLE register_attempts (
    id           bigserial PRIMARY KEY,
    -- IPv4 address, or the /64 network of an IPv6 address.
    client_ip    inet        NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
-- "the n-th most recent registration from this address":
CREATE INDEX register_attempts_by_client ON register_attempts (client_ip, attempted_at);
-- The relay's pruning.
CREATE INDEX register_attempts_by_time ON register_attempts (attempted_at);
