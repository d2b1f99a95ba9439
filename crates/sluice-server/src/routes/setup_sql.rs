//! `POST /setup-sql`: the DBA's script, as `sluice setup-sql` writes it (sluice-doctor's
//! `setup_sql`), for the admin's Setup SQL page. A password not given is generated and answered
//! once, beside the script, which carries only its SCRAM verifier.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sluice_core::{Secret, UserFacing};
use sluice_doctor::{generate_password, setup_sql, SetupError, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit;
use crate::auth::RequireAdmin;
use crate::{ApiError, ApiJson, AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(script))
}

/// The first major with the predefined role `pg_read_all_data`.
const READ_ALL_DATA_MAJOR: u32 = 14;

/// What the DBA's script grants, as `sluice setup-sql` takes it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetupSqlBody {
    /// The login role to create (or update when it exists).
    user: String,
    /// The database the role reads; the script must run connected to it.
    database: String,
    /// Schemas to read; required unless `read_all_data`.
    #[serde(default)]
    schemas: Vec<String>,
    /// Roles that create or recreate tables (dbt, Fivetran, Airbyte…): tables they make later
    /// become readable too.
    #[serde(default)]
    elt_owners: Vec<String>,
    /// Grant `pg_read_all_data` (PostgreSQL 14+) instead of per-schema privileges.
    #[serde(default)]
    read_all_data: bool,
    /// The target server's major version, when known: `read_all_data` is refused below 14 (the
    /// script checks it again when it runs).
    #[serde(default)]
    server_major: Option<u32>,
    /// The role's password. Left out, a 32-character one is generated and answered once.
    #[serde(default)]
    password: Option<String>,
}

/// The request's name for the field a [`SetupError`] names.
fn field_of(e: &SetupError) -> &'static str {
    match e {
        SetupError::Empty { field } | SetupError::Nul { field, .. } | SetupError::TooLong { field, .. } => match *field
        {
            "schema" => "schemas",
            "ELT owner" => "elt_owners",
            other => other,
        },
        SetupError::Reserved { field, .. } => match *field {
            "ELT owner" => "elt_owners",
            other => other,
        },
        SetupError::NoSchemas => "schemas",
        SetupError::Random(_) => "password",
    }
}

/// The DBA's script: run it once as a superuser with psql, connected to the database; it runs
/// in one transaction, checks everything before it changes anything, and can run again.
#[utoipa::path(
    post,
    path = "/setup-sql",
    operation_id = "setup_sql",
    tag = "sources",
    security(("bearer" = [])),
    request_body = SetupSqlBody,
    responses(
        (status = 200, description = "The script, and the password when it was generated (shown only in this response).", body = crate::openapi::SetupSqlDoc),
        (status = 400, description = "A name is empty, too long, reserved or holds a NUL; no schema without `read_all_data`; `read_all_data` below PostgreSQL 14. `field` names it.", body = crate::error::ErrorBody),
    )
)]
async fn script(
    State(state): State<AppState>,
    RequireAdmin(who): RequireAdmin,
    ApiJson(body): ApiJson<SetupSqlBody>,
) -> Result<Response, ApiError> {
    if let Some(major) = body.server_major {
        if body.read_all_data && major < READ_ALL_DATA_MAJOR {
            return Err(ApiError::invalid(
                "read_all_data",
                format!("pg_read_all_data needs PostgreSQL {READ_ALL_DATA_MAJOR} or newer, and the server is {major}"),
            )
            .with_hint(Some("name the schemas to read instead".into())));
        }
    }
    let (password, generated) = match &body.password {
        Some(p) => (Secret::new(p.as_str()), false),
        None => (generate_password().map_err(ApiError::internal)?, true),
    };
    let sql = setup_sql(&SetupOptions {
        user: body.user.clone(),
        database: body.database.clone(),
        schemas: body.schemas.clone(),
        elt_owners: body.elt_owners.clone(),
        read_all_data: body.read_all_data,
        password: password.clone(),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .map_err(|e| match e {
        SetupError::Random(_) => ApiError::internal(&e),
        _ => ApiError::invalid(field_of(&e), e.message()).with_hint(e.hint()),
    })?;
    audit(
        &state,
        &who,
        "setup_sql.generated",
        None,
        json!({
            "user": body.user,
            "database": body.database,
            "schemas": body.schemas,
            "elt_owners": body.elt_owners,
            "read_all_data": body.read_all_data,
            "password_generated": generated,
        }),
    )
    .await?;
    let password = generated.then(|| password.expose().to_string());
    Ok(Json(json!({"sql": sql, "generated_password": password})).into_response())
}
