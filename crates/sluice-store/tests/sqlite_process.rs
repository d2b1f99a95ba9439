//! What only the SQLite store promises, tested across processes: one process owns a data
//! directory, a write it acknowledged survives SIGKILL, and the data directory's key file is
//! created once, private.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use sluice_core::{Secret, SourceId, SourceSecrets, SourceSpec};
use sluice_store::{AuditFilter, KeyConfig, MasterKey, NewAuditEntry, Store, StoreError};

const CHILD_DIR: &str = "SLUICE_STORE_TEST_CHILD_DIR";
const CHILD_KEY: &str = "SLUICE_STORE_TEST_CHILD_KEY";

fn prod() -> SourceId {
    "prod".parse().expect("id")
}

/// The child process of `an_acknowledged_write_survives_sigkill`: writes, says so on stdout,
/// then waits for its parent to kill it.
#[tokio::test]
#[ignore = "the child process of an_acknowledged_write_survives_sigkill"]
async fn child_writes_then_waits() {
    let dir = std::env::var(CHILD_DIR).expect("run by its parent test");
    let key = MasterKey::from_base64(&std::env::var(CHILD_KEY).expect("key")).expect("key");
    let store = Store::open(&dir, KeyConfig::Key(key)).await.expect("open");
    let mut spec = SourceSpec::new("db.internal", "app", "reader");
    spec.password = Some(Secret::new("acked-password"));
    let (settings, secrets) = spec.split();
    store.put_source(&prod(), "Production", &settings, &secrets).await.expect("put");
    let entry = NewAuditEntry {
        actor: "user:ana".into(),
        kind: "source.create".into(),
        source: Some(prod()),
        detail: serde_json::json!({}),
    };
    let mut ids = vec![store.append_audit(&entry).await.expect("audit")];
    // Concurrent writes, committed together.
    let store = std::sync::Arc::new(store);
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..32 {
        let store = store.clone();
        writes.spawn(async move { store.begin_query_audit(&format!("user:{i}"), &prod(), "select 1").await });
    }
    while let Some(id) = writes.join_next().await {
        ids.push(id.expect("task").expect("audit"));
    }
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    // On a line of its own: the test harness has already written its own text on this one.
    println!("\nACK {}", ids.join(" "));
    // Block until killed: the store stays open, its lock held, nothing closed cleanly.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    panic!("the parent should have killed this process");
}

#[tokio::test]
async fn an_acknowledged_write_survives_sigkill_and_the_lock_dies_with_its_process() {
    let dir = tempfile::tempdir().expect("dir");
    let key = MasterKey::generate().expect("key");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_writes_then_waits", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_KEY, key.to_base64().as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the child's output");
        if let Some((_, ids)) = line.split_once("ACK ") {
            let mut ids: Vec<i64> = ids.split(' ').map(|id| id.parse().expect("audit id")).collect();
            ids.sort_unstable();
            acked = Some(ids);
            break;
        }
    }
    let acked = acked.expect("the child acknowledged its write before exiting");

    // While the child lives, its data directory is refused to everyone else.
    let e = Store::open(&dir.path().to_string_lossy(), KeyConfig::Key(key.clone())).await.expect_err("locked");
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("in use by another Sluice process"), "{e}");

    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(9), "{status:?}");

    let store = Store::open(&dir.path().to_string_lossy(), KeyConfig::Key(key)).await.expect("reopen after the kill");
    let spec = store.source_spec(&prod()).await.expect("the acknowledged source");
    assert_eq!(spec.password, Some(Secret::new("acked-password")));
    let audit = store.audit(&AuditFilter::default()).await.expect("audit");
    let mut logged: Vec<i64> = audit.entries.iter().map(|e| e.id.0).collect();
    logged.sort_unstable();
    assert_eq!(acked.len(), 33);
    assert_eq!(logged, acked);
}

#[tokio::test]
async fn a_second_opener_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().to_string_lossy().into_owned();
    let first = Store::open(&target, KeyConfig::DataDir).await.expect("first");
    let e = Store::open(&target, KeyConfig::DataDir).await.expect_err("second");
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    let hint = sluice_core::UserFacing::hint(&e).expect("hint");
    assert!(hint.contains("own data directory"), "{hint}");
    // The same file named as sqlite:// is the same store.
    let as_url = format!("sqlite://{}", dir.path().join(sluice_store::DB_FILE_NAME).display());
    assert!(matches!(Store::open(&as_url, KeyConfig::DataDir).await, Err(StoreError::Locked { .. })));
    first.close().await;
    Store::open(&target, KeyConfig::DataDir).await.expect("free again").close().await;
}

#[tokio::test]
async fn a_command_opens_an_existing_store_beside_its_owner_but_creates_one_under_the_lock() {
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().to_string_lossy().into_owned();

    // Creating the store takes the lock, so no owner can start meanwhile.
    let creating = Store::open_beside_service(&target, KeyConfig::DataDir).await.expect("create");
    let e = Store::open(&target, KeyConfig::DataDir).await.expect_err("locked while creating");
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    creating.close().await;

    // Beside a running owner, a command opens the existing store and writes to it.
    let owner = Store::open(&target, KeyConfig::DataDir).await.expect("owner");
    let beside = Store::open_beside_service(&target, KeyConfig::DataDir).await.expect("beside the owner");
    let (settings, secrets) = SourceSpec::new("h", "d", "u").split();
    beside.put_source(&prod(), "P", &settings, &secrets).await.expect("a write beside the owner");
    assert_eq!(owner.source(&prod()).await.expect("the owner sees it").name, "P");
    beside.close().await;

    // A rotation's pending key needs the lock to be settled: refused while the owner runs.
    let pending = sluice_store::seal::pending_key_path(&dir.path().join(sluice_store::KEY_FILE_NAME));
    std::fs::write(&pending, "not yet\n").expect("pending");
    let e = Store::open_beside_service(&target, KeyConfig::DataDir).await.expect_err("a rotation under way");
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    assert!(pending.exists(), "the pending key was left alone");
    owner.close().await;
}

#[tokio::test]
async fn the_data_directory_key_is_made_once_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().to_string_lossy().into_owned();
    let store = Store::open(&target, KeyConfig::DataDir).await.expect("create");
    let key_id = store.key_id();
    let (settings, secrets) = SourceSpec::new("h", "d", "u").split();
    store
        .put_source(&prod(), "P", &settings, &SourceSecrets { password: Some(Secret::new("pw")), ..secrets })
        .await
        .expect("put");
    store.close().await;

    let path = dir.path().join(sluice_store::KEY_FILE_NAME);
    assert_eq!(std::fs::metadata(&path).expect("key file").permissions().mode() & 0o777, 0o600);
    let key = MasterKey::read_file(&path).expect("read");
    assert_eq!(key.id(), key_id);

    let store = Store::open(&target, KeyConfig::DataDir).await.expect("reopen with the same key");
    assert_eq!(store.key_id(), key_id);
    assert_eq!(store.source_spec(&prod()).await.expect("spec").password, Some(Secret::new("pw")));
}
