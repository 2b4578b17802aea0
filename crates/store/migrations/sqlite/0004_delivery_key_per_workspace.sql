-- A webhook delivery's idempotency key is unique per workspace, so one tenant's key cannot
-- shadow another's delivery; deliveries routed to no workspace share the nil scope. The key
-- column holds at most 256 characters (longer keys are stored as their SHA-256), so no key can
-- exceed an index entry.
ALTER TABLE webhook_deliveries
    ADD COLUMN idempotency_scope BLOB NOT NULL DEFAULT X'00000000000000000000000000000000';
UPDATE webhook_deliveries SET idempotency_scope = workspace_id WHERE workspace_id IS NOT NULL;
DROP INDEX webhook_deliveries_idempotency_key_key;
CREATE UNIQUE INDEX webhook_deliveries_scope_idempotency_key_key
    ON webhook_deliveries (idempotency_scope, idempotency_key);
CREATE INDEX webhook_deliveries_idempotency_key_idx ON webhook_deliveries (idempotency_key);
