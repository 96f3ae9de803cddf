-- Release 1.0.0: the items the app stores.
CREATE TABLE items (
    id serial PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
