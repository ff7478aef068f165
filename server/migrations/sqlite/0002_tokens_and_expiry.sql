-- Stream tokens get a table of their own (they shared agent_sessions through a "stream:"
-- prefix), and customers' sessions get an expiry, so that expired rows can be purged.
CREATE TABLE stream_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES agents(user_id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);
-- Unspent stream tokens live a minute: dropping the old ones costs a reconnect at most.
DELETE FROM agent_sessions WHERE token_hash LIKE 'stream:%';

-- A customer's cookie lives a day from their last new reservation; existing customers keep
-- the day their cookie was given.
ALTER TABLE customers ADD COLUMN expires_at TEXT;
UPDATE customers SET expires_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', created_at, '+1 day');

CREATE INDEX agent_sessions_by_expiry ON agent_sessions (expires_at);
CREATE INDEX stream_tokens_by_expiry ON stream_tokens (expires_at);
CREATE INDEX customers_by_expiry ON customers (expires_at);

-- End reasons are names of the protocol's CallEndReason; older rows said timer, left, expired
-- and canceled.
UPDATE calls SET ended_reason = 'time_up' WHERE ended_reason = 'timer';
UPDATE calls SET ended_reason = 'specialist_left' WHERE ended_reason = 'left';
UPDATE calls SET ended_reason = 'not_joined' WHERE ended_reason = 'expired';
