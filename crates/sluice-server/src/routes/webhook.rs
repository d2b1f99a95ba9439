//! The outgoing webhook an admin configures: `GET|PUT|DELETE /webhook`. The secret is
//! write-only (sealed in the store, never shown); the URL must pass the network policy after
//! DNS, as a delivery will ([`crate::webhook`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice_core::Secret;
use sluice_store::WebhookInfo;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit;
use crate::auth::RequireAdmin;
use crate::{ApiError, ApiJson, AppState};

/// The shortest signing secret accepted.
const MIN_SECRET_CHARS: usize = 16;
/// The longest URL accepted.
const MAX_URL_CHARS: usize = 2048;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, put, remove))
}

/// The webhook as shown: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
struct WebhookView {
    url: String,
    updated_at: i64,
    /// Notifications not delivered yet.
    pending: u64,
    /// Why the last attempt of a pending notification failed.
    last_error: Option<String>,
}

impl WebhookView {
    fn of(w: WebhookInfo) -> WebhookView {
        WebhookView { url: w.url, updated_at: w.updated_at, pending: w.pending, last_error: w.last_error }
    }
}

/// The webhook to configure.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WebhookBody {
    /// Where alerts are POSTed: an `https://` (or `http://`) URL whose host the network policy
    /// allows.
    url: String,
    /// The HMAC-SHA256 key of the `Sluice-Signature` header, 16 characters or more; write-only.
    secret: String,
}

/// The configured webhook (without its secret), with how many notifications wait.
#[utoipa::path(
    get,
    path = "/webhook",
    operation_id = "show_webhook",
    tag = "webhook",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The webhook.", body = WebhookView),
        (status = 404, description = "No webhook is configured.", body = crate::error::ErrorBody),
    )
)]
async fn show(State(state): State<AppState>, RequireAdmin(_who): RequireAdmin) -> Result<Response, ApiError> {
    let info = state.store().webhook().await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(WebhookView::of(info)).into_response())
}

/// Configures the webhook (replacing any). Each alert raised or cleared from now on is POSTed to
/// it once, signed with the secret; notifications still pending go to the new URL.
#[utoipa::path(
    put,
    path = "/webhook",
    operation_id = "put_webhook",
    tag = "webhook",
    security(("bearer" = [])),
    request_body = WebhookBody,
    responses(
        (status = 200, description = "The webhook as configured.", body = WebhookView),
        (status = 400, description = "`url` or `secret` is not valid (a URL the network policy refuses included); `field` names it.", body = crate::error::ErrorBody),
    )
)]
async fn put(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Response, ApiError> {
    let url = body.url.trim();
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        return Err(ApiError::invalid("url", format!("give the receiver's URL (at most {MAX_URL_CHARS} characters)")));
    }
    if let Err(bad) = crate::webhook::check_url(url, &state.config().network).await {
        return Err(ApiError::invalid("url", bad.message).with_hint(Some(bad.hint)));
    }
    if body.secret.chars().count() < MIN_SECRET_CHARS {
        return Err(ApiError::invalid(
            "secret",
            format!(
                "give a signing secret of {MIN_SECRET_CHARS} characters or more (for example `openssl rand -hex 32`)"
            ),
        ));
    }
    let info = state.store().set_webhook(url, &Secret::new(body.secret)).await?;
    audit(&state, &who, "webhook.set", None, json!({ "url": info.url })).await?;
    Ok(Json(WebhookView::of(info)).into_response())
}

/// Removes the webhook; notifications not delivered yet are dropped.
#[utoipa::path(
    delete,
    path = "/webhook",
    operation_id = "delete_webhook",
    tag = "webhook",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No webhook is configured.", body = crate::error::ErrorBody),
    )
)]
async fn remove(State(state): State<AppState>, RequireAdmin(who): RequireAdmin) -> Result<Response, ApiError> {
    if !state.store().delete_webhook().await? {
        return Err(ApiError::not_found("webhook"));
    }
    audit(&state, &who, "webhook.delete", None, json!({})).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
