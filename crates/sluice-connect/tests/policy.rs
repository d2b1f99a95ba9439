//! The network policy on real sockets: a refused address is never dialled (a listener on it
//! accepts nothing), directly and for an SSH bastion, and the default policy refuses the cloud
//! metadata service before any connection.

use std::net::TcpListener;
use std::time::Duration;

use sluice_connect::{ConnectError, Connector, Dialer, NetworkPolicy, SshStage, SshTunnel, Stage};
use sluice_core::{HostKeyCheck, HostPort, KeySource, Network, Secret, SourceSpec, SshSpec, SslMode, UserFacing};
use sluice_testkit::{Cluster, KeyFormat, KeyType, Sshd, SshdOptions};

const PW: &str = "s3cret-pw";

fn spec(host: &str, port: u16) -> SourceSpec {
    let mut s = SourceSpec::new(host, "postgres", "ro");
    s.hosts[0].port = port;
    s.password = Some(Secret::new(PW));
    s.sslmode = SslMode::Disable;
    s.connect_timeout_secs = 5;
    s
}

fn deny_loopback() -> NetworkPolicy {
    NetworkPolicy::parse(&["127.0.0.0/8", "::1/128"], &[], &[]).expect("policy")
}

/// A listener on loopback, non-blocking so `accepted_nothing` can ask without waiting.
fn listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("non-blocking");
    l
}

/// Whether no connection reached the listener. A loopback TCP handshake completes before
/// `connect` returns, so a dial that happened would already wait in the accept queue.
fn accepted_nothing(l: &TcpListener) -> bool {
    match l.accept() {
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        Ok(_) => false,
    }
}

fn expect_refused<T>(r: Result<T, ConnectError>) -> ConnectError {
    match r {
        Ok(_) => panic!("expected the policy to refuse"),
        Err(e @ ConnectError::Refused { .. }) => e,
        Err(e) => panic!("expected a policy refusal, got {e:?}"),
    }
}

#[tokio::test]
async fn a_name_resolving_to_a_denied_address_is_never_dialled() {
    let l = listener();
    let port = l.local_addr().expect("addr").port();

    let connector = Connector::new(spec("localhost", port)).expect("connector").with_policy(deny_loopback());
    let e = expect_refused(connector.connect().await);
    assert_eq!(e.stage(), Stage::Dns);
    let message = e.message();
    assert!(message.contains("`localhost` resolves to"), "{message}");
    assert!(message.contains("127.0.0.0/8") || message.contains("::1/128"), "{message}");
    assert!(message.contains("nothing was sent"), "{message}");
    let hint = e.hint().unwrap_or_default();
    assert!(hint.contains("from the network policy's `deny` list"), "{hint}");
    assert!(accepted_nothing(&l), "the refused address was dialled");

    // The same dial under a policy that allows it does reach the listener: the observation works.
    let target = HostPort { host: "127.0.0.1".into(), port };
    let allowed = Dialer::direct(Duration::from_secs(5)).with_policy(NetworkPolicy::permissive());
    let _stream = allowed.dial(&target).await.expect("dial");
    assert!(!accepted_nothing(&l), "a permitted dial reached the listener");

    // An IP literal is checked as it stands, and an exact address with its port.
    let exact = NetworkPolicy::parse::<String>(&[], &[], &[format!("127.0.0.1:{port}")]).expect("policy");
    let e = expect_refused(Connector::new(spec("127.0.0.1", port)).expect("c").with_policy(exact).connect().await);
    assert!(e.message().starts_with("the network policy refuses 127.0.0.1"), "{}", e.message());
    assert!(e.hint().unwrap_or_default().contains("`deny_addresses`"), "{:?}", e.hint());
    // An allow list that does not contain loopback refuses it too.
    let allow = NetworkPolicy::parse(&[], &["10.0.0.0/8"], &[]).expect("policy");
    let e = expect_refused(Connector::new(spec("127.0.0.1", port)).expect("c").with_policy(allow).connect().await);
    assert!(e.message().contains("it allows only 10.0.0.0/8"), "{}", e.message());
    assert!(accepted_nothing(&l), "a refused address was dialled");
}

#[tokio::test]
async fn the_default_policy_refuses_metadata_services_before_connecting() {
    // No route is needed to these addresses: the refusal comes before any packet. Were they
    // dialled, the error would be a tcp failure or a timeout, not this.
    let cases = [
        ("169.254.169.254", "169.254.0.0/16", "169.254.169.254"),
        ("::ffff:169.254.169.254", "169.254.0.0/16", "169.254.169.254"),
        ("fd00:ec2::254", "fd00:ec2::254/128", "fd00:ec2::254"),
        ("100.100.100.200", "100.100.100.200/32", "100.100.100.200"),
        ("fe80::1", "fe80::/10", "fe80::1"),
    ];
    for (host, range, shown) in cases {
        let e = expect_refused(Connector::new(spec(host, 80)).expect("connector").connect().await);
        assert_eq!(e.stage(), Stage::Dns, "{host}");
        assert!(
            e.message().starts_with(&format!("the network policy refuses {shown}: it denies {range}")),
            "{host}: {}",
            e.message()
        );
        assert_eq!(e.kind(), sluice_core::ErrorKind::Config, "{host}");
    }
    let e = expect_refused(Connector::new(spec("169.254.169.254", 80)).expect("connector").connect().await);
    assert!(e.message().contains("cloud metadata"), "{}", e.message());
}

fn ssh_spec(sshd: &Sshd, host: &str, port: u16) -> SshSpec {
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    SshSpec {
        host: host.into(),
        port,
        user: sshd.user().into(),
        private_key: Some(KeySource::File(key.private_key_path.clone())),
        passphrase: None,
        host_key: HostKeyCheck::Fingerprint(sshd.host_key_fingerprint().into()),
    }
}

#[tokio::test]
async fn a_denied_bastion_is_never_dialled_and_the_database_behind_it_is_the_bastions_to_resolve() {
    let db = Cluster::start_default().expect("cluster");
    db.create_login("ro", PW).expect("role");
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");

    // The bastion's name resolves to a denied address: refused at dns, for sessions and for the
    // doctor's bastion stages alike, and nothing reaches the listener standing in for it.
    let l = listener();
    let fake_bastion = l.local_addr().expect("addr").port();
    let mut s = spec("127.0.0.1", db.port());
    s.network = Network::Ssh(ssh_spec(&sshd, "localhost", fake_bastion));
    let connector = Connector::new(s.clone()).expect("connector").with_policy(deny_loopback());
    let e = expect_refused(connector.connect().await);
    assert_eq!(e.stage(), Stage::Dns);
    assert!(e.message().contains("`localhost` resolves to"), "{}", e.message());
    let Network::Ssh(ssh) = &s.network else { unreachable!() };
    let tunnel = SshTunnel::new(ssh, Duration::from_secs(5)).expect("tunnel").with_network_policy(deny_loopback());
    let reports = tunnel.check_stages(&s.hosts[0]).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].stage, SshStage::Reach);
    assert!(matches!(reports[0].outcome, Err(ConnectError::Refused { .. })), "{reports:?}");
    assert!(accepted_nothing(&l), "the refused bastion was dialled");

    // The database host is resolved and dialled by the bastion, out of Sluice's sight: a policy
    // denying the database's exact address refuses it directly, not through the bastion.
    let deny_db = NetworkPolicy::parse::<String>(&[], &[], &[format!("127.0.0.1:{}", db.port())]).expect("policy");
    let direct = Connector::new(spec("127.0.0.1", db.port())).expect("c").with_policy(deny_db.clone());
    expect_refused(direct.connect().await);
    let mut via = spec("127.0.0.1", db.port());
    via.network = Network::Ssh(ssh_spec(&sshd, sshd.host(), sshd.port()));
    let session = Connector::new(via).expect("c").with_policy(deny_db).connect().await;
    assert!(session.is_ok(), "{:?}\n{}", session.err(), sshd.log());
}
