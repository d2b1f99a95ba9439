//! RDS IAM logins against real PostgreSQL clusters: the role's password is set to the token
//! Sluice signs at a fixed clock, so the server checks the token Sluice really sent, over TLS and
//! through the testkit's SSH bastion.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sluice_connect::{ConnectError, Connector, Stage};
use sluice_core::{
    Auth, CertSource, HostKeyCheck, KeySource, Network, RdsIam, Secret, SourceSpec, SshSpec, SslMode, UserFacing,
};
use sluice_iam::token::{generate, TokenRequest};
use sluice_iam::{CredentialSource, Credentials, Env, IamAuth};
use sluice_testkit::{Cluster, ClusterOptions, HbaRule, KeyFormat, KeyType, Sshd, SshdOptions, TestCa, TlsFiles};

const RDS_HOST: &str = "mydb.abc123xyz.eu-west-1.rds.amazonaws.com";
const REGION: &str = "eu-west-1";
const USER: &str = "iam_ro";
const ACCESS_KEY: &str = "ASIAEXAMPLEKEY123456";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEBYaDH+session/token=";
const T0: u64 = 1_700_000_000;

fn env() -> Env {
    Env::from_pairs([
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ])
}

/// The token for `secs`, signed for the RDS endpoint's name and port (not the dialled ones).
fn token_at(secs: u64) -> String {
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN.into()), CredentialSource::Environment);
    let request = TokenRequest { host: RDS_HOST, port: 5432, user: USER, region: REGION };
    generate(&creds, &request, UNIX_EPOCH + Duration::from_secs(secs)).expect("token").expose().to_string()
}

struct Server {
    cluster: Cluster,
    ca: TestCa,
}

/// TLS only (`hostssl`), the role's password set to the token for `T0`.
fn server() -> Server {
    let ca = TestCa::new("Sluice IAM Test CA").expect("ca");
    let server = ca.server_cert(&["localhost"]).expect("server cert");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server, client_ca_pem: None }),
        hba: vec![HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_login(USER, &token_at(T0)).expect("role");
    Server { cluster, ca }
}

fn iam() -> RdsIam {
    RdsIam { sign_host: Some(RDS_HOST.into()), sign_port: Some(5432), ..RdsIam::new(REGION) }
}

fn spec(srv: &Server, host: &str) -> SourceSpec {
    let mut s = SourceSpec::new(host, "postgres", USER);
    s.hosts[0].port = srv.cluster.port();
    s.sslmode = SslMode::VerifyFull;
    s.sslrootcert = Some(CertSource::Pem(srv.ca.cert_pem.clone()));
    s.connect_timeout_secs = 5;
    s.auth = Auth::RdsIam(iam());
    s
}

/// A clock the test moves.
fn clock(at: &Arc<AtomicU64>) -> sluice_iam::Clock {
    let at = at.clone();
    Arc::new(move || UNIX_EPOCH + Duration::from_secs(at.load(Ordering::SeqCst)))
}

fn connector(s: SourceSpec, at: &Arc<AtomicU64>) -> Connector {
    Connector::new(s).expect("connector").with_iam(IamAuth::new(iam(), env()).with_clock(clock(at)))
}

async fn current_user(session: &mut sluice_connect::ReadOnlySession) -> String {
    let tx = session.read_only_transaction().await.expect("begin");
    let rows = tx.client().simple_query("SELECT current_user").await.expect("query");
    tx.rollback().await.expect("rollback");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test]
async fn a_token_logs_in_over_verified_tls_and_every_attempt_signs_anew() {
    let srv = server();
    let at = Arc::new(AtomicU64::new(T0));
    let c = connector(spec(&srv, "localhost"), &at);
    let mut session = c.connect().await.unwrap_or_else(|e| panic!("{e}: {:?}\n{}", e.hint(), srv.cluster.log()));
    assert_eq!(current_user(&mut session).await, USER);
    assert_eq!(session.info().tls.as_ref().map(|t| t.verified), Some("chain+name"));

    // A minute later the same connector signs another token: the server, still expecting the
    // old one, refuses it — so no token was kept from the first login.
    at.store(T0 + 60, Ordering::SeqCst);
    let e = match c.connect().await {
        Ok(_) => panic!("a token for another time logged in"),
        Err(e) => e,
    };
    assert!(matches!(&e, ConnectError::IamLogin { code, .. } if code == "28P01"), "{e:?}");
    assert_eq!(e.stage(), Stage::Auth);
    let hint = e.hint().unwrap_or_default();
    let order = ["GRANT rds_iam", "--enable-iam-database-authentication", "rds-db:connect", "clock"];
    let positions: Vec<usize> = order.iter().map(|w| hint.find(w).unwrap_or_else(|| panic!("{w} in {hint}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "causes out of order: {hint}");
    assert!(hint.contains(&format!("arn:aws:rds-db:{REGION}:ACCOUNT:dbuser:DBI-RESOURCE-ID/{USER}")), "{hint}");
    for text in [e.message(), hint, format!("{e:?}")] {
        for secret in [SECRET_KEY, SESSION_TOKEN, "X-Amz-Signature", &token_at(T0 + 60)] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    // Once the server expects the new token, a reconnection logs in with a fresh one.
    srv.cluster.psql("postgres", &format!("ALTER ROLE {USER} PASSWORD '{}';", token_at(T0 + 60))).expect("alter");
    let mut session = c.connect().await.expect("a fresh token for the new time");
    assert_eq!(current_user(&mut session).await, USER);
}

#[tokio::test]
async fn without_credentials_the_login_fails_before_dialling_and_says_where_it_looked() {
    let srv = server();
    let env = Env::from_pairs([("HOME", "/nonexistent"), ("AWS_EC2_METADATA_DISABLED", "true")]);
    let c = Connector::new(spec(&srv, "localhost")).expect("connector").with_iam(IamAuth::new(iam(), env));
    let e = match c.connect().await {
        Ok(_) => panic!("logged in without credentials"),
        Err(e) => e,
    };
    assert!(matches!(e, ConnectError::Iam(sluice_iam::IamError::NoCredentials { .. })), "{e:?}");
    assert_eq!(e.stage(), Stage::Auth);
    assert!(e.message().contains("the environment") && e.message().contains("AWS_EC2_METADATA_DISABLED"), "{e}");
    assert!(e.hint().unwrap_or_default().contains("AWS_ACCESS_KEY_ID"));
    assert!(!srv.cluster.log().contains(USER), "nothing reached the server");
}

#[tokio::test]
async fn a_password_or_plaintext_is_refused_with_rds_iam() {
    let srv = server();
    let mut s = spec(&srv, "localhost");
    s.password = Some(Secret::new("hunter2"));
    let e = Connector::new(s).expect_err("password with rds_iam");
    assert!(matches!(e, ConnectError::Spec(ref s) if s.field == "password"), "{e:?}");
    let mut s = spec(&srv, "localhost");
    s.sslmode = SslMode::Prefer;
    let e = Connector::new(s).expect_err("prefer with rds_iam");
    assert!(matches!(e, ConnectError::Spec(ref s) if s.field == "sslmode"), "{e:?}");
}

#[tokio::test]
async fn a_token_logs_in_through_the_ssh_bastion() {
    let srv = server();
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let mut s = spec(&srv, "127.0.0.1");
    s.tls_server_name = Some("localhost".into());
    s.network = Network::Ssh(SshSpec {
        host: sshd.host().into(),
        port: sshd.port(),
        user: sshd.user().into(),
        private_key: Some(KeySource::File(key.private_key_path.clone())),
        passphrase: None,
        host_key: HostKeyCheck::Fingerprint(sshd.host_key_fingerprint().into()),
    });
    let at = Arc::new(AtomicU64::new(T0));
    let mut session = connector(s, &at).connect().await.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(current_user(&mut session).await, USER);
    assert!(sshd.log().contains(&key.fingerprint), "the login went through the bastion");
}
