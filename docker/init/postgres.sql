-- The `sales` source of the compose demo: a read-only role and one table.
CREATE ROLE meshgate_reader LOGIN PASSWORD 'demo-reader-password';
CREATE TABLE orders (
    order_id   integer PRIMARY KEY,
    member_id  integer NOT NULL,
    product    text NOT NULL,
    amount     numeric(10, 2) NOT NULL,
    ordered_on date NOT NULL
);
INSERT INTO orders
SELECT i, 1 + (i % 200), (ARRAY['dental', 'vision', 'travel'])[1 + i % 3],
       round((10 + (i * 37) % 490)::numeric, 2), DATE '2025-01-01' + (i % 365)
  FROM generate_series(1, 500) AS i;
GRANT USAGE ON SCHEMA public TO meshgate_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO meshgate_reader;
