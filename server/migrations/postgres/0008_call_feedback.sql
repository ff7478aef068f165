-- Customers' ratings of their calls: one per call, kept with the call's group and specialist.
CREATE TABLE call_feedback (
    call_id       TEXT PRIMARY KEY,
    group_name    TEXT NOT NULL,
    specialist_id TEXT NOT NULL,
    rating        BIGINT NOT NULL,
    comment       TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX call_feedback_by_group ON call_feedback (group_name, created_at);
