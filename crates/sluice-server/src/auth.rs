//! Who is calling: an API token (`Authorization: Bearer sluice_…`) or a browser session (an
//! `HttpOnly`, `SameSite=Lax` cookie; a state-changing request made with it must also carry the
//! session's CSRF token in `X-CSRF-Token`). Each extractor is named for the access it proves.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use sluice_core::SourceId;
use sluice_store::{Role, TokenRole, UserId};

use crate::{ApiError, AppState};

/// The session cookie (`HttpOnly`).
pub const SESSION_COOKIE: &str = "sluice_session";
/// The CSRF cookie: readable by the page, which echoes it in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "sluice_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Token { public_id: String },
    Session,
}

/// A caller whose credentials were verified.
#[derive(Debug, Clone)]
pub struct Principal {
    /// For the audit log: `user:<login>` or `token:<public id>`.
    pub actor: String,
    /// A person's login, or a token's name.
    pub login: String,
    pub role: Role,
    pub user: Option<UserId>,
    /// The one source a scoped token may use.
    pub source: Option<SourceId>,
    pub via: Via,
}

impl Principal {
    /// A scoped token sees only its own source; any other is "not found".
    pub fn may_use(&self, id: &SourceId) -> Result<(), ApiError> {
        match &self.source {
            Some(only) if only != id => Err(ApiError::not_found("source")),
            _ => Ok(()),
        }
    }
}

/// Any signed-in person or valid token (admin or analyst).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// An administrator: sources, users, tokens, the audit log.
#[derive(Debug, Clone)]
pub struct RequireAdmin(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let text = auth.to_str().unwrap_or_default();
            let Some(token) = text.strip_prefix("Bearer ").map(str::trim) else {
                return Err(ApiError::unauthenticated("the Authorization header must be `Bearer <token>`"));
            };
            let Some(found) = state.store().verify_token(token).await? else {
                return Err(ApiError::unauthenticated("the token is not valid (unknown, malformed or revoked)"));
            };
            let role = match found.role {
                TokenRole::Admin => Role::Admin,
                TokenRole::Analyst => Role::Analyst,
                TokenRole::Refresh => {
                    return Err(ApiError::forbidden("forbidden", "a refresh token may only trigger catalog refreshes"))
                }
            };
            return Ok(Authenticated(Principal {
                actor: format!("token:{}", found.public_id),
                login: found.name.clone(),
                role,
                user: found.created_by,
                source: found.source.clone(),
                via: Via::Token { public_id: found.public_id },
            }));
        }
        let Some(cookie) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::unauthenticated("sign in, or send an API token as `Authorization: Bearer <token>`"));
        };
        let Some(session) = state.store().session(&cookie).await? else {
            return Err(ApiError::unauthenticated("the session has ended; sign in again"));
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let proof = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if proof.is_empty() || !session.csrf_matches(proof) {
                return Err(ApiError::forbidden(
                    "csrf",
                    "a request that changes something must carry the session's CSRF token in X-CSRF-Token",
                ));
            }
        }
        Ok(Authenticated(Principal {
            actor: format!("user:{}", session.user.login),
            login: session.user.login.clone(),
            role: session.user.role,
            user: Some(session.user.id),
            source: None,
            via: Via::Session,
        }))
    }
}

/// Who may queue a source's discovery: an administrator, or a token of role `refresh` (the ELT
/// hook), which may refresh its one source and call nothing else.
#[derive(Debug, Clone)]
pub struct RequireRefresh {
    /// For the audit log: `user:<login>` or `token:<public id>`.
    pub actor: String,
    /// The one source the caller may refresh, when it is scoped.
    pub only: Option<SourceId>,
    /// The caller is a refresh token (not an administrator).
    pub refresh_token: bool,
}

impl RequireRefresh {
    /// Another source than a scoped caller's: 403 for a refresh token, "not found" for an
    /// administrator's scoped token (as everywhere).
    pub fn may_refresh(&self, id: &SourceId) -> Result<(), ApiError> {
        match &self.only {
            Some(only) if only != id && self.refresh_token => {
                Err(ApiError::forbidden("forbidden", "this refresh token may only refresh its own source"))
            }
            Some(only) if only != id => Err(ApiError::not_found("source")),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for RequireRefresh {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(token) = bearer {
            if let Some(found) = state.store().verify_token(token).await? {
                if found.role == TokenRole::Refresh {
                    let Some(only) = found.source else {
                        return Err(ApiError::forbidden("forbidden", "a refresh token must be scoped to a source"));
                    };
                    let actor = format!("token:{}", found.public_id);
                    return Ok(RequireRefresh { actor, only: Some(only), refresh_token: true });
                }
            }
        }
        let RequireAdmin(who) = RequireAdmin::from_request_parts(parts, state).await?;
        Ok(RequireRefresh { actor: who.actor, only: who.source, refresh_token: false })
    }
}

impl FromRequestParts<AppState> for RequireAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(who) = Authenticated::from_request_parts(parts, state).await?;
        if who.role != Role::Admin {
            return Err(ApiError::forbidden("forbidden", "this needs an administrator"));
        }
        Ok(RequireAdmin(who))
    }
}

/// The value of one cookie.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The peer's address, when the server knows it (tests without a socket do not).
pub fn peer_ip(parts_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    parts_extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Failed sign-ins for one login from one address.
#[derive(Debug, Clone, Copy)]
pub struct Failures {
    count: u32,
    last: Instant,
}

/// The sign-in throttle's key: the login (case-folded) and the address.
pub fn throttle_key(login: &str, ip: Option<IpAddr>) -> String {
    format!("{}|{}", login.to_lowercase(), ip.map(|i| i.to_string()).unwrap_or_default())
}

impl AppState {
    /// Seconds until `key` may try again, when it is locked out.
    pub(crate) fn sign_in_wait(&self, key: &str) -> Option<u64> {
        let config = self.config();
        let mut map = self.sign_ins();
        let f = *map.get(key)?;
        let elapsed = f.last.elapsed();
        if elapsed >= config.sign_in_lockout {
            map.remove(key);
            return None;
        }
        (f.count >= config.sign_in_failures).then(|| (config.sign_in_lockout - elapsed).as_secs().max(1))
    }

    pub(crate) fn sign_in_failed(&self, key: &str) {
        let mut map = self.sign_ins();
        // Forget stale entries so the map cannot grow without bound.
        let lockout = self.config().sign_in_lockout;
        if map.len() > 10_000 {
            map.retain(|_, f| f.last.elapsed() < lockout);
        }
        let entry = map.entry(key.to_string()).or_insert(Failures { count: 0, last: Instant::now() });
        entry.count += 1;
        entry.last = Instant::now();
    }

    pub(crate) fn sign_in_succeeded(&self, key: &str) {
        self.sign_ins().remove(key);
    }
}

/// `Set-Cookie` values for a session (and its CSRF cookie), or for clearing both.
pub fn session_cookies(session: Option<(&str, &str)>, ttl: Duration, secure: bool) -> [String; 2] {
    let secure = if secure { "; Secure" } else { "" };
    match session {
        Some((id, csrf)) => {
            let age = ttl.as_secs();
            [
                format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}"),
                format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Lax; Max-Age={age}{secure}"),
            ]
        }
        None => [
            format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
            format!("{CSRF_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0{secure}"),
        ],
    }
}
