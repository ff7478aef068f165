-- The whole durable state of callqueue. Times are RFC 3339 UTC text.
CREATE TABLE groups (
    name    TEXT PRIMARY KEY,
    -- Bumped on every change in the group: the id of the group's stream events.
    version INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE agents (
    user_id     TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    groups      TEXT NOT NULL,  -- comma-separated group names
    secret_hash TEXT NOT NULL,
    available   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE agent_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES agents(user_id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);

CREATE TABLE reservations (
    sid         TEXT PRIMARY KEY,
    group_name  TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    -- Queue order: increasing within a group.
    seq         INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    matched_at  TEXT,
    call_id     TEXT,
    call_type   TEXT
);
CREATE INDEX reservations_by_status ON reservations (status);
CREATE INDEX reservations_by_customer ON reservations (customer_id);

CREATE TABLE calls (
    id                   TEXT PRIMARY KEY,
    call_type            TEXT NOT NULL,
    group_name           TEXT NOT NULL,
    reservation_sid      TEXT NOT NULL,
    specialist_id        TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    max_duration_seconds INTEGER NOT NULL,
    created_at           TEXT NOT NULL,
    started_at           TEXT,
    timer_ends_at        TEXT,
    ended_at             TEXT,
    ended_reason         TEXT,
    specialist_joined_at TEXT,
    customer_joined_at   TEXT,
    specialist_present   INTEGER NOT NULL DEFAULT 0,
    customer_present     INTEGER NOT NULL DEFAULT 0,
    -- Bumped on every change: the id of the call stream's events.
    version              INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX calls_open ON calls (ended_at);
CREATE INDEX calls_by_group_end ON calls (group_name, ended_at);
