//! STS `AssumeRole`: the chain's credentials sign a request (SigV4, service `sts`) for a role's
//! temporary credentials, which then sign the RDS token.

use std::time::SystemTime;

use crate::http::Method;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::chain::{sts_endpoint, xml_value, STS_TIMEOUT};
use crate::token::form_encode;
use crate::{http, parse_rfc3339, CredentialSource, Credentials, Env, IamError};

/// The role to assume and how.
#[derive(Debug, Clone, Copy)]
pub struct RoleRequest<'a> {
    pub role_arn: &'a str,
    pub external_id: Option<&'a str>,
    pub session_name: &'a str,
    /// The STS region (the database's).
    pub region: &'a str,
}

const PROVIDER: &str = "STS AssumeRole";

/// Calls `AssumeRole` at `now` with `base` (the chain's credentials) and returns the role's
/// temporary credentials. Credentials that are already expired at `now` are refused.
pub async fn assume_role(
    env: &Env,
    base: &Credentials,
    role: &RoleRequest<'_>,
    now: SystemTime,
) -> Result<Credentials, IamError> {
    if !sluice_core::is_role_arn(role.role_arn) {
        return Err(IamError::source(
            PROVIDER,
            format!("`{}` is not an IAM role ARN", role.role_arn),
            "give the role's ARN as IAM shows it, e.g. arn:aws:iam::123456789012:role/sluice-reader",
        ));
    }
    let mut fields = vec![
        ("Action", "AssumeRole"),
        ("RoleArn", role.role_arn),
        ("RoleSessionName", role.session_name),
        ("Version", "2011-06-15"),
    ];
    if let Some(id) = role.external_id {
        fields.push(("ExternalId", id));
    }
    let body = fields.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect::<Vec<_>>().join("&");
    let url = format!("{}/", sts_endpoint(env, role.region));
    let uri: hyper::Uri = url.parse().map_err(|_| {
        IamError::source(PROVIDER, format!("`{url}` is not a URL"), "fix AWS_ENDPOINT_URL_STS (or AWS_ENDPOINT_URL)")
    })?;
    let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
    const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

    let identity = base.to_aws().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(role.region)
        .name("sts")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| IamError::Sign(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        [("host", authority.as_str()), ("content-type", CONTENT_TYPE)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| IamError::Sign(e.to_string()))?;
    // The signer traces the canonical request (with the session token): no subscriber sees it.
    let signed =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || sign(signable, &params));
    let (instructions, _) = signed.map_err(|e| IamError::Sign(e.to_string()))?.into_parts();
    let mut headers: Vec<(&str, &str)> = vec![("content-type", CONTENT_TYPE), ("accept", "application/xml")];
    headers.extend(instructions.headers());

    let response =
        http::send(Method::POST, &url, &headers, body.clone().into_bytes(), STS_TIMEOUT).await.map_err(|e| {
            IamError::network(
                PROVIDER,
                format!("cannot assume {}: {e}", role.role_arn),
                "check that STS is reachable from Sluice (https://sts.REGION.amazonaws.com, or a VPC endpoint \
                 named in AWS_ENDPOINT_URL_STS)",
            )
        })?;
    let text = response.text();
    if response.status != 200 {
        let code = xml_value(&text, "Code").unwrap_or_default();
        let message = xml_value(&text, "Message").unwrap_or_default();
        let hint = match code.as_str() {
            "AccessDenied" => format!(
                "the role's trust policy must allow sts:AssumeRole for the identity Sluice runs as ({}, access key \
                 id {}){}, and that identity's policy must allow sts:AssumeRole on {}",
                base.source,
                base.access_key_id,
                if role.external_id.is_some() {
                    " with this sts:ExternalId"
                } else {
                    "; if the trust policy requires an sts:ExternalId, give it (--aws-external-id)"
                },
                role.role_arn
            ),
            "ExpiredToken" | "InvalidClientTokenId" | "SignatureDoesNotMatch" => format!(
                "the credentials from {} were refused by STS: renew them (or fix the machine's clock)",
                base.source
            ),
            "RegionDisabledException" => {
                format!("activate STS in {} (IAM → Account settings), or use another region's endpoint", role.region)
            }
            _ => "check the role ARN and the STS endpoint".to_string(),
        };
        return Err(IamError::Source {
            provider: PROVIDER,
            message: format!(
                "STS refused AssumeRole for {} (HTTP {}: {code} {message})",
                role.role_arn, response.status
            )
            .trim_end()
            .to_string(),
            hint,
            kind: if response.status == 403 { sluice_core::ErrorKind::Auth } else { sluice_core::ErrorKind::Network },
        });
    }
    let block = xml_value(&text, "Credentials").unwrap_or_default();
    let field = |k: &str| xml_value(&block, k).filter(|v| !v.is_empty());
    let (Some(id), Some(secret), Some(session_token)) =
        (field("AccessKeyId"), field("SecretAccessKey"), field("SessionToken"))
    else {
        return Err(IamError::network(
            PROVIDER,
            "STS answered without credentials",
            "retry; if it persists, check the STS endpoint",
        ));
    };
    let expiry = field("Expiration").as_deref().and_then(parse_rfc3339);
    let Some(expiry) = expiry else {
        return Err(IamError::network(
            PROVIDER,
            "STS answered credentials without a valid Expiration",
            "check the STS endpoint (AWS_ENDPOINT_URL_STS)",
        ));
    };
    if expiry <= now {
        return Err(IamError::network(
            PROVIDER,
            format!("STS answered credentials for {} that had already expired", role.role_arn),
            "check the clock of the machine running Sluice (NTP) and the STS endpoint",
        ));
    }
    let source =
        CredentialSource::AssumedRole { role_arn: role.role_arn.to_string(), via: Box::new(base.source.clone()) };
    Ok(Credentials::new(id, secret, Some(session_token), source).with_expiry(Some(expiry)))
}
