//! One error type for every handler: its JSON body is `{"error":{"code","message","field",
//! "hint"}}`. Bad input is always a 4xx naming the field; only the store or the server itself
//! failing is a 5xx, answered with a bare message while the cause is logged.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_connect::ConnectError;
use sluice_core::{SpecError, UserFacing};
use sluice_query::QueryError;
use sluice_store::StoreError;

/// An error answered to the client (boxed: handlers return it on every path).
#[derive(Debug, Clone)]
pub struct ApiError(Box<Detail>);

impl std::ops::Deref for ApiError {
    type Target = Detail;
    fn deref(&self) -> &Detail {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut Detail {
        &mut self.0
    }
}

/// What an [`ApiError`] says.
#[derive(Debug, Clone)]
pub struct Detail {
    pub status: StatusCode,
    /// Stable and machine-readable: `invalid`, `not_found`, `conflict`, `unauthenticated`, …
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, as the request spells it (`ssh.host`, `password`).
    pub field: Option<String>,
    pub hint: Option<String>,
    /// For `429`: seconds after which a retry may succeed.
    pub retry_after: Option<u64>,
    /// For SQL errors: the 1-based character position in the request's `sql`.
    pub position: Option<u32>,
    pub sqlstate: Option<String>,
}

/// Every error's body.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

/// What went wrong, and where.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// Stable and machine-readable: `invalid`, `not_found`, `conflict`, `unauthenticated`,
    /// `forbidden`, `csrf`, `busy`, `syntax`, `refused`, `database`, `timeout`, …
    code: &'a str,
    message: &'a str,
    /// The request field at fault, as the request spells it (`ssh.host`, `password`), or null.
    #[schema(required = true)]
    field: Option<&'a str>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    /// For SQL errors: the 1-based character position in the request's `sql`.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u32>,
    /// For errors the database reported: its SQLSTATE.
    #[serde(skip_serializing_if = "Option::is_none")]
    sqlstate: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError(Box::new(Detail {
            status,
            code,
            message: message.into(),
            field: None,
            hint: None,
            retry_after: None,
            position: None,
            sqlstate: None,
        }))
    }

    /// 400 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message).with_field(field)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn too_many(message: impl Into<String>, retry_after: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 500 with a bare message; the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed; the log has the details")
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn with_hint(mut self, hint: Option<String>) -> ApiError {
        self.hint = hint;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                hint: self.hint.as_deref(),
                position: self.position,
                sqlstate: self.sqlstate.as_deref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound { entity } => ApiError::not_found(entity),
            StoreError::Conflict { field, .. } => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
                .with_field(field.clone())
                .with_hint(e.hint()),
            StoreError::Invalid { field, message } => ApiError::invalid(*field, message.clone()),
            _ => ApiError::internal(&e),
        }
    }
}

/// The request's name for a spec field the core validation names.
pub fn form_field(spec_field: &str) -> &str {
    match spec_field {
        "dbname" => "database",
        "connect_timeout" => "connect_timeout_secs",
        "auth.region" => "aws_region",
        "auth.sign_host" => "iam_sign_host",
        "auth.sign_port" => "iam_sign_port",
        "auth.role_arn" => "aws_role_arn",
        "auth.external_id" => "aws_external_id",
        "auth.role_session_name" => "aws_role_session_name",
        other => other,
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        ApiError::invalid(form_field(e.field), e.message.clone()).with_hint(Some(e.hint))
    }
}

/// A source that could not be reached (or its pool is full).
impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> ApiError {
        if let ConnectError::PoolTimeout { .. } = e {
            return ApiError::too_many(e.message(), 1).with_hint(e.hint());
        }
        match e {
            ConnectError::Spec(spec) => spec.into(),
            ConnectError::Config { field, message, hint } => {
                ApiError::invalid(form_field(field), message).with_hint(Some(hint))
            }
            other => {
                let mut api = ApiError::new(StatusCode::BAD_GATEWAY, "source_unreachable", other.message())
                    .with_hint(other.hint());
                api.sqlstate = other.sqlstate().map(str::to_string);
                api.field = Some(format!("stage.{}", other.stage().id()));
                api
            }
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let (status, code) = match &e {
            QueryError::Connect(c) => {
                let mut api = ApiError::from(clone_connect(c));
                api.message = e.message();
                return api;
            }
            QueryError::Empty | QueryError::Syntax { .. } => (StatusCode::BAD_REQUEST, "syntax"),
            QueryError::Refused { .. } => (StatusCode::BAD_REQUEST, "refused"),
            QueryError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            QueryError::Database { .. } => (StatusCode::BAD_REQUEST, "database"),
            QueryError::Timeout { .. } => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            QueryError::Cancelled => (StatusCode::CONFLICT, "cancelled"),
            QueryError::Lost { .. } => (StatusCode::BAD_GATEWAY, "source_lost"),
            QueryError::Output(_) | QueryError::Encode(_) | QueryError::Internal(_) => return ApiError::internal(&e),
        };
        let field = match &e {
            QueryError::Invalid { field: "timeout", .. } => Some("timeout_ms".to_string()),
            QueryError::Invalid { field, .. } => Some((*field).to_string()),
            QueryError::Empty
            | QueryError::Syntax { .. }
            | QueryError::Refused { .. }
            | QueryError::Database { .. } => Some("sql".into()),
            _ => None,
        };
        let mut api = ApiError::new(status, code, e.message());
        api.field = field;
        api.hint = e.hint();
        api.position = e.position();
        api.sqlstate = e.sqlstate().map(str::to_string);
        api
    }
}

/// `ConnectError` is not `Clone`; the API needs only its kind, message and hint.
fn clone_connect(e: &ConnectError) -> ConnectError {
    match e {
        ConnectError::PoolTimeout { secs, max } => ConnectError::PoolTimeout { secs: *secs, max: *max },
        other => ConnectError::Session { message: other.message() },
    }
}

/// JSON in a request body: the content type checked, the size capped (the router's body limit),
/// unknown fields refused by the types themselves (`deny_unknown_fields`), and every failure a
/// 4xx naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                let t = t.trim();
                t.eq_ignore_ascii_case("application/json") || t.to_ascii_lowercase().ends_with("+json")
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the request body is larger than the server accepts",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", format!("cannot read the request body: {e}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the field at fault (`ssh.port`, or the unknown field's own name).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut de);
    match parsed {
        Ok(v) => {
            de.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.to_string()))?;
            Ok(v)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            let mut field = (path != ".").then_some(path);
            // An unknown field's path ends with its name (serde_path_to_error may repeat it); a
            // missing one's does not.
            if let Some(unknown) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
                let mut parts: Vec<&str> =
                    field.as_deref().unwrap_or_default().split('.').filter(|p| !p.is_empty()).collect();
                while parts.last() == Some(&unknown) {
                    parts.pop();
                }
                parts.push(unknown);
                field = Some(parts.join("."));
            } else if let Some(missing) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
                field = Some(match field {
                    Some(parent) => format!("{parent}.{missing}"),
                    None => missing.to_string(),
                });
            }
            let mut api = ApiError::new(StatusCode::BAD_REQUEST, "invalid", message);
            api.field = field;
            Err(api)
        }
    }
}
