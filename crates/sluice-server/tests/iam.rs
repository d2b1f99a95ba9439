//! `rds_iam` sources through the API: created, shown and edited with their IAM settings, tested
//! (the doctor's `iam` check in the report), refused field by field, and a real login whose
//! token the cluster checks (the role's password is the token Sluice signs at a fixed clock).
//! The AWS credentials reach the server through its `IamSetup`, never the process environment.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_core::{Secret, SourceId};
use sluice_iam::token::{generate, TokenRequest};
use sluice_iam::{CredentialSource, Credentials, Env};
use sluice_server::{AppState, Config, IamSetup};
use sluice_store::{KeyConfig, NewApiToken, Role, Store, TokenRole};
use sluice_testkit::{Cluster, ClusterOptions, HbaRule, TestCa, TlsFiles};
use tower::ServiceExt;

const RDS_HOST: &str = "mydb.abc123xyz.eu-west-1.rds.amazonaws.com";
const REGION: &str = "eu-west-1";
const USER: &str = "iam_ro";
const ACCESS_KEY: &str = "ASIAEXAMPLEKEY123456";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEBYaDH+session/token=";
const T0: u64 = 1_700_000_000;

fn token_at(secs: u64) -> String {
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN.into()), CredentialSource::Environment);
    let request = TokenRequest { host: RDS_HOST, port: 5432, user: USER, region: REGION };
    generate(&creds, &request, UNIX_EPOCH + Duration::from_secs(secs)).expect("token").expose().to_string()
}

struct Api {
    router: Router,
    store: Arc<Store>,
    admin: String,
    bodies: std::cell::RefCell<Vec<String>>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(iam: IamSetup) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store");
        let store = Arc::new(store);
        let user = store.create_user("ada", Role::Admin, &Secret::new("correct horse battery")).await.expect("user");
        let new =
            NewApiToken { name: "automation".into(), role: TokenRole::Admin, source: None, created_by: Some(user.id) };
        let (_, token) = store.create_token(&new).await.expect("token");
        let router = sluice_server::router(AppState::new(store.clone(), Config { iam, ..Config::default() }));
        Api { router, store, admin: token.expose().to_string(), bodies: Default::default(), _dir: dir }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .header(header::CONTENT_TYPE, "application/json");
        let req = match body {
            Some(b) => req.body(Body::from(serde_json::to_vec(&b).expect("json"))),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        self.bodies.borrow_mut().push(text.clone());
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, value)
    }

    /// Asserts a 400 naming `field`.
    async fn refused(&self, method: Method, path: &str, body: Value, field: &str) -> Value {
        let (status, v) = self.call(method, path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["field"], json!(field), "{body}: {v}");
        v
    }
}

/// The doctor report check with this id.
fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == id)).unwrap_or(&Value::Null)
}

struct Target {
    cluster: Cluster,
    ca: TestCa,
}

/// TLS only, the IAM role's password set to the token for `T0`.
fn target() -> Target {
    let ca = TestCa::new("Sluice IAM Test CA").expect("ca");
    let server = ca.server_cert(&["localhost"]).expect("server cert");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server, client_ca_pem: None }),
        hba: vec![HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_login(USER, &token_at(T0)).expect("role");
    Target { cluster, ca }
}

fn iam_form(t: &Target, id: &str) -> Value {
    json!({
        "id": id,
        "name": id,
        "host": "localhost",
        "port": t.cluster.port(),
        "database": "postgres",
        "user": USER,
        "sslmode": "verify-full",
        "sslrootcert": t.ca.cert_pem,
        "connect_timeout_secs": 5,
        "auth": "rds_iam",
        "aws_region": REGION,
        "iam_sign_host": RDS_HOST,
        "iam_sign_port": 5432,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_iam_source_is_stored_shown_tested_and_logs_in_with_a_token() {
    let t = target();

    // A server without AWS credentials: the source is stored; its test says so.
    let bare = Api::start(IamSetup {
        env: Some(Env::from_pairs([("AWS_EC2_METADATA_DISABLED", "true"), ("HOME", "/nonexistent")])),
        clock: None,
    })
    .await;
    let (status, created) = bare.call(Method::POST, "/api/v1/sources", Some(iam_form(&t, "rds"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, shown) = bare.call(Method::GET, "/api/v1/sources/rds", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown, created);
    assert_eq!(shown["auth"], "rds_iam");
    assert_eq!(shown["aws_region"], REGION);
    assert_eq!(shown["iam_sign_host"], RDS_HOST);
    assert_eq!(shown["iam_sign_port"], 5432);
    assert_eq!(shown["aws_role_arn"], Value::Null);
    assert_eq!(shown["password_set"], false);
    let settings = bare.store.source(&"rds".parse::<SourceId>().expect("id")).await.expect("record").settings;
    assert_eq!(
        serde_json::to_value(&settings.auth).expect("json"),
        json!({"method": "rds_iam", "region": REGION, "sign_host": RDS_HOST, "sign_port": 5432})
    );
    let (status, report) = bare.call(Method::POST, "/api/v1/sources/rds/test", None).await;
    assert_eq!(status, StatusCode::OK);
    let iam = check(&report, "iam");
    assert_eq!(iam["status"], "fail", "{report:#}");
    assert!(iam["summary"].as_str().is_some_and(|s| s.contains("no AWS credentials")), "{report:#}");
    assert!(iam["fix"].as_str().is_some_and(|s| s.contains("AWS_ACCESS_KEY_ID")), "{report:#}");
    assert_eq!(check(&report, "auth")["status"], "skip", "{report:#}");
    assert_eq!(report["ok"], false);
    // An unsaved form is tested the same way.
    let (_, report) = bare.call(Method::POST, "/api/v1/sources/test", Some(iam_form(&t, "unsaved"))).await;
    assert_eq!(check(&report, "iam")["status"], "fail", "{report:#}");

    // A server with credentials and a fixed clock: the cluster accepts the token Sluice signs.
    let env = Env::from_pairs([
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let clock: sluice_iam::Clock = Arc::new(|| UNIX_EPOCH + Duration::from_secs(T0));
    let api = Api::start(IamSetup { env: Some(env), clock: Some(clock) }).await;
    let (status, created) = api.call(Method::POST, "/api/v1/sources", Some(iam_form(&t, "rds"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, report) = api.call(Method::POST, "/api/v1/sources/rds/test", None).await;
    let iam = check(&report, "iam");
    assert_eq!(iam["status"], "pass", "{report:#}");
    assert!(iam["summary"].as_str().is_some_and(|s| s.contains("the environment")), "{report:#}");
    assert!(iam["detail"].as_str().is_some_and(|s| s.contains(ACCESS_KEY)), "{report:#}");
    assert_eq!(check(&report, "auth")["status"], "pass", "{report:#}");
    let (status, rows) =
        api.call(Method::POST, "/api/v1/sources/rds/query", Some(json!({"sql": "SELECT current_user AS who"}))).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert!(rows.to_string().contains(USER), "{rows}");

    // No secret key, session token or token in any response.
    let token = token_at(T0);
    for body in bare.bodies.borrow().iter().chain(api.bodies.borrow().iter()) {
        for secret in [SECRET_KEY, SESSION_TOKEN, token.as_str(), "X-Amz-Signature"] {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_fields_are_refused_by_name_and_switching_auth_handles_the_password() {
    let t = target();
    let api = Api::start(IamSetup { env: Some(Env::default()), clock: None }).await;
    let sources = "/api/v1/sources";

    // Refusals on create, each naming its field.
    let form = iam_form(&t, "rds");
    let with = |k: &str, v: Value| {
        let mut f = form.clone();
        f[k] = v;
        f
    };
    let without = |k: &str| {
        let mut f = form.clone();
        f.as_object_mut().expect("object").remove(k);
        f
    };
    let v = api.refused(Method::POST, sources, with("sslmode", json!("prefer")), "sslmode").await;
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("rds_iam")), "{v}");
    api.refused(Method::POST, sources, with("sslmode", json!("disable")), "sslmode").await;
    api.refused(Method::POST, sources, with("password", json!("pw")), "password").await;
    api.refused(Method::POST, sources, without("aws_region"), "aws_region").await;
    api.refused(Method::POST, sources, with("aws_region", json!("EU West")), "aws_region").await;
    api.refused(Method::POST, sources, with("iam_sign_port", json!(0)), "iam_sign_port").await;
    let v = api
        .refused(Method::POST, sources, with("aws_role_arn", json!("arn:aws:iam::123:role/x")), "aws_role_arn")
        .await;
    assert!(v["error"]["hint"].as_str().is_some_and(|h| h.contains(":role/")), "{v}");
    api.refused(Method::POST, sources, with("aws_external_id", json!("ext-1")), "aws_external_id").await;
    api.refused(Method::POST, sources, with("auth", json!("password")), "aws_region").await;
    api.refused(Method::POST, sources, with("auth", json!("kerberos")), "auth").await;
    assert_eq!(api.store.sources().await.expect("list").len(), 0);

    // A role, with its external id; the session name defaults to sluice-<id> (not stored).
    let role = "arn:aws:iam::123456789012:role/team/sluice-reader";
    let mut f = with("aws_role_arn", json!(role));
    f["aws_external_id"] = json!("ext-42");
    let (status, v) = api.call(Method::POST, sources, Some(f)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!((v["aws_role_arn"].as_str(), v["aws_external_id"].as_str()), (Some(role), Some("ext-42")));
    assert_eq!(v["aws_role_session_name"], Value::Null);
    // An edit without `auth` patches one field; "" clears one.
    let (status, v) = api.call(Method::PATCH, "/api/v1/sources/rds", Some(json!({"aws_region": "eu-west-2"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["aws_region"].as_str(), v["aws_role_arn"].as_str()), (Some("eu-west-2"), Some(role)));
    let (_, v) = api.call(Method::PATCH, "/api/v1/sources/rds", Some(json!({"aws_external_id": ""}))).await;
    assert_eq!(v["aws_external_id"], Value::Null);
    assert_eq!(v["aws_role_arn"], role);
    api.refused(Method::PATCH, "/api/v1/sources/rds", json!({"password": "pw"}), "password").await;
    api.refused(Method::PATCH, "/api/v1/sources/rds", json!({"sslmode": "allow"}), "sslmode").await;

    // password → rds_iam drops the stored password; back needs one.
    let mut pw = form.clone();
    let obj = pw.as_object_mut().expect("object");
    for k in ["auth", "aws_region", "iam_sign_host", "iam_sign_port"] {
        obj.remove(k);
    }
    pw["id"] = json!("pw");
    pw["name"] = json!("pw");
    pw["password"] = json!("stored-pw-1");
    let (status, v) = api.call(Method::POST, sources, Some(pw)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!((v["auth"].as_str(), v["password_set"].as_bool()), (Some("password"), Some(true)));
    api.refused(Method::PATCH, "/api/v1/sources/pw", json!({"aws_region": REGION}), "aws_region").await;
    let (status, v) =
        api.call(Method::PATCH, "/api/v1/sources/pw", Some(json!({"auth": "rds_iam", "aws_region": REGION}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["auth"].as_str(), v["password_set"].as_bool()), (Some("rds_iam"), Some(false)));
    assert_eq!(v["password_updated_at"], Value::Null);
    let id: SourceId = "pw".parse().expect("id");
    assert_eq!(api.store.source_spec(&id).await.expect("spec").password, None);
    let v = api.refused(Method::PATCH, "/api/v1/sources/pw", json!({"auth": "password"}), "password").await;
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("needs the password")), "{v}");
    let (status, v) = api
        .call(Method::PATCH, "/api/v1/sources/pw", Some(json!({"auth": "password", "password": "stored-pw-2"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["auth"].as_str(), v["password_set"].as_bool()), (Some("password"), Some(true)));
    assert_eq!(v["aws_region"], Value::Null);
    let spec = api.store.source_spec(&id).await.expect("spec");
    assert_eq!(spec.password, Some(Secret::new("stored-pw-2")));
    assert_eq!(spec.auth, sluice_core::Auth::Password);
    for body in api.bodies.borrow().iter() {
        assert!(!body.contains("stored-pw-"), "{body}");
    }
}
