//! STS `AssumeRole` against a loopback server standing in for STS: the request is checked to be
//! SigV4-signed with the chain's credentials (the signature recomputed here), and the RDS token
//! must be the one the role's temporary credentials sign.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use common::{write, Seen, Stub};
use sluice_core::{ErrorKind, HostPort, RdsIam, UserFacing};
use sluice_iam::token::{self, TokenRequest};
use sluice_iam::{assume_role, chain, CredentialSource, Credentials, Env, IamAuth, IamError, RoleRequest};

const ROLE: &str = "arn:aws:iam::123456789012:role/team/sluice-reader";
const REGION: &str = "eu-west-1";
const T0: u64 = 1_700_000_000; // 2023-11-14T22:13:20Z
const EXPIRATION: &str = "2023-11-14T23:13:20Z"; // T0 + 1 h

fn base_env(sts: &str) -> Env {
    Env::from_pairs([
        ("AWS_ACCESS_KEY_ID", "AKIABASE"),
        ("AWS_SECRET_ACCESS_KEY", "base-secret"),
        ("AWS_SESSION_TOKEN", "base-session"),
        ("AWS_ENDPOINT_URL_STS", sts),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ])
}

fn base_creds() -> Credentials {
    Credentials::new("AKIABASE", "base-secret", Some("base-session".into()), CredentialSource::Environment)
}

/// `20231114T221320Z` as a time.
fn amz_date(s: &str) -> Option<SystemTime> {
    let d = |a: usize, b: usize| s.get(a..b);
    let text = format!("{}-{}-{}T{}:{}:{}Z", d(0, 4)?, d(4, 6)?, d(6, 8)?, d(9, 11)?, d(11, 13)?, d(13, 15)?);
    sluice_iam::parse_rfc3339(&text)
}

/// Why the request is not SigV4-signed with the base credentials for `sts` in the region, or
/// `None` when it is: the scope and signed headers are checked, and the signature recomputed.
fn signature_problem(r: &Seen) -> Option<String> {
    let auth = r.headers.get("authorization")?;
    let date = r.headers.get("x-amz-date")?;
    let time = amz_date(date)?;
    let part = |name: &str| auth.split([' ', ',']).find_map(|p| p.strip_prefix(name)).map(str::to_string);
    let (credential, signed_headers, signature) = (part("Credential=")?, part("SignedHeaders=")?, part("Signature=")?);
    let scope = format!("AKIABASE/{}/{REGION}/sts/aws4_request", &date[..8]);
    if !auth.starts_with("AWS4-HMAC-SHA256 ") || credential != scope {
        return Some(format!("credential scope {credential}, wanted {scope}"));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    for needed in ["content-type", "host", "x-amz-date", "x-amz-security-token"] {
        if !names.contains(&needed) {
            return Some(format!("{needed} is not signed: {signed_headers}"));
        }
    }
    if r.headers.get("x-amz-security-token").map(String::as_str) != Some("base-session") {
        return Some("the base session token was not sent".into());
    }
    // The signer adds x-amz-date and x-amz-security-token itself.
    let headers: Vec<(&str, &str)> = names
        .iter()
        .filter(|n| !matches!(**n, "x-amz-date" | "x-amz-security-token"))
        .filter_map(|n| r.headers.get(*n).map(|v| (*n, v.as_str())))
        .collect();
    let url = format!("http://{}{}", r.headers.get("host")?, r.path);
    let identity =
        aws_credential_types::Credentials::new("AKIABASE", "base-secret", Some("base-session".into()), None, "test")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let request =
        SignableRequest::new("POST", url.as_str(), headers.into_iter(), SignableBody::Bytes(r.body.as_bytes())).ok()?;
    let (_, expected) = sign(request, &params).ok()?.into_parts();
    (expected != signature).then(|| format!("signature {signature}, recomputed {expected}"))
}

fn assume_role_response(id: &str, expiration: &str) -> String {
    format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/sluice-reader/sluice-orders</Arn>\
         </AssumedRoleUser><Credentials><AccessKeyId>{id}</AccessKeyId>\
         <SecretAccessKey>temp-secret</SecretAccessKey><SessionToken>temp+token/x=</SessionToken>\
         <Expiration>{expiration}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"
    )
}

/// STS granting the role only to a correctly signed AssumeRole with the expected fields.
async fn sts(expiration: &'static str) -> Stub {
    Stub::start(move |r| {
        let fields_ok = r.method == "POST"
            && r.path == "/"
            && r.body.contains("Action=AssumeRole&")
            && r.body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fteam%2Fsluice-reader")
            && r.body.contains("RoleSessionName=sluice-orders")
            && r.body.contains("ExternalId=ext-42")
            && r.body.contains("Version=2011-06-15");
        match signature_problem(r) {
            None if fields_ok => (200, assume_role_response("ASIATEMP", expiration)),
            problem => (
                403,
                format!(
                    "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>{problem:?} \
                     fields_ok={fields_ok}</Message></Error></ErrorResponse>"
                ),
            ),
        }
    })
    .await
}

fn spec() -> RdsIam {
    RdsIam { role_arn: Some(ROLE.into()), external_id: Some("ext-42".into()), ..RdsIam::new(REGION) }
}

/// A clock tests move by hand.
fn clock(secs: &Arc<AtomicU64>) -> sluice_iam::Clock {
    let secs = secs.clone();
    Arc::new(move || UNIX_EPOCH + Duration::from_secs(secs.load(Ordering::SeqCst)))
}

#[tokio::test]
async fn the_token_is_signed_with_the_roles_credentials_which_are_reused_until_near_expiry() {
    let stub = sts(EXPIRATION).await;
    let now = Arc::new(AtomicU64::new(T0));
    let auth = IamAuth::new(spec(), base_env(&stub.url)).with_clock(clock(&now)).with_session_name("sluice-orders");
    let host = HostPort { host: "mydb.abc.eu-west-1.rds.amazonaws.com".into(), port: 5432 };

    let token = auth.token(&host, "reader").await.expect("token");
    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(signature_problem(&seen[0]), None);
    // The check is real: another body, or another key, no longer matches.
    let mut tampered = seen[0].clone();
    tampered.body = tampered.body.replace("ext-42", "ext-43");
    assert!(signature_problem(&tampered).is_some_and(|p| p.contains("recomputed")));
    let mut other_key = seen[0].clone();
    let auth_header = other_key.headers["authorization"].replace("AKIABASE", "AKIAOTHER");
    other_key.headers.insert("authorization".into(), auth_header);
    assert!(signature_problem(&other_key).is_some_and(|p| p.contains("credential scope")));
    let temp = Credentials::new("ASIATEMP", "temp-secret", Some("temp+token/x=".into()), CredentialSource::Environment);
    let request = TokenRequest { host: &host.host, port: 5432, user: "reader", region: REGION };
    let expected = token::generate(&temp, &request, UNIX_EPOCH + Duration::from_secs(T0)).expect("expected");
    assert_eq!(token.expose(), expected.expose());
    assert!(token.expose().contains("X-Amz-Credential=ASIATEMP%2F20231114%2Feu-west-1%2Frds-db"), "{}", token.expose());
    let creds = auth.credentials().await.expect("credentials");
    assert_eq!(
        creds.source,
        CredentialSource::AssumedRole { role_arn: ROLE.into(), via: Box::new(CredentialSource::Environment) }
    );
    assert_eq!(creds.source.to_string(), format!("role {ROLE} assumed with the environment (AWS_ACCESS_KEY_ID)"));

    // Ten minutes on: the role's credentials are reused, the token is new.
    now.store(T0 + 600, Ordering::SeqCst);
    let later = auth.token(&host, "reader").await.expect("later token");
    assert_ne!(later.expose(), token.expose());
    assert_eq!(stub.seen().len(), 1, "the role's credentials were reused");
    // Within five minutes of their expiration they are fetched again.
    now.store(T0 + 3600 - 240, Ordering::SeqCst);
    auth.token(&host, "reader").await.expect("near expiry");
    assert_eq!(stub.seen().len(), 2);
    // Past it, STS answering the same (now expired) credentials is refused, not used.
    now.store(T0 + 3600 + 1, Ordering::SeqCst);
    let e = auth.token(&host, "reader").await.expect_err("expired");
    assert!(e.message().contains("already expired"), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("clock")), "{e:?}");
    assert_eq!(stub.seen().len(), 3);
}

fn assert_no_secret(e: &IamError) {
    let all = format!("{e} {e:?} {}", e.hint().unwrap_or_default());
    for secret in ["base-secret", "base-session", "temp-secret", "temp+token"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}

#[tokio::test]
async fn sts_refusals_unreachable_sts_and_bad_arns_are_clear_errors() {
    let role = |arn| RoleRequest { role_arn: arn, external_id: None, session_name: "sluice", region: REGION };
    let at = UNIX_EPOCH + Duration::from_secs(T0);

    let denied = Stub::start(|_| {
        (
            403,
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
             arn:aws:iam::123456789012:user/app is not authorized to perform: sts:AssumeRole</Message>\
             </Error></ErrorResponse>"
                .into(),
        )
    })
    .await;
    let e = assume_role(&base_env(&denied.url), &base_creds(), &role(ROLE), at).await.expect_err("denied");
    assert!(e.message().contains("AccessDenied") && e.message().contains(ROLE), "{e}");
    assert!(e.message().contains("not authorized to perform: sts:AssumeRole"), "{e}");
    let hint = e.hint().unwrap_or_default();
    assert!(hint.contains("trust policy") && hint.contains("AKIABASE") && hint.contains("--aws-external-id"), "{hint}");
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_no_secret(&e);
    assert_eq!(denied.seen().len(), 1);

    // Nothing listens on a port just released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let e = assume_role(&base_env(&gone), &base_creds(), &role(ROLE), at).await.expect_err("unreachable");
    assert!(e.message().contains("cannot assume") && e.message().contains(&gone), "{e}");
    assert!(e.hint().is_some_and(|h| h.contains("AWS_ENDPOINT_URL_STS")), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Network);
    assert_no_secret(&e);

    // A malformed ARN never reaches STS.
    for arn in ["sluice-reader", "arn:aws:iam::123:role/x", "arn:aws:iam::123456789012:user/app"] {
        let e = assume_role(&base_env(&denied.url), &base_creds(), &role(arn), at).await.expect_err("bad arn");
        assert!(e.message().contains("is not an IAM role ARN"), "{e}");
        assert!(e.hint().is_some_and(|h| h.contains("arn:aws:iam::123456789012:role/")), "{e:?}");
    }
    assert_eq!(denied.seen().len(), 1);

    // Credentials that expired before they arrived are refused.
    let stale = Stub::start(|_| (200, assume_role_response("ASIAOLD", "2023-11-14T22:00:00Z"))).await;
    let e = assume_role(&base_env(&stale.url), &base_creds(), &role(ROLE), at).await.expect_err("expired");
    assert!(e.message().contains("already expired"), "{e}");
    assert_no_secret(&e);

    // With no credentials in the chain, no request is made.
    let env = Env::from_pairs([("AWS_ENDPOINT_URL_STS", denied.url.as_str()), ("AWS_EC2_METADATA_DISABLED", "true")]);
    let auth = IamAuth::new(spec(), env);
    let e = auth.credentials().await.expect_err("no credentials");
    assert!(matches!(e, IamError::NoCredentials { .. }), "{e:?}");
    assert_eq!(denied.seen().len(), 1);
}

#[tokio::test]
async fn profiles_assume_roles_through_source_profile_and_refuse_what_sluice_does_not_run() {
    let stub = sts("2099-01-01T00:00:00Z").await;
    let dir = tempfile::tempdir().expect("dir");
    let credentials = write(
        dir.path(),
        "credentials",
        "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\naws_session_token = base-session\n",
    );
    let config = write(
        dir.path(),
        "config",
        &format!(
            "[profile reader]\nrole_arn = {ROLE}\nsource_profile = base\nexternal_id = ext-42\n\
             role_session_name = sluice-orders\nregion = eu-west-1\n\
             [profile proc]\ncredential_process = /usr/local/bin/fetch-creds --profile x\n\
             [profile sso]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = ro\n\
             [profile legacy-sso]\nsso_start_url = https://corp.awsapps.com/start\n\
             [profile lonely]\nrole_arn = {ROLE}\n\
             [profile metadata]\nrole_arn = {ROLE}\ncredential_source = Ec2InstanceMetadata\n\
             [profile loop-a]\nrole_arn = {ROLE}\nsource_profile = loop-b\n\
             [profile loop-b]\nrole_arn = {ROLE}\nsource_profile = loop-a\n\
             [profile orphan]\nrole_arn = {ROLE}\nsource_profile = nowhere\n\
             [profile via-proc]\nrole_arn = {ROLE}\nsource_profile = proc\n\
             [sso-session corp]\nsso_region = eu-west-1\n"
        ),
    );
    let env = |profile: &str| {
        Env::from_pairs([
            ("HOME", dir.path().to_str().expect("utf-8")),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.as_str()),
            ("AWS_CONFIG_FILE", config.as_str()),
            ("AWS_PROFILE", profile),
            ("AWS_ENDPOINT_URL_STS", stub.url.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
    };

    // role_arn + source_profile: the base profile's keys sign AssumeRole (checked by the stub).
    let c = chain::resolve(&env("reader"), REGION).await.expect("reader");
    assert_eq!(c.access_key_id, "ASIATEMP");
    assert_eq!(c.session_token.as_ref().map(|t| t.expose()), Some("temp+token/x="));
    let via = CredentialSource::Profile { profile: "base".into(), file: credentials.clone().into() };
    assert_eq!(c.source, CredentialSource::AssumedRole { role_arn: ROLE.into(), via: Box::new(via) });
    assert_eq!(stub.seen().len(), 1);
    assert_eq!(signature_problem(&stub.seen()[0]), None);

    // Refused, each saying what and what to do instead; none reaches STS.
    let cases: [(&str, &[&str], &[&str]); 8] = [
        ("proc", &["profile `proc`", "credential_process"], &["export-credentials", "--aws-role-arn"]),
        ("via-proc", &["profile `proc`", "credential_process"], &["export-credentials"]),
        ("sso", &["profile `sso`", "SSO", "sso_session"], &["aws sso login --profile sso", "export-credentials"]),
        ("legacy-sso", &["SSO", "sso_start_url"], &["aws sso login", "--aws-role-arn"]),
        ("lonely", &["profile `lonely`", "neither source_profile"], &["source_profile", "--aws-role-arn"]),
        ("metadata", &["credential_source"], &["export-credentials"]),
        ("loop-a", &["chains more than"], &["source_profile"]),
        ("orphan", &["source_profile `nowhere`"], &["add profile `nowhere`"]),
    ];
    for (profile, message, hint) in cases {
        let e = chain::resolve(&env(profile), REGION).await.expect_err(profile);
        for m in message {
            assert!(e.message().contains(m), "{profile}: {m} not in {e}");
        }
        let h = e.hint().unwrap_or_default();
        for m in hint {
            assert!(h.contains(m), "{profile}: {m} not in {h}");
        }
        assert_no_secret(&e);
    }
    assert_eq!(stub.seen().len(), 1);
}
