-- The group version at which each reservation and call last changed, so that a node can read
-- only what changed in a group since the version it holds (several nodes, store/cluster.rs).
ALTER TABLE reservations ADD COLUMN gv BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN gv BIGINT NOT NULL DEFAULT 0;
CREATE INDEX reservations_by_change ON reservations (group_name, gv);
CREATE INDEX calls_by_change ON calls (group_name, gv);
