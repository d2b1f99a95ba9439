//! The doctor under a network policy: a refused address fails the `dns` check with the policy's
//! reason and fix, the later connection stages are skipped, and nothing is dialled.

use std::net::TcpListener;

use sluice_connect::NetworkPolicy;
use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_doctor::{CheckId, DoctorInput, Report, Status};

fn spec(host: &str, port: u16) -> SourceSpec {
    let mut s = SourceSpec::new(host, "postgres", "ro");
    s.hosts[0].port = port;
    s.password = Some(Secret::new("pw"));
    s.sslmode = SslMode::Disable;
    s.connect_timeout_secs = 5;
    s
}

async fn doctor(spec: SourceSpec, network: NetworkPolicy) -> Report {
    sluice_doctor::run_under(DoctorInput { spec: Ok(spec), schemas: Vec::new() }, &network, None, &mut |_| {}).await
}

fn status(report: &Report, id: &str) -> Status {
    report.checks.iter().find(|c| c.id == id).map(|c| c.status).unwrap_or_else(|| panic!("no {id} check"))
}

#[tokio::test]
async fn a_refused_address_fails_the_dns_check_with_the_policys_reason() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("non-blocking");
    let port = l.local_addr().expect("addr").port();

    let deny = NetworkPolicy::parse(&["127.0.0.0/8", "::1/128"], &[], &[]).expect("policy");
    let report = doctor(spec("localhost", port), deny).await;
    let dns = report.checks.iter().find(|c| c.id == CheckId::DNS).expect("dns check");
    assert_eq!(dns.status, Status::Fail, "{dns:?}");
    assert!(dns.summary.contains("`localhost` resolves to"), "{}", dns.summary);
    assert!(dns.summary.contains("the network policy refuses"), "{}", dns.summary);
    assert!(dns.fix.as_deref().unwrap_or_default().contains("network policy's `deny` list"), "{:?}", dns.fix);
    for later in [CheckId::TCP, CheckId::SSH, CheckId::TLS, CheckId::AUTH, CheckId::SERVER_VERSION] {
        assert_eq!(status(&report, later), Status::Skip, "{later}");
    }
    assert!(
        matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the refused address was dialled"
    );

    // The same source under a policy that allows loopback gets past dns (tcp reaches the listener).
    // Nothing answers PostgreSQL's question there, so keep the wait for its answer short.
    let mut allowed = spec("127.0.0.1", port);
    allowed.connect_timeout_secs = 1;
    let report = doctor(allowed, NetworkPolicy::permissive()).await;
    assert_eq!(status(&report, CheckId::DNS), Status::Pass);
    assert!(l.accept().is_ok(), "the tcp check dialled the allowed address");
}

#[tokio::test]
async fn the_default_policy_fails_dns_for_the_metadata_service() {
    let report = doctor(spec("169.254.169.254", 80), NetworkPolicy::default()).await;
    let dns = report.checks.iter().find(|c| c.id == CheckId::DNS).expect("dns check");
    assert_eq!(dns.status, Status::Fail, "{dns:?}");
    assert!(
        dns.summary.starts_with("the network policy refuses 169.254.169.254: it denies 169.254.0.0/16"),
        "{}",
        dns.summary
    );
    assert_eq!(status(&report, CheckId::TCP), Status::Skip);
}
