//! The store's contract, run on both backends: every case below runs once on SQLite and once on
//! a real PostgreSQL cluster, against the same `Store` API.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{count, Fixture};
use sluice_core::{
    HostKeyCheck, KeySource, Network, Secret, SecretField, SourceId, SourceSecrets, SourceSpec, SshSpec,
};
use sluice_store::{
    AlertKind, AuditFilter, Completion, KeyConfig, MasterKey, NewApiToken, NewAuditEntry, NewSourceTest, NextDue,
    QueryCompletion, QueryOutcome, Role, RunOutcome, RunReason, RunResult, RunState, ScheduleEdit, SnapshotWriter,
    Store, StoreError, TokenRole,
};

const PASSWORD: &str = "pw-Zq81-unique-db-password";
const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nssl-KEY-body-6f2a91\n-----END PRIVATE KEY-----\n";
const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nssh-KEY-body-0c7e55\n-----END OPENSSH PRIVATE KEY-----\n";
const PASSPHRASE: &str = "passphrase-Hk44-unique";

fn id(s: &str) -> SourceId {
    s.parse().expect("source id")
}

/// A spec through a bastion with every secret set, split into settings and secrets.
fn full_source() -> (SourceSpec, SourceSecrets) {
    let mut spec = SourceSpec::new("db.internal", "app", "reader");
    spec.password = Some(Secret::new(PASSWORD));
    spec.sslkey = Some(KeySource::Pem(Secret::new(PEM_KEY)));
    spec.network = Network::Ssh(SshSpec {
        host: "bastion.internal".into(),
        port: 22,
        user: "tunnel".into(),
        private_key: Some(KeySource::Pem(Secret::new(SSH_KEY))),
        passphrase: Some(Secret::new(PASSPHRASE)),
        host_key: HostKeyCheck::Fingerprint("SHA256:abc".into()),
    });
    spec.split()
}

fn full_spec() -> SourceSpec {
    let (settings, secrets) = full_source();
    settings.with_secrets(secrets)
}

async fn sources_round_trip_and_an_edit_without_a_secret_keeps_it(f: &Fixture) {
    let store = f.open().await;
    let (settings, secrets) = full_source();
    let prod = id("prod");
    let created = store.put_source(&prod, "Production", &settings, &secrets).await.expect("put");
    assert_eq!(created.name, "Production");
    assert_eq!(created.secret_fields, SecretField::ALL.to_vec());
    assert_eq!(created.settings, settings);
    let pw_at = created.password_updated_at.expect("password time");
    assert!(pw_at >= created.created_at && created.updated_at >= created.created_at);
    assert_eq!(store.source_spec(&prod).await.expect("spec"), full_spec());

    // A listing says which secrets are set and shows none of them.
    let json = serde_json::to_string(&store.sources().await.expect("list")).expect("json");
    assert!(json.contains("\"ssh.passphrase\""), "{json}");
    for secret in [PASSWORD, "ssl-KEY-body", "ssh-KEY-body", PASSPHRASE] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }

    // An edit that does not retype the secrets keeps them; the password time stays.
    let mut renamed = settings.clone();
    renamed.database = "app2".into();
    let edited = store.update_source(&prod, "Prod", &renamed, &SourceSecrets::default()).await.expect("update");
    assert_eq!(edited.name, "Prod");
    assert_eq!(edited.password_updated_at, Some(pw_at));
    let spec = store.source_spec(&prod).await.expect("spec");
    assert_eq!(spec.database, "app2");
    assert_eq!(spec.password, Some(Secret::new(PASSWORD)));
    assert_eq!(spec.sslkey, Some(KeySource::Pem(Secret::new(PEM_KEY))));

    // A new password replaces only the password; a key given as a path stays a path.
    let patch = SourceSecrets {
        password: Some(Secret::new("pw-new")),
        sslkey: Some(KeySource::File("/etc/sluice/client.key".into())),
        ..SourceSecrets::default()
    };
    let edited = store.update_source(&prod, "Prod", &renamed, &patch).await.expect("update");
    assert!(edited.password_updated_at.expect("time") >= pw_at);
    let spec = store.source_spec(&prod).await.expect("spec");
    assert_eq!(spec.password, Some(Secret::new("pw-new")));
    assert_eq!(spec.sslkey, Some(KeySource::File("/etc/sluice/client.key".into())));
    match &spec.network {
        Network::Ssh(ssh) => assert_eq!(ssh.passphrase, Some(Secret::new(PASSPHRASE))),
        other => panic!("{other:?}"),
    }

    // A dropped secret is gone, with the password's time; the others stay.
    let edited = store
        .update_source_dropping(
            &prod,
            "Prod",
            &renamed,
            &SourceSecrets::default(),
            None,
            &[SecretField::Password],
            ScheduleEdit::default(),
        )
        .await
        .expect("drop");
    assert!(!edited.secret_fields.contains(&SecretField::Password), "{:?}", edited.secret_fields);
    assert!(edited.secret_fields.contains(&SecretField::SslKey), "{:?}", edited.secret_fields);
    assert_eq!(edited.password_updated_at, None);
    let spec = store.source_spec(&prod).await.expect("spec");
    assert_eq!(spec.password, None);
    assert_eq!(spec.sslkey, Some(KeySource::File("/etc/sluice/client.key".into())));
    let patch = SourceSecrets { password: Some(Secret::new(PASSWORD)), ..SourceSecrets::default() };
    store.update_source(&prod, "Prod", &renamed, &patch).await.expect("password again");

    // A source without secrets has none listed and no password time.
    let bare = store.put_source(&id("bare"), "Bare", &SourceSpec::new("h", "d", "u"), &SourceSecrets::default()).await;
    let bare = bare.expect("bare");
    assert!(bare.secret_fields.is_empty() && bare.password_updated_at.is_none());
    assert_eq!(
        store.sources().await.expect("list").iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["Bare", "Prod"]
    );

    // Settings that still hold a secret are refused.
    let e = store.put_source(&id("leaky"), "Leaky", &full_spec(), &SourceSecrets::default()).await.expect_err("leaky");
    assert!(matches!(e, StoreError::Invalid { field: "settings", .. }), "{e:?}");

    store.delete_source(&prod).await.expect("delete");
    assert!(matches!(store.source(&prod).await, Err(StoreError::NotFound { entity: "source" })));
    assert!(matches!(store.source_spec(&prod).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.delete_source(&prod).await, Err(StoreError::NotFound { .. })));
    let missing = store.update_source(&prod, "x", &renamed, &SourceSecrets::default()).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "source" })), "{missing:?}");
    // Its secrets went with it.
    assert_eq!(f.raw_exec("DELETE FROM source_secrets WHERE source_id = 'prod'").await, Ok(0));
}

async fn a_taken_name_or_login_is_a_conflict_naming_the_field(f: &Fixture) {
    let store = f.open().await;
    let spec = SourceSpec::new("h", "d", "u");
    store.put_source(&id("a"), "Warehouse", &spec, &SourceSecrets::default()).await.expect("a");
    let e = store.put_source(&id("b"), "Warehouse", &spec, &SourceSecrets::default()).await.expect_err("same name");
    assert!(matches!(&e, StoreError::Conflict { entity: "source", field } if field == "name"), "{e:?}");
    assert!(e.to_string().contains("a source with this name already exists"), "{e}");
    let e = store.put_source(&id("a"), "Other", &spec, &SourceSecrets::default()).await.expect_err("same id");
    assert!(matches!(&e, StoreError::Conflict { field, .. } if field == "id"), "{e:?}");
    store.put_source(&id("b"), "Lake", &spec, &SourceSecrets::default()).await.expect("b");
    let e = store.update_source(&id("b"), "Warehouse", &spec, &SourceSecrets::default()).await.expect_err("rename");
    assert!(matches!(&e, StoreError::Conflict { field, .. } if field == "name"), "{e:?}");

    let pw = Secret::new("long enough password");
    store.create_user("ana", Role::Analyst, &pw).await.expect("user");
    let e = store.create_user("ana", Role::Admin, &pw).await.expect_err("same login");
    assert!(matches!(&e, StoreError::Conflict { entity: "user", field } if field == "login"), "{e:?}");
}

async fn secrets_never_reach_the_store_in_plaintext(f: &Fixture) {
    let store = f.open().await;
    let (settings, secrets) = full_source();
    store.put_source(&id("prod"), "Production", &settings, &secrets).await.expect("put");
    let patch = SourceSecrets { password: Some(Secret::new("pw-Rotated-77x")), ..SourceSecrets::default() };
    store.update_source(&id("prod"), "Production", &settings, &patch).await.expect("update");
    let token_secret = store
        .create_token(&NewApiToken { name: "ci".into(), role: TokenRole::Refresh, source: None, created_by: None })
        .await
        .expect("token")
        .1;
    let user_pw = "user-Password-93kq";
    store.create_user("root", Role::Admin, &Secret::new(user_pw)).await.expect("user");
    let session = store.create_session(store.users().await.expect("users")[0].id, Duration::from_secs(60)).await;
    let session = session.expect("session");
    let setup = store.create_setup_token(Duration::from_secs(60)).await.expect("setup");
    let key_b64 = f.key.to_base64();
    store.close().await;

    let raw = f.raw_bytes().await;
    assert!(!raw.is_empty() && raw.iter().any(|b| count(b, b"Production") > 0), "the search must see the store's data");
    // The secret is base64url, which may hold `_` itself: it is what follows the public id.
    let (_, token_secret_part) = token_parts(token_secret.expose());
    let needles: Vec<&[u8]> = vec![
        PASSWORD.as_bytes(),
        b"pw-Rotated-77x",
        b"ssl-KEY-body",
        b"ssh-KEY-body",
        PASSPHRASE.as_bytes(),
        user_pw.as_bytes(),
        token_secret_part.as_bytes(),
        session.cookie.expose().as_bytes(),
        session.csrf.expose().as_bytes(),
        setup.expose().as_bytes(),
        key_b64.as_bytes(),
    ];
    for needle in needles {
        let hits: usize = raw.iter().map(|b| count(b, needle)).sum();
        assert_eq!(hits, 0, "{} found in the store", String::from_utf8_lossy(needle));
    }
}

async fn a_wrong_or_missing_master_key_is_refused(f: &Fixture) {
    let store = f.open().await;
    let (settings, secrets) = full_source();
    store.put_source(&id("prod"), "Production", &settings, &secrets).await.expect("put");
    let key_id = store.key_id();
    store.close().await;

    let e = f.open_with(KeyConfig::Key(MasterKey::generate().expect("key"))).await.expect_err("wrong key");
    assert!(matches!(e, StoreError::Key { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("not the key this store was sealed with (id {key_id})")), "{e}");

    let bad = tempfile::tempdir().expect("dir");
    let path = bad.path().join("bad.key");
    std::fs::write(&path, "not base64 at all!").expect("write");
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&path, perms).expect("chmod");
    let e = f.open_with(KeyConfig::File(path.clone())).await.expect_err("malformed key");
    assert!(e.to_string().contains("not valid base64"), "{e}");
    assert!(!e.to_string().contains("not base64 at all"), "{e}");

    // The right key in a file works; a file others can read is refused.
    std::fs::write(&path, f.key.to_base64().as_str()).expect("write");
    f.open_with(KeyConfig::File(path.clone())).await.expect("the right key from a file").close().await;
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&path, perms).expect("chmod");
    let e = f.open_with(KeyConfig::File(path)).await.expect_err("readable key file");
    assert!(e.to_string().contains("readable by others"), "{e}");

    if f.is_sqlite() {
        // The data directory's key file is made on first start only: a store without it stays shut.
        let e = f.open_with(KeyConfig::DataDir).await.expect_err("no key file");
        assert!(e.to_string().contains("its key file"), "{e}");
    } else {
        let e = f.open_with(KeyConfig::DataDir).await.expect_err("postgres needs a key");
        assert!(e.to_string().contains("needs its master key given explicitly"), "{e}");
    }
}

async fn rotation_reseals_every_secret_under_the_new_key(f: &Fixture) {
    let old = f.key.clone();
    let store = f.open().await;
    let (settings, secrets) = full_source();
    store.put_source(&id("prod"), "Production", &settings, &secrets).await.expect("put");
    store.put_source(&id("dev"), "Dev", &settings, &secrets).await.expect("put");
    let new = MasterKey::generate().expect("key");

    let e = store.rotate_master_key(&new, new.clone()).await.expect_err("not the key in use");
    assert!(matches!(e, StoreError::Invalid { field: "old key", .. }), "{e:?}");

    store.rotate_master_key(&old, new.clone()).await.expect("rotate");
    assert_eq!(store.key_id(), new.id());
    assert_eq!(store.source_spec(&id("prod")).await.expect("spec"), full_spec());
    store.close().await;

    let e = f.open_with(KeyConfig::Key(old)).await.expect_err("the old key no longer opens it");
    assert!(matches!(e, StoreError::Key { .. }), "{e:?}");
    let store = f.open_with(KeyConfig::Key(new.clone())).await.expect("the new key opens it");
    for source in ["prod", "dev"] {
        assert_eq!(store.source_spec(&id(source)).await.expect("spec"), full_spec());
    }
    // Every stored value now carries the new key's id.
    store.close().await;
    let sealed_rows = "SELECT count(*) FROM source_secrets".to_string();
    assert_eq!(f.raw_scalar(sealed_rows).await, 8);
    let with_new = format!("SELECT count(*) FROM source_secrets WHERE key_id = '{}'", new.id());
    assert_eq!(f.raw_scalar(with_new).await, 8);
    let check = format!("SELECT count(*) FROM store_meta WHERE key_id = '{}'", new.id());
    assert_eq!(f.raw_scalar(check).await, 1);
}

async fn users_sign_in_only_with_the_right_password_while_enabled(f: &Fixture) {
    let store = f.open().await;
    let pw = Secret::new("correct horse battery");
    let ana = store.create_user("ana", Role::Analyst, &pw).await.expect("user");
    assert_eq!((ana.login.as_str(), ana.role, ana.disabled), ("ana", Role::Analyst, false));
    assert_eq!(store.authenticate("ana", &pw).await.expect("auth"), Some(ana.clone()));
    assert_eq!(store.authenticate("ana", &Secret::new("correct horse batterY")).await.expect("auth"), None);
    assert_eq!(store.authenticate("bob", &pw).await.expect("auth"), None);

    let e = store.create_user("bob", Role::Admin, &Secret::new("short")).await.expect_err("short");
    assert!(matches!(e, StoreError::Invalid { field: "password", .. }), "{e:?}");
    let e = store.create_user("bad login", Role::Admin, &pw).await.expect_err("login");
    assert!(matches!(e, StoreError::Invalid { field: "login", .. }), "{e:?}");

    let new_pw = Secret::new("a new long password");
    store.set_password(ana.id, &new_pw).await.expect("set password");
    assert_eq!(store.authenticate("ana", &pw).await.expect("auth"), None);
    assert!(store.authenticate("ana", &new_pw).await.expect("auth").is_some());
    store.set_user_role(ana.id, Role::Admin).await.expect("role");
    assert_eq!(store.user(ana.id).await.expect("user").role, Role::Admin);
    store.set_user_disabled(ana.id, true).await.expect("disable");
    assert_eq!(store.authenticate("ana", &new_pw).await.expect("auth"), None);
    assert!(store.users().await.expect("users")[0].disabled);
    assert!(matches!(store.user(sluice_store::UserId(9999)).await, Err(StoreError::NotFound { entity: "user" })));
    assert!(matches!(
        store.set_user_disabled(sluice_store::UserId(9999), true).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn sessions_are_found_by_their_cookie_until_revoked(f: &Fixture) {
    let store = f.open().await;
    let ana = store.create_user("ana", Role::Analyst, &Secret::new("correct horse battery")).await.expect("user");
    let s = store.create_session(ana.id, Duration::from_secs(3600)).await.expect("session");
    let live = store.session(s.cookie.expose()).await.expect("lookup").expect("live");
    assert_eq!(live.user, ana);
    assert_eq!(live.expires_at, s.expires_at);
    assert!(live.expires_at - live.created_at == 3_600_000);
    assert!(live.csrf_matches(s.csrf.expose()));
    assert!(!live.csrf_matches(s.cookie.expose()));
    assert!(!format!("{live:?} {s:?}").contains(s.cookie.expose()));
    assert_eq!(store.session("not-a-cookie").await.expect("lookup"), None);

    let other = store.create_session(ana.id, Duration::from_secs(3600)).await.expect("session");
    store.revoke_session(s.cookie.expose()).await.expect("revoke");
    assert_eq!(store.session(s.cookie.expose()).await.expect("lookup"), None);
    assert!(store.session(other.cookie.expose()).await.expect("lookup").is_some());
    // A disabled user's sessions stop at once; revoking all of a user's counts the live ones.
    store.set_user_disabled(ana.id, true).await.expect("disable");
    assert_eq!(store.session(other.cookie.expose()).await.expect("lookup"), None);
    store.set_user_disabled(ana.id, false).await.expect("enable");
    assert!(store.session(other.cookie.expose()).await.expect("lookup").is_some());
    assert_eq!(store.revoke_sessions_of(ana.id).await.expect("revoke all"), 1);
    assert_eq!(store.session(other.cookie.expose()).await.expect("lookup"), None);
    let e = store.create_session(sluice_store::UserId(9999), Duration::from_secs(1)).await.expect_err("no user");
    assert!(matches!(e, StoreError::NotFound { entity: "user" }), "{e:?}");
}

/// A token's text split into `sluice_<public id>` and its secret (base64url, which may hold `_`).
fn token_parts(text: &str) -> (&str, &str) {
    let rest = text.strip_prefix("sluice_").expect("the token's prefix");
    let (public_id, _) = rest.split_once('_').expect("the token's public id");
    let at = "sluice_".len() + public_id.len();
    (&text[..at], &text[at + 1..])
}

async fn tokens_verify_until_revoked_and_only_with_their_secret(f: &Fixture) {
    let store = f.open().await;
    store
        .put_source(&id("prod"), "Production", &SourceSpec::new("h", "d", "u"), &SourceSecrets::default())
        .await
        .expect("src");
    let new = NewApiToken {
        name: "nightly refresh".into(),
        role: TokenRole::Refresh,
        source: Some(id("prod")),
        created_by: None,
    };
    let (token, text) = store.create_token(&new).await.expect("token");
    assert!(text.expose().starts_with(&format!("sluice_{}_", token.public_id)), "shape");
    assert_eq!(
        (token.role, token.source.clone(), token.last_used_at, token.revoked),
        (TokenRole::Refresh, Some(id("prod")), None, false)
    );

    let ok = store.verify_token(text.expose()).await.expect("verify").expect("valid");
    assert_eq!(ok.public_id, token.public_id);
    assert!(ok.last_used_at.is_some());

    // The right public id with another secret, a malformed text, an unknown id: all refused.
    let (prefix, secret) = token_parts(text.expose());
    let mut wrong = secret.as_bytes().to_vec();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = format!("{prefix}_{}", String::from_utf8(wrong).expect("utf8"));
    assert_eq!(store.verify_token(&wrong).await.expect("verify"), None);
    assert_eq!(store.verify_token(prefix).await.expect("verify"), None);
    assert_eq!(store.verify_token("sluice_000000000000_x").await.expect("verify"), None);
    assert_eq!(store.verify_token("").await.expect("verify"), None);

    let listed = serde_json::to_string(&store.tokens().await.expect("list")).expect("json");
    assert!(listed.contains(&token.public_id) && !listed.contains(secret), "{listed}");

    store.revoke_token(&token.public_id).await.expect("revoke");
    assert_eq!(store.verify_token(text.expose()).await.expect("verify"), None);
    assert!(store.tokens().await.expect("list")[0].revoked);
    assert!(matches!(store.revoke_token("nope").await, Err(StoreError::NotFound { entity: "token" })));

    let scoped_to_nothing = NewApiToken { source: Some(id("ghost")), ..new };
    let e = store.create_token(&scoped_to_nothing).await.expect_err("no such source");
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}

async fn a_setup_token_works_exactly_once(f: &Fixture) {
    let store = f.open().await;
    let t = store.create_setup_token(Duration::from_secs(600)).await.expect("setup");
    assert!(!store.consume_setup_token("something else").await.expect("consume"));
    assert!(store.consume_setup_token(t.expose()).await.expect("consume"));
    assert!(!store.consume_setup_token(t.expose()).await.expect("consume again"));
}

async fn a_snapshot_is_stored_only_when_the_catalog_changed(f: &Fixture) {
    let store = f.open().await;
    let prod = id("prod");
    store
        .put_source(&prod, "Production", &SourceSpec::new("h", "d", "u"), &SourceSecrets::default())
        .await
        .expect("src");
    assert_eq!(store.latest_snapshot(&prod).await.expect("latest"), None);
    let v1 = br#"{"schemas":[{"name":"public","relations":[]}]}"#.repeat(50);
    let v2 = br#"{"schemas":[{"name":"sales","relations":[]}]}"#.to_vec();
    let first = store.put_snapshot(&prod, &v1).await.expect("put").expect("new");
    assert_eq!(first.content_hash.len(), 64);
    assert_eq!(store.put_snapshot(&prod, &v1).await.expect("put again"), None);
    let second = store.put_snapshot(&prod, &v2).await.expect("put").expect("changed");
    assert!(second.id > first.id);
    // Back to the first catalog: it differs from the latest, so it is stored again.
    let third = store.put_snapshot(&prod, &v1).await.expect("put").expect("changed back");
    assert_eq!(third.content_hash, first.content_hash);
    let (meta, json) = store.latest_snapshot(&prod).await.expect("latest").expect("some");
    assert_eq!((meta, json), (third.clone(), v1.clone()));
    let ids: Vec<_> = store.snapshots(&prod).await.expect("list").into_iter().map(|s| s.id).collect();
    assert_eq!(ids, [third.id, second.id, first.id]);
    let e = store.put_snapshot(&id("ghost"), &v1).await.expect_err("no source");
    assert!(matches!(e, StoreError::NotFound { entity: "source" }), "{e:?}");
    // The hash is over the content written beside the JSON: JSON differing only outside it (its
    // discovery time) is not stored again.
    let written = |json: &[u8], content: &[&[u8]]| {
        let mut w = SnapshotWriter::new().expect("writer");
        {
            let (mut j, mut c) = w.parts();
            j.write_all(json).expect("json");
            for part in content {
                c.write_all(part).expect("content");
            }
        }
        w.finish().expect("finish")
    };
    let retimed = br#"{"at":"later"}"#.to_vec();
    assert_eq!(store.put_compressed_snapshot(&prod, &written(&retimed, &[&v1])).await.expect("put"), None);
    let (meta, json) = store.latest_snapshot(&prod).await.expect("latest").expect("some");
    assert_eq!((meta, json), (third.clone(), v1.clone()));
    let snapshot = written(&v2, &[&v2[..10], &v2[10..]]);
    let fourth = store.put_compressed_snapshot(&prod, &snapshot).await.expect("put").expect("new");
    assert_eq!(fourth.content_hash, second.content_hash, "the parts hash as their concatenation");
    assert_eq!(fourth.content_hash, snapshot.content_hash());
    // Read back whole, and through the decompressing reader (the one before the latest).
    assert_eq!(store.latest_snapshot(&prod).await.expect("latest").expect("some").1, v2);
    let fifth = store.put_compressed_snapshot(&prod, &written(&v1, &[&v1])).await.expect("put").expect("new");
    let (before, compressed) =
        store.previous_snapshot_compressed(&prod, fifth.id).await.expect("previous").expect("some");
    assert_eq!(before, fourth);
    let mut back = Vec::new();
    compressed.reader().expect("reader").read_to_end(&mut back).expect("read");
    assert_eq!(back, v2);
    assert_eq!(store.previous_snapshot_compressed(&prod, first.id).await.expect("previous"), None);
}

async fn discovery_runs_start_and_finish_once(f: &Fixture) {
    let store = f.open().await;
    let prod = id("prod");
    store
        .put_source(&prod, "Production", &SourceSpec::new("h", "d", "u"), &SourceSecrets::default())
        .await
        .expect("src");
    let a = store.start_discovery_run(&prod).await.expect("start");
    let b = store.start_discovery_run(&prod).await.expect("start");
    store
        .finish_discovery_run(a, RunOutcome::Failed, Some("auth"), Some("password authentication failed"))
        .await
        .expect("finish");
    let again = store.finish_discovery_run(a, RunOutcome::Ok, None, None).await;
    assert!(matches!(again, Err(StoreError::NotFound { .. })), "{again:?}");
    let runs = store.discovery_runs(&prod, 10).await.expect("runs");
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [b, a]);
    assert_eq!((runs[1].outcome, runs[1].stage.as_deref()), (Some(RunOutcome::Failed), Some("auth")));
    assert!(runs[1].finished_at.is_some() && runs[0].finished_at.is_none());
    assert!(matches!(store.start_discovery_run(&id("ghost")).await, Err(StoreError::NotFound { entity: "source" })));
}

async fn sources(store: &Store, n: usize) -> Vec<SourceId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let sid = id(&format!("src-{i}"));
        store
            .put_source(&sid, &format!("Source {i}"), &SourceSpec::new("h", "d", "u"), &SourceSecrets::default())
            .await
            .expect("src");
        ids.push(sid);
    }
    ids
}

fn ok_result() -> RunResult {
    RunResult { outcome: RunOutcome::Ok, stage: None, message: None, changed: Some(true), relations: Some(7) }
}

const HOUR: Duration = Duration::from_secs(3600);

async fn claiming_due_sources_is_exclusive_across_concurrent_claimers(f: &Fixture) {
    let store = f.open().await;
    // On PostgreSQL a second instance of the store; SQLite has one owner, its claims run on its
    // pool's connections at once.
    let other = if f.is_sqlite() { None } else { Some(f.open().await) };
    let ids = sources(&store, 12).await;
    let second = other.as_ref().unwrap_or(&store);
    let mut claimed = Vec::new();
    // Several rounds of small concurrent claims: every source is claimed, by one claimer only.
    for _ in 0..12 {
        let (a, b) = tokio::join!(
            store.claim_due_discoveries("instance-a", HOUR, 2),
            second.claim_due_discoveries("instance-b", HOUR, 2)
        );
        let (a, b) = (a.expect("claim a"), b.expect("claim b"));
        claimed.extend(a.into_iter().map(|c| ("instance-a", c)));
        claimed.extend(b.into_iter().map(|c| ("instance-b", c)));
    }
    let mut got: Vec<SourceId> = claimed.iter().map(|(_, c)| c.source.clone()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each source claimed exactly once");
    assert!(claimed.iter().all(|(_, c)| c.reason == RunReason::Schedule && c.failures == 0));
    // Leased: nobody gets them again.
    assert!(store.claim_due_discoveries("instance-c", HOUR, 100).await.expect("claim").is_empty());

    // Each claim is a running run, recorded with its instance.
    let (holder, first) = &claimed[0];
    let run = store.discovery_run(&first.source, first.run).await.expect("run");
    assert_eq!((run.state, run.instance.as_deref()), (RunState::Running, Some(*holder)));
    let schedule = store.discovery_schedule(&first.source).await.expect("schedule");
    assert_eq!(schedule.leased_by.as_deref(), Some(*holder));

    // Only the holder releases it.
    let stranger = if *holder == "instance-a" { "instance-b" } else { "instance-a" };
    let next = NextDue::Interval { default_interval_ms: 3_600_000 };
    assert!(!store.complete_discovery(first, stranger, &ok_result(), next).await.expect("complete").held);
    assert_eq!(store.discovery_schedule(&first.source).await.expect("schedule").leased_by.as_deref(), Some(*holder));
    if let Some(other) = other {
        other.close().await;
    }
}

async fn a_finished_run_schedules_the_next_due_time(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 2).await;
    let claimed = store.claim_due_discoveries("me", HOUR, 10).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let before = store.discovery_schedule(&ids[0]).await.expect("schedule").next_due_at;

    // Success: the next slot on the interval's grid, lease released, the run finished.
    let ok = claimed.iter().find(|c| c.source == ids[0]).expect("claimed");
    let next = NextDue::Interval { default_interval_ms: 3_600_000 };
    assert!(store.complete_discovery(ok, "me", &ok_result(), next).await.expect("complete").held);
    let s = store.discovery_schedule(&ids[0]).await.expect("schedule");
    assert_eq!(s.next_due_at, before + 3_600_000, "{s:?}");
    assert_eq!((s.leased_by, s.failures), (None, 0));
    let last = s.last_run.expect("last run");
    assert_eq!(last.id, ok.run);
    assert_eq!(
        (last.state, last.outcome, last.changed, last.relations),
        (RunState::Finished, Some(RunOutcome::Ok), Some(true), Some(7))
    );
    // Finished once.
    assert!(!store.complete_discovery(ok, "me", &ok_result(), next).await.expect("again").held);

    // Failure: due again after the backoff, the failure counted, its stage and message kept.
    let bad = claimed.iter().find(|c| c.source == ids[1]).expect("claimed");
    let failed = RunResult {
        outcome: RunOutcome::Failed,
        stage: Some("auth".into()),
        message: Some("password authentication failed".into()),
        changed: None,
        relations: None,
    };
    assert!(
        store.complete_discovery(bad, "me", &failed, NextDue::After { delay_ms: 3_600_000 }).await.expect("fail").held
    );
    let s = store.discovery_schedule(&ids[1]).await.expect("schedule");
    assert_eq!(s.failures, 1);
    let last = s.last_run.expect("last run");
    assert_eq!(
        (last.stage.as_deref(), last.message.as_deref()),
        (Some("auth"), Some("password authentication failed"))
    );
    // Neither is due now.
    assert!(store.claim_due_discoveries("me", HOUR, 10).await.expect("claim").is_empty());

    // Saved again: due at once, failures forgotten; the next claim says so.
    store.discover_now(&ids[1]).await.expect("due now");
    let again = store.claim_due_discoveries("me", HOUR, 10).await.expect("claim");
    assert_eq!(again.iter().map(|c| (&c.source, c.failures)).collect::<Vec<_>>(), [(&ids[1], 0)]);
    assert!(matches!(store.discover_now(&id("ghost")).await, Err(StoreError::NotFound { entity: "source" })));
}

async fn an_expired_lease_is_reclaimed_and_its_run_recorded_as_failed(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 1).await;
    let lease = Duration::from_millis(50);
    let dead = store.claim_due_discoveries("dead", lease, 10).await.expect("claim");
    assert_eq!(dead.len(), 1);
    // Nobody takes it while the lease holds (an hour-long lease on a second claim shows it).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let taken = loop {
        let got = store.claim_due_discoveries("survivor", HOUR, 10).await.expect("claim");
        if !got.is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "the expired lease was never reclaimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(taken[0].source, ids[0]);
    assert_ne!(taken[0].run, dead[0].run, "a new run");
    let old = store.discovery_run(&ids[0], dead[0].run).await.expect("old run");
    assert_eq!(
        (old.state, old.outcome, old.stage.as_deref()),
        (RunState::Finished, Some(RunOutcome::Failed), Some("scheduler"))
    );
    // The dead holder can neither renew nor release it any more.
    assert!(!store.renew_discovery_lease(&dead[0], "dead", HOUR).await.expect("renew"));
    let next = NextDue::Interval { default_interval_ms: 1000 };
    assert!(!store.complete_discovery(&dead[0], "dead", &ok_result(), next).await.expect("complete").held);
    assert_eq!(store.discovery_schedule(&ids[0]).await.expect("schedule").leased_by.as_deref(), Some("survivor"));
    assert!(store.renew_discovery_lease(&taken[0], "survivor", HOUR).await.expect("renew"));
}

/// The store's clock now, read as the start of a run outside the schedule on `source`.
async fn store_now(store: &Store, source: &SourceId) -> i64 {
    let run = store.start_discovery_run(source).await.expect("start");
    store.discovery_run(source, run).await.expect("run").started_at
}

async fn a_run_is_scheduled_on_the_interval_stored_when_it_completes(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 3).await;
    let claimed = store.claim_due_discoveries("me", HOUR, 2).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let clock = ids.iter().find(|s| claimed.iter().all(|c| &c.source != *s)).expect("one left").clone();
    // Their intervals are stored after the claim, as a source's first run may be claimed before
    // its edit (or an older save) stored its interval.
    let minute = Duration::from_secs(60);
    for c in &claimed {
        assert_eq!(c.interval_ms, None);
        store.set_discovery_interval(&c.source, Some(minute)).await.expect("interval");
    }

    // A success: the next slot on the minute's grid, not on the 5-minute default.
    let (ok, bad) = (&claimed[0], &claimed[1]);
    let due = store.discovery_schedule(&ok.source).await.expect("schedule").next_due_at;
    let next = NextDue::Interval { default_interval_ms: 300_000 };
    let done = store.complete_discovery(ok, "me", &ok_result(), next).await.expect("complete");
    let finished = done.finished_at.expect("finished");
    let s = store.discovery_schedule(&ok.source).await.expect("schedule");
    assert_eq!(s.interval_ms, Some(60_000));
    assert_eq!((s.next_due_at - due) % 60_000, 0, "on the minute's grid from {due}: {s:?}");
    assert!(s.next_due_at > finished && s.next_due_at <= finished + 60_000, "within a minute of {finished}: {s:?}");

    // A failure's backoff is at most the interval stored, whatever the claim said.
    let failed = RunResult {
        outcome: RunOutcome::Failed,
        stage: Some("connect".into()),
        message: Some("connection refused".into()),
        changed: None,
        relations: None,
    };
    let done = store.complete_discovery(bad, "me", &failed, NextDue::After { delay_ms: 3_600_000 }).await;
    let finished = done.expect("fail").finished_at.expect("finished");
    let after = store_now(&store, &clock).await;
    let s = store.discovery_schedule(&bad.source).await.expect("schedule");
    assert!(s.next_due_at >= finished + 60_000 && s.next_due_at <= after + 60_000, "a minute after {finished}: {s:?}");
    assert_eq!(s.failures, 1);
}

async fn an_edit_saves_its_schedule_with_it_or_nothing(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 2).await;
    let claimed = store.claim_due_discoveries("me", HOUR, 1).await.expect("claim");
    let c = claimed.first().expect("claimed");
    let clock = ids.iter().find(|s| **s != c.source).expect("the other");
    let next = NextDue::Interval { default_interval_ms: 3_600_000 };
    let failed = RunResult {
        outcome: RunOutcome::Failed,
        stage: Some("connect".into()),
        message: Some("connection refused".into()),
        changed: None,
        relations: None,
    };
    store.complete_discovery(c, "me", &failed, next).await.expect("complete");
    let before = store.discovery_schedule(&c.source).await.expect("schedule");
    assert_eq!((before.interval_ms, before.failures), (None, 1));
    let spec = SourceSpec::new("h2", "d", "u");
    let edit = ScheduleEdit { interval: Some(Duration::from_secs(60)), due_now: true };

    // An edit refused by the store (an unknown generated key) changes nothing, its schedule
    // included; so does an interval out of range.
    let none = SourceSecrets::default();
    let e = store.update_source_dropping(&c.source, "Renamed", &spec, &none, Some("nope"), &[], edit).await;
    assert!(e.is_err(), "{e:?}");
    let bad = ScheduleEdit { interval: Some(Duration::ZERO), due_now: true };
    let e = store.update_source_dropping(&c.source, "Renamed", &spec, &none, None, &[], bad).await;
    assert!(matches!(e, Err(StoreError::Invalid { field: "discovery_interval", .. })), "{e:?}");
    assert_eq!(store.discovery_schedule(&c.source).await.expect("schedule"), before);
    assert_ne!(store.source(&c.source).await.expect("source").name, "Renamed");

    // A saved one carries its interval and is due now, its failures counted from 0.
    let start = store_now(&store, clock).await;
    let saved = store.update_source_dropping(&c.source, "Renamed", &spec, &none, None, &[], edit).await;
    assert_eq!(saved.expect("edit").name, "Renamed");
    let end = store_now(&store, clock).await;
    let s = store.discovery_schedule(&c.source).await.expect("schedule");
    assert_eq!((s.interval_ms, s.failures), (Some(60_000), 0));
    assert!(s.next_due_at >= start && s.next_due_at <= end, "due now ({start}..{end}): {s:?}");

    // An edit that leaves the schedule alone leaves it alone.
    store
        .update_source_dropping(&c.source, "Again", &spec, &none, None, &[], ScheduleEdit::default())
        .await
        .expect("edit");
    assert_eq!(store.discovery_schedule(&c.source).await.expect("schedule"), s);
}

async fn a_shorter_interval_makes_the_source_due_within_it(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 2).await;
    let claimed = store.claim_due_discoveries("me", HOUR, 1).await.expect("claim");
    let c = claimed.first().expect("claimed");
    let clock = ids.iter().find(|s| **s != c.source).expect("the other");
    let due = store.discovery_schedule(&c.source).await.expect("schedule").next_due_at;
    let next = NextDue::Interval { default_interval_ms: 3_600_000 };
    assert!(store.complete_discovery(c, "me", &ok_result(), next).await.expect("complete").held);
    assert_eq!(store.discovery_schedule(&c.source).await.expect("schedule").next_due_at, due + 3_600_000);

    // Down to a minute: due a minute from the edit, not in an hour.
    let before = store_now(&store, clock).await;
    store.set_discovery_interval(&c.source, Some(Duration::from_secs(60))).await.expect("interval");
    let after = store_now(&store, clock).await;
    let s = store.discovery_schedule(&c.source).await.expect("schedule");
    assert_eq!(s.interval_ms, Some(60_000));
    assert!(s.next_due_at >= before + 60_000 && s.next_due_at <= after + 60_000, "{before}..{after}: {s:?}");
    let shortened = s.next_due_at;

    // A longer one, or the default, leaves the next run where it is (later ones follow it).
    store.set_discovery_interval(&c.source, Some(Duration::from_secs(7200))).await.expect("interval");
    let s = store.discovery_schedule(&c.source).await.expect("schedule");
    assert_eq!((s.interval_ms, s.next_due_at), (Some(7_200_000), shortened));
    store.set_discovery_interval(&c.source, None).await.expect("interval");
    let s = store.discovery_schedule(&c.source).await.expect("schedule");
    assert_eq!((s.interval_ms, s.next_due_at), (None, shortened));

    let zero = store.set_discovery_interval(&c.source, Some(Duration::ZERO)).await;
    assert!(matches!(zero, Err(StoreError::Invalid { field: "discovery_interval", .. })), "{zero:?}");
    let ghost = store.set_discovery_interval(&id("ghost"), Some(Duration::from_secs(60))).await;
    assert!(matches!(ghost, Err(StoreError::NotFound { entity: "source" })), "{ghost:?}");
}

async fn a_new_source_is_claimable_only_with_its_interval(f: &Fixture) {
    let store = f.open().await;
    let (spec, secrets) = (SourceSpec::new("h", "d", "u"), SourceSecrets::default());
    let minute = Some(Duration::from_secs(60));
    // Refused before anything is saved.
    let zero = store.put_source_claiming(&id("bad"), "Bad", &spec, &secrets, None, Some(Duration::ZERO)).await;
    assert!(matches!(zero, Err(StoreError::Invalid { field: "discovery_interval", .. })), "{zero:?}");
    assert!(matches!(store.source(&id("bad")).await, Err(StoreError::NotFound { .. })));

    store.put_source_claiming(&id("new"), "New", &spec, &secrets, None, minute).await.expect("put");
    store.put_source_claiming(&id("plain"), "Plain", &spec, &secrets, None, None).await.expect("put");
    let mut claimed = store.claim_due_discoveries("me", HOUR, 10).await.expect("claim");
    claimed.sort_by(|a, b| a.source.cmp(&b.source));
    let got: Vec<_> = claimed.iter().map(|c| (c.source.as_str(), c.interval_ms)).collect();
    assert_eq!(got, [("new", Some(60_000)), ("plain", None)], "due at once, each with its interval");
}

async fn a_requested_run_is_queued_once_then_claimed(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 1).await;
    let first = store.claim_due_discoveries("me", HOUR, 10).await.expect("claim");
    let next = NextDue::Interval { default_interval_ms: 3_600_000 };
    assert!(store.complete_discovery(&first[0], "me", &ok_result(), next).await.expect("complete").held);
    assert!(store.claim_due_discoveries("me", HOUR, 10).await.expect("claim").is_empty());

    let run = store.request_discovery(&ids[0]).await.expect("request");
    assert_eq!(store.request_discovery(&ids[0]).await.expect("again"), run, "one queued run");
    let queued = store.discovery_run(&ids[0], run).await.expect("run");
    assert_eq!((queued.state, queued.reason), (RunState::Queued, Some(RunReason::Refresh)));
    let claimed = store.claim_due_discoveries("me", HOUR, 10).await.expect("claim");
    assert_eq!(claimed.iter().map(|c| (c.run, c.reason)).collect::<Vec<_>>(), [(run, RunReason::Refresh)]);
    assert_eq!(store.discovery_run(&ids[0], run).await.expect("run").state, RunState::Running);
    // Its completion keeps the interval's grid.
    let due = store.discovery_schedule(&ids[0]).await.expect("schedule").next_due_at;
    assert!(store.complete_discovery(&claimed[0], "me", &ok_result(), next).await.expect("complete").held);
    assert_eq!(store.discovery_schedule(&ids[0]).await.expect("schedule").next_due_at, due);
    // A new request after it ran is a new run.
    assert_ne!(store.request_discovery(&ids[0]).await.expect("request"), run);
    assert!(matches!(store.request_discovery(&id("ghost")).await, Err(StoreError::NotFound { entity: "source" })));
    assert!(matches!(store.discovery_run(&ids[0], sluice_store::RunId(-1)).await, Err(StoreError::NotFound { .. })));
}

fn unchanged() -> RunResult {
    RunResult { changed: Some(false), ..ok_result() }
}

/// Claims the one due source as `instance` and completes its run with `result`, due again at
/// once.
async fn run_once(store: &Store, instance: &str, result: &RunResult) -> (sluice_store::ClaimedDiscovery, Completion) {
    let claimed = store.claim_due_discoveries(instance, HOUR, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let c = claimed.into_iter().next().expect("claimed");
    let done = store.complete_discovery(&c, instance, result, NextDue::After { delay_ms: 0 }).await.expect("complete");
    assert!(done.held && done.finished_at.is_some(), "{done:?}");
    (c, done)
}

async fn consecutive_unchanged_scheduled_runs_fold_into_one_record(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 1).await;
    let src = &ids[0];
    // The first run stores the catalog: a record of its own, and so is the first unchanged one.
    let (first, done) = run_once(&store, "a", &ok_result()).await;
    assert_eq!(done.record, first.run);
    let (second, done) = run_once(&store, "a", &unchanged()).await;
    assert_eq!(done.record, second.run, "a run after a change is not folded into it");

    // The next unchanged runs fold into the second record, whichever instance ran them.
    let (third, done) = run_once(&store, "a", &unchanged()).await;
    assert_eq!(done.record, second.run);
    let (fourth, done) = run_once(&store, "b", &unchanged()).await;
    assert_eq!(done.record, second.run);
    let runs = store.discovery_runs(src, 10).await.expect("runs");
    assert_eq!(runs.iter().map(|r| (r.id, r.runs)).collect::<Vec<_>>(), [(second.run, 3), (first.run, 1)]);
    let folded = &runs[0];
    assert_eq!((folded.started_at, folded.instance.as_deref()), (second.started_at, Some("a")), "{folded:?}");
    assert_eq!(
        (folded.last_started_at, folded.last_finished_at, folded.last_instance.as_deref()),
        (Some(fourth.started_at), done.finished_at, Some("b")),
        "{folded:?}"
    );
    assert!(folded.finished_at.is_some_and(|t| t <= fourth.started_at), "{folded:?}");
    assert_eq!((folded.changed, folded.relations, folded.reason), (Some(false), Some(7), Some(RunReason::Schedule)));
    assert_eq!((runs[1].last_started_at, runs[1].last_instance.as_deref()), (None, None), "{:?}", runs[1]);
    // The folded runs are gone as records of their own; the schedule shows the folded record.
    for gone in [third.run, fourth.run] {
        let e = store.discovery_run(src, gone).await.expect_err("folded");
        assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    }
    assert_eq!(store.discovery_run(src, second.run).await.expect("record"), *folded);
    let last = store.discovery_schedule(src).await.expect("schedule").last_run.expect("last run");
    assert_eq!((last.id, last.runs), (second.run, 3));

    // A change starts a new record, and the unchanged run after it one more; then they fold again.
    let (changed, done) = run_once(&store, "a", &RunResult { relations: Some(8), ..ok_result() }).await;
    assert_eq!(done.record, changed.run);
    let (after, done) = run_once(&store, "a", &RunResult { relations: Some(8), ..unchanged() }).await;
    assert_eq!(done.record, after.run);
    let (_, done) = run_once(&store, "a", &RunResult { relations: Some(8), ..unchanged() }).await;
    assert_eq!(done.record, after.run);
    // Unchanged, but with another count of relations (the snapshot did not say so): not folded.
    let (other_count, done) = run_once(&store, "a", &unchanged()).await;
    assert_eq!(done.record, other_count.run);
    let runs = store.discovery_runs(src, 10).await.expect("runs");
    assert_eq!(
        runs.iter().map(|r| (r.id, r.runs)).collect::<Vec<_>>(),
        [(other_count.run, 1), (after.run, 2), (changed.run, 1), (second.run, 3), (first.run, 1)]
    );
}

async fn runs_asked_for_failed_or_changed_are_never_folded(f: &Fixture) {
    let store = f.open().await;
    let ids = sources(&store, 1).await;
    let src = &ids[0];
    run_once(&store, "a", &ok_result()).await;
    let (base, _) = run_once(&store, "a", &unchanged()).await;

    // Asked for: a record of its own, and the scheduled run after it is not folded into it.
    let asked = store.request_discovery(src).await.expect("request");
    let (claimed, done) = run_once(&store, "a", &unchanged()).await;
    assert_eq!((claimed.run, claimed.reason, done.record), (asked, RunReason::Refresh, asked));
    let (after_asked, done) = run_once(&store, "a", &unchanged()).await;
    assert_eq!(done.record, after_asked.run);
    assert_eq!(store.discovery_run(src, asked).await.expect("asked").runs, 1);

    // A failure: its own record; the run after it too.
    let failed = RunResult {
        outcome: RunOutcome::Failed,
        stage: Some("tcp".into()),
        message: Some("connection refused".into()),
        changed: None,
        relations: None,
    };
    let (bad, done) = run_once(&store, "a", &failed).await;
    assert_eq!(done.record, bad.run);
    let (bad2, done) = run_once(&store, "a", &failed).await;
    assert_eq!(done.record, bad2.run, "failures are not folded into each other");
    let (after_failure, done) = run_once(&store, "a", &unchanged()).await;
    assert_eq!(done.record, after_failure.run);

    // A change: its own record, even after unchanged ones.
    let (changed, done) = run_once(&store, "a", &ok_result()).await;
    assert_eq!(done.record, changed.run);
    let runs = store.discovery_runs(src, 20).await.expect("runs");
    assert!(runs.iter().all(|r| r.runs == 1), "{runs:?}");
    assert_eq!(
        runs.iter().take(7).map(|r| r.id).collect::<Vec<_>>(),
        [changed.run, after_failure.run, bad2.run, bad.run, after_asked.run, asked, base.run]
    );

    // A run completed after its lease was taken over is recorded failed by the new holder, and
    // neither it nor the new holder's run is folded.
    let (_, _) = run_once(&store, "a", &unchanged()).await;
    let dead = store.claim_due_discoveries("dead", Duration::from_millis(50), 10).await.expect("claim");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let taken = loop {
        let got = store.claim_due_discoveries("survivor", HOUR, 10).await.expect("claim");
        if !got.is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "the expired lease was never reclaimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let late = store
        .complete_discovery(&dead[0], "dead", &unchanged(), NextDue::After { delay_ms: 0 })
        .await
        .expect("complete");
    assert_eq!((late.held, late.finished_at, late.record), (false, None, dead[0].run));
    let done = store
        .complete_discovery(&taken[0], "survivor", &unchanged(), NextDue::After { delay_ms: 0 })
        .await
        .expect("complete");
    assert_eq!((done.held, done.record), (true, taken[0].run), "not folded into the abandoned run");
    let abandoned = store.discovery_run(src, dead[0].run).await.expect("abandoned");
    assert_eq!((abandoned.outcome, abandoned.runs), (Some(RunOutcome::Failed), 1));
}

async fn the_audit_log_filters_pages_and_refuses_rewrites(f: &Fixture) {
    let store = f.open().await;
    let prod = id("prod");
    let mut ids = Vec::new();
    for i in 0..25 {
        let entry = NewAuditEntry {
            actor: if i % 2 == 0 { "user:ana".into() } else { "token:abc".into() },
            kind: if i % 5 == 0 { "source.update".into() } else { "login".into() },
            source: (i % 3 == 0).then(|| prod.clone()),
            detail: serde_json::json!({ "n": i }),
        };
        ids.push(store.append_audit(&entry).await.expect("append"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow");

    // Ana's entries, 4 to a page, newest first, followed by their cursor.
    let mut filter = AuditFilter { actor: Some("user:ana".into()), limit: Some(4), ..AuditFilter::default() };
    let mut seen = Vec::new();
    loop {
        let page = store.audit(&filter).await.expect("page");
        assert!(page.entries.len() <= 4);
        seen.extend(page.entries.iter().map(|e| (e.id, e.detail["n"].as_i64().expect("n"))));
        match page.next {
            Some(next) => filter.before = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (0..25).rev().filter(|i| i % 2 == 0).map(|i| (ids[i as usize], i)).collect();
    assert_eq!(seen, expected);

    let both = AuditFilter { source: Some(prod.clone()), kind: Some("source.update".into()), ..AuditFilter::default() };
    let hits: Vec<_> = store.audit(&both).await.expect("page").entries.iter().map(|e| e.detail["n"].clone()).collect();
    assert_eq!(hits, [serde_json::json!(15), serde_json::json!(0)]);

    // A time range: everything from the 10th entry's time on includes it and all later ones.
    let all = store.audit(&AuditFilter::default()).await.expect("all").entries;
    let tenth = all.iter().find(|e| e.id == ids[10]).expect("tenth").at;
    let from = store.audit(&AuditFilter { from: Some(tenth), ..AuditFilter::default() }).await.expect("from").entries;
    assert!(from.iter().all(|e| e.at >= tenth) && from.iter().any(|e| e.id == ids[10]) && from.len() >= 15);
    let until =
        store.audit(&AuditFilter { until: Some(tenth), ..AuditFilter::default() }).await.expect("until").entries;
    assert!(until.iter().all(|e| e.at < tenth));
    assert_eq!(from.len() + until.len(), 25);
    let e = store.audit(&AuditFilter { limit: Some(0), ..AuditFilter::default() }).await.expect_err("limit");
    assert!(matches!(e, StoreError::Invalid { field: "limit", .. }), "{e:?}");

    // A query is recorded as it starts and completed once.
    let q = store.begin_query_audit("user:ana", &prod, "select 1").await.expect("begin");
    let started = store.audit(&AuditFilter { kind: Some("query".into()), ..AuditFilter::default() }).await.expect("q");
    assert_eq!((started.entries[0].sql.as_deref(), started.entries[0].outcome), (Some("select 1"), None));
    let done = QueryCompletion { duration_ms: 12, rows: 1, bytes: 2, outcome: QueryOutcome::Ok, error: None };
    store.complete_query_audit(q, &done).await.expect("complete");
    assert!(matches!(store.complete_query_audit(q, &done).await, Err(StoreError::NotFound { .. })));
    let finished = store.audit(&AuditFilter { kind: Some("query".into()), ..AuditFilter::default() }).await.expect("q");
    let entry = &finished.entries[0];
    assert_eq!(
        (entry.rows, entry.bytes, entry.duration_ms, entry.outcome),
        (Some(1), Some(2), Some(12), Some(QueryOutcome::Ok))
    );
    assert!(entry.finished_at.expect("finished") >= entry.at);

    // The database itself refuses to delete or rewrite entries.
    for sql in [
        "DELETE FROM audit_log",
        "UPDATE audit_log SET actor = 'someone else'",
        "UPDATE audit_log SET rows = 99 WHERE kind = 'query'",
    ] {
        let e = f.raw_exec(sql).await.expect_err(sql);
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    if !f.is_sqlite() {
        let e = f.raw_exec("TRUNCATE audit_log").await.expect_err("truncate");
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(
        store.audit(&AuditFilter { limit: Some(1000), ..AuditFilter::default() }).await.expect("all").entries.len(),
        26
    );
}

async fn concurrent_query_audits_are_each_begun_and_completed_once(f: &Fixture) {
    let store = std::sync::Arc::new(f.open().await);
    let prod = id("prod");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64i64 {
        let (store, prod) = (store.clone(), prod.clone());
        tasks.spawn(async move {
            let q = store.begin_query_audit(&format!("user:{i}"), &prod, &format!("select {i}")).await?;
            let done =
                QueryCompletion { duration_ms: i, rows: i, bytes: 2 * i, outcome: QueryOutcome::Ok, error: None };
            store.complete_query_audit(q, &done).await?;
            Ok::<_, StoreError>((i, q))
        });
    }
    let mut acked = std::collections::HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (i, q) = done.expect("task").expect("begun and completed");
        assert!(acked.insert(q, i).is_none(), "one id per entry");
    }
    let logged = store.audit(&AuditFilter { limit: Some(1000), ..AuditFilter::default() }).await.expect("log").entries;
    assert_eq!(logged.len(), 64);
    for entry in logged {
        let i = acked[&entry.id];
        assert_eq!(
            (entry.actor, entry.sql, entry.rows, entry.bytes, entry.outcome),
            (format!("user:{i}"), Some(format!("select {i}")), Some(i), Some(2 * i), Some(QueryOutcome::Ok))
        );
    }
}

async fn a_store_url_password_never_shows(f: &Fixture) {
    let store = f.open().await;
    let shown = format!("{store:?} {}", store.location());
    assert!(!shown.contains(sluice_testkit::SUPERUSER_PASSWORD), "{shown}");
    assert!(!shown.contains(&*f.key.to_base64()), "{shown}");
}

const GENERATED_KEY: &str =
    "-----BEGIN OPENSSH PRIVATE KEY-----\ngenerated-KEY-body-9d31aa\n-----END OPENSSH PRIVATE KEY-----\n";
const GENERATED_PUBLIC: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBo6iTe0tSGTZUKedSzijO+wCZIppqSKYnqRTZuvP3Qe sluice-k1";

async fn a_generated_ssh_key_is_claimed_once_sealed_and_replaced(f: &Fixture) {
    let store = f.open().await;
    let day = Duration::from_secs(86_400);
    let made = store
        .create_ssh_key("k1", GENERATED_PUBLIC, "SHA256:fp1", &Secret::new(GENERATED_KEY), "user:ada", day)
        .await
        .expect("create");
    assert_eq!(made.public_key, GENERATED_PUBLIC);
    assert!(made.expires_at - made.created_at == 86_400_000, "{made:?}");
    let e = store
        .create_ssh_key("k1", GENERATED_PUBLIC, "SHA256:fp1", &Secret::new(GENERATED_KEY), "user:ada", day)
        .await
        .expect_err("ids are unique");
    assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
    let e = store.create_ssh_key("K 1", "p", "f", &Secret::new("x"), "a", day).await.expect_err("bad id");
    assert!(matches!(e, StoreError::Invalid { field: "key_id", .. }), "{e:?}");
    assert_eq!(store.pending_ssh_key("k1").await.expect("pending").expose(), GENERATED_KEY);

    // A source claims it: its SSH private key is the generated one, its public half is shown.
    let (settings, mut secrets) = full_source();
    secrets.ssh_private_key = None;
    let prod = id("prod");
    let created =
        store.put_source_claiming(&prod, "Production", &settings, &secrets, Some("k1"), None).await.expect("put");
    assert_eq!(created.ssh_public_key.as_deref(), Some(GENERATED_PUBLIC));
    assert!(created.secret_fields.contains(&SecretField::SshPrivateKey));
    let spec = store.source_spec(&prod).await.expect("spec");
    let Network::Ssh(ssh) = &spec.network else { panic!("ssh") };
    assert!(matches!(&ssh.private_key, Some(KeySource::Pem(k)) if k.expose() == GENERATED_KEY));

    // Once only: neither a second source nor a test may use it again.
    let e = store.pending_ssh_key("k1").await.expect_err("claimed");
    assert!(matches!(e, StoreError::Invalid { field: "ssh.private_key_id", .. }), "{e:?}");
    let e = store
        .put_source_claiming(&id("dev"), "Dev", &settings, &secrets, Some("k1"), None)
        .await
        .expect_err("claimed twice");
    assert!(matches!(e, StoreError::Invalid { field: "ssh.private_key_id", .. }), "{e:?}");
    assert!(matches!(store.source(&id("dev")).await, Err(StoreError::NotFound { .. })), "nothing was written");
    let e = store.update_source_claiming(&prod, "Production", &settings, &secrets, Some("nope")).await;
    assert!(matches!(e, Err(StoreError::Invalid { field: "ssh.private_key_id", .. })), "{e:?}");
    let both = full_source().1;
    store
        .create_ssh_key("k2", GENERATED_PUBLIC, "SHA256:fp2", &Secret::new(GENERATED_KEY), "a", day)
        .await
        .expect("k2");
    let e = store.update_source_claiming(&prod, "Production", &settings, &both, Some("k2")).await;
    assert!(matches!(e, Err(StoreError::Invalid { field: "ssh.private_key_id", .. })), "{e:?}");

    // An edit claiming another key replaces the first; a pasted key replaces a generated one.
    let none = SourceSecrets::default();
    let edited = store.update_source_claiming(&prod, "Production", &settings, &none, Some("k2")).await;
    assert_eq!(edited.expect("edit").ssh_public_key.as_deref(), Some(GENERATED_PUBLIC));
    assert_eq!(f.raw_scalar("SELECT count(*) FROM ssh_keys".to_string()).await, 1, "k1 is gone");
    let pasted =
        SourceSecrets { ssh_private_key: Some(KeySource::Pem(Secret::new(SSH_KEY))), ..SourceSecrets::default() };
    let edited = store.update_source(&prod, "Production", &settings, &pasted).await.expect("paste");
    assert_eq!(edited.ssh_public_key, None);
    // An edit that leaves the key alone keeps it.
    store
        .create_ssh_key("k3", GENERATED_PUBLIC, "SHA256:fp3", &Secret::new(GENERATED_KEY), "a", day)
        .await
        .expect("k3");
    store
        .update_source_claiming(&prod, "Production", &settings, &SourceSecrets::default(), Some("k3"))
        .await
        .expect("k3");
    let renamed = store.update_source(&prod, "Prod", &settings, &SourceSecrets::default()).await.expect("rename");
    assert_eq!(renamed.ssh_public_key.as_deref(), Some(GENERATED_PUBLIC));

    // An unclaimed key expires (waiting on the store's own verdict, not on a clock here).
    store
        .create_ssh_key(
            "short",
            GENERATED_PUBLIC,
            "SHA256:fp4",
            &Secret::new(GENERATED_KEY),
            "a",
            Duration::from_millis(1),
        )
        .await
        .expect("short-lived");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.pending_ssh_key("short").await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the key never expired");
        tokio::task::yield_now().await;
    }
    let e = store.update_source_claiming(&prod, "Prod", &settings, &SourceSecrets::default(), Some("short")).await;
    assert!(matches!(e, Err(StoreError::Invalid { field: "ssh.private_key_id", .. })), "{e:?}");

    // Unclaimed keys are resealed with the rest when the master key rotates.
    store
        .create_ssh_key("k4", GENERATED_PUBLIC, "SHA256:fp5", &Secret::new(GENERATED_KEY), "a", day)
        .await
        .expect("k4");
    let new = MasterKey::generate().expect("key");
    store.rotate_master_key(&f.key, new.clone()).await.expect("rotate");
    assert_eq!(store.pending_ssh_key("k4").await.expect("after rotation").expose(), GENERATED_KEY);
    store.close().await;
    let raw = f.raw_bytes().await;
    assert!(raw.iter().any(|b| count(b, b"sluice-k1") > 0), "the search must see the public keys");
    let hits: usize = raw.iter().map(|b| count(b, b"generated-KEY-body")).sum();
    assert_eq!(hits, 0, "a generated private key is in the store in plaintext");
}

async fn catalog_changes_page_snapshots_answer_by_time_and_retention_keeps_the_latest(f: &Fixture) {
    let store = f.open().await;
    let prod = id("prod");
    let spec = SourceSpec::new("h", "d", "u");
    store.put_source(&prod, "Production", &spec, &SourceSecrets::default()).await.expect("src");
    let v1 = br#"{"schemas":[{"name":"public","relations":[]}]}"#.to_vec();
    let v2 = br#"{"schemas":[{"name":"sales","relations":[]}]}"#.to_vec();
    let v3 = br#"{"schemas":[{"name":"sales","relations":[]}],"x":1}"#.to_vec();
    let s1 = store.put_snapshot(&prod, &v1).await.expect("put").expect("new");
    assert_eq!(store.previous_snapshot(&prod, s1.id).await.expect("previous"), None);
    let s2 = store.put_snapshot(&prod, &v2).await.expect("put").expect("new");
    let (prev, json) = store.previous_snapshot(&prod, s2.id).await.expect("previous").expect("some");
    assert_eq!((prev.id, json), (s1.id, v1.clone()));
    let s3 = store.put_snapshot(&prod, &v3).await.expect("put").expect("new");

    // The snapshot in force at a time: none before the first, then the newest at or before it.
    assert_eq!(store.snapshot_at(&prod, s1.discovered_at - 1).await.expect("at"), None);
    let (at_now, _) = store.snapshot_at(&prod, s3.discovered_at + 1).await.expect("at").expect("some");
    assert_eq!(at_now.id, s3.id);
    let (at_first, json) = store.snapshot_at(&prod, s1.discovered_at).await.expect("at").expect("some");
    assert!(at_first.id >= s1.id && at_first.discovered_at == s1.discovered_at, "{at_first:?}");
    if at_first.id == s1.id {
        assert_eq!(json, v1);
    }

    let diff = serde_json::json!({"lost_access": [{"schema": "public", "name": "orders", "kind": "table"}]});
    let counts = serde_json::json!({"lost_access": 1});
    let c1 = store.add_catalog_change(&prod, s1.id, s2.id, &diff, &counts).await.expect("change");
    assert_eq!((c1.from_snapshot, c1.to_snapshot, &c1.diff, &c1.counts), (s1.id, s2.id, &diff, &counts));
    let c2 = store
        .add_catalog_change(&prod, s2.id, s3.id, &serde_json::json!({}), &serde_json::json!({}))
        .await
        .expect("change");
    let c3 = store.add_catalog_change(&prod, s2.id, s3.id, &diff, &counts).await.expect("change");
    let e = store.add_catalog_change(&prod, s1.id, s2.id, &serde_json::json!([]), &counts).await.expect_err("array");
    assert!(matches!(e, StoreError::Invalid { field: "diff", .. }), "{e:?}");
    let e = store.add_catalog_change(&id("ghost"), s1.id, s2.id, &diff, &counts).await.expect_err("no source");
    assert!(matches!(e, StoreError::NotFound { entity: "source" }), "{e:?}");

    // Newest first, paged by cursor.
    let page = store.catalog_changes(&prod, None, Some(2)).await.expect("page");
    assert_eq!(page.changes.iter().map(|c| c.id).collect::<Vec<_>>(), [c3.id, c2.id]);
    assert_eq!(page.next, Some(c2.id));
    let page = store.catalog_changes(&prod, page.next, Some(2)).await.expect("page");
    assert_eq!(page.changes, [c1]);
    assert_eq!(page.next, None);
    let e = store.catalog_changes(&prod, None, Some(0)).await.expect_err("limit");
    assert!(matches!(e, StoreError::Invalid { field: "limit", .. }), "{e:?}");

    let run = store.start_discovery_run(&prod).await.expect("run");
    store.finish_discovery_run(run, RunOutcome::Ok, None, None).await.expect("finish");
    let latest_run = store.start_discovery_run(&prod).await.expect("run");
    store.finish_discovery_run(latest_run, RunOutcome::Ok, None, None).await.expect("finish");

    // Within the window nothing goes.
    let day = Duration::from_secs(86_400);
    let pruned = store.prune_history(s3.discovered_at, day * 90).await.expect("prune");
    assert_eq!(pruned, sluice_store::Pruned::default());
    assert_eq!(store.snapshots(&prod).await.expect("list").len(), 3);

    // A hundred days later: every change and run older than 90 days goes, but the latest snapshot
    // and the latest run stay.
    let later = s3.discovered_at + 100 * 86_400_000;
    let pruned = store.prune_history(later, day * 90).await.expect("prune");
    assert_eq!((pruned.changes, pruned.snapshots, pruned.runs), (3, 2, 1), "{pruned:?}");
    let left: Vec<_> = store.snapshots(&prod).await.expect("list").into_iter().map(|s| s.id).collect();
    assert_eq!(left, [s3.id]);
    assert_eq!(store.latest_snapshot(&prod).await.expect("latest").expect("kept").1, v3);
    assert!(store.catalog_changes(&prod, None, None).await.expect("page").changes.is_empty());
    let runs = store.discovery_runs(&prod, 10).await.expect("runs");
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [latest_run]);
    // The latest snapshot still answers for any time after it.
    assert_eq!(store.snapshot_at(&prod, later).await.expect("at").expect("some").0.id, s3.id);
}

async fn alerts_stay_open_once_clear_once_and_queue_one_notification_each(f: &Fixture) {
    let store = f.open().await;
    let prod = sources(&store, 1).await.remove(0);
    let details = serde_json::json!({ "schema": "public", "name": "orders", "grant": "GRANT SELECT ON TABLE public.orders TO ro;" });
    // No webhook yet: the alert is recorded and audited, nothing is queued.
    let quiet = store
        .raise_alert(&prod, AlertKind::LostUsage, "sales", &serde_json::json!({}))
        .await
        .expect("raise")
        .expect("new");
    assert!(store.webhook().await.expect("webhook").is_none());

    let secret = Secret::new("whsec-Tq71-unique");
    let info = store.set_webhook("https://hooks.example.com/sluice", &secret).await.expect("set");
    assert_eq!((info.url.as_str(), info.pending), ("https://hooks.example.com/sluice", 0));
    let (url, back) = store.webhook_target().await.expect("target").expect("some");
    assert_eq!((url.as_str(), back.expose()), ("https://hooks.example.com/sluice", "whsec-Tq71-unique"));

    let raised = store.raise_alert(&prod, AlertKind::LostAccess, "public.orders", &details).await.expect("raise");
    let raised = raised.expect("a new alert");
    assert_eq!(
        (raised.kind, raised.subject.as_str(), raised.cleared_at),
        (AlertKind::LostAccess, "public.orders", None)
    );
    assert_eq!(raised.details, details);
    // Raising it again while it is open changes nothing.
    assert!(store.raise_alert(&prod, AlertKind::LostAccess, "public.orders", &details).await.expect("again").is_none());
    let e =
        store.raise_alert(&prod, AlertKind::LostAccess, "x", &serde_json::json!([1])).await.expect_err("not an object");
    assert!(matches!(e, StoreError::Invalid { field: "details", .. }), "{e:?}");
    let open = store.open_alerts(Some(&prod)).await.expect("open");
    assert_eq!(open.iter().map(|a| a.id).collect::<Vec<_>>(), [quiet.id, raised.id]);
    assert_eq!(store.open_alerts(None).await.expect("all").len(), 2);

    // One notification, leased to one instance at a time.
    let a = store.claim_webhook_deliveries("a", Duration::from_secs(60), 10).await.expect("claim");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].event_id, format!("alert-{}-raised", raised.id));
    let body: serde_json::Value = serde_json::from_str(&a[0].body).expect("json body");
    assert_eq!(body["type"], "alert.raised");
    assert_eq!(body["id"], a[0].event_id.as_str());
    assert_eq!(body["alert"]["subject"], "public.orders");
    assert_eq!(body["source"], prod.as_str());
    assert!(store.claim_webhook_deliveries("b", Duration::from_secs(60), 10).await.expect("claim").is_empty());
    // A failure makes it due again after the delay; a zero delay makes it due now.
    assert!(store
        .finish_webhook_delivery(&a[0], "a", Some("503 from the receiver"), Duration::ZERO)
        .await
        .expect("fail"));
    assert!(!store.finish_webhook_delivery(&a[0], "b", None, Duration::ZERO).await.expect("not b's"));
    let info = store.webhook().await.expect("webhook").expect("some");
    assert_eq!((info.pending, info.last_error.as_deref()), (1, Some("503 from the receiver")));
    let again = store.claim_webhook_deliveries("b", Duration::from_secs(60), 10).await.expect("claim");
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    assert!(store.finish_webhook_delivery(&again[0], "b", None, Duration::ZERO).await.expect("delivered"));
    assert!(!store.finish_webhook_delivery(&again[0], "b", None, Duration::ZERO).await.expect("once"));
    assert!(store.claim_webhook_deliveries("a", Duration::from_secs(60), 10).await.expect("claim").is_empty());
    assert_eq!(store.webhook().await.expect("webhook").expect("some").pending, 0);

    // Clearing: once; the cleared alert stays in the history, and a new one may be raised.
    let cleared = store.clear_alert(&prod, raised.id).await.expect("clear").expect("was open");
    assert!(cleared.cleared_at.is_some());
    assert!(store.clear_alert(&prod, raised.id).await.expect("clear").is_none());
    let cleared_event = store.claim_webhook_deliveries("a", Duration::from_secs(60), 10).await.expect("claim");
    assert_eq!(cleared_event.len(), 1);
    assert_eq!(cleared_event[0].event_id, format!("alert-{}-cleared", raised.id));
    assert_eq!(store.open_alerts(Some(&prod)).await.expect("open").len(), 1);
    let again = store.raise_alert(&prod, AlertKind::LostAccess, "public.orders", &details).await.expect("raise");
    assert!(again.is_some());
    let history = store.alert_history(&prod, 10).await.expect("history");
    assert_eq!(history.len(), 3);
    assert!(history.iter().any(|a| a.id == raised.id && a.cleared_at.is_some()));

    let audit = store.audit(&AuditFilter { source: Some(prod.clone()), ..Default::default() }).await.expect("audit");
    let kinds: Vec<&str> = audit.entries.iter().map(|e| e.kind.as_str()).filter(|k| k.starts_with("alert.")).collect();
    assert_eq!(kinds, ["alert.raised", "alert.cleared", "alert.raised", "alert.raised"]);

    // The secret survives a key rotation; removing the webhook drops what was pending.
    let new_key = MasterKey::generate().expect("key");
    store.rotate_master_key(&f.key, new_key).await.expect("rotate");
    assert_eq!(store.webhook_target().await.expect("target").expect("some").1.expose(), "whsec-Tq71-unique");
    assert!(store.delete_webhook().await.expect("delete"));
    assert!(!store.delete_webhook().await.expect("delete"));
    assert!(store.webhook().await.expect("webhook").is_none());
    assert!(store.claim_webhook_deliveries("a", Duration::from_secs(60), 10).await.expect("claim").is_empty());
}

async fn a_periodic_task_is_claimed_once_per_period(f: &Fixture) {
    let store = f.open().await;
    // New: due at once, for one claimer only.
    assert!(store.claim_periodic("prune", "a", HOUR).await.expect("claim"));
    assert!(!store.claim_periodic("prune", "b", HOUR).await.expect("claim"));
    assert!(!store.claim_periodic("prune", "a", HOUR).await.expect("claim"));
    // Another task has its own period.
    assert!(store.claim_periodic("other", "b", HOUR).await.expect("claim"));
    // Once the period is over, the next claimer gets it (here: made due by hand).
    f.raw_exec("UPDATE periodic_tasks SET next_due_at = 0 WHERE name = 'prune'").await.expect("make due");
    let (x, y) = tokio::join!(store.claim_periodic("prune", "b", HOUR), store.claim_periodic("prune", "c", HOUR));
    assert_eq!([x.expect("claim"), y.expect("claim")].iter().filter(|c| **c).count(), 1);
    let e = store.claim_periodic("prune", "a", Duration::ZERO).await.expect_err("a zero period");
    assert!(matches!(e, StoreError::Invalid { .. }), "{e:?}");
}

async fn a_test_outcome_is_kept_until_the_settings_or_a_secret_change(f: &Fixture) {
    let store = f.open().await;
    let (settings, secrets) = full_source();
    let prod = id("prod");
    let created = store.put_source(&prod, "Production", &settings, &secrets).await.expect("put");
    assert_eq!(created.last_test, None, "never tested");

    let failed = NewSourceTest { tested_by: "ada", ok: false, failed: Some("auth"), message: Some("password refused") };
    store.record_source_test(&prod, &failed).await.expect("record");
    let t = store.source(&prod).await.expect("source").last_test.expect("a test");
    assert!(!t.ok && t.tested_by == "ada" && t.tested_at >= created.created_at, "{t:?}");
    assert_eq!((t.failed.as_deref(), t.message.as_deref()), (Some("auth"), Some("password refused")));

    // A later test replaces it, in the listing too.
    let passed = NewSourceTest { tested_by: "grace", ok: true, failed: None, message: None };
    store.record_source_test(&prod, &passed).await.expect("record");
    let listed = store.sources().await.expect("list");
    let t = listed[0].last_test.clone().expect("a test");
    assert!(t.ok && t.tested_by == "grace" && t.failed.is_none() && t.message.is_none(), "{t:?}");

    // A rename keeps it: the test still describes the connection.
    let kept = store.update_source(&prod, "Prod", &settings, &SourceSecrets::default()).await.expect("rename");
    assert_eq!(kept.last_test.as_ref().map(|t| t.tested_by.as_str()), Some("grace"));
    // New settings clear it...
    let mut moved = settings.clone();
    moved.database = "app2".into();
    let cleared = store.update_source(&prod, "Prod", &moved, &SourceSecrets::default()).await.expect("edit");
    assert_eq!(cleared.last_test, None);
    // ...and so does a new secret with the settings unchanged.
    store.record_source_test(&prod, &passed).await.expect("record");
    let patch = SourceSecrets { password: Some(Secret::new("pw-new")), ..SourceSecrets::default() };
    let cleared = store.update_source(&prod, "Prod", &moved, &patch).await.expect("new password");
    assert_eq!(cleared.last_test, None);

    // A source that is gone is not found.
    let e = store.record_source_test(&id("gone"), &passed).await.expect_err("no such source");
    assert!(matches!(e, StoreError::NotFound { entity: "source" }), "{e:?}");
}

/// Each case as a test on each backend.
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let f = crate::common::Fixture::sqlite();
                    super::$case(&f).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let f = crate::common::Fixture::postgres();
                    if f.supported().await {
                        super::$case(&f).await;
                    }
                }
            )+
        }
    };
}

on_both_backends!(
    sources_round_trip_and_an_edit_without_a_secret_keeps_it,
    a_test_outcome_is_kept_until_the_settings_or_a_secret_change,
    a_taken_name_or_login_is_a_conflict_naming_the_field,
    secrets_never_reach_the_store_in_plaintext,
    a_wrong_or_missing_master_key_is_refused,
    rotation_reseals_every_secret_under_the_new_key,
    users_sign_in_only_with_the_right_password_while_enabled,
    sessions_are_found_by_their_cookie_until_revoked,
    tokens_verify_until_revoked_and_only_with_their_secret,
    a_setup_token_works_exactly_once,
    a_snapshot_is_stored_only_when_the_catalog_changed,
    discovery_runs_start_and_finish_once,
    the_audit_log_filters_pages_and_refuses_rewrites,
    concurrent_query_audits_are_each_begun_and_completed_once,
    a_store_url_password_never_shows,
    a_generated_ssh_key_is_claimed_once_sealed_and_replaced,
    claiming_due_sources_is_exclusive_across_concurrent_claimers,
    a_finished_run_schedules_the_next_due_time,
    an_expired_lease_is_reclaimed_and_its_run_recorded_as_failed,
    a_requested_run_is_queued_once_then_claimed,
    a_run_is_scheduled_on_the_interval_stored_when_it_completes,
    a_shorter_interval_makes_the_source_due_within_it,
    an_edit_saves_its_schedule_with_it_or_nothing,
    a_new_source_is_claimable_only_with_its_interval,
    consecutive_unchanged_scheduled_runs_fold_into_one_record,
    runs_asked_for_failed_or_changed_are_never_folded,
    catalog_changes_page_snapshots_answer_by_time_and_retention_keeps_the_latest,
    alerts_stay_open_once_clear_once_and_queue_one_notification_each,
    a_periodic_task_is_claimed_once_per_period,
);
