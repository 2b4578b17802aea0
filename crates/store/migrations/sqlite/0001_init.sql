-- The whole inbox schema. Timestamps are Unix milliseconds (BIGINT) on both backends, so the
-- queries, the keyset cursors and the 24-hour window arithmetic are the same everywhere.

CREATE TABLE workspaces (
    id                    BLOB PRIMARY KEY,
    slug                  TEXT NOT NULL,
    name                  TEXT NOT NULL,
    kapso_phone_number_id TEXT,
    kapso_api_key_enc     BLOB,
    webhook_secret_enc    BLOB,
    default_country       TEXT NOT NULL DEFAULT 'ID',
    auto_create_contacts  INTEGER NOT NULL DEFAULT 1,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE UNIQUE INDEX workspaces_slug_key ON workspaces (slug);
CREATE UNIQUE INDEX workspaces_kapso_phone_number_id_key ON workspaces (kapso_phone_number_id);

CREATE TABLE users (
    id         BLOB PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE memberships (
    workspace_id BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);

CREATE TABLE contacts (
    id               BLOB PRIMARY KEY,
    workspace_id     BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    phone            TEXT,
    bsuid            TEXT,
    name             TEXT,
    whatsapp_name    TEXT,
    email            TEXT,
    lead_status      TEXT NOT NULL DEFAULT 'new' CHECK (lead_status IN ('new', 'cold', 'hot', 'client')),
    lead_score       INTEGER NOT NULL DEFAULT 0 CHECK (lead_score BETWEEN 0 AND 100),
    tags             TEXT NOT NULL DEFAULT '[]',
    assigned_to      BLOB REFERENCES users (id) ON DELETE SET NULL,
    source           TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_activity_at BIGINT,
    last_contact_at  BIGINT,
    -- last_activity_at, or 0 when there was none: the contacts list's keyset order.
    activity_sort    BIGINT NOT NULL DEFAULT 0,
    CHECK (phone IS NOT NULL OR bsuid IS NOT NULL)
);
CREATE UNIQUE INDEX contacts_phone_key ON contacts (workspace_id, phone);
CREATE UNIQUE INDEX contacts_bsuid_key ON contacts (workspace_id, bsuid);
CREATE INDEX contacts_activity_idx ON contacts (workspace_id, activity_sort DESC, id DESC);
CREATE INDEX contacts_assigned_idx ON contacts (workspace_id, assigned_to, activity_sort DESC, id DESC);

CREATE TABLE conversations (
    id                    BLOB PRIMARY KEY,
    workspace_id          BLOB NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    contact_id            BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    status                TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    ai_paused             INTEGER NOT NULL DEFAULT 0,
    assigned_to           BLOB REFERENCES users (id) ON DELETE SET NULL,
    -- Copies of the contact's assignee and lead status, kept in step by every write to the
    -- contact, so that each list filter is one index range ending in the list order.
    contact_assigned_to   BLOB,
    lead_status           TEXT NOT NULL DEFAULT 'new',
    unread_count          INTEGER NOT NULL DEFAULT 0,
    last_message_at       BIGINT,
    last_message_preview  TEXT,
    last_inbound_at       BIGINT,
    -- last_message_at, or 0 for never-messaged conversations (which sort last).
    sort_at               BIGINT NOT NULL DEFAULT 0,
    -- seq of the newest message: the next message takes last_seq + 1.
    last_seq              BIGINT NOT NULL DEFAULT 0,
    kapso_conversation_id TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE UNIQUE INDEX conversations_contact_id_key ON conversations (contact_id);
CREATE INDEX conversations_list_idx ON conversations (workspace_id, sort_at DESC, id DESC);
CREATE INDEX conversations_assigned_idx ON conversations (workspace_id, assigned_to, sort_at DESC, id DESC);
CREATE INDEX conversations_contact_assigned_idx ON conversations (workspace_id, contact_assigned_to, sort_at DESC, id DESC);
CREATE INDEX conversations_status_idx ON conversations (workspace_id, status, sort_at DESC, id DESC);
CREATE INDEX conversations_lead_idx ON conversations (workspace_id, lead_status, sort_at DESC, id DESC);
CREATE INDEX conversations_paused_idx ON conversations (workspace_id, ai_paused, sort_at DESC, id DESC);
CREATE INDEX conversations_unread_idx ON conversations (workspace_id, sort_at DESC, id DESC) WHERE unread_count > 0;

-- One row per (conversation, tag key): the tag filter walks this in list order.
CREATE TABLE conversation_tags (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    workspace_id    BLOB NOT NULL,
    tag             TEXT NOT NULL,
    sort_at         BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, tag)
);
CREATE INDEX conversation_tags_list_idx ON conversation_tags (workspace_id, tag, sort_at DESC, conversation_id DESC);

CREATE TABLE messages (
    id             BLOB PRIMARY KEY,
    workspace_id   BLOB NOT NULL,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sender_type    TEXT NOT NULL,
    sender_user_id BLOB,
    kind           TEXT NOT NULL,
    text           TEXT,
    media          TEXT,
    reply_to_wamid TEXT,
    wamid          TEXT,
    status         TEXT NOT NULL,
    error          TEXT,
    raw            TEXT,
    sent_at        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_seq_key ON messages (conversation_id, seq);
CREATE UNIQUE INDEX messages_wamid_key ON messages (workspace_id, wamid);

-- Statuses that arrived before their message; applied and deleted when it appears.
CREATE TABLE pending_statuses (
    workspace_id BLOB NOT NULL,
    wamid        TEXT NOT NULL,
    status       TEXT NOT NULL,
    at           BIGINT NOT NULL,
    error        TEXT,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, wamid, status)
);

-- One writer commits in id order, so `tx` stays 0 and ids alone order the log; the column
-- exists so both backends share the (tx, id) position of the PostgreSQL schema.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tx              INTEGER NOT NULL DEFAULT 0,
    workspace_id    BLOB NOT NULL,
    kind            TEXT NOT NULL,
    conversation_id BLOB,
    contact_id      BLOB,
    message_id      BLOB,
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_workspace_idx ON events (workspace_id, tx, id);
CREATE INDEX events_created_idx ON events (created_at);

CREATE TABLE webhook_deliveries (
    id              BLOB PRIMARY KEY,
    idempotency_key TEXT,
    event           TEXT,
    workspace_id    BLOB,
    phone_number_id TEXT,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    received_at     BIGINT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('pending', 'processed', 'ignored', 'failed')),
    error           TEXT,
    processed_at    BIGINT,
    attempts        INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX webhook_deliveries_idempotency_key_key ON webhook_deliveries (idempotency_key);
CREATE INDEX webhook_deliveries_outcome_idx ON webhook_deliveries (outcome, received_at);
