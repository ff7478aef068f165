-- What the customer gave at check-in (shown to specialists only), and the join window of a
-- matched reservation: its deadline and whether the customer asked for more time.
ALTER TABLE reservations ADD COLUMN customer_name TEXT;
ALTER TABLE reservations ADD COLUMN reason TEXT;
ALTER TABLE reservations ADD COLUMN join_deadline TEXT;
ALTER TABLE reservations ADD COLUMN join_extended INTEGER NOT NULL DEFAULT 0;
