-- Who is waiting for a matched customer, as the customer sees them ("Dr. Anna Berg").
ALTER TABLE reservations ADD COLUMN specialist_name TEXT;
