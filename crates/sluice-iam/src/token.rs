//! The RDS IAM login token: a SigV4 presigned `GET https://host:port/?Action=connect&DBUser=…`
//! for the `rds-db` service, valid 15 minutes, without its scheme — byte for byte what botocore's
//! `generate_db_auth_token` returns for the same credentials, clock and names.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sluice_core::Secret;

use crate::{Credentials, IamError};

/// How long a token is accepted: RDS's fixed 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// What the token is for.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The RDS endpoint's name (an IPv6 address with or without brackets).
    pub host: &'a str,
    pub port: u16,
    /// The database user the token logs in as.
    pub user: &'a str,
    pub region: &'a str,
}

/// RFC 3986's unreserved characters stay; everything else is percent-encoded (botocore's
/// `percent_encode`, which is also SigV4's canonical form).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn encode(s: &str) -> Cow<'_, str> {
    utf8_percent_encode(s, UNRESERVED).into()
}

/// A form field's value as the AWS query protocol sends it (the same unreserved set).
pub(crate) fn form_encode(s: &str) -> Cow<'_, str> {
    encode(s)
}

/// Signs a token at `now`. The result is the password for one login attempt.
pub fn generate(credentials: &Credentials, request: &TokenRequest<'_>, now: SystemTime) -> Result<Secret, IamError> {
    let bare = request.host.trim_start_matches('[').trim_end_matches(']');
    let host = if bare.contains(':') { format!("[{bare}]") } else { bare.to_string() };
    let authority = format!("{host}:{}", request.port);
    // The signed Host header as botocore derives it from the URL: the name lowercased, the port
    // left out when it is https's default.
    let host_header = if request.port == 443 {
        host.to_ascii_lowercase()
    } else {
        format!("{}:{}", host.to_ascii_lowercase(), request.port)
    };
    let operation = format!("Action=connect&DBUser={}", encode(request.user));
    let url = format!("https://{authority}/?{operation}");

    let identity = credentials.to_aws().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name("rds-db")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| IamError::Sign(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once(("host", host_header.as_str())),
        // botocore hashes the (empty) body here rather than sending UNSIGNED-PAYLOAD.
        SignableBody::empty(),
    )
    .map_err(|e| IamError::Sign(e.to_string()))?;
    // aws-sigv4 traces the canonical request, whose query string holds the session token: the
    // signing runs where no subscriber can see it, whatever the log filter.
    let signed =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || sign(signable, &params));
    let (instructions, _signature) = signed.map_err(|e| IamError::Sign(e.to_string()))?.into_parts();

    // botocore's order: the operation's parameters, then the authentication parameters as it
    // adds them, the session token last before the signature.
    const ORDER: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ];
    let (_, signed) = instructions.into_parts();
    let mut token = format!("{authority}/?{operation}");
    for name in ORDER {
        let value = signed.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_ref());
        match value {
            Some(v) => {
                token.push('&');
                token.push_str(name);
                token.push('=');
                token.push_str(&encode(v));
            }
            None if name == "X-Amz-Security-Token" => {}
            None => return Err(IamError::Sign(format!("the signer gave no {name}"))),
        }
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CredentialSource;
    use std::time::UNIX_EPOCH;

    /// botocore 1.44's output for these inputs (the parity test runs botocore itself over many
    /// more); here it pins the shape.
    #[test]
    fn has_botocores_shape() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            CredentialSource::Environment,
        );
        let req = TokenRequest {
            host: "MyDB.x.eu-west-1.rds.amazonaws.com",
            port: 443,
            user: "a b@c+d é",
            region: "eu-west-1",
        };
        let token = generate(&creds, &req, UNIX_EPOCH + Duration::from_secs(1_700_000_000)).expect("token");
        assert_eq!(
            token.expose(),
            "MyDB.x.eu-west-1.rds.amazonaws.com:443/?Action=connect&DBUser=a%20b%40c%2Bd%20%C3%A9\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Feu-west-1%2Frds-db%2Faws4_request\
             &X-Amz-Date=20231114T221320Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=f3df252b0963efa8633b9c9dee63bbb5eccffa85cb28e498b8943b4a52c74ea4"
        );
        assert_eq!(format!("{token:?}"), "Secret(<redacted>)");
    }
}
