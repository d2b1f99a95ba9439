-- Statements run through Sluice's CSV exporter and through `psql --csv` against the same cluster
-- (set up by corpus-setup.sql); each must give byte-identical output, or fail with the same
-- SQLSTATE (and the same position when PostgreSQL gives one). One statement per line; `--` starts
-- a comment line; `[N] ` in front of a statement means "PostgreSQL N or later".
-- Names that collide with any wrapper Sluice ever used (s, q, d, k, c1, t, x, u, i, o)
SELECT 1 AS s, 2 AS k
SELECT 'ok'::mood AS s, interval '1 day' AS c1, 3 AS s
SELECT 1 AS q, 2 AS k
SELECT 'ok'::mood AS q, interval '1 day' AS c1, 3 AS q
SELECT 1 AS d, 2 AS k
SELECT 'ok'::mood AS d, interval '1 day' AS c1, 3 AS d
SELECT 1 AS k, 2 AS s
SELECT 'ok'::mood AS k, interval '1 day' AS c1, 3 AS k
SELECT 1 AS c1, 2 AS k
SELECT 'ok'::mood AS c1, interval '1 day' AS c1, 3 AS c1
SELECT 1 AS c2, 2 AS k
SELECT 'ok'::mood AS c2, interval '1 day' AS c1, 3 AS c2
SELECT 1 AS t, 2 AS k
SELECT 'ok'::mood AS t, interval '1 day' AS c1, 3 AS t
SELECT 1 AS x, 2 AS k
SELECT 'ok'::mood AS x, interval '1 day' AS c1, 3 AS x
SELECT 1 AS u, 2 AS k
SELECT 'ok'::mood AS u, interval '1 day' AS c1, 3 AS u
SELECT 1 AS i, 2 AS k
SELECT 'ok'::mood AS i, interval '1 day' AS c1, 3 AS i
SELECT 1 AS o, 2 AS k
SELECT 'ok'::mood AS o, interval '1 day' AS c1, 3 AS o
SELECT 1 AS oid, 2 AS k
SELECT 'ok'::mood AS oid, interval '1 day' AS c1, 3 AS oid
SELECT 1 AS wire, 2 AS k
SELECT 'ok'::mood AS wire, interval '1 day' AS c1, 3 AS wire
SELECT 1 AS rel, 2 AS k
SELECT 'ok'::mood AS rel, interval '1 day' AS c1, 3 AS rel
SELECT 1 AS att, 2 AS k
SELECT 'ok'::mood AS att, interval '1 day' AS c1, 3 AS att
SELECT 1 AS dom, 2 AS k
SELECT 'ok'::mood AS dom, interval '1 day' AS c1, 3 AS dom
SELECT 1 AS base, 2 AS k
SELECT 'ok'::mood AS base, interval '1 day' AS c1, 3 AS base
SELECT 1 AS row_to_json, 2 AS k
SELECT 'ok'::mood AS row_to_json, interval '1 day' AS c1, 3 AS row_to_json
SELECT 1 AS json_object_keys, 2 AS k
SELECT 'ok'::mood AS json_object_keys, interval '1 day' AS c1, 3 AS json_object_keys
select 1 as s, 2 as k
select s from t order by 1
select s, q, d, c1, k from t order by s
select * from t order by s
select t from t order by 1
select t.* from t order by s
select q from q order by 1
select q.q from q order by 1
select s.s, s.d from s order by 1
select s from s order by 1
select d from s order by 1
SELECT s FROM (SELECT 1 AS x) s
SELECT q FROM (SELECT 1 AS x) q
SELECT d FROM (SELECT 1 AS x) d
SELECT s FROM (SELECT 1 AS x, 'ok'::mood AS y) s
SELECT q FROM (SELECT 'sad'::mood AS m, interval '2 hours' AS i) q
SELECT s.x FROM (SELECT 1 AS x) s
SELECT q.c1 FROM (SELECT 1 AS c1) q
SELECT q.c1, q.c2 FROM (SELECT 1, 2) q(c1, c2)
SELECT c1 FROM (SELECT 'happy'::mood) q(c1)
SELECT * FROM (SELECT 1 AS x) AS q(c1)
SELECT * FROM (SELECT 'ok'::mood AS x, 1 AS y) AS q(c2, c1)
SELECT d.a FROM (SELECT 1 AS x) t
SELECT q.x FROM (SELECT 1 AS x) t
SELECT s.x FROM (SELECT 1 AS x) t
SELECT d.x FROM (VALUES (1)) AS v(x)
SELECT u.i FROM (SELECT 1 AS x) t
SELECT k FROM (SELECT 1 AS x) t
SELECT x FROM (SELECT 1 AS x) q WHERE q.x = 1
SELECT row_to_json(s) FROM (SELECT 1 AS a, 'b' AS b) s
SELECT json_object_keys(row_to_json(q)) AS k FROM (SELECT 1 AS a, 2 AS a) q
SELECT q.* FROM (VALUES (1, 'ok'::mood)) AS q(s, d)
SELECT * FROM (VALUES (1)) AS d(x) LEFT JOIN LATERAL (SELECT d.x AS y) AS q ON true
SELECT * FROM (VALUES (1)) AS d(x) LEFT JOIN LATERAL (SELECT d.x AS y, 'ok'::mood AS q) AS q ON false
WITH q AS (SELECT 1 AS s) SELECT s FROM q
WITH s AS (SELECT 'ok'::mood AS q) SELECT q, s FROM s
WITH d(x) AS (VALUES (interval '1 minute')) SELECT d FROM d
WITH u AS (SELECT 1 AS i) SELECT u.i, i FROM u
SELECT (SELECT s FROM (SELECT 5 AS x) s) AS s
SELECT EXISTS (SELECT 1 FROM t WHERE t.s = 1) AS q
SELECT 1 AS "s", 2 AS "S", 3 AS "q "

-- Duplicate, generated and awkward column names
SELECT 1 AS a, 2 AS a
SELECT 1 AS a, 'x' AS a, NULL AS a
SELECT 1, 2, 3
SELECT 1, 'ok'::mood, interval '1 day'
SELECT 'ok'::mood AS a, 'sad'::mood AS a, 1 AS a
SELECT NULL
SELECT NULL, NULL
SELECT count(*), count(*) FROM t
SELECT sum(s), sum(s), avg(s) FROM t
SELECT * FROM t a, t b WHERE a.s = b.s ORDER BY a.s
SELECT a.*, b.* FROM s a JOIN s b USING (s) ORDER BY 1
SELECT * FROM s JOIN q ON q.q::int = s.s ORDER BY 1
SELECT 1 AS "a""b"
SELECT 1 AS "a,b"
SELECT 1 AS "\."
SELECT 1 AS " "
SELECT 1 AS "  lead"
SELECT 'ok'::mood AS "a""b", 2 AS "a,b", interval '1s' AS "\."
SELECT 1 AS "?column?", 2
SELECT 1 AS "é☃", 2 AS "名前"
SELECT 1 AS U&"line\000Abreak"
SELECT 1 AS "x\"
SELECT 1 AS U&"tab\0009tab"
SELECT * FROM weird ORDER BY 1
SELECT "a""b", "a,b", "Q" FROM weird ORDER BY 1
SELECT "?column?", " " FROM weird ORDER BY 1
SELECT 1 AS xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
SELECT 1 AS yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy
SELECT 1 AS select_, 2 AS "select", 3 AS "from"

-- Zero columns
select from generate_series(1,3)
SELECT FROM generate_series(1, 0)
SELECT
SELECT FROM t
TABLE nocols
SELECT * FROM nocols
SELECT FROM nocols
SELECT * FROM nocols, generate_series(1, 2) AS g WHERE false
SELECT nocols FROM nocols
SELECT FROM t WHERE s > 100
SELECT FROM (VALUES (1), (2)) v
WITH x AS (SELECT 1) SELECT FROM x

-- Scalars of every built-in family
SELECT true AS v
SELECT false AS v
SELECT NULL::bool AS v
SELECT 0::int2 AS v
SELECT -32768::int2 AS v
SELECT 32767::int2 AS v
SELECT 2147483647 AS v
SELECT (-2147483647 - 1) AS v
SELECT 9223372036854775807::int8 AS v
SELECT (-9223372036854775807 - 1)::int8 AS v
SELECT 4294967295::oid AS v
SELECT 0::oid AS v
SELECT 'pg_class'::regclass AS v
SELECT 'int4'::regtype AS v
SELECT 'now'::regproc AS v
SELECT 'pg_catalog'::regnamespace AS v
SELECT 0.1::float4 AS v
SELECT 0.1::float8 AS v
SELECT 1e100::float8 AS v
SELECT 'NaN'::float8 AS v
SELECT '-Infinity'::float4 AS v
SELECT '-0'::float8 AS v
SELECT 1.7976931348623157e308::float8 AS v
SELECT 5e-324::float8 AS v
SELECT 3.4028235e38::float4 AS v
SELECT 1.5::float4 * 3 AS v
SELECT (1/3::float8) AS v
SELECT 123456789012345678::float8 AS v
SELECT 1.50::numeric AS v
SELECT 'NaN'::numeric AS v
SELECT 0::numeric(10,4) AS v
SELECT -0.000012::numeric AS v
SELECT 1234567890.12::numeric(12,2) AS v
SELECT (2::numeric ^ 200) AS v
SELECT 1e-20::numeric AS v
SELECT (1::numeric / 3) AS v
SELECT round(2.5) AS v
SELECT 12.345::numeric(5,1) AS v
SELECT 'text'::text AS v
SELECT ''::text AS v
SELECT 'comma, "quote"'::text AS v
SELECT E'new\nline' AS v
SELECT E'tab\there' AS v
SELECT E'back\\slash' AS v
SELECT 'é ☃ 名' AS v
SELECT '\.' AS v
SELECT 'NULL' AS v
SELECT '  spaced  ' AS v
SELECT 'abc'::varchar(2) AS v
SELECT 'ab'::char(5) AS v
SELECT 'x'::"char" AS v
SELECT 'pg'::name AS v
SELECT repeat('z', 10000) AS v
SELECT '\x00ff10'::bytea AS v
SELECT ''::bytea AS v
SELECT 'abc'::bytea AS v
SELECT decode('00', 'hex') AS v
SELECT '2020-02-29'::date AS v
SELECT 'infinity'::date AS v
SELECT '-infinity'::date AS v
SELECT '0044-03-15 BC'::date AS v
SELECT '5874897-12-31'::date AS v
SELECT '13:45:06.789'::time AS v
SELECT '24:00:00'::time AS v
SELECT '00:00:00'::time(0) AS v
SELECT '13:45:06+05:30'::timetz AS v
SELECT '23:59:59.999999+14'::timetz AS v
SELECT '2020-01-01 00:00:00.123456'::timestamp AS v
SELECT 'infinity'::timestamp AS v
SELECT '294276-12-31 23:59:59.999999'::timestamp AS v
SELECT '0044-03-15 12:00:00 BC'::timestamp AS v
SELECT '2020-01-01 12:34:56.5'::timestamp(0) AS v
SELECT '2020-06-01 12:00:00+02'::timestamptz AS v
SELECT '-infinity'::timestamptz AS v
SELECT '1900-01-01 00:00:00+00'::timestamptz AS v
SELECT '2021-03-28 01:30:00 Europe/Paris'::timestamptz AS v
SELECT '1 year 2 mons 3 days 04:05:06.789'::interval AS v
SELECT '-1 days -00:00:01'::interval AS v
SELECT '0'::interval AS v
SELECT interval '1 day' * 1.5 AS v
SELECT 'P1Y2M'::interval AS v
SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS v
SELECT '00000000-0000-0000-0000-000000000000'::uuid AS v
SELECT '{"a": [1, 2.50, "x"]}'::json AS v
SELECT '{"b": {"c": null}, "a": 1.000}'::jsonb AS v
SELECT '[]'::jsonb AS v
SELECT '"str"'::json AS v
SELECT 'null'::jsonb AS v
SELECT '{"a":1,"a":2}'::json AS v
SELECT '{"a":1,"a":2}'::jsonb AS v
SELECT jsonb_build_object('k', 'ok'::mood) AS v
SELECT to_json('x'::text) AS v
SELECT '{"a": 1}'::jsonb -> 'a' AS v
SELECT '{"a": "é\u0000x"}'::json AS v
SELECT '192.168.0.1/24'::inet AS v
SELECT '::1'::inet AS v
SELECT '10.0.0.0/8'::cidr AS v
SELECT '08:00:2b:01:02:03'::macaddr AS v
SELECT '08:00:2b:01:02:03:04:05'::macaddr8 AS v
SELECT '12.34'::money AS v
SELECT '-0.01'::money AS v
SELECT B'1010' AS v
SELECT B''::varbit AS v
SELECT B'1'::bit(4) AS v
SELECT 'a fat cat sat'::tsvector AS v
SELECT to_tsvector('simple', 'The Fat Rats') AS v
SELECT 'fat & rat'::tsquery AS v
SELECT '<a>b &amp; c</a>'::xml AS v
SELECT '<?xml version="1.0"?><r/>'::xml AS v
SELECT '(1.5,-2)'::point AS v
SELECT '[(0,0),(1,1)]'::lseg AS v
SELECT '((0,0),(1,1))'::box AS v
SELECT '<(0,0),2>'::circle AS v
SELECT '{1,-1,0}'::line AS v
SELECT '((0,0),(1,0),(0,1))'::polygon AS v
SELECT '[(0,0),(1,1)]'::path AS v
SELECT '16/B374D848'::pg_lsn AS v
SELECT '0/0'::pg_lsn AS v
SELECT '(1,2)'::tid AS v
SELECT '1234'::xid AS v
SELECT '0'::cid AS v
SELECT '[1,10)'::int4range AS v
SELECT 'empty'::int4range AS v
SELECT '(,)'::int8range AS v
SELECT '[2020-01-01,2020-02-01)'::daterange AS v
SELECT '[2020-01-01,)'::tstzrange AS v
SELECT '(1.5,2.5]'::numrange AS v
SELECT '[1,3]'::int4range AS v
SELECT 'ok'::mood AS v
SELECT 'happy'::moodd AS v
SELECT 7::posint AS v
SELECT 7::dposint AS v
SELECT 'lbl'::label AS v
SELECT ROW(1, 'a b')::pair AS v
SELECT ROW(NULL, NULL)::pair AS v
SELECT '[1.5,2.5)'::floatrange AS v
SELECT ROW(1, 'x') AS v
SELECT ROW(NULL) AS v
SELECT ROW() AS v
SELECT (1, 'two', NULL) AS v
SELECT ROW(ROW(1, 2), 'x') AS v
SELECT 'hello'::citext AS v
SELECT pg_typeof(1) AS v
SELECT format_type(23, NULL) AS v
[14] SELECT '{[1,3),[5,7)}'::int4multirange AS v
[14] SELECT 'Infinity'::numeric AS v
[14] SELECT '-Infinity'::numeric AS v
[14] SELECT '{}'::int4multirange AS v
[15] SELECT 1.5::numeric(4,-1) AS v
[13] SELECT '1234'::xid8 AS v

-- The same values beside adversarial names, mixing client-decoded and server-rendered columns
SELECT 1 AS s, 'ok'::mood AS q, interval '3 days' AS d, 'x'::text AS c1, ROW(1, 2) AS c2, NULL::mood AS t, NULL::int AS k, '192.168.1.1'::inet AS x, '[1,2)'::int4range AS s, 7::posint AS q, 'a'::label AS c3, 1.5::float8 AS i
SELECT 'ok'::mood AS s, interval '3 days' AS q, 'x'::text AS d, ROW(1, 2) AS c1, NULL::mood AS c2, NULL::int AS t, '192.168.1.1'::inet AS k, '[1,2)'::int4range AS x, 7::posint AS s, 'a'::label AS q, 1.5::float8 AS c3, 1 AS i
SELECT interval '3 days' AS s, 'x'::text AS q, ROW(1, 2) AS d, NULL::mood AS c1, NULL::int AS c2, '192.168.1.1'::inet AS t, '[1,2)'::int4range AS k, 7::posint AS x, 'a'::label AS s, 1.5::float8 AS q, 1 AS c3, 'ok'::mood AS i
SELECT 'x'::text AS s, ROW(1, 2) AS q, NULL::mood AS d, NULL::int AS c1, '192.168.1.1'::inet AS c2, '[1,2)'::int4range AS t, 7::posint AS k, 'a'::label AS x, 1.5::float8 AS s, 1 AS q, 'ok'::mood AS c3, interval '3 days' AS i
SELECT ROW(1, 2) AS s, NULL::mood AS q, NULL::int AS d, '192.168.1.1'::inet AS c1, '[1,2)'::int4range AS c2, 7::posint AS t, 'a'::label AS k, 1.5::float8 AS x, 1 AS s, 'ok'::mood AS q, interval '3 days' AS c3, 'x'::text AS i
SELECT NULL::mood AS s, NULL::int AS q, '192.168.1.1'::inet AS d, '[1,2)'::int4range AS c1, 7::posint AS c2, 'a'::label AS t, 1.5::float8 AS k, 1 AS x, 'ok'::mood AS s, interval '3 days' AS q, 'x'::text AS c3, ROW(1, 2) AS i
SELECT NULL::int AS s, '192.168.1.1'::inet AS q, '[1,2)'::int4range AS d, 7::posint AS c1, 'a'::label AS c2, 1.5::float8 AS t, 1 AS k, 'ok'::mood AS x, interval '3 days' AS s, 'x'::text AS q, ROW(1, 2) AS c3, NULL::mood AS i
SELECT '192.168.1.1'::inet AS s, '[1,2)'::int4range AS q, 7::posint AS d, 'a'::label AS c1, 1.5::float8 AS c2, 1 AS t, 'ok'::mood AS k, interval '3 days' AS x, 'x'::text AS s, ROW(1, 2) AS q, NULL::mood AS c3, NULL::int AS i
SELECT '[1,2)'::int4range AS s, 7::posint AS q, 'a'::label AS d, 1.5::float8 AS c1, 1 AS c2, 'ok'::mood AS t, interval '3 days' AS k, 'x'::text AS x, ROW(1, 2) AS s, NULL::mood AS q, NULL::int AS c3, '192.168.1.1'::inet AS i
SELECT 7::posint AS s, 'a'::label AS q, 1.5::float8 AS d, 1 AS c1, 'ok'::mood AS c2, interval '3 days' AS t, 'x'::text AS k, ROW(1, 2) AS x, NULL::mood AS s, NULL::int AS q, '192.168.1.1'::inet AS c3, '[1,2)'::int4range AS i
SELECT 'a'::label AS s, 1.5::float8 AS q, 1 AS d, 'ok'::mood AS c1, interval '3 days' AS c2, 'x'::text AS t, ROW(1, 2) AS k, NULL::mood AS x, NULL::int AS s, '192.168.1.1'::inet AS q, '[1,2)'::int4range AS c3, 7::posint AS i
SELECT 1.5::float8 AS s, 1 AS q, 'ok'::mood AS d, interval '3 days' AS c1, 'x'::text AS c2, ROW(1, 2) AS t, NULL::mood AS k, NULL::int AS x, '192.168.1.1'::inet AS s, '[1,2)'::int4range AS q, 7::posint AS c3, 'a'::label AS i

-- Arrays
SELECT ARRAY[1, NULL, 3] AS a
SELECT '{{1,2},{3,4}}'::int[] AS a
SELECT '[0:1]={7,8}'::int[] AS a
SELECT '[-3:-2][5:5]={{1},{2}}'::int[] AS a
SELECT '{}'::int[] AS a
SELECT ARRAY[]::text[] AS a
SELECT '{"a b","c,d",NULL,"NULL","","q\"uote"}'::text[] AS a
SELECT '{"{}","\\"}'::text[] AS a
SELECT ARRAY['ok', 'sad']::mood[] AS a
SELECT ARRAY[interval '1 day'] AS a
SELECT ARRAY[ROW(1, 'x')::pair] AS a
SELECT ARRAY[ROW(1, 2)] AS a
SELECT ARRAY['1.50'::numeric, NULL, -2] AS a
SELECT '{1.50,NULL,-2}'::numeric(6,2)[] AS a
SELECT ARRAY['2020-01-01 00:00:00+00'::timestamptz, NULL] AS a
SELECT ARRAY['2020-02-29'::date, 'infinity'] AS a
SELECT ARRAY[true, false, NULL] AS a
SELECT ARRAY['\x00'::bytea, ''] AS a
SELECT ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid] AS a
SELECT ARRAY['{"a":1}'::jsonb, 'null'] AS a
SELECT ARRAY['[1]'::json] AS a
SELECT ARRAY[0.1::float4, 'NaN'] AS a
SELECT ARRAY[1e100::float8, '-Infinity'] AS a
SELECT ARRAY[1::int2, -1] AS a
SELECT ARRAY[1::int8] AS a
SELECT ARRAY[1::oid] AS a
SELECT ARRAY['x'::char(3)] AS a
SELECT ARRAY['x'::varchar] AS a
SELECT ARRAY['n'::name] AS a
SELECT ARRAY[7::posint] AS a
SELECT ARRAY['[1,2)'::int4range] AS a
SELECT ARRAY['192.168.0.1'::inet] AS a
SELECT ARRAY[B'101'] AS a
SELECT ARRAY['12:00'::time] AS a
SELECT ARRAY['2020-01-01 10:00'::timestamp] AS a
SELECT ARRAY[[['x']]] AS a
SELECT '{{{1}}}'::int[] AS a
SELECT ARRAY[' lead', 'trail ', E'tab\t'] AS a
SELECT ARRAY[E'new\nline', 'back\slash'] AS a
SELECT '{NULL}'::int[] AS a
SELECT '{{NULL,NULL}}'::int[] AS a
SELECT array_agg(g) FROM generate_series(1, 5) g AS a
SELECT (ARRAY[1,2,3])[2:3] AS a
SELECT ARRAY['ok'::moodd] AS a
SELECT ARRAY['hello'::citext] AS a

-- Records and composites
SELECT ROW(1, 'a,b', NULL) AS r
SELECT ROW('ok'::mood, interval '1 day') AS r
SELECT ROW(ROW(NULL)) AS r
SELECT ROW(ARRAY[1, 2], '{}'::text[]) AS r
SELECT (SELECT t FROM t ORDER BY s LIMIT 1) AS r
SELECT (SELECT s FROM s ORDER BY s LIMIT 1) AS r
SELECT ROW(E'q"\\', '-infinity'::timestamptz) AS r
SELECT ROW('') AS r
SELECT ROW(' ') AS r
SELECT ROW('', NULL) AS r
SELECT items FROM items ORDER BY id
SELECT (items).pr, (pr).n, (pr).s FROM items ORDER BY id
SELECT pr, pr IS NULL AS isnull, num_nulls(pr) FROM items ORDER BY id
SELECT x FROM (SELECT ROW(1, 2) AS x UNION ALL SELECT ROW(NULL, NULL)) q
SELECT * FROM (VALUES (ROW(1, 'a')), (NULL)) AS v(r)

-- Tables, views, domains, enums, NULLs
TABLE items
SELECT * FROM items ORDER BY id
SELECT * FROM items WHERE false
SELECT id, m, p, dp, l, pr, r, ip, js FROM items ORDER BY id DESC
SELECT m, count(*) FROM items GROUP BY m ORDER BY m
SELECT m, array_agg(id ORDER BY id) FROM items GROUP BY m ORDER BY m NULLS FIRST
SELECT m::text, p + 1, dp * 2, l || '!' FROM items ORDER BY id
SELECT * FROM items_v ORDER BY id
SELECT * FROM items_v WHERE m = 'ok'
SELECT tags, tags[1], array_length(tags, 1) FROM items ORDER BY id
SELECT price, price * 2, -price, price::float8, price::text FROM items ORDER BY id
SELECT name, upper(name), length(name), name IS NULL FROM items ORDER BY id
SELECT coalesce(name, 'none'), nullif(id, 2) FROM items ORDER BY id
SELECT * FROM accounts ORDER BY id LIMIT 5
SELECT owner, balance FROM accounts WHERE id BETWEEN 10 AND 15 ORDER BY balance DESC
SELECT count(*), sum(balance), avg(balance), min(owner), max(owner) FROM accounts
SELECT id % 3 AS g, count(*), sum(balance) FROM accounts GROUP BY 1 ORDER BY 1
SELECT id, sum(balance) OVER (ORDER BY id) FROM accounts ORDER BY id LIMIT 7
SELECT id, rank() OVER (PARTITION BY id % 2 ORDER BY balance DESC) FROM accounts ORDER BY id LIMIT 6
SELECT DISTINCT m FROM items ORDER BY 1
SELECT DISTINCT ON (m) m, id FROM items ORDER BY m, id
SELECT p FROM items WHERE p > 3 ORDER BY p
SELECT ip, host(ip), masklen(ip) FROM items WHERE ip IS NOT NULL ORDER BY id
SELECT js, js -> 'a', js ->> 'a', jsonb_typeof(js) FROM items ORDER BY id
SELECT r, lower(r), upper(r), isempty(r) FROM items ORDER BY id
SELECT NULL::mood, NULL::pair, NULL::posint, NULL::int[], NULL::interval
SELECT * FROM (VALUES (NULL::int, NULL::text)) v(a, b)
SELECT 'ok'::mood < 'happy'::mood, enum_range(NULL::mood)
SELECT unnest(enum_range(NULL::mood)) AS m
SELECT * FROM unnest(ARRAY['ok','sad']::mood[]) WITH ORDINALITY
SELECT * FROM generate_series(1, 5) g
SELECT g, g * 1.1, (g || ' days')::interval, 'happy'::mood FROM generate_series(1, 2000) g
SELECT g, md5(g::text) FROM generate_series(1, 300) g
SELECT * FROM t ORDER BY s DESC
SELECT * FROM s ORDER BY s
SELECT * FROM q ORDER BY q
TABLE s
TABLE weird

-- VALUES, TABLE, WITH, set operations, subqueries
VALUES (1, 'one'), (2, NULL)
VALUES (1)
VALUES ('ok'::mood, interval '1 day'), ('sad', NULL)
VALUES (NULL), (NULL)
VALUES (1, 2) ORDER BY 1 LIMIT 1
VALUES (ROW(1, 2)), (ROW(3, 4))
TABLE nocols
TABLE items
WITH x AS (SELECT m, tags FROM items) SELECT * FROM x ORDER BY 1, 2
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT n, n * n FROM r
WITH RECURSIVE r(n, i) AS (SELECT 1, interval '1 day' UNION ALL SELECT n + 1, i * 2 FROM r WHERE n < 5) SELECT * FROM r
WITH a AS (SELECT 1 AS s), b AS (SELECT s + 1 AS q FROM a) SELECT * FROM a, b
WITH a AS MATERIALIZED (SELECT 'ok'::mood AS m) SELECT m FROM a
SELECT 1 UNION SELECT 2 ORDER BY 1
SELECT 1 AS a UNION ALL SELECT 1 ORDER BY 1
SELECT 'ok'::mood UNION SELECT 'sad'::mood ORDER BY 1
SELECT s FROM t INTERSECT SELECT s FROM s ORDER BY 1
SELECT s FROM t EXCEPT SELECT s FROM s ORDER BY 1
(SELECT 1 AS x) UNION (SELECT 2) ORDER BY x DESC
SELECT (SELECT max(id) FROM items) AS m
SELECT id FROM items WHERE id IN (SELECT s FROM t) ORDER BY id
SELECT id, (SELECT count(*) FROM t WHERE t.s <= items.id) FROM items ORDER BY id
SELECT * FROM items i LEFT JOIN LATERAL (SELECT count(*) AS n FROM t WHERE t.s = i.id) c ON true ORDER BY i.id
SELECT * FROM items i CROSS JOIN LATERAL unnest(i.tags) AS tag ORDER BY i.id, tag
SELECT * FROM generate_series(1, 3) a, generate_series(1, 2) b ORDER BY a, b
SELECT x, y FROM ROWS FROM (generate_series(1, 3), unnest(ARRAY['a', 'b'])) AS r(x, y)
SELECT * FROM json_to_record('{"a": 1, "b": "x"}') AS r(a int, b text)
SELECT * FROM jsonb_each('{"a": 1, "b": [2]}') ORDER BY key
SELECT * FROM jsonb_array_elements_text('[1, "two", null]')
SELECT key, value FROM json_each_text('{"k": "v", "n": null}') ORDER BY key
SELECT * FROM regexp_matches('abcabc', 'b', 'g')
SELECT string_agg(owner, ', ' ORDER BY id) FROM accounts WHERE id < 5
SELECT id FROM accounts ORDER BY id OFFSET 95
SELECT id FROM accounts ORDER BY id FETCH FIRST 3 ROWS ONLY
SELECT id FROM accounts ORDER BY id DESC LIMIT 3 OFFSET 2
SELECT CASE WHEN s > 1 THEN 'big' ELSE 'small' END AS size, count(*) FROM t GROUP BY 1 ORDER BY 1
SELECT s, q FROM t WHERE q LIKE '%a%' ORDER BY s
SELECT g FROM generate_series(1, 10) g WHERE g % 2 = 0 ORDER BY g DESC
SELECT g, interval '1 hour' * g FROM generate_series(1, 5) g ORDER BY g DESC
SELECT g, 'ok'::mood FROM generate_series(1, 5) g ORDER BY g DESC
SELECT m, g FROM items, generate_series(1, 2) g ORDER BY id DESC, g
SELECT GROUPING(m), m, count(*) FROM items GROUP BY ROLLUP (m) ORDER BY 2 NULLS LAST, 1
SELECT a, b, count(*) FROM (VALUES (1, 'x'), (1, 'y'), (2, 'x')) v(a, b) GROUP BY CUBE (a, b) ORDER BY 1, 2
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY balance) FROM accounts
SELECT mode() WITHIN GROUP (ORDER BY m) FROM items
SELECT count(*) FILTER (WHERE m = 'ok') FROM items
SELECT json_agg(t ORDER BY s) FROM t
SELECT jsonb_agg(m ORDER BY id) FROM items
SELECT array_agg(pr ORDER BY id) FROM items
SELECT xmlelement(name a, 'b') AS x
SELECT xmlforest(1 AS a, 'x' AS b)
SELECT to_char(12345.678, '99G999D99') AS c
SELECT to_char('2020-01-02'::date, 'Day DD Mon YYYY') AS c
SELECT date_trunc('month', '2020-02-29 12:00'::timestamp)
SELECT extract(epoch FROM '2020-01-01 00:00:00+00'::timestamptz)
SELECT '2020-01-01'::date + 30, '2020-01-01'::date - '2019-01-01'::date
SELECT age('2020-03-01'::timestamp, '2019-01-15'::timestamp)
SELECT make_interval(days => 10), make_date(2020, 2, 29)
SELECT justify_interval('35 days 30 hours'::interval)
SELECT '1.5'::float8::numeric, 1/3::numeric(10,3)
SELECT 2^0.5 AS r, sqrt(2::numeric), exp(1::numeric), ln(10)
SELECT 7 / 2, 7 % 2, 7.0 / 2, -7 / 2, 7::float8 / 0.1
SELECT pi(), 0.1::float8 + 0.2::float8, 1e-7::float4
SELECT 'abc' || 'def', concat_ws(',', 'a', NULL, 'b'), format('%s|%I|%L', 'x', 'Y z', 'q''t')
SELECT substr('héllo', 2, 3), position('l' IN 'hello'), reverse('abc'), initcap('hello world')
SELECT regexp_replace('a1b2', '[0-9]', '#', 'g'), split_part('a,b,c', ',', 2)
SELECT encode('\x0102'::bytea, 'base64'), md5('x'), length('\x0102'::bytea)
SELECT quote_ident('a b'), quote_literal(E'it''s'), quote_nullable(NULL)
SELECT 'a' = 'a' COLLATE "C", 'B' < 'a' COLLATE "C"
SELECT current_user = 'analyst' AS me, current_database()
SELECT has_table_privilege('items', 'SELECT')
SELECT relname FROM pg_class WHERE relname IN ('items', 't', 's', 'q') ORDER BY 1
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 ORDER BY attnum
SELECT typname, typtype FROM pg_type WHERE typname IN ('mood', 'pair', 'posint') ORDER BY 1
SELECT oid::regtype, typname FROM pg_type WHERE oid IN (16, 23, 25) ORDER BY oid
SELECT n.nspname, count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' GROUP BY 1
SELECT 'items'::regclass, 'items'::regclass::oid > 0
SELECT version() LIKE 'PostgreSQL%'
SELECT current_setting('server_version_num')::int >= 120000 AS recent
SELECT current_setting('TimeZone') IS NOT NULL
SELECT pg_column_size(1::int8), octet_length('é')
SELECT to_tsvector('english', 'The quick brown foxes') @@ to_tsquery('english', 'fox')
SELECT ts_headline('simple', 'a b c', to_tsquery('simple', 'b'))
SELECT '10.1.2.3'::inet << '10.0.0.0/8'::cidr, '10.1.2.3'::inet + 1
SELECT B'1010' & B'0110', B'1010' | B'0101', ~ B'1010'
SELECT point(1, 2) <-> point(4, 6), box '((0,0),(2,2))' && box '((1,1),(3,3))'
SELECT int4range(1, 10) * int4range(5, 15), int4range(1, 5) @> 3
SELECT '[1,3)'::int4range + '[3,5)'::int4range
SELECT array_to_string(ARRAY[1, NULL, 3], ',', '*'), array_position(ARRAY['a', 'b'], 'b')
SELECT ARRAY[1, 2] || 3, ARRAY[[1]] || ARRAY[[2]], cardinality(ARRAY[[1, 2], [3, 4]])
SELECT array_dims('[2:3]={1,2}'::int[]), array_lower('[2:3]={1,2}'::int[], 1)
SELECT '{"a":{"b":[1,2]}}'::jsonb #> '{a,b}', '{"a":1}'::jsonb || '{"b":2}'
SELECT jsonb_pretty('{"a": [1, {"b": null}]}')
SELECT jsonb_path_query_array('{"a": [1, 2, 3]}', '$.a[*] ? (@ > 1)')
SELECT row_to_json(ROW(1, 'x')), to_jsonb(ROW('ok'::mood))
SELECT json_build_array(1, 'two', NULL, true), json_object('{a,1,b,2}')
SELECT uuid_send('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')
[13] SELECT gen_random_uuid() IS NOT NULL
[13] SELECT trim_scale(1.500)
[14] SELECT string_to_table('a,b', ',')
[14] SELECT date_bin('15 minutes', '2020-02-11 15:44:17'::timestamp, '2001-01-01')
[14] SELECT unistr('d\0061t\+000061')
[14] SELECT bit_count(B'1011')
[16] SELECT 'x' IS JSON
[16] SELECT json_array(1, 2)

-- EXPLAIN and SHOW
EXPLAIN (COSTS OFF) SELECT * FROM items WHERE id = 1
EXPLAIN (COSTS OFF) SELECT s FROM t ORDER BY s
EXPLAIN (COSTS OFF, FORMAT JSON) SELECT 1
EXPLAIN (COSTS OFF, FORMAT XML) SELECT 1
EXPLAIN (COSTS OFF, FORMAT YAML) SELECT 1
EXPLAIN (COSTS OFF) VALUES (1)
EXPLAIN (COSTS OFF) WITH x AS (SELECT 1) SELECT * FROM x
EXPLAIN (COSTS OFF, VERBOSE) SELECT s AS q FROM t
SHOW TimeZone
SHOW DateStyle
SHOW IntervalStyle
SHOW extra_float_digits
SHOW bytea_output
SHOW client_encoding
SHOW server_encoding
SHOW standard_conforming_strings
SHOW search_path
SHOW integer_datetimes
SHOW max_identifier_length

-- Errors of each class, with positions where PostgreSQL gives one
SELECT 1/0
SELECT 1/(g - 2) FROM generate_series(1, 3) g
SELECT 1 % 0
SELECT 1.0 / 0
SELECT 'x'::int
SELECT * FROM accounts WHERE id = 'x'
SELECT 'abc'::uuid
SELECT '{1,2'::int[]
SELECT 'nope'::mood
SELECT 0::posint
SELECT '2020-13-01'::date
SELECT '25:00'::time
SELECT 'x'::interval
SELECT '{'::json
SELECT '1.2.3.4.5'::inet
SELECT 2147483647 + 1
SELECT 32767::int2 + 1::int2
SELECT 1e400::float8
SELECT 'Infinity'::float8::int
SELECT 10::numeric(2, 0) * 100
SELECT 12345::numeric(3,1)
SELECT 'abcdef'::varchar(3)::char(2)
SELECT nosuch FROM accounts
SELECT 'é', nosuch FROM accounts
SELECT 'ok'::mood, nosuch FROM accounts
SELECT accounts.nosuch FROM accounts
SELECT x FROM (SELECT 1 AS y) s
SELECT * FROM nosuch
SELECT * FROM public.nosuch
SELECT d.a FROM (SELECT 1 AS x) t
SELECT nosuch.x FROM accounts
SELECT lower(1, 2)
SELECT nosuch()
SELECT 1 + 'ok'::mood
SELECT 'a' - 1
SELECT ARRAY[1] @> 'x'
SELECT id FROM accounts a, accounts b
SELECT s FROM t, s
SELECT owner, count(*) FROM accounts
SELECT sum(count(*)) FROM accounts
SELECT (SELECT id FROM accounts)
SELECT * FROM accounts WHERE id = (SELECT id FROM accounts)
SELECT ('{1,2}'::int[])[1:2][1]
SELECT array_fill(1, ARRAY[-1])
SELECT ARRAY[[1], [1, 2]]
SELECT CASE WHEN true THEN 1 ELSE 'x' END
SELECT 1 UNION SELECT 'x'
SELECT ROW(1, 2) = ROW(1)
SELECT generate_series(1, 3) WHERE generate_series(1, 3) > 1
SELECT repeat('x', -1) || chr(0)
SELECT chr(0)
SELECT '\xZZ'::bytea
SELECT convert_from('\xff'::bytea, 'UTF8')
SELECT to_date('2020-99-99', 'YYYY-MM-DD')
SELECT make_date(2020, 2, 30)
SELECT '294277-01-01'::timestamp
SELECT 'infinity'::date - 1
SELECT substring('abc' FROM -1 FOR -1)
SELECT width_bucket(1, 0, 0, 1)
SELECT log(0)
SELECT sqrt(-1)
SELECT power(0, -1)
SELECT '{"a":1}'::jsonb -> 'a' -> 'b' ->> 1 || (SELECT 1/0)::text
SELECT jsonb_path_query('{}', 'strict $.a')
SELECT (('{"a":1}'::jsonb)->>'a')::date
SELECT xmlparse(document '<a>')
SELECT 'x' ~ '('
SELECT count(*) OVER (ORDER BY nosuch) FROM accounts
SELECT rank() FROM accounts
SELECT * FROM accounts ORDER BY 99
SELECT id FROM accounts GROUP BY 99
SELECT 1 LIMIT -1
SELECT 1 OFFSET -1
SELECT $1
SELECT 1 AS ""
SELEC 1
SELECT 1 FROM FROM accounts
SELECT (1
SELECT 'unterminated
SELECT 1 2 3
SELECT 'ok'::mood::int
SELECT interval '1 day'::int
SELECT ROW(1)::pair
SELECT (SELECT ROW(1, 2))::int
SELECT * FROM items WHERE m = 'angry'
SELECT p FROM items WHERE p = -1::posint
EXPLAIN (COSTS OFF) SELECT nosuch
SHOW nosuch_setting
SHOW nosuch.setting
VALUES (1), ('x')
VALUES (1, 2), (3)
TABLE nosuch
WITH x AS (SELECT 1/0) SELECT * FROM x
WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT 'x' FROM r) SELECT * FROM r
SELECT * FROM generate_series(1, 3) g(a, b)
SELECT * FROM (SELECT 1, 2) q(a, b, c)
SELECT num_nulls()
SELECT format('%s %s', 1)
SELECT pg_catalog.nosuch(1)
SELECT 'x'::nosuchtype
SELECT NULL::nosuchtype[]
SELECT 1::int[]
SELECT 'ok'::mood > 1
SELECT cast('12' AS bit(1))
