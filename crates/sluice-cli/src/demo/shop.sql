-- The demo's shop: customers, orders and their items, a partitioned events table, an
-- `analytics` schema owned by the ELT role `etl`, and a table the read-only user will not read.
-- Runs as the superuser of a throwaway cluster, in the database `shop`.
CREATE ROLE etl NOLOGIN;
CREATE TABLE customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text NOT NULL,
  country char(2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE customers IS 'One row per customer account';
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  status text NOT NULL CHECK (status IN ('placed', 'paid', 'shipped', 'refunded')),
  placed_at timestamptz NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE order_items (
  order_id bigint NOT NULL REFERENCES orders(id),
  line int NOT NULL,
  sku text NOT NULL,
  quantity int NOT NULL,
  unit_price numeric(10,2) NOT NULL,
  PRIMARY KEY (order_id, line)
);
CREATE TABLE events (
  occurred_at timestamptz NOT NULL,
  customer_id bigint,
  kind text NOT NULL,
  payload jsonb
) PARTITION BY RANGE (occurred_at);
CREATE TABLE events_2026_10 PARTITION OF events FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE events_2026_11 PARTITION OF events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE TABLE staff_salaries (employee text PRIMARY KEY, salary numeric(12,2) NOT NULL);
COMMENT ON TABLE staff_salaries IS 'Not for analysts';

INSERT INTO customers (email, name, country, created_at)
SELECT 'customer' || i || '@example.com', 'Customer ' || i, (ARRAY['DE','FR','US','JP','BR'])[1 + i % 5],
       timestamptz '2026-01-01' + i * interval '7 hours'
FROM generate_series(1, 200) i;
INSERT INTO orders (customer_id, status, placed_at)
SELECT 1 + (i * 37) % 200, (ARRAY['placed','paid','shipped','refunded'])[1 + i % 4],
       timestamptz '2026-10-01' + i * interval '53 minutes'
FROM generate_series(1, 1000) i;
INSERT INTO order_items
SELECT o.id, l, 'SKU-' || (o.id * l) % 97, 1 + (o.id + l) % 4, round((5 + (o.id * 13 + l) % 200)::numeric * 0.99, 2)
FROM orders o, generate_series(1, 3) l;
INSERT INTO events
SELECT timestamptz '2026-10-15' + i * interval '17 minutes', 1 + i % 200, (ARRAY['view','cart','checkout'])[1 + i % 3],
       jsonb_build_object('page', '/p/' || i % 40)
FROM generate_series(1, 3000) i;
INSERT INTO staff_salaries VALUES ('ada', 98000), ('grace', 105000);

CREATE SCHEMA analytics AUTHORIZATION etl;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO etl;
SET ROLE etl;
CREATE TABLE analytics.daily_revenue AS
SELECT date_trunc('day', o.placed_at)::date AS day, sum(i.quantity * i.unit_price) AS revenue
FROM public.orders o JOIN public.order_items i ON i.order_id = o.id
WHERE o.status <> 'refunded' GROUP BY 1;
RESET ROLE;
ANALYZE;
