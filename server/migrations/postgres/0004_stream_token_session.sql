-- Which specialist session a stream token was made for: the channel it opens closes when that
-- session ends (sign-out or expiry).
ALTER TABLE stream_tokens ADD COLUMN session_hash TEXT;
