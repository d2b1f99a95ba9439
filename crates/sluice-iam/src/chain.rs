//! The standard AWS credential chain, in the SDKs' order: environment → shared files (profile) →
//! web identity → ECS container endpoint → EC2 instance metadata (IMDSv2).
//!
//! A source that is not configured is passed over; one that is configured and fails stops the
//! chain with its own error (a half-set environment or a broken profile must not fall through to
//! some other identity). Endpoints can be pointed elsewhere as in the SDKs:
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`, `AWS_CONTAINER_CREDENTIALS_FULL_URI`,
//! `AWS_ENDPOINT_URL_STS` (or `AWS_ENDPOINT_URL`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::Method;
use serde::Deserialize;

use crate::http::{self, Response};
use crate::profile::{self, Section};
use crate::{parse_rfc3339, CredentialSource, Credentials, Env, IamError};

const IMDS_DEFAULT: &str = "http://169.254.169.254";
const IMDS_DEFAULT_V6: &str = "http://[fd00:ec2::254]";
const ECS_RELATIVE_BASE: &str = "http://169.254.170.2";
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
const ECS_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const STS_TIMEOUT: Duration = Duration::from_secs(10);

/// The first credentials the chain finds, or why there are none.
pub async fn resolve(env: &Env, region: &str) -> Result<Credentials, IamError> {
    let mut tried = Vec::new();
    if let Some(c) = environment(env)? {
        return Ok(c);
    }
    tried.push("the environment".to_string());
    match shared_files(env, region).await? {
        Looked::Found(c) => return Ok(c),
        Looked::Absent(what) => tried.push(what),
    }
    if let Some(c) = web_identity_from_env(env, region).await? {
        return Ok(c);
    }
    tried.push("web identity (AWS_WEB_IDENTITY_TOKEN_FILE unset)".into());
    if let Some(c) = ecs(env).await? {
        return Ok(c);
    }
    tried.push("ECS container credentials (AWS_CONTAINER_CREDENTIALS_*_URI unset)".into());
    match imds(env).await? {
        Looked::Found(c) => return Ok(c),
        Looked::Absent(what) => tried.push(what),
    }
    Err(IamError::NoCredentials { tried: tried.join("; ") })
}

enum Looked {
    Found(Credentials),
    /// Not there, and what was looked at.
    Absent(String),
}

/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, with `AWS_SESSION_TOKEN` when set.
pub fn environment(env: &Env) -> Result<Option<Credentials>, IamError> {
    match (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some(Credentials::new(
            id,
            secret,
            env.get("AWS_SESSION_TOKEN").map(str::to_string),
            CredentialSource::Environment,
        ))),
        (Some(_), None) => Err(IamError::source(
            "the environment",
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            "set both (and AWS_SESSION_TOKEN for temporary credentials), or unset AWS_ACCESS_KEY_ID",
        )),
        (None, Some(_)) => Err(IamError::source(
            "the environment",
            "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            "set both, or unset AWS_SECRET_ACCESS_KEY",
        )),
    }
}

fn read_optional(path: &Option<PathBuf>) -> Result<String, IamError> {
    let Some(path) = path else { return Ok(String::new()) };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(IamError::source(
            "the shared AWS files",
            format!("cannot read {}: {e}", path.display()),
            "make the file readable by the user Sluice runs as",
        )),
    }
}

/// The profile `AWS_PROFILE` names (else `default`) from the credentials and config files; the
/// credentials file's keys win over the config file's.
async fn shared_files(env: &Env, region: &str) -> Result<Looked, IamError> {
    let (config_path, credentials_path) = profile::paths(env);
    let explicit = env.get("AWS_PROFILE");
    let name = explicit.unwrap_or("default");
    let config = profile::parse(&read_optional(&config_path)?, true);
    let credentials = profile::parse(&read_optional(&credentials_path)?, false);
    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(no HOME)".into());
    let files = format!("{} and {}", shown(&credentials_path), shown(&config_path));
    let in_config = config.get(name);
    let in_credentials = credentials.get(name);
    if in_config.is_none() && in_credentials.is_none() {
        if explicit.is_some() {
            return Err(IamError::source(
                "the shared AWS files",
                format!("AWS_PROFILE names `{name}`, which is in neither {files}"),
                format!(
                    "add [{name}] to the credentials file or [profile {name}] to the config file, or fix AWS_PROFILE"
                ),
            ));
        }
        return Ok(Looked::Absent(format!("profile `{name}` in {files}")));
    }
    let mut merged: Section = in_config.cloned().unwrap_or_default();
    merged.extend(in_credentials.cloned().unwrap_or_default());
    let key_file = if in_credentials.is_some_and(|s| s.contains_key("aws_access_key_id")) {
        credentials_path.clone()
    } else {
        config_path.clone()
    };
    let provider = "the shared AWS files";
    let get = |k: &str| merged.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            let source = CredentialSource::Profile { profile: name.to_string(), file: key_file.unwrap_or_default() };
            return Ok(Looked::Found(Credentials::new(
                id,
                secret,
                get("aws_session_token").map(str::to_string),
                source,
            )));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(IamError::source(
                provider,
                format!("profile `{name}` has only one of aws_access_key_id and aws_secret_access_key"),
                format!("give profile `{name}` both keys in {}", shown(&credentials_path)),
            ))
        }
        (None, None) => {}
    }
    if let (Some(token_file), Some(role_arn)) = (get("web_identity_token_file"), get("role_arn")) {
        let session = get("role_session_name").map(str::to_string);
        return web_identity(env, region, &env.expand(token_file), role_arn, session).await.map(Looked::Found);
    }
    let unsupported = ["source_profile", "credential_source", "credential_process", "sso_session", "sso_start_url"]
        .into_iter()
        .find(|k| get(k).is_some());
    if let Some(key) = unsupported {
        return Err(IamError::source(
            provider,
            format!("profile `{name}` uses `{key}`, which Sluice does not support"),
            "give Sluice a profile with aws_access_key_id/aws_secret_access_key (e.g. from \
             `aws configure export-credentials --profile NAME --format env`), environment variables, a web \
             identity, or run it with an ECS task role or EC2 instance role",
        ));
    }
    Ok(Looked::Absent(format!("profile `{name}` in {files} (no keys in it)")))
}

/// `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN` (and `AWS_ROLE_SESSION_NAME`).
async fn web_identity_from_env(env: &Env, region: &str) -> Result<Option<Credentials>, IamError> {
    let Some(token_file) = env.get("AWS_WEB_IDENTITY_TOKEN_FILE") else { return Ok(None) };
    let Some(role_arn) = env.get("AWS_ROLE_ARN") else {
        return Err(IamError::source(
            "web identity",
            "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not",
            "set AWS_ROLE_ARN to the role to assume (EKS IRSA sets both)",
        ));
    };
    let session = env.get("AWS_ROLE_SESSION_NAME").map(str::to_string);
    web_identity(env, region, &env.expand(token_file), role_arn, session).await.map(Some)
}

/// STS `AssumeRoleWithWebIdentity` (unsigned: the token file is the proof).
async fn web_identity(
    env: &Env,
    region: &str,
    token_file: &Path,
    role_arn: &str,
    session: Option<String>,
) -> Result<Credentials, IamError> {
    let provider = "web identity";
    let token = std::fs::read_to_string(token_file).map_err(|e| {
        IamError::source(
            provider,
            format!("cannot read the web identity token file {}: {e}", token_file.display()),
            "check AWS_WEB_IDENTITY_TOKEN_FILE (or web_identity_token_file in the profile)",
        )
    })?;
    let token = token.trim();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let session = session.unwrap_or_else(|| format!("sluice-{now}"));
    let endpoint = sts_endpoint(env, region);
    let form = |k: &str, v: &str| format!("{k}={}", crate::token::form_encode(v));
    let body = [
        form("Action", "AssumeRoleWithWebIdentity"),
        form("RoleArn", role_arn),
        form("RoleSessionName", &session),
        form("Version", "2011-06-15"),
        form("WebIdentityToken", token),
    ]
    .join("&");
    let url = format!("{endpoint}/");
    let response = http::send(
        Method::POST,
        &url,
        &[("content-type", "application/x-www-form-urlencoded; charset=utf-8"), ("accept", "application/xml")],
        body.into_bytes(),
        STS_TIMEOUT,
    )
    .await
    .map_err(|e| IamError::network(provider, e, "check that STS is reachable (AWS_ENDPOINT_URL_STS overrides it)"))?;
    let text = response.text();
    if response.status != 200 {
        let code = xml_value(&text, "Code").unwrap_or_default();
        let message = xml_value(&text, "Message").unwrap_or_default();
        return Err(IamError::network(
            provider,
            format!(
                "STS refused AssumeRoleWithWebIdentity for {role_arn} (HTTP {}: {code} {message})",
                response.status
            ),
            "the role's trust policy must allow sts:AssumeRoleWithWebIdentity from the token's issuer and audience",
        ));
    }
    let block = xml_value(&text, "Credentials").unwrap_or_default();
    let field = |k: &str| xml_value(&block, k).filter(|v| !v.is_empty());
    match (field("AccessKeyId"), field("SecretAccessKey"), field("SessionToken")) {
        (Some(id), Some(secret), Some(session_token)) => {
            let expiry = field("Expiration").as_deref().and_then(parse_rfc3339);
            Ok(Credentials::new(
                id,
                secret,
                Some(session_token),
                CredentialSource::WebIdentity { role_arn: role_arn.to_string() },
            )
            .with_expiry(expiry))
        }
        _ => Err(IamError::network(
            provider,
            "STS answered without credentials",
            "retry; if it persists, check the STS endpoint",
        )),
    }
}

/// STS's regional endpoint, or `AWS_ENDPOINT_URL_STS` (then `AWS_ENDPOINT_URL`) when set.
pub(crate) fn sts_endpoint(env: &Env, region: &str) -> String {
    env.get("AWS_ENDPOINT_URL_STS")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"))
}

/// The text of the first `<tag>…</tag>`, XML entities decoded.
pub(crate) fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    let raw = &xml[start..start + len];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&#xD;", "\r")
            .replace("&amp;", "&")
            .trim()
            .to_string(),
    )
}

/// The JSON ECS and IMDS answer with.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointCredentials {
    code: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

fn endpoint_credentials(
    response: &Response,
    provider: &'static str,
    source: CredentialSource,
) -> Result<Credentials, IamError> {
    let parsed: EndpointCredentials = serde_json::from_slice(&response.body)
        .map_err(|_| IamError::network(provider, "the endpoint did not answer with credentials JSON", "retry later"))?;
    if let Some(code) = parsed.code.as_deref().filter(|c| *c != "Success") {
        return Err(IamError::network(provider, format!("the endpoint answered Code={code}"), "retry later"));
    }
    match (parsed.access_key_id, parsed.secret_access_key) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            let expiry = parsed.expiration.as_deref().and_then(parse_rfc3339);
            Ok(Credentials::new(id, secret, parsed.token.filter(|t| !t.is_empty()), source).with_expiry(expiry))
        }
        _ => {
            Err(IamError::network(provider, "the endpoint's answer has no AccessKeyId/SecretAccessKey", "retry later"))
        }
    }
}

/// Hosts a plain-http full URI may name: loopback, and the ECS / EKS Pod Identity agents.
fn ecs_host_allowed(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => true,
        Ok(ip) => ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"].iter().any(|a| a.parse() == Ok(ip)),
        Err(_) => false,
    }
}

/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on 169.254.170.2) or `…_FULL_URI`, with the
/// `Authorization` header from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `…_TOKEN`.
async fn ecs(env: &Env) -> Result<Option<Credentials>, IamError> {
    let provider = "ECS container credentials";
    let url = if let Some(relative) = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        format!("{ECS_RELATIVE_BASE}{relative}")
    } else if let Some(full) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        let uri: hyper::Uri = full.parse().map_err(|_| {
            IamError::source(provider, format!("`{full}` is not a URL"), "fix AWS_CONTAINER_CREDENTIALS_FULL_URI")
        })?;
        let plain_ok = uri.scheme_str() == Some("http") && uri.host().is_some_and(ecs_host_allowed);
        if uri.scheme_str() != Some("https") && !plain_ok {
            return Err(IamError::source(
                provider,
                format!("AWS_CONTAINER_CREDENTIALS_FULL_URI `{full}` is plain http to a host that is not loopback or the container agent"),
                "use https, or a loopback / 169.254.170.23 address",
            ));
        }
        full.to_string()
    } else {
        return Ok(None);
    };
    let token = match env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(
            std::fs::read_to_string(env.expand(path))
                .map_err(|e| {
                    IamError::source(
                        provider,
                        format!("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {e}"),
                        "check the file the container agent mounted",
                    )
                })?
                .trim()
                .to_string(),
        ),
        None => env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(str::to_string),
    };
    let mut headers = vec![("accept", "application/json")];
    if let Some(t) = &token {
        headers.push(("authorization", t.as_str()));
    }
    let response = http::send(Method::GET, &url, &headers, Vec::new(), ECS_TIMEOUT)
        .await
        .map_err(|e| IamError::network(provider, e, "check that the container credentials endpoint is reachable"))?;
    if response.status != 200 {
        return Err(IamError::network(
            provider,
            format!("{url} answered HTTP {}", response.status),
            "check the task role (and the authorization token for a full URI)",
        ));
    }
    endpoint_credentials(&response, provider, CredentialSource::Ecs { uri: url.clone() }).map(Some)
}

/// EC2 instance metadata, IMDSv2 only: a session token first (PUT), then the role and its
/// credentials (GET). An endpoint that does not answer means "not on EC2".
async fn imds(env: &Env) -> Result<Looked, IamError> {
    let provider = "EC2 instance metadata";
    if env.get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(Looked::Absent("EC2 instance metadata (AWS_EC2_METADATA_DISABLED=true)".into()));
    }
    let base = match env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
        Some(e) => e.trim_end_matches('/').to_string(),
        None if env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE").is_some_and(|m| m.eq_ignore_ascii_case("ipv6")) => {
            IMDS_DEFAULT_V6.to_string()
        }
        None => IMDS_DEFAULT.to_string(),
    };
    let token_url = format!("{base}/latest/api/token");
    let session = match http::send(
        Method::PUT,
        &token_url,
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
        Vec::new(),
        IMDS_TIMEOUT,
    )
    .await
    {
        Err(e) => return Ok(Looked::Absent(format!("EC2 instance metadata ({e})"))),
        Ok(r) if r.status == 200 => r.text(),
        Ok(r) => {
            return Err(IamError::network(
                provider,
                format!("{token_url} answered HTTP {} to the IMDSv2 token request", r.status),
                "enable IMDSv2 on the instance (and a hop limit of 2 when Sluice runs in a container)",
            ))
        }
    };
    let headers = [("x-aws-ec2-metadata-token", session.trim())];
    let roles_url = format!("{base}/latest/meta-data/iam/security-credentials/");
    let get = |url: String| async move {
        http::send(Method::GET, &url, &headers, Vec::new(), IMDS_TIMEOUT)
            .await
            .map_err(|e| IamError::network(provider, e, "retry; check the instance metadata options"))
    };
    let roles = get(roles_url.clone()).await?;
    if roles.status == 404 {
        return Ok(Looked::Absent("EC2 instance metadata (the instance has no IAM role attached)".into()));
    }
    if roles.status != 200 {
        return Err(IamError::network(provider, format!("{roles_url} answered HTTP {}", roles.status), "retry later"));
    }
    let text = roles.text();
    let Some(role) = text.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string) else {
        return Ok(Looked::Absent("EC2 instance metadata (the instance has no IAM role attached)".into()));
    };
    let creds = get(format!("{roles_url}{role}")).await?;
    if creds.status != 200 {
        return Err(IamError::network(
            provider,
            format!("the credentials of role `{role}` answered HTTP {}", creds.status),
            "retry later",
        ));
    }
    endpoint_credentials(&creds, provider, CredentialSource::Imds { role }).map(Looked::Found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values_are_found_and_unescaped() {
        let xml =
            "<R><Credentials><AccessKeyId>A</AccessKeyId><SessionToken>x&amp;y&lt;</SessionToken></Credentials></R>";
        let block = xml_value(xml, "Credentials").expect("block");
        assert_eq!(xml_value(&block, "SessionToken").as_deref(), Some("x&y<"));
        assert_eq!(xml_value(&block, "Missing"), None);
    }

    #[test]
    fn plain_http_full_uris_only_to_loopback_or_the_agent() {
        for ok in ["127.0.0.1", "localhost", "[::1]", "169.254.170.23", "[fd00:ec2::23]", "169.254.170.2"] {
            assert!(ecs_host_allowed(ok), "{ok}");
        }
        for bad in ["10.0.0.1", "example.com", "169.254.169.254"] {
            assert!(!ecs_host_allowed(bad), "{bad}");
        }
    }
}
