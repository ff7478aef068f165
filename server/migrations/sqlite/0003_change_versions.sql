-- The group version at which each reservation and call last changed (as on PostgreSQL, where
-- several nodes read only what changed since the version they hold).
ALTER TABLE reservations ADD COLUMN gv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN gv INTEGER NOT NULL DEFAULT 0;
CREATE INDEX reservations_by_change ON reservations (group_name, gv);
CREATE INDEX calls_by_change ON calls (group_name, gv);
