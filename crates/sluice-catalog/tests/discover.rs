//! Discovery acceptance against real PostgreSQL clusters from the testkit, connected as a limited
//! login role the way Sluice is meant to be deployed. The server binaries come from `PG_BIN`
//! (default: the newest installed), so the same tests run on every major the machine has.

mod schema_check;

use serde_json::Value;
use sluice_catalog::{
    diff, discover, discover_sharing, render_diff_human, render_human, Catalog, CatalogError, DiscoverOptions,
    FkAction, GeneratedKind, GetSecondSession, Identity, Relation, RelationKind, SecondSession,
};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_connect::tokio_postgres;
use sluice_connect::{Connector, Pool, PoolOptions, ReadOnlySession, SessionSettings};
use sluice_core::{ErrorKind, Secret, SourceSpec, SslMode, UserFacing};
use sluice_testkit::{Cluster, ClusterOptions, PgBouncer, PgBouncerOptions};

const PW: &str = "reader-pw";
const DB: &str = "shop";

async fn connect_as(cluster: &Cluster, user: &str) -> ReadOnlySession {
    let mut spec = SourceSpec::new(cluster.host(), DB, user);
    spec.hosts[0].port = cluster.port();
    spec.password = Some(Secret::new(PW));
    spec.sslmode = SslMode::Disable;
    spec.connect_timeout_secs = 10;
    Connector::new(spec).expect("connector").connect().await.expect("connect")
}

async fn discover_all(session: &mut ReadOnlySession) -> Catalog {
    discover(session, &DiscoverOptions::default()).await.expect("discover")
}

/// The session still runs a transaction and a query (the last one ended cleanly).
async fn still_usable(session: &mut ReadOnlySession) {
    let tx = session.read_only_transaction().await.expect("a new transaction");
    let rows = tx.client().simple_query("SELECT 1").await.expect("session still usable");
    assert!(!rows.is_empty());
    tx.rollback().await.expect("rollback");
}

fn rel<'a>(c: &'a Catalog, schema: &str, name: &str) -> &'a Relation {
    c.relation(schema, name).unwrap_or_else(|| panic!("{schema}.{name} not in the catalog"))
}

fn top_level<'a>(c: &'a Catalog, schema: &str) -> Vec<&'a str> {
    c.schemas
        .iter()
        .find(|s| s.name == schema)
        .unwrap_or_else(|| panic!("schema {schema} missing"))
        .relations
        .iter()
        .map(|r| r.name.as_str())
        .collect()
}

fn column_names(r: &Relation) -> Vec<&str> {
    r.columns.iter().map(|c| c.name.as_str()).collect()
}

/// Everything the acceptance list names, owned by `app`, read by `reader`.
fn fixture(version: u32) -> String {
    let mut sql = String::from(
        r#"
CREATE ROLE app NOLOGIN;
CREATE SCHEMA sales AUTHORIZATION app;
COMMENT ON SCHEMA sales IS 'Sales data';
CREATE SCHEMA ref AUTHORIZATION app;
CREATE SCHEMA hidden AUTHORIZATION app;
CREATE SCHEMA "Odd Schema ""q""" AUTHORIZATION app;
SET ROLE app;
CREATE TYPE sales.mood AS ENUM ('happy', 'sad');
CREATE DOMAIN sales.posint AS integer CHECK (VALUE > 0);
CREATE TABLE ref.currency (code char(3) PRIMARY KEY, name text);
CREATE TABLE sales.customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant int NOT NULL,
  email text NOT NULL,
  "select" text,
  "größe" numeric(10,2),
  "col ""quoted"" name" varchar(20),
  mood sales.mood,
  qty sales.posint DEFAULT 1,
  tags text[],
  matrix integer[][],
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT customers_tenant_email_key UNIQUE (tenant, email)
);
COMMENT ON TABLE sales.customers IS 'People who buy';
COMMENT ON COLUMN sales.customers.email IS 'Primary e-mail';
CREATE INDEX customers_lower_email_idx ON sales.customers (lower(email));
INSERT INTO sales.customers (tenant, email) SELECT 1, 'c' || g || '@x' FROM generate_series(1, 500) g;
ANALYZE sales.customers;
CREATE TABLE sales.orders (
  tenant int NOT NULL,
  id bigint NOT NULL,
  customer_id bigint REFERENCES sales.customers (id) ON DELETE CASCADE,
  currency char(3) CONSTRAINT orders_currency_fk REFERENCES ref.currency (code),
  total numeric(12,2),
  PRIMARY KEY (tenant, id)
);
CREATE INDEX orders_big_idx ON sales.orders (customer_id) WHERE total > 100;
CREATE TABLE sales.order_lines (
  tenant int, order_id bigint, line int,
  PRIMARY KEY (tenant, order_id, line),
  CONSTRAINT order_lines_order_fk FOREIGN KEY (tenant, order_id) REFERENCES sales.orders (tenant, id)
);
CREATE TABLE sales.events (id bigint, at date NOT NULL, region text) PARTITION BY RANGE (at);
CREATE TABLE sales.events_2024 PARTITION OF sales.events
  FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (region);
CREATE TABLE sales.events_2024_eu PARTITION OF sales.events_2024 FOR VALUES IN ('eu');
CREATE TABLE sales.events_2024_us PARTITION OF sales.events_2024 FOR VALUES IN ('us');
CREATE TABLE sales.events_2025 PARTITION OF sales.events
  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE sales.vehicles (id int, wheels int);
CREATE TABLE sales.cars (seats int) INHERITS (sales.vehicles);
CREATE VIEW sales.big_orders AS SELECT tenant, id, total FROM sales.orders WHERE total > 1000;
CREATE MATERIALIZED VIEW sales.daily AS SELECT 1 AS n;
CREATE TABLE sales."order" (id int);
CREATE TABLE sales.secrets (k text);
CREATE TABLE sales.staff (id int, name text, salary int);
CREATE TABLE hidden.t (a int);
CREATE TABLE "Odd Schema ""q"""."Table ""with"" quotes" ("user" int, "ünïcødé col" text, "has space" int);
RESET ROLE;
CREATE FOREIGN DATA WRAPPER dummy_fdw;
CREATE SERVER dummy_srv FOREIGN DATA WRAPPER dummy_fdw;
CREATE FOREIGN TABLE sales.remote_rates (day date, rate numeric) SERVER dummy_srv;
COMMENT ON FOREIGN TABLE sales.remote_rates IS 'Rates from elsewhere';
"#,
    );
    if version >= 110000 {
        sql.push_str("CREATE INDEX orders_cover_idx ON sales.orders (tenant) INCLUDE (total);\n");
    }
    if version >= 120000 {
        sql.push_str(
            "ALTER TABLE sales.orders ADD COLUMN total_x2 numeric GENERATED ALWAYS AS (total * 2) STORED;\n\
             CREATE TABLE sales.regions (id int PRIMARY KEY, code text) PARTITION BY HASH (id);\n\
             CREATE TABLE sales.regions_0 PARTITION OF sales.regions FOR VALUES WITH (MODULUS 2, REMAINDER 0);\n\
             CREATE TABLE sales.regions_1 PARTITION OF sales.regions FOR VALUES WITH (MODULUS 2, REMAINDER 1);\n\
             CREATE TABLE sales.stores (id int, region_id int CONSTRAINT stores_region_fk REFERENCES sales.regions (id));\n",
        );
    }
    sql.push_str(
        r#"
GRANT USAGE ON SCHEMA sales, ref, "Odd Schema ""q""" TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA sales TO reader;
REVOKE SELECT ON sales.secrets, sales.staff FROM reader;
GRANT SELECT (id, name) ON sales.staff TO reader;
GRANT SELECT ON ref.currency, hidden.t TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA "Odd Schema ""q""" TO reader;
"#,
    );
    sql
}

fn shop_cluster() -> (Cluster, u32) {
    let cluster = Cluster::start_default().expect("cluster");
    let version = cluster.version_num().expect("version");
    cluster.create_login("reader", PW).expect("reader");
    cluster.create_database(DB).expect("database");
    cluster.psql(DB, &fixture(version)).expect("fixture");
    (cluster, version)
}

#[tokio::test]
async fn discovers_every_kind_as_a_limited_user() {
    let (cluster, version) = shop_cluster();
    let mut session = connect_as(&cluster, "reader").await;
    let c = discover_all(&mut session).await;

    assert_eq!(c.database, DB);
    assert_eq!(c.user, "reader");
    assert_eq!(c.server_version_num, version);
    assert!(c.discovered_at.len() == 20 && c.discovered_at.ends_with('Z'), "{}", c.discovered_at);

    // Schemas: sorted by code point, system schemas absent, no USAGE listed as unusable.
    let names: Vec<&str> = c.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["Odd Schema \"q\"", "hidden", "public", "ref", "sales"]);
    let hidden = &c.schemas[1];
    assert!(!hidden.usable, "no USAGE on hidden");
    assert!(hidden.relations.is_empty(), "a table grant does not help without USAGE");
    let sales = c.schemas.iter().find(|s| s.name == "sales").expect("sales");
    assert!(sales.usable);
    assert_eq!(sales.owner, "app");
    assert_eq!(sales.comment.as_deref(), Some("Sales data"));

    // Partitions are nested, not top level; inheritance children are ordinary tables.
    let mut want_top = vec![
        "big_orders",
        "cars",
        "customers",
        "daily",
        "events",
        "order",
        "order_lines",
        "orders",
        "remote_rates",
        "secrets",
        "staff",
        "vehicles",
    ];
    if version >= 120000 {
        want_top.extend(["regions", "stores"]);
        want_top.sort();
    }
    assert_eq!(top_level(&c, "sales"), want_top);

    // Every kind.
    let kinds = [
        ("customers", RelationKind::Table),
        ("events", RelationKind::PartitionedTable),
        ("big_orders", RelationKind::View),
        ("daily", RelationKind::MaterializedView),
        ("remote_rates", RelationKind::ForeignTable),
    ];
    for (name, kind) in kinds {
        assert_eq!(rel(&c, "sales", name).kind, kind, "{name}");
    }

    // Columns: ordinal order, format_type() spelling, enum/domain/array types, identity,
    // defaults, comments, awkward names.
    let customers = rel(&c, "sales", "customers");
    assert_eq!(
        column_names(customers),
        vec![
            "id",
            "tenant",
            "email",
            "select",
            "größe",
            "col \"quoted\" name",
            "mood",
            "qty",
            "tags",
            "matrix",
            "created_at"
        ]
    );
    let ty = |name: &str| customers.column(name).map(|c| c.type_name.as_str()).unwrap_or("?");
    assert_eq!(ty("größe"), "numeric(10,2)");
    assert_eq!(ty("col \"quoted\" name"), "character varying(20)");
    assert_eq!(ty("mood"), "sales.mood", "enum outside the search path");
    assert_eq!(ty("qty"), "sales.posint", "domain");
    assert_eq!(ty("tags"), "text[]");
    assert_eq!(ty("matrix"), "integer[]");
    assert_eq!(ty("created_at"), "timestamp with time zone");
    let id = customers.column("id").expect("id");
    assert_eq!(id.identity, Some(Identity::Always));
    assert!(!id.nullable);
    assert_eq!(id.default, None, "identity is not a default");
    let email = customers.column("email").expect("email");
    assert_eq!(email.comment.as_deref(), Some("Primary e-mail"));
    assert!(!email.nullable);
    assert!(customers.column("select").expect("select").nullable);
    assert_eq!(customers.column("created_at").and_then(|c| c.default.as_deref()), Some("now()"));
    assert_eq!(customers.column("qty").and_then(|c| c.default.as_deref()), Some("1"));
    assert_eq!(customers.comment.as_deref(), Some("People who buy"));
    assert_eq!(customers.owner, "app");
    assert_eq!(customers.primary_key.as_deref().expect("a primary key"), ["id"]);
    assert_eq!(customers.unique, vec![vec!["tenant".to_string(), "email".to_string()]]);
    assert_eq!(customers.row_estimate, Some(500), "analyzed");
    assert!(customers.size_bytes.is_some_and(|b| b >= 8192), "{:?}", customers.size_bytes);
    let expr_idx = customers.indexes.iter().find(|i| i.name == "customers_lower_email_idx").expect("expression index");
    assert!(expr_idx.columns.is_empty());
    assert!(expr_idx.expression.as_deref().is_some_and(|d| d.contains("lower(email)")), "{expr_idx:?}");
    let pk_idx = customers.indexes.iter().find(|i| i.primary).expect("pk index");
    assert_eq!(pk_idx.columns, vec!["id"]);
    assert!(pk_idx.unique);
    assert_eq!(pk_idx.method, "btree");

    // Never analyzed: no estimate, no size.
    let lines = rel(&c, "sales", "order_lines");
    assert_eq!(lines.row_estimate, None);
    assert_eq!(lines.size_bytes, None);
    assert_eq!(rel(&c, "sales", "big_orders").row_estimate, None);

    // Keys: composite and cross-schema foreign keys, actions, partial index.
    let orders = rel(&c, "sales", "orders");
    assert_eq!(orders.primary_key.as_deref().expect("a primary key"), ["tenant", "id"]);
    let fk = |r: &Relation, name: &str| {
        r.foreign_keys
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("fk {name} on {}: {:?}", r.name, r.foreign_keys))
    };
    let cur = fk(orders, "orders_currency_fk");
    assert_eq!((cur.ref_schema.as_str(), cur.ref_table.as_str()), ("ref", "currency"));
    assert_eq!(cur.columns, vec!["currency"]);
    assert_eq!(cur.ref_columns, vec!["code"]);
    let cust = fk(orders, "orders_customer_id_fkey");
    assert_eq!(cust.on_delete, FkAction::Cascade);
    assert_eq!(cust.on_update, FkAction::NoAction);
    assert_eq!(cust.ref_columns, vec!["id"]);
    let composite = fk(lines, "order_lines_order_fk");
    assert_eq!(composite.columns, vec!["tenant", "order_id"]);
    assert_eq!(
        (composite.ref_schema.as_str(), composite.ref_table.as_str(), composite.ref_columns.clone()),
        ("sales", "orders", vec!["tenant".into(), "id".into()])
    );
    let partial = orders.indexes.iter().find(|i| i.name == "orders_big_idx").expect("partial index");
    assert_eq!(partial.columns, vec!["customer_id"]);
    assert!(partial.predicate.as_deref().is_some_and(|p| p.contains("total > ")));
    if version >= 110000 {
        let cover = orders.indexes.iter().find(|i| i.name == "orders_cover_idx").expect("covering index");
        assert_eq!(cover.columns, vec!["tenant"]);
        assert_eq!(cover.include, vec!["total"]);
    }
    if version >= 120000 {
        let g = orders.column("total_x2").expect("generated column");
        let generated = g.generated.as_ref().expect("generated");
        assert_eq!(generated.kind, GeneratedKind::Stored);
        assert!(generated.expression.contains("total"), "{generated:?}");
        assert_eq!(g.default, None);
        // A foreign key to a partitioned table is one key, not one per partition.
        let stores = rel(&c, "sales", "stores");
        assert_eq!(stores.foreign_keys.len(), 1, "{:?}", stores.foreign_keys);
        assert_eq!(stores.foreign_keys[0].ref_table, "regions");
        let regions = rel(&c, "sales", "regions");
        assert_eq!(regions.partitions.len(), 2);
        assert!(regions.partition_key.as_deref().is_some_and(|k| k.starts_with("HASH")));
    }

    // Partitions and sub-partitions, recursively, with bounds.
    let events = rel(&c, "sales", "events");
    assert_eq!(events.partition_key.as_deref(), Some("RANGE (at)"));
    let parts: Vec<&str> = events.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(parts, vec!["events_2024", "events_2025"]);
    let y2024 = &events.partitions[0];
    assert_eq!(y2024.kind, RelationKind::PartitionedTable);
    assert_eq!(y2024.schema.as_deref(), Some("sales"));
    assert_eq!(y2024.partition_bound.as_deref(), Some("FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"));
    assert_eq!(y2024.partition_of.as_ref().map(|p| p.to_string()).as_deref(), Some("sales.events"));
    let subs: Vec<&str> = y2024.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(subs, vec!["events_2024_eu", "events_2024_us"]);
    assert_eq!(y2024.partitions[0].partition_bound.as_deref(), Some("FOR VALUES IN ('eu')"));
    assert_eq!(column_names(&y2024.partitions[0]), vec!["id", "at", "region"]);

    // Inheritance children.
    let cars = rel(&c, "sales", "cars");
    assert_eq!(cars.inherits.len(), 1);
    assert_eq!(cars.inherits[0].to_string(), "sales.vehicles");
    assert_eq!(column_names(cars), vec!["id", "wheels", "seats"]);
    assert!(cars.partition_of.is_none());

    // Foreign table, reserved-word and quoted names.
    let remote = rel(&c, "sales", "remote_rates");
    assert_eq!(remote.comment.as_deref(), Some("Rates from elsewhere"));
    assert_eq!(remote.size_bytes, None);
    assert_eq!(column_names(rel(&c, "sales", "order")), vec!["id"]);
    let odd = rel(&c, "Odd Schema \"q\"", "Table \"with\" quotes");
    assert_eq!(column_names(odd), vec!["user", "ünïcødé col", "has space"]);
    assert!(odd.selectable);

    // A table the user cannot read: listed, no columns or keys; one with column grants only.
    let secrets = rel(&c, "sales", "secrets");
    assert!(!secrets.selectable);
    assert!(secrets.columns.is_empty() && secrets.indexes.is_empty());
    let staff = rel(&c, "sales", "staff");
    assert!(staff.selectable && staff.columns_limited);
    assert_eq!(column_names(staff), vec!["id", "name"]);

    // The JSON matches the documented schema, round-trips, and is stable.
    let json: Value = serde_json::to_value(&c).expect("json");
    let problems = schema_check::validate(sluice_catalog::JSON_SCHEMA, &json);
    assert!(problems.is_empty(), "schema violations: {problems:#?}");
    let back = Catalog::from_json(c.to_json().as_bytes(), "snapshot").expect("round trip");
    assert_eq!(back, c);
    let again = discover_all(&mut session).await;
    assert!(diff(&c, &again).is_empty());
    let mut same_time = again.clone();
    same_time.discovered_at = c.discovered_at.clone();
    assert_eq!(same_time.to_json(), c.to_json(), "byte-stable output");

    // Human rendering names what matters.
    let text = render_human(&c);
    for needle in [
        "schema hidden (owner app)  [no USAGE",
        "table secrets (owner app)  [no SELECT]",
        "  partitioned table events (owner app), partitioned by RANGE (at)",
        "    partitioned table sales.events_2024 (owner app), FOR VALUES FROM",
        "foreign key orders_currency_fk (currency) -> ref.currency (code)",
        "    index customers_lower_email_idx btree (lower(email))\n",
        "    index orders_big_idx btree (customer_id) where (total > (100)::numeric)\n",
        "-- People who buy",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }

    let email_line = text.lines().find(|l| l.trim_start().starts_with("email ")).expect("email column line");
    assert!(email_line.ends_with("text                      not null  -- Primary e-mail"), "{email_line:?}");
    assert!(text.lines().all(|l| l == l.trim_end()), "no trailing blanks");

    // The session is still usable afterwards.
    still_usable(&mut session).await;
}

#[tokio::test]
async fn schema_filter_and_its_errors() {
    let (cluster, _) = shop_cluster();
    let mut session = connect_as(&cluster, "reader").await;
    let only = |names: &[&str]| DiscoverOptions {
        schemas: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let c = discover(&mut session, &only(&["ref", "Odd Schema \"q\""])).await.expect("filtered");
    let names: Vec<&str> = c.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["Odd Schema \"q\"", "ref"]);
    assert_eq!(c.schema_filter, vec!["Odd Schema \"q\"", "ref"]);
    assert_eq!(top_level(&c, "ref"), vec!["currency"]);

    // A cross-schema foreign key into a schema outside the filter still names its target.
    let c = discover(&mut session, &only(&["sales"])).await.expect("sales");
    let orders = rel(&c, "sales", "orders");
    let cur = orders.foreign_keys.iter().find(|f| f.name == "orders_currency_fk").expect("fk");
    assert_eq!((cur.ref_schema.as_str(), cur.ref_table.as_str()), ("ref", "currency"));
    assert_eq!(cur.ref_columns, vec!["code"]);

    let e = discover(&mut session, &only(&["sales", "nope", "pg_catalog"])).await.expect_err("unknown schemas");
    match &e {
        CatalogError::SchemaNotFound { names } => assert_eq!(names, &vec!["nope", "pg_catalog"]),
        other => panic!("expected SchemaNotFound, got {other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.hint().is_some());
    let e = discover(&mut session, &only(&[""])).await.expect_err("empty name");
    assert!(matches!(e, CatalogError::InvalidSchemaName { .. }), "{e:?}");
    // A name that tries to break out of its literal is only ever a name.
    let e = discover(&mut session, &only(&["x') OR true --"])).await.expect_err("no such schema");
    assert!(matches!(e, CatalogError::SchemaNotFound { .. }), "{e:?}");
    still_usable(&mut session).await;
}

#[tokio::test]
async fn table_recreated_by_another_role_reports_lost_access_for_exactly_it() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", PW).expect("reader");
    cluster.create_login("other", PW).expect("other");
    cluster.create_database(DB).expect("database");
    cluster
        .psql(
            DB,
            "CREATE SCHEMA app; GRANT USAGE, CREATE ON SCHEMA app TO other; GRANT USAGE ON SCHEMA app TO reader;\n\
             CREATE TABLE app.keep (id int); CREATE TABLE app.also (id int);\n\
             GRANT SELECT ON app.keep, app.also TO reader;\n\
             SET ROLE other; CREATE TABLE app.audit (id int, msg text); GRANT SELECT ON app.audit TO reader; RESET ROLE;",
        )
        .expect("fixture");
    let mut session = connect_as(&cluster, "reader").await;
    let before = discover_all(&mut session).await;
    assert!(rel(&before, "app", "audit").selectable);

    cluster
        .psql_as("other", PW, DB, "DROP TABLE app.audit; CREATE TABLE app.audit (id int, msg text, at timestamptz);")
        .expect("recreate");
    let after = discover_all(&mut session).await;
    let d = diff(&before, &after);
    let lost: Vec<String> = d.lost_access.iter().map(|r| format!("{}.{}", r.schema, r.name)).collect();
    assert_eq!(lost, vec!["app.audit"]);
    assert!(
        d.added_relations.is_empty()
            && d.removed_relations.is_empty()
            && d.gained_access.is_empty()
            && d.changed_relations.is_empty()
            && d.added_schemas.is_empty()
            && d.removed_schemas.is_empty(),
        "{d:#?}"
    );
    assert_eq!(render_diff_human(&d), "! lost access to table app.audit\n");

    // Granting again brings it back, with the new column.
    cluster.psql_as("other", PW, DB, "GRANT SELECT ON app.audit TO reader;").expect("grant");
    let regranted = discover_all(&mut session).await;
    let d = diff(&after, &regranted);
    assert_eq!(d.gained_access.len(), 1);
    let d = diff(&before, &regranted);
    assert!(d.lost_access.is_empty());
    assert_eq!(d.changed_relations.len(), 1);
    assert_eq!(d.changed_relations[0].added_columns[0].name, "at");

    // Revoking USAGE on the schema hides every table in it.
    cluster.psql(DB, "REVOKE USAGE ON SCHEMA app FROM reader;").expect("revoke usage");
    let no_usage = discover_all(&mut session).await;
    let d = diff(&regranted, &no_usage);
    assert_eq!(d.lost_usage, vec!["app"]);
    assert_eq!(d.lost_access.len(), 3, "{d:#?}");
    assert!(d.removed_relations.is_empty());
}

#[tokio::test]
async fn a_failing_catalog_query_rolls_back_and_leaves_the_session_usable() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", PW).expect("reader");
    cluster.create_database(DB).expect("database");
    cluster
        .psql(DB, "CREATE TABLE t (a int DEFAULT 1); REVOKE SELECT ON pg_catalog.pg_attrdef FROM PUBLIC;")
        .expect("fixture");
    let mut session = connect_as(&cluster, "reader").await;
    let e = discover(&mut session, &DiscoverOptions::default()).await.expect_err("pg_attrdef is not readable");
    assert_eq!(e.sqlstate(), Some("42501"), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Database);
    assert!(e.hint().unwrap_or_default().contains("catalog"), "{e:?}");
    still_usable(&mut session).await;
}

#[tokio::test]
async fn through_pgbouncer_in_transaction_mode_with_the_session_limits() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", PW).expect("reader");
    cluster.create_database(DB).expect("database");
    cluster
        .psql(
            DB,
            "CREATE TABLE public.people (id int PRIMARY KEY, email text);\n\
             CREATE INDEX people_lower_email ON public.people (lower(email));\n\
             GRANT SELECT ON public.people TO reader;",
        )
        .expect("fixture");
    let bouncer = PgBouncer::start(
        &cluster,
        PgBouncerOptions { users: vec![("reader".into(), PW.into())], default_pool_size: 1, ..Default::default() },
    )
    .expect("pgbouncer");
    let mut spec = SourceSpec::new(bouncer.host(), DB, "reader");
    spec.hosts[0].port = bouncer.port();
    spec.password = Some(Secret::new(PW));
    spec.sslmode = SslMode::Disable;
    spec.pgbouncer = true;
    let limits = SessionSettings { lock_timeout: Duration::from_millis(200), ..Default::default() };
    let mut session =
        Connector::new(spec).expect("connector").with_settings(limits).connect().await.expect("through pgbouncer");

    let first = discover_all(&mut session).await;
    // One server connection whatever the size: a second would wait for the pool's only one.
    let asked = Arc::new(AtomicBool::new(false));
    let flag = asked.clone();
    let second: GetSecondSession = Box::pin(async move {
        flag.store(true, Ordering::SeqCst);
        None
    });
    let shared = DiscoverOptions { share_above: 0, ..Default::default() };
    let c = discover_sharing(&mut session, &shared, second).await.expect("shared through pgbouncer");
    assert!(!asked.load(Ordering::SeqCst), "no second session behind PgBouncer");
    assert_eq!(timeless(&c), timeless(&first));
    let people = rel(&first, "public", "people");
    let idx = people.indexes.iter().find(|i| i.name == "people_lower_email").expect("index");
    assert!(idx.expression.as_deref().is_some_and(|d| d.contains("lower(email)")), "{idx:?}");
    assert!(diff(&first, &discover_all(&mut session).await).is_empty());

    // Naming an expression index's keys takes a brief lock on its table. Behind PgBouncer the
    // session carries no limits of its own: only the batch's SET LOCAL lock_timeout stops the
    // wait (without it, discovery would wait for the holder and then succeed).
    let (holder, connection) =
        tokio_postgres::connect(&cluster.superuser_url(DB), tokio_postgres::NoTls).await.expect("lock holder");
    let holder_task = tokio::spawn(connection);
    holder.batch_execute("BEGIN; LOCK TABLE public.people IN ACCESS EXCLUSIVE MODE").await.expect("take the lock");
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        let _ = holder.batch_execute("COMMIT").await;
        holder
    });
    let e = discover(&mut session, &DiscoverOptions::default()).await.expect_err("lock_timeout");
    assert_eq!(e.sqlstate(), Some("55P03"), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.hint().unwrap_or_default().contains("locked"), "{e:?}");
    releaser.abort();
    holder_task.abort();

    // The failed transaction was rolled back: the session (and PgBouncer's server connection)
    // is clean and discovery works again.
    let again = discover_all(&mut session).await;
    assert!(diff(&first, &again).is_empty());
}

/// Polls `sql` (run as the superuser) until it returns `want`, failing after `within`.
async fn wait_for(cluster: &Cluster, sql: &str, want: &str, within: Duration, what: &str) {
    let started = std::time::Instant::now();
    loop {
        let got = cluster.psql(DB, sql).expect("psql");
        if got == want {
            return;
        }
        assert!(started.elapsed() < within, "{what}: `{sql}` still says {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A discovery dropped mid-flight leaves its transaction open on the server; the pool's reset must
/// end it before the session is handed out again, so the next borrower is never inside it.
async fn a_dropped_discovery_leaves_no_transaction_behind(pgbouncer: bool) {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", PW).expect("reader");
    cluster.create_database(DB).expect("database");
    cluster
        .psql(
            DB,
            "CREATE TABLE public.people (id int PRIMARY KEY, email text);\n\
             CREATE INDEX people_lower_email ON public.people (lower(email));\n\
             GRANT SELECT ON public.people TO reader;",
        )
        .expect("fixture");
    let bouncer = pgbouncer.then(|| {
        PgBouncer::start(
            &cluster,
            PgBouncerOptions { users: vec![("reader".into(), PW.into())], default_pool_size: 1, ..Default::default() },
        )
        .expect("pgbouncer")
    });
    let mut spec = SourceSpec::new(cluster.host(), DB, "reader");
    spec.hosts[0].port = bouncer.as_ref().map_or(cluster.port(), PgBouncer::port);
    spec.password = Some(Secret::new(PW));
    spec.sslmode = SslMode::Disable;
    spec.pgbouncer = pgbouncer;
    // Long enough that the discovery is still waiting on the lock when it is dropped.
    let limits = SessionSettings { lock_timeout: Duration::from_secs(60), ..Default::default() };
    let pool = Pool::new(
        Connector::new(spec).expect("connector").with_settings(limits),
        PoolOptions { max_size: 1, ..Default::default() },
    );
    let reader_backends =
        |state: &str| format!("SELECT count(*) FROM pg_stat_activity WHERE usename = 'reader' AND state = '{state}'");

    // Naming the expression index's keys waits behind this lock, inside the discovery's
    // transaction.
    let (holder, connection) =
        tokio_postgres::connect(&cluster.superuser_url(DB), tokio_postgres::NoTls).await.expect("lock holder");
    let holder_task = tokio::spawn(connection);
    holder.batch_execute("BEGIN; LOCK TABLE public.people IN ACCESS EXCLUSIVE MODE").await.expect("take the lock");

    let mut session = pool.get().await.expect("session");
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'reader' AND wait_event_type = 'Lock'";
    let old_xact_start = {
        let options = DiscoverOptions::default();
        let discovery = discover(&mut session, &options);
        tokio::pin!(discovery);
        tokio::select! {
            r = &mut discovery => panic!("the discovery ended while the lock was held: {r:?}"),
            () = wait_for(&cluster, waiting, "1", Duration::from_secs(20), "the discovery waits on the lock") => {}
        }
        cluster
            .psql(DB, "SELECT xact_start FROM pg_stat_activity WHERE usename = 'reader' AND wait_event_type = 'Lock'")
            .expect("the discovery's transaction")
        // The discovery future is dropped here, mid-flight.
    };
    holder.batch_execute("COMMIT").await.expect("release the lock");
    // The server finishes the abandoned batch and then idles inside its transaction.
    wait_for(&cluster, &reader_backends("idle in transaction"), "1", Duration::from_secs(20), "left open").await;
    drop(session);

    let mut next = pool.get().await.expect("the same session, reset");
    assert_eq!(
        cluster.psql(DB, &reader_backends("idle in transaction")).expect("activity"),
        "0",
        "the reset ended the abandoned transaction before handing the session out"
    );
    let tx = next.read_only_transaction().await.expect("a transaction of its own");
    let rows = tx
        .client()
        .simple_query(
            "SELECT current_setting('transaction_isolation'), \
             (SELECT xact_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()), \
             current_setting('max_parallel_workers_per_gather')",
        )
        .await
        .expect("inspect");
    let row: Vec<String> = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..3).map(|i| r.get(i).unwrap_or_default().to_string()).collect())
            }
            _ => None,
        })
        .expect("a row");
    // The discovery's transaction was REPEATABLE READ with parallel workers off.
    assert_eq!(row[0], "read committed", "{row:?}");
    assert_ne!(row[1], old_xact_start, "a new transaction, not the discovery's");
    assert_ne!(row[2], "0", "{row:?}");
    tx.rollback().await.expect("rollback");
    drop(next);

    // And the pool's session still discovers.
    let mut again = pool.get().await.expect("session");
    let c = discover_all(&mut again).await;
    assert!(c.relation("public", "people").is_some());
    holder_task.abort();
}

#[tokio::test]
async fn a_dropped_discovery_leaves_no_transaction_behind_directly() {
    a_dropped_discovery_leaves_no_transaction_behind(false).await;
}

#[tokio::test]
async fn a_dropped_discovery_leaves_no_transaction_behind_through_pgbouncer() {
    a_dropped_discovery_leaves_no_transaction_behind(true).await;
}

/// The fixture on a cluster that logs every statement with the backend's PID first, so a test
/// can tell which session ran what.
fn logged_shop_cluster() -> Cluster {
    let cluster = Cluster::start(ClusterOptions {
        settings: vec![("log_statement".into(), "all".into()), ("log_line_prefix".into(), "pid=%p ".into())],
        ..Default::default()
    })
    .expect("cluster");
    let version = cluster.version_num().expect("version");
    cluster.create_login("reader", PW).expect("reader");
    cluster.create_database(DB).expect("database");
    cluster.psql(DB, &fixture(version)).expect("fixture");
    cluster
}

/// The catalog as JSON, without the time it was read.
fn timeless(c: &Catalog) -> Value {
    let mut v = serde_json::to_value(c).expect("json");
    v["discovered_at"] = Value::Null;
    v
}

/// A second session as `discover_sharing` asks for it (by polling): first `before` runs as the superuser (if
/// given), then a session of `reader` on `database` comes. Its backend's PID goes to `pid` (0 if
/// it was never asked for).
fn second_session(
    cluster: &Cluster,
    database: &'static str,
    before: Option<&'static str>,
    pid: Arc<AtomicI32>,
) -> GetSecondSession {
    let superuser = cluster.superuser_url(DB);
    let mut spec = SourceSpec::new(cluster.host(), database, "reader");
    spec.hosts[0].port = cluster.port();
    spec.password = Some(Secret::new(PW));
    spec.sslmode = SslMode::Disable;
    Box::pin(async move {
        if let Some(sql) = before {
            let (client, connection) =
                tokio_postgres::connect(&superuser, tokio_postgres::NoTls).await.expect("superuser");
            let task = tokio::spawn(connection);
            client.batch_execute(sql).await.expect("the change made meanwhile");
            drop(client);
            let _ = task.await;
        }
        let session = Connector::new(spec).expect("connector").connect().await.expect("second session");
        pid.store(session.info().backend_pid, Ordering::SeqCst);
        Some(SecondSession::Own(session))
    })
}

/// What a backend was logged doing (`log_line_prefix` 'pid=%p ') after the log's first `since`
/// bytes, each entry with the lines of a statement that follow its first.
fn logged_by(cluster: &Cluster, pid: i32, since: usize) -> String {
    let prefix = format!("pid={pid} ");
    let mut theirs = false;
    let mut out = String::new();
    for line in cluster.log().get(since..).unwrap_or_default().lines() {
        if line.starts_with("pid=") {
            theirs = line.starts_with(&prefix);
        }
        if theirs {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn a_catalog_shared_with_a_second_session_is_the_same_catalog_from_the_same_snapshot() {
    let cluster = logged_shop_cluster();
    let mut session = connect_as(&cluster, "reader").await;
    let first_pid = session.info().backend_pid;
    let alone = discover_all(&mut session).await;
    let shared = DiscoverOptions { share_above: 0, ..Default::default() };
    let since = cluster.log().len();

    // The second session runs its half on the first one's snapshot: an index and a constraint
    // added after the export (and committed before the import) are not seen by either half.
    let pid = Arc::new(AtomicI32::new(0));
    let change = "CREATE INDEX orders_total_idx ON sales.orders (total); \
                  ALTER TABLE sales.orders ADD CONSTRAINT orders_id_key UNIQUE (id); \
                  COMMENT ON TABLE sales.orders IS 'changed meanwhile'";
    let second = second_session(&cluster, DB, Some(change), pid.clone());
    let c = discover_sharing(&mut session, &shared, second).await.expect("shared discovery");
    let second_pid = pid.load(Ordering::SeqCst);
    assert_ne!(second_pid, 0, "the second session was asked for");
    assert_eq!(timeless(&c), timeless(&alone), "the same catalog, as of the first session's snapshot");
    let helper_log = logged_by(&cluster, second_pid, since);
    assert!(helper_log.contains("SET TRANSACTION SNAPSHOT"), "the snapshot was imported:\n{helper_log}");
    assert!(helper_log.contains("pg_catalog.pg_constraint"), "the second session read the constraints:\n{helper_log}");
    assert!(
        !logged_by(&cluster, first_pid, since).contains("pg_catalog.pg_constraint"),
        "the first session did not read them too"
    );
    // A discovery now sees the change: it was there to be missed.
    let after = discover_all(&mut session).await;
    let orders = rel(&after, "sales", "orders");
    assert!(orders.indexes.iter().any(|i| i.name == "orders_total_idx"), "{:?}", orders.indexes);
    assert_eq!(orders.comment.as_deref(), Some("changed meanwhile"));
    still_usable(&mut session).await;
}

#[tokio::test]
async fn a_shared_discovery_without_a_usable_second_session_runs_on_the_first() {
    let cluster = logged_shop_cluster();
    cluster.create_database("other").expect("another database");
    let mut session = connect_as(&cluster, "reader").await;
    let first_pid = session.info().backend_pid;
    let alone = discover_all(&mut session).await;
    let shared = DiscoverOptions { share_above: 0, ..Default::default() };

    // None to be had.
    let none: GetSecondSession = Box::pin(async { None });
    let c = discover_sharing(&mut session, &shared, none).await.expect("no second session");
    assert_eq!(timeless(&c), timeless(&alone));

    // One that cannot import the snapshot (another database's session): the first runs it all.
    let pid = Arc::new(AtomicI32::new(0));
    let second = second_session(&cluster, "other", None, pid.clone());
    let c = discover_sharing(&mut session, &shared, second).await.expect("a refused import");
    assert_ne!(pid.load(Ordering::SeqCst), 0, "the second session was asked for");
    assert_eq!(timeless(&c), timeless(&alone));
    let log = cluster.log();
    assert!(log.contains("cannot import a snapshot from a different database"), "the import was refused:\n{log}");
    assert!(!logged_by(&cluster, pid.load(Ordering::SeqCst), 0).contains("pg_catalog.pg_constraint"));

    // A small catalog (under the default threshold) never asks for one.
    let since = cluster.log().len();
    let pid = Arc::new(AtomicI32::new(0));
    let second = second_session(&cluster, DB, None, pid.clone());
    let c = discover_sharing(&mut session, &DiscoverOptions::default(), second).await.expect("small");
    assert_eq!(pid.load(Ordering::SeqCst), 0, "not asked for");
    assert_eq!(timeless(&c), timeless(&alone));
    let first_log = logged_by(&cluster, first_pid, since);
    assert!(first_log.contains("pg_catalog.pg_constraint"), "{first_log}");
    still_usable(&mut session).await;
}
