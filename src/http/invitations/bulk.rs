//! `POST /{ns}/api/invitations/bulk/`: many invitations in one request, each row read by the
//! single POST's parsing (`request.rs`) and decided by `crate::invite::invite_rows`, and a
//! result for every row.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::actions::{invite_settings, inviter};
use super::request::{InvitationRequest, ValidInvitation, idempotency_key};
use super::selection::ProjectSelection;
use crate::domain::Timestamp;
use crate::http::error::ErrorBody;
use crate::http::extract::{Caller, JsonBody, NamespaceParam, decode_json};
use crate::http::metrics::Metrics;
use crate::http::resources::InvitationResource;
use crate::http::{ApiError, AppState};
use crate::invite::{self, BulkRow, MAX_ROWS, RowResult, RowStatus};
use crate::store::BulkClaim;

/// As long as the single POST keeps its keys.
const IDEMPOTENCY_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// A claimed key still unanswered after this long belongs to a request that died (a thousand
/// rows take about a second): a retry may take it over.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// The body of `POST /{ns}/api/invitations/bulk/`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "objects": [
        {"email": "bob@example.org", "first_name": "Bob", "last_name": "Smith"},
        {"email": "eve@example.org", "firstName": "Eve", "projects_selected": [{"id": 2}]},
    ],
    "projects_selected": [{"id": 1}],
    "dry_run": false,
}))]
pub struct BulkRequest {
    /// The invitations, at most 1,000, each as the body of `POST /{ns}/api/invitations/`
    /// (`#/components/schemas/InvitationRequest`: the same fields, spellings and rules). Any
    /// JSON value is taken here: a row that is not a valid invitation is answered 400 in its
    /// place, and the other rows go on.
    #[schema(required = true, value_type = Vec<Value>, max_items = 1000)]
    pub objects: Option<Vec<Value>>,
    /// The projects of every row without `projects_selected` of its own (absent or null). A
    /// selection that is not a project id refuses the whole request (400).
    #[serde(default)]
    pub projects_selected: Option<Vec<ProjectSelection>>,
    /// The `language` of every row without one of its own (absent or null); a tag that is not
    /// well formed refuses the whole request (400).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "de")]
    pub language: Option<Value>,
    /// `true`: predict every row's outcome; nothing is written or sent.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// The answer: a result for every row, in row order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    pub meta: BulkMeta,
    pub objects: Vec<BulkRowResource>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkMeta {
    /// Rows in the request.
    pub total: usize,
    /// Rows invited (201), or that would be in a dry run.
    pub created: usize,
    /// The other rows.
    pub refused: usize,
    pub dry_run: bool,
}

/// What became of one row: what `POST /{ns}/api/invitations/` would have answered for it alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkRowResource {
    /// The row's place in `objects`, from 0.
    pub index: usize,
    /// 201 invited, 400 invalid row, 403 not allowed, 409 already has every project, 429 a
    /// sending limit (earlier rows count); 500 or 503 when the database failed for this row
    /// alone (nothing of it was kept).
    #[schema(minimum = 201, maximum = 503)]
    pub status: u16,
    /// With 201: the invitation's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Otherwise: what the single POST's `error` would say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With 429: seconds to wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// With 201, but for a dry run: the invitation, with `accept_url` when the row asked for
    /// `return_link` (never in a replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<InvitationResource>,
}

/// Invite several people.
///
/// Each row is decided exactly as if it had been posted alone to `POST /{ns}/api/invitations/`,
/// one after the other in row order: the same validation, domain rules, rights, sending limits
/// (earlier rows count against later ones) and outcomes. One row's refusal never stops the
/// others; each row's invitation, grants and email are kept together or not at all. The answer
/// is 200 with a result per row. `Idempotency-Key` covers the whole request: a retry with the
/// same key and body returns the first answer (without `accept_url`) and creates nothing.
#[utoipa::path(
    post,
    path = "/{ns}/api/invitations/bulk/",
    operation_id = "create_invitations_in_bulk",
    tag = "invitations",
    params(
        NamespaceParam,
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
            description = "1 to 255 visible ASCII characters; the same key with the same body returns the first answer again (ignored with `dry_run`)"),
    ),
    request_body = BulkRequest,
    responses(
        (status = 200, description = "A result for every row, in order", body = BulkResponse,
            headers(
                ("Idempotent-Replayed" = String, description = "`true` when this answers a repeated Idempotency-Key"),
            )),
        (status = 400, description = "Malformed body, `objects` missing or not a list, more than 1,000 rows, a default `projects_selected` that is not a list of project ids, or bad Idempotency-Key; nothing was done", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 409, description = "A request with the same Idempotency-Key is still being worked on; retry once it has answered", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body (or used for a single invitation)", body = ErrorBody),
        (status = 503, description = "Database unavailable before any row was written", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
pub(super) async fn create_bulk(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let request: BulkRequest = decode_json(&body)?;
    let dry_run = request.dry_run.unwrap_or(false);
    let rows = read_rows(request)?;
    // A dry run changes nothing, so there is nothing to replay: its key is not used.
    let key = key.filter(|_| !dry_run);
    let fingerprint = key.as_ref().map(|_| fingerprint(&rows));
    if let (Some(key), Some(hash)) = (&key, &fingerprint) {
        match state
            .store
            .claim_bulk_key(
                caller.user.id,
                key,
                hash,
                Timestamp::now(),
                IDEMPOTENCY_KEPT_FOR,
                ABANDONED_AFTER,
            )
            .await?
        {
            BulkClaim::Claimed => {}
            BulkClaim::Answered(answer) => return Ok(replayed(answer)),
            BulkClaim::InProgress => {
                return Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still being worked on: retry once it has answered".into(),
                ));
            }
            BulkClaim::KeyReused => {
                return Err(ApiError::Unprocessable(
                    "this Idempotency-Key was already used with a different request body".into(),
                ));
            }
        }
    }
    // Its own task: once the rows are being worked on they are all decided, and the answer
    // kept for the key, even if the client goes away meanwhile (as a group commit's queued
    // invitation is created), so that its retry finds the answer rather than half the rows.
    let work = tokio::spawn(invite_and_answer(state, caller, key, rows, dry_run));
    let response = work
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the bulk request's task: {e}")))??;
    Ok((StatusCode::OK, Json(response)).into_response())
}

/// Invites the rows and keeps the answer for the key (claimed already), without `accept_url`.
async fn invite_and_answer(
    state: AppState,
    caller: Caller,
    key: Option<String>,
    rows: Vec<BulkRow>,
    dry_run: bool,
) -> Result<BulkResponse, ApiError> {
    let results = match invite::invite_rows(
        state.store.as_ref(),
        &invite_settings(&state),
        &inviter(&caller),
        rows,
        dry_run,
    )
    .await
    {
        Ok(results) => results,
        Err(error) => {
            // Nothing was written: a retry may claim the key again.
            if let Some(key) = &key
                && let Err(release) = state.store.release_bulk_key(caller.user.id, key).await
            {
                tracing::warn!(error = %release, "an Idempotency-Key's claim was not released");
            }
            return Err(error.into());
        }
    };
    let created = results
        .iter()
        .filter(|row| row.status == RowStatus::Created)
        .count();
    if created > 0 && !dry_run {
        state.outbox_wakeup.notify_one();
        for _ in 0..created {
            Metrics::count(&state.metrics.invitations_created);
        }
    }
    let mut response = BulkResponse {
        meta: BulkMeta {
            total: results.len(),
            created,
            refused: results.len() - created,
            dry_run,
        },
        objects: results
            .into_iter()
            .enumerate()
            .map(|(index, row)| row_resource(&state, &caller.namespace, index, row))
            .collect(),
    };
    if let Some(key) = &key {
        // Kept without the links, which are handed out once.
        let links: Vec<Option<String>> = response
            .objects
            .iter_mut()
            .map(|row| row.invitation.as_mut().and_then(|i| i.accept_url.take()))
            .collect();
        let answer = serde_json::to_string(&response)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
        if let Err(error) = state
            .store
            .remember_bulk_answer(caller.user.id, key, &answer)
            .await
        {
            // The invitations are made: answering an error would only invite a retry, which
            // then finds the key claimed (409) until the claim is abandoned.
            tracing::error!(
                error = format!("{:#}", anyhow::Error::new(error)),
                "a bulk request's answer was not kept for its Idempotency-Key"
            );
        }
        for (row, link) in response.objects.iter_mut().zip(links) {
            if let Some(invitation) = row.invitation.as_mut() {
                invitation.accept_url = link;
            }
        }
    }
    Ok(response)
}

/// The rows, each read as the single POST reads its body: a valid invitation or its 400.
/// Refuses the whole request (400, before any work) without a list of at most `MAX_ROWS`.
fn read_rows(request: BulkRequest) -> Result<Vec<BulkRow>, ApiError> {
    let Some(objects) = request.objects else {
        return Err(ApiError::BadRequest(
            "objects: required, a list of invitations".into(),
        ));
    };
    if objects.len() > MAX_ROWS {
        return Err(ApiError::BadRequest(format!(
            "objects: at most {MAX_ROWS} invitations in one request, not {}",
            objects.len()
        )));
    }
    let defaults = Defaults {
        projects: request.projects_selected,
        language: request.language.filter(|language| !language.is_null()),
    };
    if defaults.projects.is_some() || defaults.language.is_some() {
        // Read once as a row that has only them would be (the same parsing): a bad default is
        // the request's mistake, not every row's.
        read_row(json!({"email": "default@example.org"}), &defaults)?;
    }
    Ok(objects
        .into_iter()
        .map(|row| read_row(row, &defaults).map_err(|e| e.to_string()))
        .collect())
}

/// What a row without its own takes from the request.
struct Defaults {
    projects: Option<Vec<ProjectSelection>>,
    language: Option<Value>,
}

fn read_row(row: Value, defaults: &Defaults) -> Result<ValidInvitation, ApiError> {
    // As `decode_json`: serde would also fill the struct from an array, field by field.
    if !row.is_object() {
        return Err(ApiError::BadRequest(
            "malformed row: expected a JSON object".into(),
        ));
    }
    let mut request: InvitationRequest = serde_json::from_value(row)
        .map_err(|e| ApiError::BadRequest(format!("malformed row: {e}")))?;
    if request.projects_selected.is_none() {
        request.projects_selected.clone_from(&defaults.projects);
    }
    if request.language.as_ref().is_none_or(Value::is_null) {
        request.language.clone_from(&defaults.language);
    }
    request.validate()
}

/// What makes two bulk requests "the same body" for `Idempotency-Key`: each row's meaning (as
/// the single POST's fingerprint, default projects applied), or its refusal.
fn fingerprint(rows: &[BulkRow]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for row in rows {
        match row {
            Ok(valid) => {
                hash.update(b"ok\n");
                hash.update(valid.fingerprint());
            }
            Err(message) => {
                hash.update(b"invalid\n");
                hash.update(message.as_bytes());
            }
        }
        hash.update(b"\n");
    }
    hash.finalize().to_vec()
}

fn row_resource(state: &AppState, ns: &str, index: usize, row: RowResult) -> BulkRowResource {
    let status = row.code();
    if let Some(error) = &row.error {
        tracing::error!(
            index,
            error = format!("{error:#}"),
            "a bulk request's row could not be stored"
        );
    }
    let invitation = row.invitation.as_ref().map(|record| {
        let mut resource = InvitationResource::new(ns, record, Timestamp::now());
        resource.accept_url = row
            .accept_token
            .as_ref()
            .map(|token| crate::mail::accept_url(&state.config.public_url, ns, token.expose()));
        resource
    });
    let created = row.status == RowStatus::Created;
    BulkRowResource {
        index,
        status,
        message: created.then(|| row.message.clone()),
        error: (!created).then_some(row.message),
        retry_after: row.retry_after.map(|wait| wait.as_secs().max(1)),
        invitation,
    }
}

/// The first answer again.
fn replayed(answer: String) -> Response {
    let mut response = (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
