//! Guardrail: every migration exists for both backends under the same name, so the two schemas
//! move together.

use std::collections::BTreeSet;
use std::path::Path;

fn names(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = names("sqlite");
    let postgres = names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres, "migrations/sqlite and migrations/postgres must hold the same file names");
    for name in &sqlite {
        let (version, rest) = name.split_once('_').unwrap_or_else(|| panic!("{name}: name it NNNN_what.sql"));
        assert!(version.len() == 4 && version.bytes().all(|b| b.is_ascii_digit()), "{name}: a 4-digit version first");
        assert!(rest.ends_with(".sql") && rest.len() > 4, "{name}: a .sql file with a name");
    }
}
