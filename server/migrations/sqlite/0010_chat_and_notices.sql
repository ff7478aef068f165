-- The call's chat: numbered per call in the order the server took them; the sender page's id
-- makes a message sent again after a reconnect the same message.
CREATE TABLE chat_messages (
    call_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    client_id  TEXT NOT NULL,
    role       TEXT NOT NULL,
    name       TEXT,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (call_id, seq),
    UNIQUE (call_id, client_id)
);
-- A word to those waiting: the group's notice, and one line to one waiting customer.
ALTER TABLE groups ADD COLUMN notice TEXT;
ALTER TABLE reservations ADD COLUMN message TEXT;
