-- Release 1.1.0: a new table (expand: the 1.0.0 release still serving does not read it).
CREATE TABLE orders (
    id serial PRIMARY KEY,
    item_id integer NOT NULL REFERENCES items (id),
    quantity integer NOT NULL CHECK (quantity > 0)
);
