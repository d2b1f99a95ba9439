//! SCRAM channel binding against real PostgreSQL clusters, with server certificates signed with
//! each hash `tls-server-end-point` can use, and the refusals of `channel_binding=require`.
//!
//! rcgen on ring mints the ECDSA and Ed25519 chains; it can neither generate RSA keys nor sign
//! with RSA-PSS or P-521, so those chains are minted with the `openssl` command. Every
//! certificate's signature algorithm is checked before it is used, and Debian's psql (libpq) must
//! agree with Sluice on each server.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_connect::channel_binding::{end_point_hash, EndPointHash, NoBinding};
use sluice_connect::{ChannelBindingRefusal, ConnectError, Connector, Stage};
use sluice_core::{CertSource, ChannelBinding, Secret, SourceSpec, SslMode, UserFacing};
use sluice_testkit::{CaKey, CertPair, Cluster, ClusterOptions, HbaRule, TestCa, TlsFiles};

const PW: &str = "bind-me-pw";

/// A CA certificate and a server certificate for `localhost` it signed, all PEM.
struct Chain {
    ca_pem: String,
    server: CertPair,
}

fn rcgen_chain(key: CaKey) -> Chain {
    let ca = TestCa::with_key("Sluice channel binding CA", key).expect("ca");
    Chain { server: ca.server_cert(&["localhost"]).expect("server cert"), ca_pem: ca.cert_pem }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A chain minted with the openssl command: a CA with the key `genpkey` makes from `ca_key`,
/// signing itself and a P-256 server certificate with `sign` (digest and `-sigopt`s).
fn openssl_chain(ca_key: &[&str], sign: &[&str]) -> Chain {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    openssl(d, &[&["genpkey"][..], ca_key, &["-out", "ca.key"]].concat());
    openssl(
        d,
        &[
            &["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Sluice channel binding CA", "-days", "2"][..],
            &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            sign,
            &["-out", "ca.crt"],
        ]
        .concat(),
    );
    openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "server.key"]);
    openssl(d, &["req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr"]);
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n",
    )
    .expect("ext file");
    openssl(
        d,
        &[
            &["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "2"][..],
            &["-days", "2", "-extfile", "server.ext"],
            sign,
            &["-out", "server.crt"],
        ]
        .concat(),
    );
    let read = |name: &str| std::fs::read_to_string(d.join(name)).expect(name);
    Chain { ca_pem: read("ca.crt"), server: CertPair { cert_pem: read("server.crt"), key_pem: read("server.key") } }
}

fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM").to_vec()
}

/// A TLS cluster whose server certificate is `chain`'s, with a SCRAM login `ro`.
struct Server {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(chain: &Chain, hba: Vec<HbaRule>) -> Server {
        let cluster = Cluster::start(ClusterOptions {
            tls: Some(TlsFiles { server: chain.server.clone(), client_ca_pem: None }),
            hba,
            ..Default::default()
        })
        .expect("cluster");
        cluster.create_login("ro", PW).expect("role");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), &chain.ca_pem).expect("ca file");
        Server { cluster, dir }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn spec(&self, user: &str, sslmode: SslMode, binding: ChannelBinding) -> SourceSpec {
        let mut s = SourceSpec::new("localhost", "postgres", user);
        s.hosts[0].port = self.cluster.port();
        s.password = Some(Secret::new(PW));
        s.sslmode = sslmode;
        s.channel_binding = binding;
        s.connect_timeout_secs = 10;
        if sslmode >= SslMode::VerifyCa {
            s.sslrootcert = Some(CertSource::File(self.ca_file()));
        }
        s
    }

    async fn connect(&self, spec: SourceSpec) -> Result<sluice_connect::ReadOnlySession, ConnectError> {
        Connector::new(spec)?.connect().await
    }

    /// Debian's psql (libpq) with these sslmode and channel_binding: its output, or its error.
    fn psql(&self, user: &str, sslmode: &str, binding: &str) -> Result<String, String> {
        let psql = std::env::var_os("PSQL").unwrap_or_else(|| "/usr/bin/psql".into());
        let conninfo = format!(
            "host=localhost port={} user={user} dbname=postgres sslmode={sslmode} sslrootcert={} channel_binding={binding} connect_timeout=10",
            self.cluster.port(),
            self.ca_file().display()
        );
        let out = Command::new(psql)
            .args(["-X", "-A", "-t", "-c", "SELECT 'bound'", &conninfo])
            .env("PGPASSWORD", PW)
            .env_remove("PGSSLMODE")
            .env_remove("PGCHANNELBINDING")
            .output()
            .expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// Sluice and psql both log in with `channel_binding=require` (so the login was bound, and the
/// server found the same hash), and Sluice also with the default `prefer`.
async fn binds(chain: Chain, expected: EndPointHash, sslmode: SslMode) {
    assert_eq!(end_point_hash(&der(&chain.server.cert_pem)), Ok(expected), "the test certificate's algorithm");
    let srv = Server::start(&chain, vec![HbaRule::HostSslScram]);
    // PostgreSQL 10 has SCRAM but no channel binding (SCRAM-SHA-256-PLUS came with 11): there
    // `require` must fail, for Sluice as for psql, and `prefer` logs in unbound.
    let server_binds = srv.cluster.version_num().expect("version") >= 110_000;
    let session = srv
        .connect(srv.spec("ro", sslmode, ChannelBinding::Prefer))
        .await
        .unwrap_or_else(|e| panic!("prefer with {}: {e}\n{}", expected.name(), srv.cluster.log()));
    assert!(session.info().tls.is_some());
    let required = srv.connect(srv.spec("ro", sslmode, ChannelBinding::Require)).await;
    let psql = srv.psql("ro", sslmode.as_str(), "require");
    if server_binds {
        let session =
            required.unwrap_or_else(|e| panic!("require with {}: {e}\n{}", expected.name(), srv.cluster.log()));
        assert!(session.info().tls.is_some());
        assert_eq!(psql.as_deref(), Ok("bound"), "psql agrees");
    } else {
        let Err(e) = required else { panic!("require cannot be met by PostgreSQL 10") };
        assert!(e.to_string().contains("SCRAM-SHA-256-PLUS"), "{e}");
        assert!(psql.is_err(), "psql refuses too: {psql:?}");
    }
}

#[tokio::test]
async fn rsa_sha256_certificate() {
    let chain = openssl_chain(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], &["-sha256"]);
    binds(chain, EndPointHash::Sha256, SslMode::VerifyFull).await;
}

#[tokio::test]
async fn rsa_pss_sha384_certificate() {
    let pss = ["-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"];
    let chain = openssl_chain(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], &pss);
    binds(chain, EndPointHash::Sha384, SslMode::VerifyFull).await;
}

#[tokio::test]
async fn ecdsa_p384_sha384_certificate() {
    binds(rcgen_chain(CaKey::EcdsaP384), EndPointHash::Sha384, SslMode::VerifyFull).await;
}

#[tokio::test]
async fn ecdsa_p521_sha512_certificate() {
    let chain = openssl_chain(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"], &["-sha512"]);
    // rustls's ring provider verifies no P-521 signature, so the chain is not verified here:
    // sslmode=require, where channel binding is what keeps a relaying middleman out.
    binds(chain, EndPointHash::Sha512, SslMode::Require).await;
}

#[tokio::test]
async fn ed25519_certificate_has_nothing_to_bind_to() {
    let chain = rcgen_chain(CaKey::Ed25519);
    assert_eq!(end_point_hash(&der(&chain.server.cert_pem)), Err(NoBinding::NoHash("Ed25519")));
    // libpq cannot bind to this certificate and then fails even under prefer ("could not find
    // digest for NID UNDEF"): the testkit's administration (psql, sslmode=prefer) is let in only
    // without TLS, which libpq then falls back to.
    let admin = HbaRule::Raw("hostnossl all postgres 127.0.0.1/32 scram-sha-256".into());
    let srv = Server::start(&chain, vec![admin, HbaRule::Raw("hostssl all ro 127.0.0.1/32 scram-sha-256".into())]);
    // prefer: the server offers SCRAM-SHA-256-PLUS, Sluice answers that it cannot bind, and logs in.
    srv.connect(srv.spec("ro", SslMode::VerifyFull, ChannelBinding::Prefer))
        .await
        .unwrap_or_else(|e| panic!("prefer: {e}\n{}", srv.cluster.log()));
    // require: refused before the password is sent, naming the certificate's algorithm.
    let e = srv.connect(srv.spec("ro", SslMode::VerifyFull, ChannelBinding::Require)).await.expect_err("require");
    assert_eq!(e.stage(), Stage::Auth);
    assert!(
        matches!(&e, ConnectError::ChannelBinding { reason: ChannelBindingRefusal::Certificate { .. }, .. }),
        "{e:?}"
    );
    assert!(e.message().contains("Ed25519"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("RSA or ECDSA")), "{e:?}");
    assert!(srv.psql("ro", "verify-full", "require").is_err(), "psql cannot bind either");
}

#[tokio::test]
async fn require_refuses_logins_that_are_not_bound() {
    let chain = rcgen_chain(CaKey::EcdsaP384);
    let srv = Server::start(
        &chain,
        vec![
            HbaRule::Raw("hostssl all md5user 127.0.0.1/32 md5".into()),
            HbaRule::Raw("hostssl all pwuser 127.0.0.1/32 password".into()),
            HbaRule::HostScram,
        ],
    );
    srv.cluster
        .psql(
            "postgres",
            &format!(
                "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD '{PW}';\n\
                 CREATE ROLE pwuser LOGIN PASSWORD '{PW}';"
            ),
        )
        .expect("roles");

    for user in ["md5user", "pwuser"] {
        // The password is right: prefer logs in.
        srv.connect(srv.spec(user, SslMode::VerifyFull, ChannelBinding::Prefer))
            .await
            .unwrap_or_else(|e| panic!("{user} with prefer: {e}"));
        let e = srv
            .connect(srv.spec(user, SslMode::VerifyFull, ChannelBinding::Require))
            .await
            .expect_err("require against md5/password");
        assert_eq!(e.stage(), Stage::Auth, "{user}: {e}");
        assert!(
            matches!(&e, ConnectError::ChannelBinding { reason: ChannelBindingRefusal::NotOffered { .. }, .. }),
            "{user}: {e:?}"
        );
        assert!(e.message().contains("SCRAM-SHA-256-PLUS"), "{e}");
        assert!(e.hint().is_some_and(|h| h.contains("scram-sha-256")), "{e:?}");
        assert!(srv.psql(user, "verify-full", "require").is_err(), "psql refuses {user} too");
        assert_eq!(srv.psql(user, "verify-full", "prefer").as_deref(), Ok("bound"), "psql logs {user} in with prefer");
    }

    // sslmode=allow takes plaintext here (a `host` line): nothing to bind to.
    let e = srv.connect(srv.spec("ro", SslMode::Allow, ChannelBinding::Require)).await.expect_err("plaintext");
    assert!(matches!(&e, ConnectError::ChannelBinding { reason: ChannelBindingRefusal::NoTls { .. }, .. }), "{e:?}");
    assert!(e.hint().is_some_and(|h| h.contains("sslmode=require")), "{e:?}");

    // sslmode=disable with require is refused before anything is dialled.
    let e = srv.connect(srv.spec("ro", SslMode::Disable, ChannelBinding::Require)).await.expect_err("config");
    assert_eq!(e.stage(), Stage::Config, "{e}");
    assert!(e.message().contains("channel_binding"), "{e}");
    // …and disable turns binding off entirely (the same server, TLS, SCRAM).
    srv.connect(srv.spec("ro", SslMode::Prefer, ChannelBinding::Disable)).await.expect("channel_binding=disable");
}
