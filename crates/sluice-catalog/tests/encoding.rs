//! Discovery in databases whose server encoding is not UTF8: a `SQL_ASCII` database holding
//! Latin-1 bytes in names, comments and defaults (discovery succeeds and flags exactly the
//! objects concerned), and LATIN1 / WIN1252 databases, which the server converts for us.

mod schema_check;

use std::collections::BTreeSet;

use sluice_catalog::{discover, render_human, Catalog, DiscoverOptions, Relation};
use sluice_connect::{Connector, ReadOnlySession};
use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_testkit::Cluster;

const PW: &str = "reader-pw";

async fn connect(cluster: &Cluster, db: &str) -> ReadOnlySession {
    let mut spec = SourceSpec::new(cluster.host(), db, "reader");
    spec.hosts[0].port = cluster.port();
    spec.password = Some(Secret::new(PW));
    spec.sslmode = SslMode::Disable;
    spec.connect_timeout_secs = 10;
    Connector::new(spec).expect("connector").connect().await.expect("connect")
}

/// `schema`, `schema.relation` and `schema.relation.column` of every flagged object.
fn flagged(c: &Catalog) -> BTreeSet<String> {
    fn walk(schema: &str, r: &Relation, out: &mut BTreeSet<String>) {
        if r.lossy_text {
            out.insert(format!("{schema}.{}", r.name));
        }
        for col in r.columns.iter().filter(|c| c.lossy_text) {
            out.insert(format!("{schema}.{}.{}", r.name, col.name));
        }
        for p in &r.partitions {
            walk(schema, p, out);
        }
    }
    let mut out = BTreeSet::new();
    for s in &c.schemas {
        if s.lossy_text {
            out.insert(s.name.to_string());
        }
        for r in &s.relations {
            walk(&s.name, r, &mut out);
        }
    }
    out
}

/// In a SQL_ASCII database, `chr(n)` is the single byte n: the statements stay ASCII and the
/// catalog gets Latin-1 bytes (0xe9 `é`, 0xef `ï`, 0xe8 `è`), which are not UTF-8.
const SQL_ASCII_FIXTURE: &str = r#"
CREATE SCHEMA clean;
CREATE TABLE clean.ok (id int PRIMARY KEY, note text);
COMMENT ON TABLE clean.ok IS 'nothing odd here';
CREATE SCHEMA app;
DO $$
DECLARE
  cafe text := 'caf' || chr(233);
  naive text := 'na' || chr(239) || 've';
BEGIN
  EXECUTE format('CREATE TABLE app.%I (id int PRIMARY KEY, %I text, price int)', cafe, naive);
  EXECUTE format('COMMENT ON TABLE app.%I IS %L', cafe, 'menu du ' || cafe);
  EXECUTE format('CREATE TABLE app.menu (plat text DEFAULT %L, prix int, note text)', 'cr' || chr(232) || 'me');
  EXECUTE format('COMMENT ON TABLE app.menu IS %L', 'plat du jour: ' || chr(233) || 't' || chr(233));
  EXECUTE format('COMMENT ON COLUMN app.menu.note IS %L', 'tr' || chr(232) || 's bon');
  EXECUTE format('CREATE TABLE app.refs (id int, cafe_id int REFERENCES app.%I (id))', cafe);
  -- A type's name is named by the server too, once for all its columns.
  EXECUTE format('CREATE DOMAIN app.%I AS numeric(8,2)', 'd' || chr(233) || 'cimal');
  EXECUTE format('CREATE TABLE app.ledger (amount app.%I, again app.%I, total numeric(8,2))',
                 'd' || chr(233) || 'cimal', 'd' || chr(233) || 'cimal');
  EXECUTE format('CREATE SCHEMA %I', 'r' || chr(233) || 'serve');
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO reader', 'r' || chr(233) || 'serve');
  -- UTF-8 bytes are text as they are, in a SQL_ASCII database too.
  EXECUTE format('CREATE TABLE app.%I (n int)', convert_from('\x6772c3b6c39f65', 'SQL_ASCII'));
END $$;
GRANT USAGE ON SCHEMA clean, app TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA clean, app TO reader;
"#;

fn cluster_with_reader() -> Cluster {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", PW).expect("reader");
    cluster
}

#[tokio::test]
async fn sql_ascii_with_latin1_bytes_is_discovered_and_exactly_the_affected_objects_are_flagged() {
    let cluster = cluster_with_reader();
    cluster.create_database_with_encoding("legacy", "SQL_ASCII").expect("database");
    cluster.psql("legacy", SQL_ASCII_FIXTURE).expect("fixture");
    let mut session = connect(&cluster, "legacy").await;
    let c = discover(&mut session, &DiscoverOptions::default()).await.expect("discovery must not fail on one bad byte");

    let want: BTreeSet<String> = [
        "app.caf\u{FFFD}",              // its name (and comment)
        "app.caf\u{FFFD}.na\u{FFFD}ve", // its name
        "app.menu",                     // its comment
        "app.menu.plat",                // its default
        "app.menu.note",                // its comment
        "app.refs",                     // its foreign key names app.caf\xe9
        "app.ledger.amount",            // its type's name
        "app.ledger.again",             // the same type
        "r\u{FFFD}serve",               // its name
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(flagged(&c), want);
    assert!(c.lossy_text, "the snapshot says some text was lossy");

    let cafe = c.relation("app", "caf\u{FFFD}").expect("café");
    assert_eq!(cafe.comment.as_deref(), Some("menu du caf\u{FFFD}"));
    assert_eq!(cafe.primary_key.as_deref().expect("a primary key"), ["id"]);
    let menu = c.relation("app", "menu").expect("menu");
    assert_eq!(menu.comment.as_deref(), Some("plat du jour: \u{FFFD}t\u{FFFD}"));
    assert_eq!(menu.column("plat").and_then(|p| p.default.as_deref()), Some("'cr\u{FFFD}me'::text"));
    assert!(!menu.column("prix").expect("prix").lossy_text);
    let refs = c.relation("app", "refs").expect("refs");
    assert_eq!(refs.foreign_keys[0].ref_table, "caf\u{FFFD}");
    let ledger = c.relation("app", "ledger").expect("ledger");
    let types: Vec<&str> = ledger.columns.iter().map(|c| c.type_name.as_str()).collect();
    assert_eq!(types, ["app.\"d\u{FFFD}cimal\"", "app.\"d\u{FFFD}cimal\"", "numeric(8,2)"]);
    assert!(!ledger.column("total").expect("total").lossy_text);
    let grosse = c.relation("app", "größe").expect("UTF-8 bytes decode as they are");
    assert!(!grosse.lossy_text);
    let ok = c.relation("clean", "ok").expect("clean.ok");
    assert_eq!(ok.comment.as_deref(), Some("nothing odd here"));

    // The flags are in the documented JSON shape; clean objects carry no flag at all.
    let json: serde_json::Value = serde_json::from_str(&c.to_json()).expect("json");
    let problems = schema_check::validate(sluice_catalog::JSON_SCHEMA, &json);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(json["lossy_text"], true);
    let clean = json["schemas"].as_array().expect("schemas").iter().find(|s| s["name"] == "clean").expect("clean");
    assert!(clean.get("lossy_text").is_none() && clean["relations"][0].get("lossy_text").is_none());
    let back = Catalog::from_json(c.to_json().as_bytes(), "snapshot").expect("read back");
    assert_eq!(back, c);

    let text = render_human(&c);
    assert!(text.contains("note: some names, comments or expressions are not valid UTF-8"), "{text}");
    assert!(text.contains("table caf\u{FFFD} (owner postgres)"), "{text}");

    // A schema filter over the same database finds the clean schema and still flags nothing there.
    let only = discover(&mut session, &DiscoverOptions { schemas: vec!["clean".into()], ..Default::default() })
        .await
        .expect("filtered");
    assert!(flagged(&only).is_empty() && !only.lossy_text);
}

#[tokio::test]
async fn latin1_and_win1252_databases_are_converted_by_the_server() {
    let cluster = cluster_with_reader();
    for (db, encoding, comment) in [("l1", "LATIN1", "crème brûlée"), ("w1252", "WIN1252", "prix en € — 5 €")]
    {
        cluster.create_database_with_encoding(db, encoding).expect("database");
        cluster
            .psql(
                db,
                &format!(
                    "SET client_encoding = 'UTF8';
                     CREATE TABLE \"café\" (\"naïve\" text DEFAULT 'déjà');
                     COMMENT ON TABLE \"café\" IS '{comment}';
                     GRANT SELECT ON \"café\" TO reader;"
                ),
            )
            .expect("fixture");
        let mut session = connect(&cluster, db).await;
        let c = discover(&mut session, &DiscoverOptions::default()).await.expect("discover");
        let cafe = c.relation("public", "café").unwrap_or_else(|| panic!("{encoding}: café"));
        assert_eq!(cafe.comment.as_deref(), Some(comment), "{encoding}");
        let col = cafe.column("naïve").unwrap_or_else(|| panic!("{encoding}: naïve"));
        assert_eq!(col.default.as_deref(), Some("'déjà'::text"), "{encoding}");
        assert!(flagged(&c).is_empty() && !c.lossy_text, "{encoding}: nothing is lossy");
        assert!(!render_human(&c).contains("not valid UTF-8"), "{encoding}");
    }
}
