-- The admin page: disabled accounts, each group's settings (JSON: display name, call length,
-- join window, name required, time zone, opening hours, closed dates, what happens at closing),
-- and the audit log of every admin action.
ALTER TABLE agents ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN settings TEXT;
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
