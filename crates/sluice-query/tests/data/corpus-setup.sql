-- The objects corpus.sql reads, created by the superuser in the test database (where `mood` and
-- `accounts` already exist). Table and column names collide on purpose with every alias a
-- statement wrapper could use.
CREATE EXTENSION citext;
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN dposint AS posint;
CREATE DOMAIN label AS text;
CREATE DOMAIN moodd AS mood;
CREATE TYPE pair AS (n integer, s text);
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TABLE t (s int, q text, d date, c1 int, k int, x interval);
INSERT INTO t VALUES (1, 'a', '2020-01-01', 10, 100, '1 day'), (2, 'b,c', NULL, NULL, 200, NULL),
  (3, NULL, 'infinity', 30, NULL, '-2 hours');
CREATE TABLE s (s int, d int);
INSERT INTO s VALUES (1, 1), (3, 9), (4, 16);
CREATE TABLE q (q text);
INSERT INTO q VALUES ('1'), ('3'), ('x y');
CREATE TABLE weird ("a""b" int, "a,b" text, "Q" text, "?column?" int, " " text);
INSERT INTO weird VALUES (1, 'x', 'Y', 2, ' '), (2, NULL, '', NULL, NULL);
CREATE TABLE nocols ();
INSERT INTO nocols DEFAULT VALUES;
INSERT INTO nocols DEFAULT VALUES;
CREATE TABLE items (
  id int PRIMARY KEY, name text, price numeric(10,2), tags text[], m mood, p posint, dp dposint,
  l label, pr pair, r floatrange, ip inet, js jsonb
);
INSERT INTO items VALUES
  (1, 'one', 1.50, '{a,b}', 'ok', 1, 2, 'lbl', ROW(1, 'x'), '[1.5,2.5)', '192.168.0.1/24', '{"a": 1}'),
  (2, 'two, "quoted"', -0.01, '{}', 'sad', 7, 7, '', ROW(NULL, NULL), 'empty', '::1', '[]'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, E'multi\nline', 99999999.99, '{NULL,"",c}', 'happy', 2147483647, 3, E'x\ty', ROW(-1, E'q"\\'), '(,)', '10.0.0.0', '{"a": {"b": [1, 2.50]}}');
CREATE VIEW items_v AS SELECT id, m, p, l, pr FROM items;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO analyst;
