//! The credential chain against real files and a loopback HTTP server standing in for the ECS
//! container endpoint, IMDSv2 and STS. Each test passes its own `Env` map: the process
//! environment is never read or changed.

mod common;

use common::{write, Stub};
use sluice_iam::{chain, CredentialSource, Env, IamError};

fn creds_json(id: &str) -> String {
    format!(
        r#"{{"Code":"Success","AccessKeyId":"{id}","SecretAccessKey":"secret-{id}","Token":"token-{id}","Expiration":"2099-01-01T00:00:00Z"}}"#
    )
}

/// ECS: answers credentials to GET /creds when the Authorization header is `auth`.
async fn ecs_stub(auth: Option<&'static str>) -> Stub {
    Stub::start(move |r| match (r.path.as_str(), r.headers.get("authorization").map(String::as_str)) {
        ("/creds", a) if a == auth => (200, creds_json("ASIAECS")),
        _ => (401, "unauthorized".into()),
    })
    .await
}

/// IMDSv2: a session token from PUT, then the role and its credentials only with that token.
async fn imds_stub() -> Stub {
    Stub::start(|r| {
        let token_ok = r.headers.get("x-aws-ec2-metadata-token").map(String::as_str) == Some("imds-session-1");
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token") if r.headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") => {
                (200, "imds-session-1".into())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") if token_ok => (200, "app-role\n".into()),
            ("GET", "/latest/meta-data/iam/security-credentials/app-role") if token_ok => (200, creds_json("ASIAIMDS")),
            _ => (401, String::new()),
        }
    })
    .await
}

/// STS: AssumeRoleWithWebIdentity for the token `jwt-1` only.
async fn sts_stub() -> Stub {
    Stub::start(|r| {
        if r.method == "POST"
            && r.body.contains("Action=AssumeRoleWithWebIdentity")
            && r.body.contains("WebIdentityToken=jwt-1")
        {
            (
                200,
                "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>\
                 <AccessKeyId>ASIASTS</AccessKeyId><SecretAccessKey>sts-secret</SecretAccessKey>\
                 <SessionToken>sts+token/x=</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>\
                 </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
                    .into(),
            )
        } else {
            (
                403,
                "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not authorized to perform \
                 sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>"
                    .into(),
            )
        }
    })
    .await
}

/// Every source configured, each answering with its own key id; `HOME` has no `.aws`.
struct World {
    _dir: tempfile::TempDir,
    env: Env,
    ecs: Stub,
    imds: Stub,
    sts: Stub,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("dir");
    let (ecs, imds, sts) = (ecs_stub(Some("ecs-auth-1")).await, imds_stub().await, sts_stub().await);
    let credentials = write(
        dir.path(),
        "credentials",
        "[ro]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = profile-secret\n",
    );
    let config = write(dir.path(), "config", "[profile ro]\nregion = eu-west-1\n");
    let jwt = write(dir.path(), "jwt", "jwt-1\n");
    let auth = write(dir.path(), "ecs-auth", "ecs-auth-1\n");
    let env = Env::from_pairs([
        ("HOME", dir.path().to_str().expect("utf-8").to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIAENV".into()),
        ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
        ("AWS_PROFILE", "ro".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials),
        ("AWS_CONFIG_FILE", config),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", jwt),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/sluice".into()),
        ("AWS_ENDPOINT_URL_STS", sts.url.clone()),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{}/creds", ecs.url)),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", auth),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
    ]);
    World { _dir: dir, env, ecs, imds, sts }
}

fn without(env: &Env, names: &[&str]) -> Env {
    let mut env = env.clone();
    for n in names {
        env.set(*n, "");
    }
    env
}

#[tokio::test]
async fn the_chain_takes_each_source_in_the_sdks_order() {
    let w = world().await;
    // environment → profile → web identity → ECS → IMDS: remove one source at a time.
    let steps: [(&[&str], &str, &str); 5] = [
        (&[], "environment", "AKIAENV"),
        (&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "profile", "AKIAPROFILE"),
        (&["AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"], "web_identity", "ASIASTS"),
        (&["AWS_WEB_IDENTITY_TOKEN_FILE"], "ecs", "ASIAECS"),
        (&["AWS_CONTAINER_CREDENTIALS_FULL_URI"], "imds", "ASIAIMDS"),
    ];
    let mut env = w.env.clone();
    for (remove, source, key) in steps {
        env = without(&env, remove);
        let creds = chain::resolve(&env, "eu-west-1").await.unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!((creds.source.id(), creds.access_key_id.as_str()), (source, key), "after removing {remove:?}");
        if source != "environment" && source != "profile" {
            assert!(creds.session_token.is_some() && creds.expiry.is_some(), "{source}: {creds:?}");
        }
    }
    // Each endpoint was asked only once its turn came (the environment and profile steps sent
    // nothing), and IMDS was used with v2 tokens only.
    assert_eq!(w.sts.seen().len(), 1);
    assert_eq!(w.ecs.seen().len(), 1);
    let imds: Vec<(String, String)> = w.imds.seen().into_iter().map(|s| (s.method, s.path)).collect();
    assert_eq!(
        imds,
        [
            ("PUT".to_string(), "/latest/api/token".to_string()),
            ("GET".into(), "/latest/meta-data/iam/security-credentials/".into()),
            ("GET".into(), "/latest/meta-data/iam/security-credentials/app-role".into()),
        ]
    );
    let sts = &w.sts.seen()[0];
    assert!(sts.body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fsluice"), "{}", sts.body);
    assert!(sts.body.contains("Version=2011-06-15") && sts.body.contains("RoleSessionName=sluice-"), "{}", sts.body);
    assert_eq!(w.ecs.seen()[0].headers.get("authorization").map(String::as_str), Some("ecs-auth-1"));

    // Nothing left, IMDS disabled: no credentials, and the error says where it looked.
    let none = without(&env, &["AWS_EC2_METADATA_SERVICE_ENDPOINT"]);
    let mut none = none;
    none.set("AWS_EC2_METADATA_DISABLED", "true");
    let e = chain::resolve(&none, "eu-west-1").await.expect_err("nothing configured");
    assert!(matches!(e, IamError::NoCredentials { .. }), "{e:?}");
    for looked in ["the environment", "profile `default`", "web identity", "ECS", "AWS_EC2_METADATA_DISABLED"] {
        assert!(e.to_string().contains(looked), "{looked} in {e}");
    }
}

#[tokio::test]
async fn shared_files_name_profiles_their_own_way_and_credentials_win() {
    let dir = tempfile::tempdir().expect("dir");
    let credentials = write(
        dir.path(),
        "credentials",
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\
         [both]\naws_access_key_id = AKIAFROMCREDS\naws_secret_access_key = c\naws_session_token = st\n",
    );
    let config = write(
        dir.path(),
        "config",
        "[profile both]\naws_access_key_id = AKIAFROMCONFIG\naws_secret_access_key = x\n\
         [profile cfg]\naws_access_key_id = AKIACONFIGONLY\naws_secret_access_key = y\n\
         [bare]\naws_access_key_id = AKIANOTAPROFILE\naws_secret_access_key = z\n\
         [profile assume]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n\
         [profile half]\naws_access_key_id = AKIAHALF\n",
    );
    let base = Env::from_pairs([
        ("HOME", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.as_str()),
        ("AWS_CONFIG_FILE", config.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let with_profile = |p: &str| {
        let mut e = base.clone();
        e.set("AWS_PROFILE", p);
        e
    };
    let c = chain::resolve(&base, "eu-west-1").await.expect("default");
    assert_eq!(c.access_key_id, "AKIADEFAULT");
    let c = chain::resolve(&with_profile("both"), "eu-west-1").await.expect("both");
    assert_eq!(c.access_key_id, "AKIAFROMCREDS");
    assert_eq!(c.session_token.as_ref().map(|t| t.expose()), Some("st"));
    assert_eq!(c.source, CredentialSource::Profile { profile: "both".into(), file: credentials.clone().into() });
    let c = chain::resolve(&with_profile("cfg"), "eu-west-1").await.expect("cfg");
    assert_eq!(c.access_key_id, "AKIACONFIGONLY");
    assert!(c.source.to_string().contains(&config), "{}", c.source);

    // `[bare]` in the config file is not a profile; an explicit missing profile is an error.
    let e = chain::resolve(&with_profile("bare"), "eu-west-1").await.expect_err("bare");
    assert!(e.to_string().contains("AWS_PROFILE names `bare`"), "{e}");
    let e = chain::resolve(&with_profile("assume"), "eu-west-1").await.expect_err("assume");
    assert!(
        e.to_string().contains("profile `assume` has role_arn") && e.to_string().contains("not an IAM role ARN"),
        "{e}"
    );
    let e = chain::resolve(&with_profile("half"), "eu-west-1").await.expect_err("half");
    assert!(e.to_string().contains("only one of"), "{e}");
}

#[tokio::test]
async fn configured_sources_that_fail_stop_the_chain_without_leaking_secrets() {
    let w = world().await;
    let env =
        without(&w.env, &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"]);

    // Half an environment.
    let mut half = env.clone();
    half.set("AWS_ACCESS_KEY_ID", "AKIAHALF");
    let e = chain::resolve(&half, "eu-west-1").await.expect_err("half env");
    assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY is not"), "{e}");

    // STS refuses another token: its code and message, not the token.
    let dir = tempfile::tempdir().expect("dir");
    let mut sts = env.clone();
    sts.set("AWS_WEB_IDENTITY_TOKEN_FILE", write(dir.path(), "jwt", "jwt-wrong-secret"));
    let e = chain::resolve(&sts, "eu-west-1").await.expect_err("sts refuses");
    assert!(e.to_string().contains("AccessDenied") && e.to_string().contains("HTTP 403"), "{e}");
    assert!(!format!("{e:?}").contains("jwt-wrong-secret"));

    // ECS with the wrong authorization token: refused, and the token is not in the error.
    let mut ecs = without(&env, &["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]);
    ecs.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-wrong-secret");
    let e = chain::resolve(&ecs, "eu-west-1").await.expect_err("ecs refuses");
    assert!(e.to_string().contains("HTTP 401"), "{e}");
    assert!(!format!("{e:?}").contains("ecs-wrong-secret"));
    // The variable instead of the file works when it is right.
    ecs.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth-1");
    assert_eq!(chain::resolve(&ecs, "eu-west-1").await.expect("ecs").access_key_id, "ASIAECS");
    // Plain http to a host that is neither loopback nor the container agent is refused unsent.
    ecs.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://198.51.100.7/creds");
    let e = chain::resolve(&ecs, "eu-west-1").await.expect_err("not loopback");
    assert!(e.to_string().contains("plain http"), "{e}");

    // IMDS that refuses the v2 token request is an error (there is no IMDSv1 fallback).
    let v1_only =
        Stub::start(|r| if r.method == "GET" { (200, "app-role".into()) } else { (403, String::new()) }).await;
    let mut imds = without(&env, &["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]);
    imds.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &v1_only.url);
    let e = chain::resolve(&imds, "eu-west-1").await.expect_err("v1 only");
    assert!(e.to_string().contains("IMDSv2") && e.to_string().contains("403"), "{e}");
    assert!(v1_only.seen().iter().all(|s| s.method == "PUT"), "no GET without a token");

    // IMDS that does not answer at all means "not on EC2": no credentials.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    imds.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://127.0.0.1:{port}"));
    let e = chain::resolve(&imds, "eu-west-1").await.expect_err("no imds");
    assert!(matches!(e, IamError::NoCredentials { .. }), "{e:?}");
}
