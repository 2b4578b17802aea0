-- Sending through Kapso: the durable outbox of sends still to make, and the answers kept for
-- clients that repeat a send with the same Idempotency-Key.

-- One row per message still being sent. Written with the pending message, deleted when the
-- message settles (sent or failed). `due_at` is when the job may next be attempted: the
-- request that created it leases it until then for its first attempt; a worker that claims it
-- moves `due_at` past its own attempt (a lease), so a crashed attempt is picked up again
-- once the lease runs out, and a transient failure sets it to the backoff time.
CREATE TABLE send_jobs (
    message_id   UUID PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL,
    -- The customer's E.164 number.
    recipient    TEXT NOT NULL,
    -- What to send, as JSON: {"type": "text", "text", "reply_to_wamid"} or
    -- {"type": "template", "name", "template"}.
    payload      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       BIGINT NOT NULL,
    last_error   TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX send_jobs_due_idx ON send_jobs (due_at);

-- Idempotency-Key records, per user. `answer_*` stay null while the first request is still
-- sending; its repeats wait for them.
CREATE TABLE send_requests (
    user_id         UUID NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    message_id      UUID,
    answer_status   INTEGER,
    answer_body     TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX send_requests_created_idx ON send_requests (created_at);

-- The per-user rate limit counts a user's messages of the last minute through this.
CREATE INDEX messages_sender_recent_idx ON messages (sender_user_id, created_at)
    WHERE sender_user_id IS NOT NULL;
