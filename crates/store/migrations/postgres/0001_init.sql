-- The whole inbox schema. Timestamps are Unix milliseconds (BIGINT) on both backends, so the
-- queries, the keyset cursors and the 24-hour window arithmetic are the same everywhere.

CREATE TABLE workspaces (
    id                    UUID PRIMARY KEY,
    slug                  TEXT NOT NULL,
    name                  TEXT NOT NULL,
    kapso_phone_number_id TEXT,
    kapso_api_key_enc     BYTEA,
    webhook_secret_enc    BYTEA,
    default_country       TEXT NOT NULL DEFAULT 'ID',
    auto_create_contacts  BOOLEAN NOT NULL DEFAULT TRUE,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE UNIQUE INDEX workspaces_slug_key ON workspaces (slug);
CREATE UNIQUE INDEX workspaces_kapso_phone_number_id_key ON workspaces (kapso_phone_number_id);

CREATE TABLE users (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE memberships (
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at   BIGINT NOT NULL,
    CONSTRAINT memberships_key PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);

CREATE TABLE contacts (
    id               UUID PRIMARY KEY,
    workspace_id     UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    phone            TEXT,
    bsuid            TEXT,
    name             TEXT,
    whatsapp_name    TEXT,
    email            TEXT,
    lead_status      TEXT NOT NULL DEFAULT 'new' CHECK (lead_status IN ('new', 'cold', 'hot', 'client')),
    lead_score       INTEGER NOT NULL DEFAULT 0 CHECK (lead_score BETWEEN 0 AND 100),
    tags             TEXT NOT NULL DEFAULT '[]',
    assigned_to      UUID REFERENCES users (id) ON DELETE SET NULL,
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
    id                    UUID PRIMARY KEY,
    workspace_id          UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    contact_id            UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    status                TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    ai_paused             BOOLEAN NOT NULL DEFAULT FALSE,
    assigned_to           UUID REFERENCES users (id) ON DELETE SET NULL,
    -- Copies of the contact's assignee and lead status, kept in step by every write to the
    -- contact, so that each list filter is one index range ending in the list order.
    contact_assigned_to   UUID,
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
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    workspace_id    UUID NOT NULL,
    tag             TEXT NOT NULL,
    sort_at         BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, tag)
);
CREATE INDEX conversation_tags_list_idx ON conversation_tags (workspace_id, tag, sort_at DESC, conversation_id DESC);

CREATE TABLE messages (
    id             UUID PRIMARY KEY,
    workspace_id   UUID NOT NULL,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sender_type    TEXT NOT NULL,
    sender_user_id UUID,
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
    workspace_id UUID NOT NULL,
    wamid        TEXT NOT NULL,
    status       TEXT NOT NULL,
    at           BIGINT NOT NULL,
    error        TEXT,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, wamid, status)
);

-- Ids come from a sequence at insert time, so on PostgreSQL they are not in commit order: a
-- reader that followed ids alone could pass over an event whose transaction commits late. Each
-- event also records its transaction id (`tx`); readers take only events whose transaction is
-- older than every transaction still running (`pg_snapshot_xmin`), in (tx, id) order. That
-- order never has anything inserted behind what was already read.
CREATE TABLE events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx              BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    workspace_id    UUID NOT NULL,
    kind            TEXT NOT NULL,
    conversation_id UUID,
    contact_id      UUID,
    message_id      UUID,
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_workspace_idx ON events (workspace_id, tx, id);
CREATE INDEX events_position_idx ON events (tx, id);
CREATE INDEX events_created_idx ON events (created_at);

CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    idempotency_key TEXT,
    event           TEXT,
    workspace_id    UUID,
    phone_number_id TEXT,
    headers         TEXT NOT NULL,
    body            BYTEA NOT NULL,
    received_at     BIGINT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('pending', 'processed', 'ignored', 'failed')),
    error           TEXT,
    processed_at    BIGINT,
    attempts        INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX webhook_deliveries_idempotency_key_key ON webhook_deliveries (idempotency_key);
CREATE INDEX webhook_deliveries_outcome_idx ON webhook_deliveries (outcome, received_at);
