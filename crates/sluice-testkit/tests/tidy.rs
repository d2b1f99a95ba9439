//! Guardrails: every crate says what it owns in a `//!` doc, and ARCHITECTURE.md's codemap lists
//! every crate.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(workspace_root().join("crates"))
        .expect("crates dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

#[test]
fn every_crate_opens_with_a_module_doc() {
    for (name, dir) in crates() {
        let root = ["src/lib.rs", "src/main.rs"].iter().map(|f| dir.join(f)).find(|p| p.is_file());
        let root = root.unwrap_or_else(|| panic!("{name} has neither src/lib.rs nor src/main.rs"));
        let text = std::fs::read_to_string(&root).expect("read");
        assert!(
            text.trim_start().starts_with("//!"),
            "{} must open with a //! doc saying what it owns and must not do",
            root.display()
        );
        assert!(
            text.contains("Must not") || text.contains("must not"),
            "{}'s doc must say what it must not do",
            root.display()
        );
    }
}

#[test]
fn the_codemap_lists_every_crate() {
    let map = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for (name, _) in crates() {
        assert!(map.contains(&format!("`crates/{name}`")), "ARCHITECTURE.md has no codemap entry for crates/{name}");
    }
}
