//! libpq connection strings (URIs and `key=value`), with `PG*` environment variables as defaults.
//!
//! Only the parameters Sluice understands are accepted. Anything else (`options`, `service`,
//! `passfile`, …) is refused by name: free-form connection parameters are how database tools get
//! broken into, so nothing is ever passed through.

use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::percent_decode_str;

use crate::spec::{CertSource, ChannelBinding, HostPort, KeySource, SessionAttrs, SourceSpec, SslMode};
use crate::{ErrorKind, Secret, UserFacing, DEFAULT_PORT};

/// A bad connection parameter: which field, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
    pub hint: String,
}

impl SpecError {
    pub fn new(field: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        SpecError { field, message: message.into(), hint: hint.into() }
    }
}

impl UserFacing for SpecError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
    fn message(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
    fn hint(&self) -> Option<String> {
        Some(self.hint.clone())
    }
}

/// Where a parameter value came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamSource {
    Dsn,
    Env,
}

impl fmt::Display for ParamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamSource::Dsn => "connection string",
            ParamSource::Env => "environment",
        })
    }
}

/// The parameters Sluice accepts, with the `PG*` variable that supplies each one's default
/// (`pgbouncer` is Sluice's own and has none).
const ACCEPTED: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("sslmode", Some("PGSSLMODE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("application_name", Some("PGAPPNAME")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("tls_server_name", Some("PGTLSSERVERNAME")),
    ("pgbouncer", None),
];

/// `PG*` variables that libpq would honour but Sluice refuses, with the reason.
const REFUSED_ENV: &[&str] = &["PGOPTIONS", "PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGHOSTADDR"];

fn refusal(key: &str) -> SpecError {
    let why = match key {
        "options" => "Sluice sets the session's options itself (read-only, timeouts); command-line options for the server are never passed through",
        "service" | "servicefile" => "service files are not read; give the host, port, database and user directly",
        "passfile" => "only ~/.pgpass is read; give the password with a password file option instead",
        "hostaddr" => "give the address as host (and tls_server_name for the certificate name)",
        "requiressl" => "use sslmode=require",
        _ => "Sluice accepts only host, port, dbname, user, password, sslmode, channel_binding, sslrootcert, sslcert, sslkey, connect_timeout, application_name, target_session_attrs, tls_server_name and pgbouncer",
    };
    SpecError {
        field: "connection string",
        message: format!("parameter `{key}` is not accepted"),
        hint: why.to_string(),
    }
}

/// Parses a libpq URI (`postgresql://…`) or `key=value` string. `env` supplies the `PG*`
/// variables (pass `|_| None` to ignore the environment). The result is validated.
pub fn parse_dsn(dsn: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<SourceSpec, SpecError> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    if let Some(dsn) = dsn.map(str::trim).filter(|d| !d.is_empty()) {
        if dsn.starts_with("postgresql://") || dsn.starts_with("postgres://") {
            parse_uri(dsn, &mut params)?;
        } else if dsn.contains("://") {
            return Err(SpecError::new(
                "connection string",
                "the URI scheme is not postgresql://",
                "write it as postgresql://user@host:5432/dbname",
            ));
        } else {
            parse_key_values(dsn, &mut params)?;
        }
    }
    for key in params.keys() {
        if !ACCEPTED.iter().any(|(k, _)| k == key) {
            return Err(refusal(key));
        }
    }
    for var in REFUSED_ENV {
        if env(var).is_some_and(|v| !v.is_empty()) {
            let key = var.trim_start_matches("PG").to_ascii_lowercase();
            let mut e = refusal(&key);
            e.field = "environment";
            e.message = format!("{var} is set, and Sluice does not accept it");
            return Err(e);
        }
    }
    for (key, var) in ACCEPTED {
        let Some(var) = var else { continue };
        if !params.contains_key(*key) {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                params.insert((*key).to_string(), v);
            }
        }
    }
    let spec = build(&params)?;
    spec.validate()?;
    Ok(spec)
}

fn build(p: &BTreeMap<String, String>) -> Result<SourceSpec, SpecError> {
    let hosts_raw = p.get("host").map(String::as_str).unwrap_or("");
    if hosts_raw.is_empty() {
        return Err(SpecError::new("host", "no host given", "give a host in the URI, host=…, or PGHOST"));
    }
    let hosts: Vec<&str> = hosts_raw.split(',').collect();
    let ports: Vec<u16> = match p.get("port") {
        None => vec![DEFAULT_PORT],
        Some(v) => v
            .split(',')
            .map(|s| {
                let s = s.trim();
                if s.is_empty() {
                    return Ok(DEFAULT_PORT);
                }
                s.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    SpecError::new(
                        "port",
                        format!("`{s}` is not a port number"),
                        "use a number from 1 to 65535, e.g. 5432",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(SpecError::new(
            "port",
            format!("{} ports given for {} hosts", ports.len(), hosts.len()),
            "give one port for all hosts, or one per host in the same order",
        ));
    }
    let hosts = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| HostPort {
            host: h.trim().trim_start_matches('[').trim_end_matches(']').to_string(),
            port: if ports.len() == 1 { ports[0] } else { ports[i] },
        })
        .collect();

    let mut spec = SourceSpec::new("", "", "");
    spec.hosts = hosts;
    spec.user = p.get("user").cloned().unwrap_or_default();
    spec.database = p.get("dbname").cloned().unwrap_or_else(|| spec.user.clone());
    spec.password = p.get("password").map(Secret::new);
    if let Some(m) = p.get("sslmode") {
        spec.sslmode = m.parse::<SslMode>().map_err(|e| SpecError::new("sslmode", e, "e.g. sslmode=verify-full"))?;
    }
    if let Some(v) = p.get("channel_binding") {
        spec.channel_binding = v
            .parse::<ChannelBinding>()
            .map_err(|e| SpecError::new("channel_binding", e, "e.g. channel_binding=require"))?;
    }
    spec.sslrootcert = p.get("sslrootcert").map(|v| CertSource::parse(v));
    if let Some(v) = p.get("sslcert") {
        if v == "system" {
            return Err(SpecError::new(
                "sslcert",
                "`system` is only meaningful for sslrootcert",
                "give the client certificate's PEM file",
            ));
        }
        spec.sslcert = Some(CertSource::parse(v));
    }
    spec.sslkey = p.get("sslkey").map(|v| KeySource::parse(v));
    if let Some(v) = p.get("connect_timeout") {
        let secs = v.trim().parse::<i64>().map_err(|_| {
            SpecError::new("connect_timeout", format!("`{v}` is not a number of seconds"), "e.g. connect_timeout=10")
        })?;
        // libpq: zero or negative means "wait forever"; Sluice always bounds the wait.
        spec.connect_timeout_secs = if secs <= 0 { crate::DEFAULT_CONNECT_TIMEOUT_SECS } else { secs.min(3600) as u64 };
    }
    if let Some(v) = p.get("application_name") {
        spec.application_name = v.clone();
    }
    if let Some(v) = p.get("target_session_attrs") {
        spec.target_session_attrs = v
            .parse::<SessionAttrs>()
            .map_err(|e| SpecError::new("target_session_attrs", e, "e.g. target_session_attrs=read-write"))?;
    }
    spec.tls_server_name = p.get("tls_server_name").cloned();
    if let Some(v) = p.get("pgbouncer") {
        spec.pgbouncer = match v.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => true,
            "false" | "off" | "no" | "0" => false,
            _ => {
                return Err(SpecError::new(
                    "pgbouncer",
                    format!("`{v}` is not true or false"),
                    "use pgbouncer=true when the host is PgBouncer in transaction pooling mode",
                ))
            }
        };
    }
    Ok(spec)
}

fn decode(s: &str, field: &'static str) -> Result<String, SpecError> {
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| {
        SpecError::new(field, "percent-encoding does not decode to UTF-8", "percent-encode the value's UTF-8 bytes")
    })
}

/// Refuses a URI whose user name or password holds an unencoded `/`, `?` or `#`.
///
/// The authority (`user:password@host:port`) ends at the first `/`, `?` or `#`; an `@` after that
/// point means the userinfo was cut in two, and libpq would read a piece of the password as a
/// host, a port, a database name or a parameter — and echo it in its errors. The error says so
/// without repeating any of the text. An empty authority (`postgresql:///db?…`) or one that
/// already holds its `@` has no userinfo that could have been cut.
fn check_userinfo_is_encoded(rest: &str) -> Result<(), SpecError> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') || !after.contains('@') {
        return Ok(());
    }
    Err(SpecError::new(
        "connection string",
        "the URI has an `@` after the end of its host part (the first `/`, `?` or `#`), so the user name or password in it is cut in two",
        "percent-encode reserved characters in the password (/ ? # @ : → %2F %3F %23 %40 %3A), or use --password-file",
    ))
}

fn parse_uri(uri: &str, out: &mut BTreeMap<String, String>) -> Result<(), SpecError> {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    check_userinfo_is_encoded(rest)?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let (userinfo, hostspec) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(ui) = userinfo {
        let (user, pass) = match ui.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (ui, None),
        };
        if !user.is_empty() {
            out.insert("user".into(), decode(user, "user")?);
        }
        if let Some(p) = pass {
            out.insert("password".into(), decode(p, "password")?);
        }
    }
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for part in hostspec.split(',') {
            let (h, port) = split_host_port(part)?;
            hosts.push(decode(&h, "host")?);
            ports.push(port.unwrap_or_default());
        }
        out.insert("host".into(), hosts.join(","));
        if ports.iter().any(|p| !p.is_empty()) {
            out.insert("port".into(), ports.join(","));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.insert("dbname".into(), decode(db, "dbname")?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                SpecError::new(
                    "connection string",
                    format!("URI parameter `{pair}` has no value"),
                    "write it as key=value",
                )
            })?;
            let k = decode(k, "connection string")?;
            let v = decode(v, "connection string")?;
            out.insert(k, v);
        }
    }
    Ok(())
}

fn split_host_port(part: &str) -> Result<(String, Option<String>), SpecError> {
    if let Some(rest) = part.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| {
            SpecError::new("host", format!("`{part}` has an unclosed `[`"), "write IPv6 hosts as [::1]:5432")
        })?;
        let port = after.strip_prefix(':').map(str::to_string);
        return Ok((h.to_string(), port));
    }
    match part.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), Some(p.to_string()))),
        None => Ok((part.to_string(), None)),
    }
}

fn parse_key_values(s: &str, out: &mut BTreeMap<String, String>) -> Result<(), SpecError> {
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(());
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(SpecError::new(
                "connection string",
                format!("`{key}` is missing `=` and a value"),
                "write parameters as key=value, separated by spaces",
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(SpecError::new(
                    "connection string",
                    format!("the quoted value of `{key}` is not closed"),
                    "close it with ' and escape quotes inside as \\'",
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Network;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(s: &str) -> Result<SourceSpec, SpecError> {
        parse_dsn(Some(s), &no_env)
    }

    #[test]
    fn uri_with_everything() {
        let s = parse("postgresql://ro%40corp:p%3Ass@db.example.com:6543/sales%20db?sslmode=verify-full&application_name=bi&connect_timeout=3")
            .expect("valid");
        assert_eq!(s.user, "ro@corp");
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("p:ss"));
        assert_eq!(s.hosts, vec![HostPort { host: "db.example.com".into(), port: 6543 }]);
        assert_eq!(s.database, "sales db");
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.application_name, "bi");
        assert_eq!(s.connect_timeout_secs, 3);
        assert_eq!(s.network, Network::Direct);
        assert!(!s.pgbouncer);
    }

    #[test]
    fn pgbouncer_mode() {
        assert!(parse("host=h user=u pgbouncer=true").expect("valid").pgbouncer);
        assert!(parse("postgresql://u@h/db?pgbouncer=on").expect("valid").pgbouncer);
        assert!(!parse("host=h user=u pgbouncer=false").expect("valid").pgbouncer);
        assert_eq!(parse("host=h user=u pgbouncer=maybe").map_err(|e| e.field), Err("pgbouncer"));
        // It has no PG* variable: the environment cannot switch it on.
        let env = |k: &str| match k {
            "PGHOST" => Some("h".to_string()),
            "PGUSER" => Some("u".to_string()),
            "PGPGBOUNCER" | "PGBOUNCER" => Some("true".to_string()),
            _ => None,
        };
        assert!(!parse_dsn(None, &env).expect("valid").pgbouncer);
    }

    #[test]
    fn uri_multi_host_and_ipv6() {
        let s = parse("postgres://u@a:1,[::1]:2,c/db?target_session_attrs=standby").expect("valid");
        let hp: Vec<_> = s.hosts.iter().map(|h| (h.host.as_str(), h.port)).collect();
        assert_eq!(hp, vec![("a", 1), ("::1", 2), ("c", 5432)]);
        assert_eq!(s.target_session_attrs, SessionAttrs::Standby);
    }

    #[test]
    fn channel_binding_from_uri_key_values_and_env() {
        use crate::ChannelBinding as Cb;
        assert_eq!(parse("host=h user=u").expect("valid").channel_binding, Cb::Prefer);
        assert_eq!(parse("postgresql://u@h/db?channel_binding=require").expect("valid").channel_binding, Cb::Require);
        assert_eq!(parse("host=h user=u channel_binding=disable").expect("valid").channel_binding, Cb::Disable);
        assert_eq!(parse("host=h user=u channel_binding=yes").map_err(|e| e.field), Err("channel_binding"));
        let env = |k: &str| match k {
            "PGHOST" => Some("h".to_string()),
            "PGUSER" => Some("u".to_string()),
            "PGCHANNELBINDING" => Some("require".to_string()),
            _ => None,
        };
        assert_eq!(parse_dsn(None, &env).expect("valid").channel_binding, Cb::Require);
        assert_eq!(
            parse_dsn(Some("channel_binding=prefer"), &env).expect("valid").channel_binding,
            Cb::Prefer,
            "the connection string wins over the environment"
        );
        // require without TLS is refused before anything is dialled.
        let e = parse_dsn(Some("sslmode=disable"), &env).expect_err("require needs TLS");
        assert_eq!(e.field, "channel_binding");
    }

    #[test]
    fn a_password_cut_by_a_reserved_character_is_never_echoed() {
        // The secret's pieces, and URIs in which an unencoded character cuts the password.
        let pieces = ["Kq7", "Zx9", "Wm3", "Rt5"];
        for uri in [
            "postgresql://u:Kq7/Zx9@host/db",
            "postgresql://u:Kq7?Zx9@host/db",
            "postgresql://u:Kq7#Zx9@host/db",
            "postgresql://u:Kq7/Zx9?Wm3#Rt5@host/db",
            "postgres://u:Kq7?Zx9=Wm3@host:5432/db?sslmode=require",
            "postgresql://u:Kq7#Zx9/Wm3@host",
            "postgresql://u:Kq7/Zx9@host1,host2/db",
            "postgresql://Rt5/Wm3:Kq7@host/db",
        ] {
            let e = parse(uri).expect_err(uri);
            assert_eq!(e.field, "connection string", "{uri}");
            assert!(e.hint.contains("%2F %3F %23 %40 %3A"), "{uri}: {e:?}");
            assert!(e.hint.contains("--password-file"), "{uri}: {e:?}");
            let shown = format!("{} {} {e}", UserFacing::message(&e), e.hint);
            for piece in pieces {
                assert!(!shown.contains(piece), "{uri}: `{piece}` appears in {shown}");
            }
        }
        // Encoded, every reserved character reaches the password intact; `@` and `:` need no
        // encoding (the last `@` ends the userinfo, the first `:` ends the user).
        for (uri, password) in [
            ("postgresql://u:Kq7%2FZx9%3FWm3%23Rt5@host/db", "Kq7/Zx9?Wm3#Rt5"),
            ("postgresql://u:Kq7%40Zx9%3AWm3@host/db", "Kq7@Zx9:Wm3"),
            ("postgresql://u:Kq7@Zx9@host/db", "Kq7@Zx9"),
            ("postgresql://u:Kq7:Zx9@host/db", "Kq7:Zx9"),
        ] {
            let s = parse(uri).expect(uri);
            assert_eq!(s.password.as_ref().map(Secret::expose), Some(password), "{uri}");
            assert_eq!(s.hosts[0].host, "host", "{uri}");
            assert_eq!(s.database, "db", "{uri}");
        }
        // An `@` after the host part is fine where there is no userinfo to cut, or it is whole.
        for uri in ["postgresql:///db?host=h&user=me@corp", "postgresql://u@h/db?application_name=a@b"] {
            parse(uri).expect(uri);
        }
    }

    #[test]
    fn key_values_with_quotes() {
        let s = parse(r"host=h port=5433 dbname='my db' user=u password='it\'s' sslmode = disable").expect("valid");
        assert_eq!(s.database, "my db");
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("it's"));
        assert_eq!(s.sslmode, SslMode::Disable);
        assert_eq!(s.hosts[0].port, 5433);
    }

    #[test]
    fn defaults_are_sluices() {
        let s = parse("host=h user=u").expect("valid");
        assert_eq!(s.sslmode, SslMode::Require);
        assert_eq!(s.database, "u", "dbname defaults to the user, as in libpq");
        assert_eq!(s.connect_timeout_secs, 10);
        assert_eq!(s.application_name, "sluice");
    }

    #[test]
    fn refuses_dangerous_parameters_by_name() {
        for (dsn, name) in [
            ("host=h user=u options='-c default_transaction_read_only=off'", "options"),
            ("postgresql://u@h/db?service=prod", "service"),
            ("host=h user=u passfile=/etc/shadow", "passfile"),
            ("postgresql://u@h/db?socketFactory=x", "socketFactory"),
        ] {
            let e = parse(dsn).expect_err(dsn);
            assert!(e.message.contains(&format!("`{name}`")), "{dsn}: {e:?}");
        }
        let e = parse("host=/var/run/postgresql user=u").expect_err("socket");
        assert_eq!(e.field, "host");
        assert!(e.hint.contains("TCP"));
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(parse("host=h user=u port=abc").map_err(|e| e.field), Err("port"));
        assert_eq!(parse("host=h user=u sslmode=on").map_err(|e| e.field), Err("sslmode"));
        assert_eq!(parse("host=h user=u connect_timeout=soon").map_err(|e| e.field), Err("connect_timeout"));
        assert_eq!(parse("host=a,b,c port=1,2 user=u").map_err(|e| e.field), Err("port"));
        assert_eq!(parse("host=h user=u dbname='x").map_err(|e| e.field), Err("connection string"));
        assert_eq!(parse("mysql://u@h/db").map_err(|e| e.field), Err("connection string"));
        assert_eq!(parse("user=u").map_err(|e| e.field), Err("host"));
    }

    #[test]
    fn env_fills_what_the_dsn_leaves_out() {
        let env = |k: &str| match k {
            "PGHOST" => Some("envhost".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            "PGPASSWORD" => Some("envpw".to_string()),
            "PGSSLMODE" => Some("verify-ca".to_string()),
            _ => None,
        };
        let s = parse_dsn(Some("postgresql://urluser@/db"), &env).expect("valid");
        assert_eq!(s.hosts[0].host, "envhost");
        assert_eq!(s.user, "urluser");
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("envpw"));
        assert_eq!(s.sslmode, SslMode::VerifyCa);
        let s = parse_dsn(None, &env).expect("env alone");
        assert_eq!(s.database, "envuser");
    }

    #[test]
    fn refused_env_vars() {
        let env = |k: &str| match k {
            "PGHOST" => Some("h".to_string()),
            "PGUSER" => Some("u".to_string()),
            "PGOPTIONS" => Some("-c x=y".to_string()),
            _ => None,
        };
        let e = parse_dsn(None, &env).expect_err("PGOPTIONS refused");
        assert!(e.message.contains("PGOPTIONS"), "{e:?}");
    }

    #[test]
    fn cert_sources() {
        assert_eq!(CertSource::parse("system"), CertSource::System);
        assert!(matches!(CertSource::parse("-----BEGIN CERTIFICATE-----\n"), CertSource::Pem(_)));
        assert!(matches!(CertSource::parse("/etc/ca.pem"), CertSource::File(_)));
    }
}
