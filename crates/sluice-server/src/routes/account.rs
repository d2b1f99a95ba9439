//! Setup, sign-in and sign-out, the caller (`/me`), users, API tokens and health.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sluice_core::{Secret, SourceId};
use sluice_store::{NewApiToken, Role, TokenRole, UserId, MIN_PASSWORD_CHARS};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{audit, audit_as};
use crate::auth::{self, Authenticated, RequireAdmin, Via};
use crate::{ApiError, ApiJson, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(setup))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(me))
        .routes(routes!(list_users, create_user))
        .routes(routes!(disable_user))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Whether the service and its store answer.
#[utoipa::path(
    get,
    path = "/health",
    tag = "account",
    responses(
        (status = 200, description = "The service and its store answer.", body = crate::openapi::HealthDoc),
        (status = 503, description = "The store is not reachable.", body = crate::openapi::HealthDoc),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    match state.store().users().await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health: the store is not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "store_unreachable"}))).into_response()
        }
    }
}

/// The first administrator.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetupBody {
    /// The one-time token of the setup link `sluice serve` printed on an empty store.
    setup_token: String,
    /// 1 to 64 characters of `a-z`, `A-Z`, `0-9`, `.`, `_`, `-` and `@`.
    login: String,
    /// At least 12 characters.
    password: String,
}

fn check_login(login: &str) -> Result<(), ApiError> {
    let ok = !login.is_empty()
        && login.len() <= 64
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid("login", "use 1 to 64 characters of a-z, A-Z, 0-9, '.', '_', '-' and '@'"))
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid("password", format!("use at least {MIN_PASSWORD_CHARS} characters")));
    }
    Ok(())
}

/// Creates the first administrator with the one-time setup token printed at start.
#[utoipa::path(
    post,
    path = "/setup",
    tag = "account",
    request_body = SetupBody,
    responses(
        (status = 201, description = "The first administrator.", body = crate::openapi::UserEnvelopeDoc),
        (status = 403, description = "The setup token is unknown, used or expired (`field`: `setup_token`).", body = crate::error::ErrorBody),
        (status = 409, description = "The first administrator exists already.", body = crate::error::ErrorBody),
    )
)]
async fn setup(State(state): State<AppState>, ApiJson(body): ApiJson<SetupBody>) -> Result<Response, ApiError> {
    check_login(&body.login)?;
    check_password(&body.password)?;
    if !state.store().users().await?.is_empty() {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_set_up", "the first administrator exists already"));
    }
    if !state.store().consume_setup_token(&body.setup_token).await? {
        return Err(ApiError::forbidden("invalid_setup_token", "the setup token is unknown, used or expired")
            .with_field("setup_token")
            .with_hint(Some("restart `sluice serve` on the empty store for a new link".into())));
    }
    let user = state.store().create_user(&body.login, Role::Admin, &Secret::new(body.password.as_str())).await?;
    audit_as(&state, &format!("user:{}", user.login), "setup.admin_created", None, json!({"login": user.login}))
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"user": user}))).into_response())
}

/// A person's credentials.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    login: String,
    password: String,
}

/// Signs in: a new session (any session the browser presented is revoked first), its cookie
/// and the CSRF token. Failures are audited and, after a few, answered with 429.
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "account",
    request_body = SignInBody,
    responses(
        (status = 201, description = "Signed in; the session's cookies (`sluice_session`, HttpOnly, and `sluice_csrf`) come in `Set-Cookie`.", body = crate::openapi::SignedInDoc),
        (status = 401, description = "The login or the password is wrong.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many failed sign-ins for this login from this address; `Retry-After` says when to try again.", body = crate::error::ErrorBody),
    )
)]
async fn sign_in(State(state): State<AppState>, req: axum::extract::Request) -> Result<Response, ApiError> {
    let ip = auth::peer_ip(req.extensions());
    let previous = auth::cookie(req.headers(), auth::SESSION_COOKIE);
    let ApiJson(body) =
        <ApiJson<SignInBody> as axum::extract::FromRequest<AppState>>::from_request(req, &state).await?;
    let key = auth::throttle_key(&body.login, ip);
    if let Some(wait) = state.sign_in_wait(&key) {
        return Err(ApiError::too_many("too many failed sign-ins; wait before trying again", wait));
    }
    let user = state.store().authenticate(&body.login, &Secret::new(body.password.as_str())).await?;
    let Some(user) = user else {
        state.sign_in_failed(&key);
        let login: String = body.login.chars().take(64).collect();
        audit_as(&state, &format!("user:{login}"), "sign_in.failed", None, json!({"ip": ip.map(|i| i.to_string())}))
            .await?;
        return Err(ApiError::unauthenticated("the login or the password is wrong"));
    };
    state.sign_in_succeeded(&key);
    if let Some(previous) = previous {
        state.store().revoke_session(&previous).await?;
    }
    let ttl = state.config().session_ttl;
    let session = state.store().create_session(user.id, ttl).await?;
    let cookies = auth::session_cookies(
        Some((session.cookie.expose(), session.csrf.expose())),
        ttl,
        state.config().secure_cookies,
    );
    audit_as(&state, &format!("user:{}", user.login), "sign_in", None, json!({"ip": ip.map(|i| i.to_string())}))
        .await?;
    let body = json!({"user": user, "csrf_token": session.csrf.expose(), "expires_at": session.expires_at});
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Signs out: ends the browser's session and clears its cookies.
#[utoipa::path(
    delete,
    path = "/sessions/current",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session has ended; its cookies are cleared."),
        (status = 400, description = "The caller used an API token, which has no session (`field`: `session`).", body = crate::error::ErrorBody),
    )
)]
async fn sign_out(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if who.via != Via::Session {
        return Err(ApiError::invalid("session", "an API token has no session to end; revoke the token instead"));
    }
    if let Some(cookie) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        state.store().revoke_session(&cookie).await?;
    }
    audit(&state, &who, "sign_out", None, json!({})).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    for c in auth::session_cookies(None, state.config().session_ttl, state.config().secure_cookies) {
        if let Ok(v) = c.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// The caller: who, with which role, and how they proved it.
#[utoipa::path(
    get,
    path = "/me",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller.", body = crate::openapi::MeDoc))
)]
async fn me(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The CSRF token comes back when the browser holds it and it is this session's.
    let csrf = match &who.via {
        Via::Session => {
            let session = match auth::cookie(&headers, auth::SESSION_COOKIE) {
                Some(c) => state.store().session(&c).await?,
                None => None,
            };
            auth::cookie(&headers, auth::CSRF_COOKIE).filter(|t| session.as_ref().is_some_and(|s| s.csrf_matches(t)))
        }
        Via::Token { .. } => None,
    };
    let via = match &who.via {
        Via::Session => json!({"kind": "session"}),
        Via::Token { public_id } => json!({"kind": "token", "token": public_id}),
    };
    Ok(Json(json!({
        "login": who.login,
        "role": who.role,
        "user_id": who.user,
        "source": who.source,
        "via": via,
        "csrf_token": csrf,
    }))
    .into_response())
}

/// Every user, disabled ones included.
#[utoipa::path(
    get,
    path = "/users",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "The users.", body = crate::openapi::UserListDoc))
)]
async fn list_users(State(state): State<AppState>, RequireAdmin(_): RequireAdmin) -> Result<Response, ApiError> {
    Ok(Json(json!({"users": state.store().users().await?})).into_response())
}

/// A new user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    /// 1 to 64 characters of `a-z`, `A-Z`, `0-9`, `.`, `_`, `-` and `@`.
    login: String,
    /// At least 12 characters.
    password: String,
    /// `admin` or `analyst`.
    #[schema(value_type = crate::openapi::RoleDoc)]
    role: String,
}

/// Creates a user who signs in with a login and password.
#[utoipa::path(
    post,
    path = "/users",
    tag = "account",
    security(("bearer" = [])),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "The new user.", body = crate::openapi::UserEnvelopeDoc),
        (status = 409, description = "The login is taken (`field`: `login`).", body = crate::error::ErrorBody),
    )
)]
async fn create_user(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<Response, ApiError> {
    check_login(&body.login)?;
    let role: Role = body.role.parse()?;
    check_password(&body.password)?;
    let user = state.store().create_user(&body.login, role, &Secret::new(body.password.as_str())).await?;
    audit(&state, &who, "user.create", None, json!({"login": user.login, "role": user.role})).await?;
    Ok((StatusCode::CREATED, Json(json!({"user": user}))).into_response())
}

/// Disables a user (the audit log keeps their history) and ends their sessions.
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "account",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 204, description = "The user is disabled and their sessions ended."),
        (status = 404, description = "No such user.", body = crate::error::ErrorBody),
        (status = 409, description = "A person cannot disable their own account from their session.", body = crate::error::ErrorBody),
    )
)]
async fn disable_user(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = UserId(id.parse().map_err(|_| ApiError::not_found("user"))?);
    if who.user == Some(id) && who.via == Via::Session {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", "you cannot disable your own account"));
    }
    let user = state.store().user(id).await?;
    state.store().set_user_disabled(id, true).await?;
    let sessions = state.store().revoke_sessions_of(id).await?;
    audit(&state, &who, "user.disable", None, json!({"login": user.login, "sessions_revoked": sessions})).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every API token (never their secrets).
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "account",
    security(("bearer" = [])),
    responses((status = 200, description = "The tokens.", body = crate::openapi::TokenListDoc))
)]
async fn list_tokens(State(state): State<AppState>, RequireAdmin(_): RequireAdmin) -> Result<Response, ApiError> {
    Ok(Json(json!({"tokens": state.store().tokens().await?})).into_response())
}

/// A new API token.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    /// `admin`, `analyst`, or `refresh` (may only trigger catalog refreshes).
    #[schema(value_type = crate::openapi::TokenRoleDoc)]
    role: String,
    /// Scope the token to this one source (required for `refresh`; `source_id` is accepted
    /// too).
    #[serde(default, alias = "source_id")]
    source: Option<String>,
}

/// A new API token; its text is in this response only.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "account",
    security(("bearer" = [])),
    request_body = NewTokenBody,
    responses((status = 201, description = "The new token; its text is in this response only.", body = crate::openapi::NewTokenDoc))
)]
async fn create_token(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    ApiJson(body): ApiJson<NewTokenBody>,
) -> Result<Response, ApiError> {
    let role: TokenRole = body.role.parse()?;
    let source = match &body.source {
        Some(s) => {
            let id: SourceId =
                s.parse().map_err(|e: sluice_core::BadSourceId| ApiError::invalid("source", e.to_string()))?;
            state.store().source(&id).await.map_err(|_| ApiError::invalid("source", "no such source"))?;
            Some(id)
        }
        None if role == TokenRole::Refresh => {
            return Err(ApiError::invalid("source", "a refresh token is scoped to one source: give its id"))
        }
        None => None,
    };
    let (token, text) = state
        .store()
        .create_token(&NewApiToken { name: body.name.clone(), role, source, created_by: who.user })
        .await?;
    audit(
        &state,
        &who,
        "token.create",
        token.source.as_ref(),
        json!({"token": token.public_id, "name": token.name, "role": token.role}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"token": text.expose(), "info": token}))).into_response())
}

/// Revokes an API token at once.
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "account",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The token's public id.")),
    responses(
        (status = 204, description = "The token is revoked."),
        (status = 404, description = "No such token.", body = crate::error::ErrorBody),
    )
)]
async fn revoke_token(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.store().revoke_token(&id).await?;
    audit(&state, &who, "token.revoke", None, json!({"token": id})).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
