//! Token parity with botocore: for a table of credentials, hosts, ports, users and fixed clocks,
//! Sluice's token is byte for byte what botocore's `generate_db_auth_token` returns. botocore runs
//! for real (scripts/install-deps.sh installs it into /var/cache/sluice-py; SLUICE_BOTOCORE_PYTHON
//! names another interpreter that has it).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use sluice_iam::token::{generate, TokenRequest};
use sluice_iam::{CredentialSource, Credentials};

const SCRIPT: &str = r#"
import datetime, json, sys
import botocore.auth, botocore.session
out = []
for c in json.load(sys.stdin):
    fixed = datetime.datetime.fromtimestamp(c["time"], datetime.timezone.utc).replace(tzinfo=None)
    botocore.auth.get_current_datetime = lambda fixed=fixed: fixed
    s = botocore.session.Session()
    s.set_credentials(c["access_key"], c["secret_key"], c["session_token"])
    client = s.create_client("rds", region_name=c["region"])
    out.append(client.generate_db_auth_token(c["host"], c["port"], c["user"], Region=c["region"]))
json.dump(out, sys.stdout)
"#;

fn python() -> String {
    let path = std::env::var("SLUICE_BOTOCORE_PYTHON").unwrap_or_else(|_| "/var/cache/sluice-py/bin/python3".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} not found: run scripts/install-deps.sh (it installs botocore into /var/cache/sluice-py), \
         or set SLUICE_BOTOCORE_PYTHON to a python that has botocore"
    );
    path
}

struct Case {
    access_key: &'static str,
    secret_key: &'static str,
    session_token: Option<&'static str>,
    region: &'static str,
    /// As botocore takes it (an IPv6 address in brackets).
    host: &'static str,
    port: u16,
    user: &'static str,
    time: u64,
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION: &str = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDsd+7Z/Ab3s1+xkPr0JfLsZbEn8ewfBz0\
                       W6ZiLpAnoFAIgZ2lS+0x3jnY8tYGaeP+lsJ6dB1sBbM8M0aPrMNmSUhYq9AII8v//////////ARAAGgw=";

fn cases() -> Vec<Case> {
    let base = Case {
        access_key: "AKIDEXAMPLE",
        secret_key: SECRET,
        session_token: None,
        region: "eu-west-1",
        host: "mydb.abc123xyz.eu-west-1.rds.amazonaws.com",
        port: 5432,
        user: "sluice_ro",
        time: 1_700_000_000,
    };
    let with = |f: &dyn Fn(&mut Case)| {
        let mut c = Case { ..base };
        f(&mut c);
        c
    };
    vec![
        with(&|_| {}),
        with(&|c| c.session_token = Some(SESSION)),
        with(&|c| c.user = "read only@example.com+tag"),
        with(&|c| c.user = "lecteur-ünïcødé-名前"),
        with(&|c| c.user = "a=b&c/d~e%f.g_h*'()!"),
        with(&|c| {
            c.host = "[2001:db8::1]";
            c.session_token = Some(SESSION);
        }),
        with(&|c| c.port = 6543),
        with(&|c| c.port = 443),
        with(&|c| c.host = "MyDB.ABC123XYZ.EU-WEST-1.rds.amazonaws.com"),
        with(&|c| {
            c.region = "us-gov-west-1";
            c.host = "db.cluster-ro-x.us-gov-west-1.rds.amazonaws.com";
            c.time = 951_782_400; // 2000-02-29T00:00:00Z
        }),
        with(&|c| {
            c.region = "ap-southeast-2";
            c.access_key = "ASIAQWERTYUIOPASDFGH";
            c.secret_key = "a/b+c=d";
            c.session_token = Some("short+/=token");
            c.time = 4_102_444_799; // 2099-12-31T23:59:59Z
        }),
    ]
}

#[test]
fn tokens_equal_botocores() {
    let cases = cases();
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "access_key": c.access_key, "secret_key": c.secret_key, "session_token": c.session_token,
                "region": c.region, "host": c.host, "port": c.port, "user": c.user, "time": c.time,
            })
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "botocore failed: {}", String::from_utf8_lossy(&out.stderr));
    let expected: Vec<String> = serde_json::from_slice(&out.stdout).expect("botocore's tokens");
    assert_eq!(expected.len(), cases.len());
    for (c, want) in cases.iter().zip(expected) {
        let creds = Credentials::new(
            c.access_key,
            c.secret_key,
            c.session_token.map(str::to_string),
            CredentialSource::Environment,
        );
        let req = TokenRequest { host: c.host, port: c.port, user: c.user, region: c.region };
        let got = generate(&creds, &req, UNIX_EPOCH + Duration::from_secs(c.time)).expect("token");
        assert_eq!(got.expose(), want, "host {} port {} user {:?} region {}", c.host, c.port, c.user, c.region);
        if c.session_token.is_some() {
            assert!(want.contains("X-Amz-Security-Token="), "{want}");
        }
    }
    // A bare IPv6 address (as Sluice's host list holds it) signs as its bracketed form.
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, None, CredentialSource::Environment);
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let bare = TokenRequest { host: "2001:db8::1", port: 5432, user: "u", region: "eu-west-1" };
    let bracketed = TokenRequest { host: "[2001:db8::1]", ..bare };
    assert_eq!(generate(&creds, &bare, at).expect("t").expose(), generate(&creds, &bracketed, at).expect("t").expose());
}
