-- The "badmigration" release: a migration that fails (a column that does not exist).
ALTER TABLE items ADD COLUMN price numeric;
UPDATE items SET price = cost;
