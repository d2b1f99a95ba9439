//! `sluice rotate-master-key` as a process against real stores: after a rotation the store opens
//! with the new key only and every secret still decrypts; a wrong current key changes nothing;
//! a rotation interrupted at either step is settled by the next start, which says so.

use std::path::Path;
use std::process::{Command, Output};

use sluice_core::{Secret, SourceId, SourceSpec};
use sluice_store::{KeyConfig, MasterKey, Store, KEY_FILE_NAME};

const PASSWORD: &str = "s3cret-source-pw";

fn sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env_remove("SLUICE_MASTER_KEY").env_remove("SLUICE_NEW_MASTER_KEY").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

fn id() -> SourceId {
    "shop".parse().expect("id")
}

/// Registers a source with a password in the store at `target`.
fn seed(target: &str, key: KeyConfig) {
    block_on(async {
        let store = Store::open(target, key).await.expect("store");
        let mut spec = SourceSpec::new("db.internal", "shop", "ro");
        spec.password = Some(Secret::new(PASSWORD));
        let (settings, secrets) = spec.split();
        store.put_source(&id(), "Shop", &settings, &secrets).await.expect("source");
        store.close().await;
    })
}

/// Opens the store with `key` and returns the source's password, or the error.
fn password_with(target: &str, key: KeyConfig) -> Result<String, String> {
    block_on(async {
        let store = Store::open(target, key).await.map_err(|e| e.to_string())?;
        let spec = store.source_spec(&id()).await.map_err(|e| e.to_string());
        store.close().await;
        spec?.password.map(|p| p.expose().to_string()).ok_or_else(|| "no password".into())
    })
}

fn key_file(data: &Path) -> String {
    std::fs::read_to_string(data.join(KEY_FILE_NAME)).expect("key file")
}

fn pending(data: &Path) -> std::path::PathBuf {
    sluice_store::seal::pending_key_path(&data.join(KEY_FILE_NAME))
}

#[test]
fn rotating_the_key_file_keeps_every_secret_and_retires_the_old_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let target = data.display().to_string();
    seed(&target, KeyConfig::DataDir);
    let old_text = key_file(&data);
    let old = MasterKey::read_file(&data.join(KEY_FILE_NAME)).expect("old key");

    let out = sluice(&["rotate-master-key", "--data-dir", &target], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("key id {} →", old.id())), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "the key file's key is never printed: {}", text(&out.stdout));
    assert_ne!(key_file(&data), old_text);
    assert!(!pending(&data).exists(), "the new key file was renamed over the old one");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join(KEY_FILE_NAME)).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    assert_eq!(password_with(&target, KeyConfig::DataDir).as_deref(), Ok(PASSWORD));
    let refused = password_with(&target, KeyConfig::Key(old)).expect_err("the old key is retired");
    assert!(refused.contains("key"), "{refused}");
    let audited = block_on(async {
        let store = Store::open(&target, KeyConfig::DataDir).await.expect("store");
        let filter = sluice_store::AuditFilter { kind: Some("store.master_key_rotated".into()), ..Default::default() };
        let page = store.audit(&filter).await.expect("audit");
        store.close().await;
        page.entries
    });
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].actor, "cli");
}

#[test]
fn a_wrong_current_key_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let target = data.display().to_string();
    seed(&target, KeyConfig::DataDir);
    let before = key_file(&data);
    let wrong = MasterKey::generate().expect("key").to_base64().to_string();
    let new = MasterKey::generate().expect("key").to_base64().to_string();

    for env in [
        vec![("SLUICE_MASTER_KEY", wrong.as_str())],
        vec![("SLUICE_MASTER_KEY", wrong.as_str()), ("SLUICE_NEW_MASTER_KEY", new.as_str())],
        vec![("SLUICE_NEW_MASTER_KEY", new.as_str())],
        vec![("SLUICE_MASTER_KEY", "not base64!")],
    ] {
        let out = sluice(&["rotate-master-key", "--data-dir", &target], &env);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{env:?}: no key is printed");
        assert_eq!(key_file(&data), before, "{env:?}");
        assert!(!pending(&data).exists(), "{env:?}");
    }
    assert_eq!(password_with(&target, KeyConfig::DataDir).as_deref(), Ok(PASSWORD));
    let missing = dir.path().join("nothing-here").display().to_string();
    let out = sluice(&["rotate-master-key", "--data-dir", &missing], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new(&missing).join("sluice.db").exists(), "a rotation never creates a store");
}

#[test]
fn a_key_from_the_environment_rotates_to_a_given_or_printed_key_in_a_postgresql_store() {
    let cluster = sluice_testkit::Cluster::start_default().expect("cluster");
    if cluster.version_num().expect("version") < 120_000 {
        return; // a store below PostgreSQL 12 is refused
    }
    cluster.create_database("sluice_store").expect("database");
    let url = cluster.superuser_url("sluice_store");
    let k1 = MasterKey::generate().expect("key");
    seed(&url, KeyConfig::Key(k1.clone()));
    let k1_text = k1.to_base64().to_string();

    // No new key given: one is generated and printed once, on the last line.
    let out = sluice(&["rotate-master-key", "--store", &url], &[("SLUICE_MASTER_KEY", &k1_text)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("secret store"), "{}", text(&out.stderr));
    let k2_text = text(&out.stdout).lines().last().expect("the new key").to_string();
    let k2 = MasterKey::from_base64(&k2_text).expect("a key");
    assert_eq!(password_with(&url, KeyConfig::Key(k2.clone())).as_deref(), Ok(PASSWORD));
    assert!(password_with(&url, KeyConfig::Key(k1.clone())).is_err(), "the old key is retired");

    // The old key again: refused, nothing changes.
    let k3 = MasterKey::generate().expect("key");
    let k3_text = k3.to_base64().to_string();
    let out = sluice(
        &["rotate-master-key", "--store", &url],
        &[("SLUICE_MASTER_KEY", &k1_text), ("SLUICE_NEW_MASTER_KEY", &k3_text)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(password_with(&url, KeyConfig::Key(k2.clone())).as_deref(), Ok(PASSWORD));

    // A new key given: used, not printed.
    let out = sluice(
        &["rotate-master-key", "--store", &url],
        &[("SLUICE_MASTER_KEY", &k2_text), ("SLUICE_NEW_MASTER_KEY", &k3_text)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(password_with(&url, KeyConfig::Key(k3)).as_deref(), Ok(PASSWORD));
    assert!(password_with(&url, KeyConfig::Key(k2)).is_err());
    // The same key as the one in use is refused.
    let out = sluice(
        &["rotate-master-key", "--store", &url],
        &[("SLUICE_MASTER_KEY", &k3_text), ("SLUICE_NEW_MASTER_KEY", &k3_text)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn the_next_start_settles_a_rotation_interrupted_at_either_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let target = data.display().to_string();
    seed(&target, KeyConfig::DataDir);
    let old_text = key_file(&data);

    // Stopped after the new key was written, before the store was re-sealed.
    MasterKey::create_file(&pending(&data)).expect("new key file");
    let out = sluice(&["user", "list", "--data-dir", &target], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("stopped before it re-sealed the store"), "{}", text(&out.stderr));
    assert!(!pending(&data).exists());
    assert_eq!(key_file(&data), old_text);
    assert_eq!(password_with(&target, KeyConfig::DataDir).as_deref(), Ok(PASSWORD));

    // Stopped after the store was re-sealed, before the new file replaced the old one.
    block_on(async {
        let store = Store::open(&target, KeyConfig::DataDir).await.expect("store");
        let old = MasterKey::read_file(&data.join(KEY_FILE_NAME)).expect("old");
        let new = MasterKey::create_file(&pending(&data)).expect("new key file");
        store.rotate_master_key(&old, new).await.expect("re-seal");
        store.close().await;
    });
    let new_text = std::fs::read_to_string(pending(&data)).expect("pending");
    let out = sluice(&["user", "list", "--data-dir", &target], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("finished an interrupted master key rotation"), "{}", text(&out.stderr));
    assert!(!pending(&data).exists());
    assert_eq!(key_file(&data), new_text);
    assert_eq!(password_with(&target, KeyConfig::DataDir).as_deref(), Ok(PASSWORD));

    // A leftover key that opens nothing is not taken for the store's.
    std::fs::write(data.join(KEY_FILE_NAME), MasterKey::generate().expect("k").to_base64().as_str()).expect("write");
    MasterKey::create_file(&pending(&data)).expect("another key file");
    let out = sluice(&["user", "list", "--data-dir", &target], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("neither"), "{}", text(&out.stderr));
    assert!(pending(&data).exists(), "nothing is removed when no key opens the store");
}
