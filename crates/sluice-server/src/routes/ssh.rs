//! SSH bastions: key pairs generated for a bastion's `authorized_keys` (the private half never
//! leaves the server), and the approval of a host key a test showed.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sluice_core::{Network, SourceSecrets};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{audit, source_id};
use crate::auth::RequireAdmin;
use crate::form::{now_ms, SourceView};
use crate::{ApiError, ApiJson, AppState};

/// How long a generated key waits for a source to claim it.
pub const GENERATED_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(generate)).routes(routes!(approve_host_key))
}

/// A key pair to generate for a bastion.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSshKey {
    /// A saved source whose SSH private key becomes the new key at once (the old one is
    /// replaced). Without it, the key waits (24 h) for a source create or edit to name its
    /// `key_id` as `ssh.private_key_id`.
    pub source_id: Option<String>,
}

/// A new key id: `sk-` and 20 random hex digits.
fn new_key_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(format!("sk-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// Generates an ed25519 key pair and answers with its public half only:
/// `{"key_id", "public_key", "fingerprint", "expires_at", "source"}` (`source`, the source's
/// view, when the key was attached to one; `expires_at` is then null).
#[utoipa::path(
    post,
    path = "/ssh-keys",
    operation_id = "generate_ssh_key",
    tag = "sources",
    security(("bearer" = [])),
    request_body = NewSshKey,
    responses(
        (status = 201, description = "The new key's public half (the private half never leaves the server).", body = crate::openapi::NewSshKeyDoc),
        (status = 404, description = "The source is not one a scoped token may use.", body = crate::error::ErrorBody),
    )
)]
async fn generate(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    ApiJson(body): ApiJson<NewSshKey>,
) -> Result<Response, ApiError> {
    let source = match &body.source_id {
        Some(text) => {
            let id =
                text.parse::<sluice_core::SourceId>().map_err(|e| ApiError::invalid("source_id", e.to_string()))?;
            who.may_use(&id)?;
            let record = state.store().source(&id).await.map_err(|e| match e {
                sluice_store::StoreError::NotFound { .. } => {
                    ApiError::invalid("source_id", format!("there is no source `{id}`"))
                }
                other => other.into(),
            })?;
            if !matches!(record.settings.network, Network::Ssh(_)) {
                return Err(ApiError::invalid(
                    "source_id",
                    format!("the source `{id}` does not go through an SSH bastion (its network is not `ssh`)"),
                ));
            }
            Some((id, record))
        }
        None => None,
    };
    let key_id = new_key_id()?;
    let comment = format!("sluice-{key_id}");
    let pair = tokio::task::spawn_blocking(move || sluice_connect::generate_ed25519(&comment))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let made = state
        .store()
        .create_ssh_key(
            &key_id,
            &pair.public_line,
            &pair.fingerprint,
            &pair.private_openssh,
            &who.actor,
            GENERATED_KEY_TTL,
        )
        .await?;
    drop(pair);
    audit(
        &state,
        &who,
        "ssh_key.create",
        source.as_ref().map(|(id, _)| id),
        json!({"key_id": made.id, "fingerprint": made.fingerprint}),
    )
    .await?;
    let Some((id, record)) = source else {
        let body = json!({
            "key_id": made.id,
            "public_key": made.public_key,
            "fingerprint": made.fingerprint,
            "expires_at": made.expires_at,
            "source": null,
        });
        return Ok((StatusCode::CREATED, Json(body)).into_response());
    };
    let updated = state
        .store()
        .update_source_claiming(&id, &record.name, &record.settings, &SourceSecrets::default(), Some(&made.id))
        .await?;
    state.drop_pool(&id).await;
    audit(
        &state,
        &who,
        "source.secret_changed",
        Some(&id),
        json!({"fields": ["ssh.private_key"], "ssh_key_id": made.id}),
    )
    .await?;
    let body = json!({
        "key_id": made.id,
        "public_key": made.public_key,
        "fingerprint": made.fingerprint,
        "expires_at": null,
        "source": SourceView::of(&updated, now_ms()),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The host key to pin, by the fingerprint a failing test showed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostKeyApprovalForm {
    /// `SHA256:…`, as the failing test showed it and `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// Pins the host key with this fingerprint that the source's bastion presented to a test (the
/// key the server saw, never one a request names), records who approved it and when, and
/// audits it (`source.host_key_approved`). Answers the source's view.
#[utoipa::path(
    post,
    path = "/sources/{id}/ssh-host-key",
    operation_id = "approve_ssh_host_key",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id.")),
    request_body = HostKeyApprovalForm,
    responses(
        (status = 200, description = "The source, its host key pinned, with who approved it and when.", body = SourceView),
        (status = 400, description = "A malformed fingerprint, or one no test of this source's bastion saw (`fingerprint`); a source without a bastion (`network`).", body = crate::error::ErrorBody),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn approve_host_key(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    axum::extract::Path(id): axum::extract::Path<String>,
    ApiJson(form): ApiJson<HostKeyApprovalForm>,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let fingerprint = sluice_store::normalize_fingerprint(&form.fingerprint).to_string();
    let well_formed = fingerprint
        .strip_prefix("SHA256:")
        .is_some_and(|b64| b64.len() == 43 && b64.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
    if !well_formed {
        return Err(ApiError::invalid("fingerprint", "give the SHA256:… fingerprint the source's test showed"));
    }
    let record = state.store().source(&id).await?;
    let mut settings = record.settings.clone();
    let Network::Ssh(ssh) = &mut settings.network else {
        return Err(ApiError::invalid("network", format!("the source `{id}` does not go through an SSH bastion")));
    };
    let previous = match &ssh.host_key {
        sluice_core::HostKeyCheck::Fingerprint(fp) => Some(fp.clone()),
        _ => None,
    };
    let bastion = super::sources::bastion_of(ssh);
    ssh.host_key = sluice_core::HostKeyCheck::Fingerprint(fingerprint.clone());
    let approved = state
        .store()
        .approve_host_key(&id, &bastion, &fingerprint, &who.actor, &settings)
        .await
        .map_err(|e| {
            ApiError::from(e).with_hint(Some(format!(
                "run POST /api/v1/sources/{id}/test: a failing ssh check shows the key the bastion presents; compare it with the bastion's own before approving it"
            )))
        })?;
    state.drop_pool(&id).await;
    audit(
        &state,
        &who,
        "source.host_key_approved",
        Some(&id),
        json!({
            "fingerprint": approved.fingerprint,
            "algorithm": approved.algorithm,
            "bastion": bastion,
            "previous": previous,
        }),
    )
    .await?;
    let updated = state.store().source(&id).await?;
    Ok(Json(SourceView::of(&updated, now_ms())).into_response())
}
