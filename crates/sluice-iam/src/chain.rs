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

use serde::Deserialize;

use crate::http::{self, Method, Response};
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
    let listed = format!("{} and {}", shown(&credentials_path), shown(&config_path));
    let in_config = config.get(name);
    let in_credentials = credentials.get(name);
    if in_config.is_none() && in_credentials.is_none() {
        if explicit.is_some() {
            return Err(IamError::source(
                "the shared AWS files",
                format!("AWS_PROFILE names `{name}`, which is in neither {listed}"),
                format!(
                    "add [{name}] to the credentials file or [profile {name}] to the config file, or fix AWS_PROFILE"
                ),
            ));
        }
        return Ok(Looked::Absent(format!("profile `{name}` in {listed}")));
    }
    let files = Files { config, credentials, config_path, credentials_path };
    // The selected profile, then each `source_profile` it names: roles to assume in reverse.
    let mut roles: Vec<Section> = Vec::new();
    let mut current = name.to_string();
    loop {
        let merged = files.merged(&current);
        let get = |k: &str| merged.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let selected = roles.is_empty();
        // As in the SDKs, a role to assume wins over the profile's own keys, which then serve as
        // the source when source_profile names the profile itself.
        if let (Some(role_arn), Some(source)) = (get("role_arn"), get("source_profile")) {
            if !sluice_core::is_role_arn(role_arn) {
                return Err(IamError::source(
                    PROFILE_PROVIDER,
                    format!("profile `{current}` has role_arn `{role_arn}`, which is not an IAM role ARN"),
                    "give the role's ARN as IAM shows it, e.g. arn:aws:iam::123456789012:role/sluice-reader",
                ));
            }
            if roles.len() >= MAX_PROFILE_CHAIN {
                return Err(IamError::source(
                    PROFILE_PROVIDER,
                    format!("profile `{name}` chains more than {MAX_PROFILE_CHAIN} roles through source_profile"),
                    "shorten the chain of source_profile entries (two profiles naming each other loop)",
                ));
            }
            roles.push(merged.clone());
            if source == current {
                let Some(creds) = static_keys(&files, &current, &merged)? else {
                    return Err(IamError::source(
                        PROFILE_PROVIDER,
                        format!("profile `{current}` is its own source_profile but has no keys"),
                        format!("give profile `{current}` aws_access_key_id and aws_secret_access_key"),
                    ));
                };
                return assume_chain(env, region, creds, &roles).await.map(Looked::Found);
            }
            if !files.has(source) {
                return Err(IamError::source(
                    PROFILE_PROVIDER,
                    format!(
                        "profile `{current}` names source_profile `{source}`, which is in neither {}",
                        files.shown()
                    ),
                    format!(
                        "add profile `{source}` with aws_access_key_id/aws_secret_access_key, or fix source_profile"
                    ),
                ));
            }
            current = source.to_string();
            continue;
        }
        if let Some(creds) = static_keys(&files, &current, &merged)? {
            return assume_chain(env, region, creds, &roles).await.map(Looked::Found);
        }
        if let (Some(token_file), Some(role_arn)) = (get("web_identity_token_file"), get("role_arn")) {
            let session = get("role_session_name").map(str::to_string);
            let creds = web_identity(env, region, &env.expand(token_file), role_arn, session).await?;
            return assume_chain(env, region, creds, &roles).await.map(Looked::Found);
        }
        refuse_unsupported(&current, &merged)?;
        if get("role_arn").is_some() {
            return Err(IamError::source(
                PROFILE_PROVIDER,
                format!("profile `{current}` has role_arn but neither source_profile nor web_identity_token_file"),
                format!("add source_profile naming a profile with keys; or {REFUSED_HINT}"),
            ));
        }
        if selected {
            return Ok(Looked::Absent(format!("profile `{name}` in {} (no keys in it)", files.shown())));
        }
        return Err(IamError::source(
            PROFILE_PROVIDER,
            format!("profile `{current}` (a source_profile of `{name}`) has no credentials"),
            format!("give profile `{current}` aws_access_key_id and aws_secret_access_key"),
        ));
    }
}

const PROFILE_PROVIDER: &str = "the shared AWS files";
const MAX_PROFILE_CHAIN: usize = 5;
const REFUSED_HINT: &str = "export credentials with `aws configure export-credentials --profile NAME --format env` \
     (then unset AWS_PROFILE), or give Sluice keys, a web identity, an ECS task role or an EC2 instance role, and \
     name the role to assume with --aws-role-arn (a source's role_arn)";

/// The two shared files, parsed.
struct Files {
    config: std::collections::BTreeMap<String, Section>,
    credentials: std::collections::BTreeMap<String, Section>,
    config_path: Option<PathBuf>,
    credentials_path: Option<PathBuf>,
}

impl Files {
    fn has(&self, name: &str) -> bool {
        self.config.contains_key(name) || self.credentials.contains_key(name)
    }

    /// The profile's settings; the credentials file's win.
    fn merged(&self, name: &str) -> Section {
        let mut merged: Section = self.config.get(name).cloned().unwrap_or_default();
        merged.extend(self.credentials.get(name).cloned().unwrap_or_default());
        merged
    }

    fn shown(&self) -> String {
        let shown =
            |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(no HOME)".into());
        format!("{} and {}", shown(&self.credentials_path), shown(&self.config_path))
    }
}

/// The profile's own `aws_access_key_id` / `aws_secret_access_key` (/ `aws_session_token`).
fn static_keys(files: &Files, name: &str, merged: &Section) -> Result<Option<Credentials>, IamError> {
    let get = |k: &str| merged.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            let in_credentials = files.credentials.get(name).is_some_and(|s| s.contains_key("aws_access_key_id"));
            let file = if in_credentials { &files.credentials_path } else { &files.config_path };
            let source =
                CredentialSource::Profile { profile: name.to_string(), file: file.clone().unwrap_or_default() };
            Ok(Some(Credentials::new(id, secret, get("aws_session_token").map(str::to_string), source)))
        }
        (Some(_), None) | (None, Some(_)) => Err(IamError::source(
            PROFILE_PROVIDER,
            format!("profile `{name}` has only one of aws_access_key_id and aws_secret_access_key"),
            format!(
                "give profile `{name}` both keys in {}",
                files.credentials_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            ),
        )),
        (None, None) => Ok(None),
    }
}

/// Profiles whose credentials come from something Sluice does not run: refused, never passed over.
fn refuse_unsupported(name: &str, merged: &Section) -> Result<(), IamError> {
    let get = |k: &str| merged.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let what = if get("credential_process").is_some() {
        "credential_process (an external command)"
    } else if let Some(key) = ["sso_session", "sso_start_url", "sso_account_id"].into_iter().find(|k| get(k).is_some())
    {
        return Err(IamError::source(
            PROFILE_PROVIDER,
            format!("profile `{name}` uses IAM Identity Center (SSO, `{key}`), which Sluice does not support"),
            format!("sign in with `aws sso login --profile {name}`, then {REFUSED_HINT}"),
        ));
    } else if get("credential_source").is_some() {
        "credential_source (use the environment or metadata for a role's source)"
    } else {
        return Ok(());
    };
    Err(IamError::source(
        PROFILE_PROVIDER,
        format!("profile `{name}` uses {what}, which Sluice does not support"),
        REFUSED_HINT,
    ))
}

/// Assumes `roles` (the profiles that named them, outermost first) starting from `creds`.
async fn assume_chain(
    env: &Env,
    region: &str,
    mut creds: Credentials,
    roles: &[Section],
) -> Result<Credentials, IamError> {
    for profile in roles.iter().rev() {
        let get = |k: &str| profile.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let Some(role_arn) = get("role_arn") else { continue };
        let role = crate::RoleRequest {
            role_arn,
            external_id: get("external_id"),
            session_name: get("role_session_name").unwrap_or(crate::DEFAULT_SESSION_NAME),
            region,
        };
        creds = crate::assume_role(env, &creds, &role, SystemTime::now()).await?;
    }
    Ok(creds)
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
