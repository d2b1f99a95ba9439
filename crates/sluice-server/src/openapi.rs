//! The API's OpenAPI 3.1 document, generated from the handlers themselves: every route is
//! registered through `utoipa_axum::routes!`, which takes only handlers annotated with
//! `#[utoipa::path]`, so an undocumented handler cannot be served. `docs/openapi.json` is the
//! committed copy (a test fails when it drifts); `GET /api/v1/openapi.json` serves it.
//!
//! The request types are documented by deriving `ToSchema` on the very types the handlers parse
//! (`additionalProperties: false` comes from their `deny_unknown_fields`). Responses built with
//! `json!` and records of other crates are described here by schema-only types named as the
//! document names them.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{CSRF_HEADER, SESSION_COOKIE};
use crate::AppState;

/// The schemes, as the document names them.
pub const BEARER: &str = "bearer";
pub const SESSION: &str = "session";
pub const CSRF: &str = "csrf";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice workspace API",
        description = "The workspace service's HTTP API. Every request and response body is JSON unless \
            the operation says otherwise; JSON request bodies must be sent with \
            `Content-Type: application/json` and refuse unknown fields. Every error is \
            `{\"error\":{\"code\",\"message\",\"field\"}}` (with `hint`, and for SQL errors \
            `position` and `sqlstate`, when known); bad input is a 4xx naming the field. Times \
            are milliseconds since the Unix epoch. Every response carries `X-Request-Id` (the \
            request's own when it sent a short printable one)."
    ),
    components(schemas(crate::error::ErrorBody)),
    tags(
        (name = "account", description = "Setup, sign-in and sign-out, the caller, users, API tokens and health."),
        (name = "sources", description = "Sources: the form, Test Connection, catalog refresh and the latest snapshot."),
        (name = "query", description = "Read-only SQL against a source, streamed in the requested format."),
        (name = "audit", description = "The audit log."),
        (name = "webhook", description = "The outgoing webhook that receives each alert raised and cleared, signed."),
        (name = "service", description = "The document itself and the service's metrics."),
    )
)]
struct ApiDoc;

/// Every route of the service with its documentation. The router and the document come from
/// this one value, so they cannot disagree.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", crate::routes::api())
        .routes(utoipa_axum::routes!(crate::metrics::render))
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = routes().into_openapi();
    // After the routes are in: the conventions apply to every operation.
    Conventions.modify(&mut doc);
    doc
}

/// The document as the service serves it and `docs/openapi.json` holds it: pretty JSON with a
/// final newline.
pub fn document_json() -> String {
    match document().to_pretty_json() {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(e) => format!("{{\"error\": \"the document does not serialize: {e}\"}}\n"),
    }
}

/// This document, in OpenAPI 3.1.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object))
)]
pub(crate) async fn serve_document() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(document_json).clone();
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// What every operation shares: the security alternatives (an API token, or a browser session
/// whose state-changing requests also carry the CSRF header) and the errors of authentication
/// and of JSON bodies, so no handler's annotation can forget them.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: `Authorization: Bearer sluice_…` (made with POST /api/v1/tokens).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "A browser session (HttpOnly, SameSite=Lax), set by POST /api/v1/sessions.",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's CSRF token (from the sign-in response, GET /api/v1/me or the `sluice_csrf` cookie); \
                 required with a session cookie on every request that is not GET, HEAD or OPTIONS.",
            ))),
        );
        debug_assert!(CSRF_HEADER.eq_ignore_ascii_case("X-CSRF-Token"));
        for item in openapi.paths.paths.values_mut() {
            for_each_operation(item, conventions);
        }
    }
}

fn for_each_operation(item: &mut PathItem, f: impl Fn(bool, &mut Operation)) {
    for (safe, op) in [
        (true, item.get.as_mut()),
        (true, item.head.as_mut()),
        (true, item.options.as_mut()),
        (false, item.post.as_mut()),
        (false, item.put.as_mut()),
        (false, item.patch.as_mut()),
        (false, item.delete.as_mut()),
    ] {
        if let Some(op) = op {
            f(safe, op);
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = utoipa::openapi::ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(
        utoipa::openapi::ResponseBuilder::new().description(description).content("application/json", content).build(),
    )
}

fn add_error(op: &mut Operation, status: &str, description: &str) {
    if !op.responses.responses.contains_key(status) {
        op.responses.responses.insert(status.to_string(), error_response(description));
    }
}

fn conventions(safe: bool, op: &mut Operation) {
    // An operation that names the bearer scheme needs a caller; it accepts a session too.
    let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
    if authenticated {
        let session = if safe {
            SecurityRequirement::new(SESSION, Vec::<String>::new())
        } else {
            SecurityRequirement::new(SESSION, Vec::<String>::new()).add(CSRF, Vec::<String>::new())
        };
        op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new()), session]);
        add_error(
            op,
            "401",
            "No valid credentials: no token or session, a malformed, unknown or revoked token, or an ended session.",
        );
        add_error(
            op,
            "403",
            "The caller may not do this: an administrator is needed, a refresh token was used, or a session's request lacks its CSRF token.",
        );
    }
    if op.request_body.is_some() {
        add_error(op, "400", "The body is not valid: `field` names the field at fault (an unknown field is refused).");
        add_error(op, "413", "The body is larger than the server accepts.");
        add_error(op, "415", "The body was not sent as `Content-Type: application/json`.");
    }
}

// Schema-only descriptions of what the handlers answer with `json!` or records of other crates.

/// libpq's sslmode.
#[derive(ToSchema)]
#[schema(as = SslMode, rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum SslModeDoc {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// libpq's `target_session_attrs`.
#[derive(ToSchema)]
#[schema(as = SessionAttrs, rename_all = "kebab-case")]
#[allow(dead_code)]
pub(crate) enum SessionAttrsDoc {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

/// What a signed-in person may do.
#[derive(ToSchema)]
#[schema(as = Role, rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum RoleDoc {
    Admin,
    Analyst,
}

/// What an API token may do; `refresh` may only trigger catalog refreshes.
#[derive(ToSchema)]
#[schema(as = TokenRole, rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum TokenRoleDoc {
    Admin,
    Analyst,
    Refresh,
}

/// How a query recorded in the audit log ended.
#[derive(ToSchema)]
#[schema(as = QueryOutcome, rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum QueryOutcomeDoc {
    Ok,
    Failed,
    Cancelled,
    Truncated,
}

/// A person who may sign in.
#[derive(ToSchema)]
#[schema(as = User)]
#[allow(dead_code)]
pub(crate) struct UserDoc {
    id: i64,
    login: String,
    role: RoleDoc,
    created_at: i64,
    disabled: bool,
}

/// An API token as listings show it (never its secret).
#[derive(ToSchema)]
#[schema(as = ApiToken)]
#[allow(dead_code)]
pub(crate) struct ApiTokenDoc {
    /// The public part of the token, shown in listings and audit entries; revoke it by this id.
    public_id: String,
    name: String,
    role: TokenRoleDoc,
    /// The one source the token may use, when it is scoped.
    #[schema(required = true)]
    source: Option<String>,
    /// The administrator who made it.
    #[schema(required = true)]
    created_by: Option<i64>,
    created_at: i64,
    #[schema(required = true)]
    last_used_at: Option<i64>,
    revoked: bool,
}

#[derive(ToSchema)]
#[schema(as = UserEnvelope)]
#[allow(dead_code)]
pub(crate) struct UserEnvelopeDoc {
    user: UserDoc,
}

#[derive(ToSchema)]
#[schema(as = UserList)]
#[allow(dead_code)]
pub(crate) struct UserListDoc {
    users: Vec<UserDoc>,
}

#[derive(ToSchema)]
#[schema(as = TokenList)]
#[allow(dead_code)]
pub(crate) struct TokenListDoc {
    tokens: Vec<ApiTokenDoc>,
}

/// A new token: its text is in this response only.
#[derive(ToSchema)]
#[schema(as = NewToken)]
#[allow(dead_code)]
pub(crate) struct NewTokenDoc {
    /// The token to send as `Authorization: Bearer <token>`.
    token: String,
    info: ApiTokenDoc,
}

/// A new browser session; its cookies (`sluice_session`, `sluice_csrf`) come in `Set-Cookie`.
#[derive(ToSchema)]
#[schema(as = SignedIn)]
#[allow(dead_code)]
pub(crate) struct SignedInDoc {
    user: UserDoc,
    /// Echo it in `X-CSRF-Token` on every request that changes something.
    csrf_token: String,
    expires_at: i64,
}

/// How the caller proved who it is.
#[derive(ToSchema)]
#[schema(as = Via)]
#[allow(dead_code)]
pub(crate) struct ViaDoc {
    kind: ViaKindDoc,
    /// The token's public id, when `kind` is `token`.
    token: Option<String>,
}

#[derive(ToSchema)]
#[schema(as = ViaKind, rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ViaKindDoc {
    Session,
    Token,
}

/// The caller.
#[derive(ToSchema)]
#[schema(as = Me)]
#[allow(dead_code)]
pub(crate) struct MeDoc {
    /// A person's login, or a token's name.
    login: String,
    role: RoleDoc,
    /// The person (or the token's maker).
    #[schema(required = true)]
    user_id: Option<i64>,
    /// The one source a scoped token may use.
    #[schema(required = true)]
    source: Option<String>,
    via: ViaDoc,
    /// The session's CSRF token, when the browser presented it with its session.
    #[schema(required = true)]
    csrf_token: Option<String>,
}

#[derive(ToSchema)]
#[schema(as = Health)]
#[allow(dead_code)]
pub(crate) struct HealthDoc {
    /// `ok`, or `store_unreachable` (with status 503).
    status: HealthStatusDoc,
}

#[derive(ToSchema)]
#[schema(as = HealthStatus, rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum HealthStatusDoc {
    Ok,
    StoreUnreachable,
}

#[derive(ToSchema)]
#[schema(as = SourceList)]
#[allow(dead_code)]
pub(crate) struct SourceListDoc {
    sources: Vec<crate::form::SourceView>,
}

/// A source's alerts, newest first.
#[derive(ToSchema)]
#[schema(as = AlertList)]
#[allow(dead_code)]
pub(crate) struct AlertListDoc {
    alerts: Vec<crate::alerts::AlertView>,
}

/// A generated SSH key pair's public half.
#[derive(ToSchema)]
#[schema(as = NewSshKeyPair)]
#[allow(dead_code)]
pub(crate) struct NewSshKeyDoc {
    /// Names the key as a form's `ssh.private_key_id`.
    key_id: String,
    /// The line for the bastion's `authorized_keys`.
    public_key: String,
    /// `SHA256:…`.
    fingerprint: String,
    /// Until when the key waits for a source to claim it; null when it was attached to one.
    #[schema(required = true)]
    expires_at: Option<i64>,
    /// The source the key was attached to, as it now is; null otherwise.
    #[schema(required = true)]
    source: Option<crate::form::SourceView>,
}

/// A catalog snapshot's identity.
#[derive(ToSchema)]
#[schema(as = SnapshotMeta)]
#[allow(dead_code)]
pub(crate) struct SnapshotMetaDoc {
    id: i64,
    source: String,
    /// SHA-256 of the uncompressed catalog JSON, hex.
    content_hash: String,
    discovered_at: i64,
}

/// A queued discovery run.
#[derive(ToSchema)]
#[schema(as = RefreshQueued)]
#[allow(dead_code)]
pub(crate) struct RefreshQueuedDoc {
    /// The run's id: GET /api/v1/sources/{id}/discoveries/{run} reports it.
    run: i64,
}

/// One page of a source's catalog changes, newest first; `next` is the `cursor` of the
/// following page.
#[derive(ToSchema)]
#[schema(as = CatalogChangePage)]
#[allow(dead_code)]
pub(crate) struct ChangePageDoc {
    changes: Vec<CatalogChangeDoc>,
    #[schema(required = true)]
    next: Option<i64>,
}

/// What changed in a source's catalog from one stored snapshot to the next.
#[derive(ToSchema)]
#[schema(as = CatalogChange)]
#[allow(dead_code)]
pub(crate) struct CatalogChangeDoc {
    id: i64,
    source: String,
    /// The snapshot compared against (retention may since have removed it).
    from_snapshot: i64,
    to_snapshot: i64,
    changed_at: i64,
    /// Entries of each kind in the diff, e.g. `{"lost_access": 1, "added_relations": 2}`.
    #[schema(value_type = Object)]
    counts: serde_json::Value,
    /// The diff as `sluice catalog diff --format json` prints it: `added_schemas`,
    /// `removed_schemas`, `lost_usage`, `gained_usage`, `added_relations`, `removed_relations`,
    /// `lost_access`, `gained_access`, `changed_relations`.
    #[schema(value_type = Object)]
    diff: serde_json::Value,
}

/// The latest snapshot and its catalog (the JSON `sluice catalog --format json` prints, whose
/// shape crates/sluice-catalog/catalog.schema.json documents).
#[derive(ToSchema)]
#[schema(as = CatalogSnapshot)]
#[allow(dead_code)]
pub(crate) struct CatalogSnapshotDoc {
    snapshot: SnapshotMetaDoc,
    #[schema(value_type = Object)]
    catalog: serde_json::Value,
}

/// A check's verdict.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = CheckStatus, rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum StatusDoc {
    Pass,
    Warn,
    Fail,
    Skip,
}

/// One check of Test Connection (also one line of its NDJSON form).
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Check)]
#[allow(dead_code)]
pub(crate) struct CheckDoc {
    /// A stable check id (`config`, `dns`, `tcp`, `ssh`, `iam`, `tls`, `auth`, …).
    id: String,
    status: StatusDoc,
    /// One sentence.
    summary: String,
    /// Evidence: what was seen.
    #[schema(required = true)]
    detail: Option<String>,
    /// What to do (prose or SQL).
    #[schema(required = true)]
    fix: Option<String>,
    elapsed_ms: u64,
    /// On a failed `ssh` check: the host key the bastion presented and Sluice did not trust.
    host_key: Option<PresentedHostKeyDoc>,
}

/// A bastion host key Sluice did not trust, to compare with the bastion's own before approving
/// it (`POST /sources/{id}/ssh-host-key`).
#[derive(serde::Serialize, ToSchema)]
#[schema(as = PresentedHostKey)]
#[allow(dead_code)]
pub(crate) struct PresentedHostKeyDoc {
    /// `unknown` (nothing pinned), `changed` (another key is pinned: possible MITM) or `revoked`.
    status: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`…
    algorithm: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    fingerprint: String,
    /// `ssh-ed25519 AAAA…` (public).
    public_key: String,
}

/// The source as the report shows it: never a password or key.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = ReportSource)]
#[allow(dead_code)]
pub(crate) struct SourceSummaryDoc {
    #[schema(required = true)]
    host: Option<String>,
    #[schema(required = true)]
    port: Option<u16>,
    #[schema(required = true)]
    database: Option<String>,
    #[schema(required = true)]
    user: Option<String>,
    #[schema(required = true)]
    sslmode: Option<String>,
    #[schema(required = true)]
    network: Option<String>,
}

/// Test Connection's report, as `sluice doctor --format json` prints it; `ok` is false when any
/// check failed.
#[derive(ToSchema)]
#[schema(as = Report)]
#[allow(dead_code)]
pub(crate) struct ReportDoc {
    ok: bool,
    source: SourceSummaryDoc,
    #[schema(required = true)]
    server_version: Option<String>,
    checks: Vec<CheckDoc>,
}

/// The last line of Test Connection's NDJSON form.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = ReportSummaryLine)]
#[allow(dead_code)]
pub(crate) struct ReportSummaryLineDoc {
    summary: ReportSummaryDoc,
}

#[derive(serde::Serialize, ToSchema)]
#[schema(as = ReportSummary)]
#[allow(dead_code)]
pub(crate) struct ReportSummaryDoc {
    ok: bool,
    source: SourceSummaryDoc,
    #[schema(required = true)]
    server_version: Option<String>,
}

/// One line of Test Connection's NDJSON form: a check as soon as it is decided, and last the
/// summary.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = ReportLine)]
#[allow(dead_code)]
pub(crate) enum ReportLineDoc {
    Check(CheckDoc),
    Summary(ReportSummaryLineDoc),
}

/// A result column.
#[derive(ToSchema)]
#[schema(as = ResultColumn)]
#[allow(dead_code)]
pub(crate) struct ResultColumnDoc {
    /// As the statement names it (duplicates and `?column?` kept).
    name: String,
    /// PostgreSQL's name of its type (`format_type`).
    #[schema(rename = "type")]
    type_: String,
}

/// A query's result as one JSON document. A value cut to the cell limit ends with a marker and
/// its column is listed in `truncated_columns`; text that was not valid UTF-8 (a `SQL_ASCII`
/// database) lists its column in `lossy_columns`. `truncated` says the row cap cut the result.
#[derive(ToSchema)]
#[schema(as = QueryResult)]
#[allow(dead_code)]
pub(crate) struct QueryResultDoc {
    columns: Vec<ResultColumnDoc>,
    /// One array per row, its values in the columns' order.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    rows: Vec<Vec<serde_json::Value>>,
    truncated_columns: Option<Vec<String>>,
    lossy_columns: Option<Vec<String>>,
    truncated: bool,
}

/// The DBA's script from `POST /setup-sql`.
#[derive(ToSchema)]
#[schema(as = SetupSql)]
#[allow(dead_code)]
pub(crate) struct SetupSqlDoc {
    /// The script, for psql, as `sluice setup-sql` writes it; it holds the password's SCRAM
    /// verifier, never the password.
    sql: String,
    /// The password generated when the request gave none: shown only in this response.
    #[schema(required = true)]
    generated_password: Option<String>,
}

/// One page of the caller's own queries, newest first; `next` is the `cursor` of the following
/// page.
#[derive(ToSchema)]
#[schema(as = QueryHistory)]
#[allow(dead_code)]
pub(crate) struct QueryHistoryDoc {
    queries: Vec<QueryHistoryEntryDoc>,
    #[schema(required = true)]
    next: Option<i64>,
}

/// A query the caller ran, from the audit log.
#[derive(ToSchema)]
#[schema(as = QueryHistoryEntry)]
#[allow(dead_code)]
pub(crate) struct QueryHistoryEntryDoc {
    /// The audit entry's id.
    id: i64,
    /// When it started.
    at: i64,
    source: String,
    sql: String,
    /// Null while it runs.
    #[schema(required = true)]
    finished_at: Option<i64>,
    #[schema(required = true)]
    duration_ms: Option<i64>,
    #[schema(required = true)]
    rows: Option<i64>,
    #[schema(required = true)]
    bytes: Option<i64>,
    #[schema(required = true)]
    outcome: Option<QueryOutcomeDoc>,
    #[schema(required = true)]
    error: Option<String>,
}

/// One page of the audit log, newest first; `next` is the `cursor` of the following page.
#[derive(ToSchema)]
#[schema(as = AuditPage)]
#[allow(dead_code)]
pub(crate) struct AuditPageDoc {
    entries: Vec<AuditEntryDoc>,
    #[schema(required = true)]
    next: Option<i64>,
}

#[derive(ToSchema)]
#[schema(as = AuditEntry)]
#[allow(dead_code)]
pub(crate) struct AuditEntryDoc {
    id: i64,
    at: i64,
    /// `user:<login>`, `token:<public id>` or `system`.
    actor: String,
    /// What happened: `source.create`, `query`, `sign_in.failed`, …
    kind: String,
    #[schema(required = true)]
    source: Option<String>,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    /// For queries: the statement, and once finished how it went.
    #[schema(required = true)]
    sql: Option<String>,
    #[schema(required = true)]
    finished_at: Option<i64>,
    #[schema(required = true)]
    duration_ms: Option<i64>,
    #[schema(required = true)]
    rows: Option<i64>,
    #[schema(required = true)]
    bytes: Option<i64>,
    #[schema(required = true)]
    outcome: Option<QueryOutcomeDoc>,
    #[schema(required = true)]
    error: Option<String>,
}

/// A binary body of one media type (OpenAPI 3.1 describes it with `contentMediaType`).
macro_rules! binary_doc {
    ($name:ident, $schema_name:literal, $media:literal, $description:literal) => {
        pub(crate) struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .content_media_type($media)
                    .description(Some($description))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($schema_name)
            }
        }
    };
}

binary_doc!(ArrowStreamDoc, "ArrowStream", "application/vnd.apache.arrow.stream", "An Arrow IPC stream.");
binary_doc!(ParquetDoc, "Parquet", "application/vnd.apache.parquet", "A Parquet file.");
