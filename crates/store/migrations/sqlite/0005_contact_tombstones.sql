-- A deleted contact leaves its identity and the time of deletion, so that replaying or
-- re-sending messages from before the deletion never brings the contact back.
CREATE TABLE contact_tombstones (
    workspace_id BLOB NOT NULL,
    phone        TEXT,
    bsuid        TEXT,
    deleted_at   BIGINT NOT NULL
);
CREATE INDEX contact_tombstones_phone_idx ON contact_tombstones (workspace_id, phone);
CREATE INDEX contact_tombstones_bsuid_idx ON contact_tombstones (workspace_id, bsuid);
