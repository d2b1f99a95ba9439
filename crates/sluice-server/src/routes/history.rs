//! A source's catalog change history: `GET /sources/{id}/catalog/changes`, newest first, paged by
//! cursor (the snapshot in force at a time is `GET /sources/{id}/catalog?at=TIME`); and its alert
//! history, `GET /sources/{id}/alerts` (open and cleared, newest first).

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sluice_store::{ChangeId, Millis};

use super::source_id;
use crate::alerts::AlertView;
use crate::auth::Authenticated;
use crate::{ApiError, AppState};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(changes)).routes(routes!(alerts))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ChangesQuery {
    /// The `next` of the previous page.
    cursor: Option<i64>,
    /// Changes per page: 1 to 1000, 100 when left out.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `{"changes": [{id, source, from_snapshot, to_snapshot, changed_at, counts, diff}], "next"}`.
#[utoipa::path(
    get,
    path = "/sources/{id}/catalog/changes",
    operation_id = "source_catalog_changes",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id."), ChangesQuery),
    responses(
        (status = 200, description = "One page of changes, newest first.", body = crate::openapi::ChangePageDoc),
        (status = 400, description = "`cursor` or `limit` is not valid, or a parameter is unknown; `field` names it.", body = crate::error::ErrorBody),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn changes(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let q: ChangesQuery = query_params(raw.as_deref(), &["cursor", "limit"])?;
    state.store().source(&id).await?;
    let page = state.store().catalog_changes(&id, q.cursor.map(ChangeId), q.limit).await?;
    Ok(Json(page).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertsQuery {
    /// Alerts listed: 1 to 1000, 100 when left out.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `{"alerts": [{id, kind, subject, details, raised_at, cleared_at}]}`: the source's alerts, open
/// and cleared, newest first (its view shows the open ones).
#[utoipa::path(
    get,
    path = "/sources/{id}/alerts",
    operation_id = "source_alerts",
    tag = "sources",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The source's id."), AlertsQuery),
    responses(
        (status = 200, description = "The source's alerts, newest first.", body = crate::openapi::AlertListDoc),
        (status = 400, description = "`limit` is not valid, or a parameter is unknown; `field` names it.", body = crate::error::ErrorBody),
        (status = 404, description = "No such source (or not the one a scoped token may use).", body = crate::error::ErrorBody),
    )
)]
async fn alerts(
    State(state): State<AppState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = source_id(&id)?;
    who.may_use(&id)?;
    let q: AlertsQuery = query_params(raw.as_deref(), &["limit"])?;
    let limit = sluice_store::page_size(q.limit)?;
    state.store().source(&id).await?;
    let alerts: Vec<AlertView> = state.store().alert_history(&id, limit).await?.iter().map(AlertView::of).collect();
    Ok(Json(serde_json::json!({ "alerts": alerts })).into_response())
}

/// Query parameters through axum's own parser; a failure is a 400 naming the parameter (one of
/// `fields`, or the unknown one).
pub(super) fn query_params<T: DeserializeOwned + Default>(raw: Option<&str>, fields: &[&str]) -> Result<T, ApiError> {
    let text = match raw {
        None | Some("") => return Ok(T::default()),
        Some(text) => text,
    };
    let uri: axum::http::Uri =
        format!("/?{text}").parse().map_err(|_| ApiError::invalid("query", "the query string is malformed"))?;
    axum::extract::Query::<T>::try_from_uri(&uri).map(|q| q.0).map_err(|e| {
        let message = e.body_text();
        let mut api = ApiError::invalid("query", message.clone());
        if let Some(unknown) = message.split("unknown field `").nth(1).and_then(|m| m.split('`').next()) {
            api.field = Some(unknown.to_string());
        } else if let Some(f) =
            fields.iter().find(|f| message.contains(&format!("`{f}`")) || message.contains(&format!("{f}:")))
        {
            api.field = Some(f.to_string());
        }
        api
    })
}

/// An RFC 3339 time (`2025-03-01T12:00:00Z`, `…+02:00`, fractions allowed) in milliseconds since
/// the epoch; anything else is a 400 naming `field`.
pub(super) fn parse_time(field: &'static str) -> impl Fn(&str) -> Result<Millis, ApiError> {
    move |text| {
        let bad =
            || ApiError::invalid(field, format!("`{field}` must be an RFC 3339 time such as 2025-03-01T12:00:00Z"));
        let t = time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad())?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn rfc3339_times_parse_to_milliseconds_and_anything_else_names_the_field() {
        let p = parse_time("at");
        assert_eq!(p("1970-01-01T00:00:01Z").expect("utc"), 1000);
        assert_eq!(p("1970-01-01T01:00:01.5+01:00").expect("offset"), 1500);
        for bad in ["yesterday", "2025-13-01T00:00:00Z", "2025-03-01", "1700000000"] {
            let e = p(bad).expect_err(bad);
            assert_eq!(e.field.as_deref(), Some("at"), "{bad}");
        }
    }
}
