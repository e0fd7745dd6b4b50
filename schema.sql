-- Privia's whole schema. Every statement is idempotent: Privia applies this
-- file at each start, so it only ever adds what is missing.

CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    full_name TEXT,
    password_hash TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT 'member',
    provider TEXT,
    provider_account_id TEXT,
    avatar_url TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS ix_users_email ON users (email);

CREATE UNIQUE INDEX IF NOT EXISTS ix_users_provider_account
    ON users (provider, provider_account_id)
    WHERE provider_account_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'empty' CHECK (status IN ('empty', 'active')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_conversations_user_updated
    ON conversations (user_id, updated_at);

-- At most one conversation per user may be waiting for its first question.
CREATE UNIQUE INDEX IF NOT EXISTS ix_conversations_one_empty_per_user
    ON conversations (user_id)
    WHERE status = 'empty';

CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY NOT NULL,
    conversation_id TEXT NOT NULL
        REFERENCES conversations (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    timestamp TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_messages_conversation_timestamp
    ON messages (conversation_id, timestamp);
