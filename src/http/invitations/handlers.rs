//! The HTTP handlers of `/{ns}/api/invitations/` and their OpenAPI descriptions. Each reads
//! its request (`request.rs`), acts (`actions.rs`) and answers with the resource
//! (`crate::http::resources`).

use axum::Json;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::actions::{
    accepted, invite_with_token, limit_error, manageable_invitation, resend, resent_message,
    revoke, revoked_message,
};
use super::request::{
    AcceptRequest, InvitationIdParam, InvitationRequest, idempotency_key, invitation_id,
    parse_list_query, validate_body,
};
use crate::domain::{InvitationStatus, Timestamp, Token, password};
use crate::http::error::ErrorBody;
use crate::http::extract::{
    ApiJson, Caller, ClientIp, JsonBody, Namespace, NamespaceParam, printable,
};
use crate::http::resources::{
    InvitationList, InvitationResource, InvitationState, ListMeta, UserResource, invitation_schema,
    invitation_uri,
};
use crate::http::{ApiError, AppState};
use crate::store::{
    AcceptOutcome, CreateOutcome, DEACTIVATED_MESSAGE, IdempotencyClaim, InvitationFilter,
    InvitationRecord, SUPPRESSED_MESSAGE,
};

const IDEMPOTENCY_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const GONE_MESSAGE: &str = "This invitation link is no longer valid: it has expired, been used or been revoked. Ask the person who invited you for a new one.";

/// Invite someone.
///
/// Creates a pending user for an unknown address, or grants an existing one the projects it
/// lacks (or a higher role on one it has: a role is never lowered), and queues the email. `Idempotency-Key` makes a retry return the first answer (without
/// `accept_url`: a link is handed out once). `return_link` and `send_email` are for callers
/// that `CBH_LINK_SHARING` allows.
#[utoipa::path(
    post,
    path = "/{ns}/api/invitations/",
    operation_id = "create_invitation",
    tag = "invitations",
    params(
        NamespaceParam,
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$",
            description = "1 to 255 visible ASCII characters; the same key with the same body returns the first invitation again"),
    ),
    request_body = InvitationRequest,
    responses(
        (status = 201, description = "Invited (or reminded); the invitation, with `message`, and with `accept_url` when `return_link` was asked for and a link was issued (never in a replay)", body = InvitationResource,
            headers(
                ("Location" = String, description = "The invitation's URL"),
                ("Idempotent-Replayed" = String, description = "`true` when this answers a repeated Idempotency-Key"),
            ),
            links(
                ("GetInvitation" = (operation_id = "get_invitation",
                    parameters(("ns" = "$request.path.ns"), ("id" = "$response.body#/id")))),
                ("ResendInvitation" = (operation_id = "resend_invitation",
                    parameters(("ns" = "$request.path.ns"), ("id" = "$response.body#/id")))),
                ("RevokeInvitation" = (operation_id = "revoke_invitation",
                    parameters(("ns" = "$request.path.ns"), ("id" = "$response.body#/id")))),
            )),
        (status = 400, description = "Malformed body, invalid field, a `role` other than `viewer`, `editor` or `owner` (the message names it), `expires_in` not a duration or outside 1h to `CBH_INVITE_TTL_MAX`, unknown project or bad Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "The address's domain is outside `CBH_ALLOWED_DOMAINS`/`CBH_DENIED_DOMAINS` (`Invitations to addresses at {domain} are not allowed here`), not editor or owner of a selected project (or, with none selected, of any project), a `role` above the inviter's own on a project (an editor gives viewer or editor; the message names the project), `return_link` or `send_email: false` where `CBH_LINK_SHARING` does not allow it (the message names the setting), or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 409, description = "The user already has every selected project with the role asked or a higher one (send `remind: true`), the address is on the namespace's suppression list (`This person has asked not to receive invitations`), or it is a deactivated account's", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 429, description = "The inviter's invitation limit or the invitee's email limit was reached (the message says which)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let request = validate_body(&body)?;
    let ns = caller.namespace.as_str();
    let idempotency = key.map(|key| IdempotencyClaim {
        key,
        request_hash: request.fingerprint(),
        kept_for: IDEMPOTENCY_KEPT_FOR,
    });
    let return_link = request.return_link;
    let token = Token::generate();
    match invite_with_token(&state, &caller, request, idempotency, token.clone()).await? {
        // Only the request that created the invitation gets its link; a replay does not.
        CreateOutcome::Created(record) if return_link && record.expires.is_some() => {
            let url = crate::mail::accept_url(&state.config.public_url, ns, token.expose());
            Ok(created_with_link(&state, ns, &record, url))
        }
        CreateOutcome::Created(record) => Ok(created(&state, ns, &record, false)),
        CreateOutcome::Replayed(record) => Ok(created(&state, ns, &record, true)),
        CreateOutcome::Rejected(rejection) => Err(ApiError::Conflict(rejection.to_string())),
        CreateOutcome::KeyReused => Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request body".into(),
        )),
        CreateOutcome::Limited { limit, retry_after } => {
            Err(limit_error(state.config.limits, limit, retry_after))
        }
        CreateOutcome::Suppressed => Err(ApiError::Conflict(SUPPRESSED_MESSAGE.into())),
        CreateOutcome::Deactivated => Err(ApiError::Conflict(DEACTIVATED_MESSAGE.into())),
    }
}

fn created(state: &AppState, ns: &str, record: &InvitationRecord, replayed: bool) -> Response {
    let resource = InvitationResource::new(ns, record, Timestamp::now());
    created_response(state, ns, record.id.0, resource, replayed)
}

/// The 201 carrying the accept link (`return_link`): built from `CBH_PUBLIC_URL` as the email's
/// is, and kept out of every log and later answer.
fn created_with_link(
    state: &AppState,
    ns: &str,
    record: &InvitationRecord,
    url: String,
) -> Response {
    let mut resource = InvitationResource::new(ns, record, Timestamp::now());
    resource.accept_url = Some(url);
    // Every answer is `Cache-Control: no-store` already (`http::router`).
    created_response(state, ns, record.id.0, resource, false)
}

fn created_response(
    state: &AppState,
    ns: &str,
    id: i64,
    resource: InvitationResource,
    replayed: bool,
) -> Response {
    let location = format!("{}{}", state.config.public_url, invitation_uri(ns, id));
    let mut response = (StatusCode::CREATED, Json(resource)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// List invitations.
///
/// The caller's own, newest first (a superuser sees all).
#[utoipa::path(
    get,
    path = "/{ns}/api/invitations/",
    operation_id = "list_invitations",
    tag = "invitations",
    params(
        NamespaceParam,
        ("limit" = Option<i64>, Query, minimum = 0, description = "Page size: default 20, at most 1000, 0 means the most"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "How many to skip"),
        ("email" = Option<String>, Query, description = "Exactly this address"),
        ("email__exact" = Option<String>, Query, description = "Same as `email`"),
        ("email__iexact" = Option<String>, Query, description = "This address, ignoring case"),
        ("status" = Option<InvitationState>, Query, description = "Only invitations in this state"),
        ("status__exact" = Option<InvitationState>, Query, description = "Same as `status`"),
    ),
    responses(
        (status = 200, description = "A page of invitations", body = InvitationList),
        (status = 400, description = "Bad limit, offset or filter", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<InvitationList>, ApiError> {
    let query = parse_list_query(raw.as_deref())?;
    let mut filter = InvitationFilter {
        created_by: (!caller.user.is_superuser).then_some(caller.user.id),
        limit: query.limit,
        offset: query.offset,
        ..InvitationFilter::default()
    };
    for (name, value) in &query.filters {
        match name.as_str() {
            "email" | "email__exact" => filter.email = Some(value.clone()),
            "email__iexact" => filter.email_iexact = Some(value.clone()),
            "status" | "status__exact" => {
                let status = InvitationStatus::parse(value).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "status must be pending, accepted, expired, revoked or declined, not '{}'",
                        printable(value)
                    ))
                })?;
                filter.status = Some(status);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "filter '{}' is not supported: use email, email__iexact or status",
                    printable(other)
                )));
            }
        }
    }
    let now = Timestamp::now();
    let ns = caller.namespace.as_str();
    let page = state.store.list_invitations(ns, &filter, now).await?;
    let objects: Vec<InvitationResource> = page
        .objects
        .iter()
        .map(|record| InvitationResource::new(ns, record, now))
        .collect();

    let page_uri = |offset: i64| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params.append_pair("limit", &filter.limit.to_string());
        params.append_pair("offset", &offset.to_string());
        for (name, value) in &query.filters {
            params.append_pair(name, value);
        }
        format!("/{ns}/api/invitations/?{}", params.finish())
    };
    let next_offset = filter.offset.saturating_add(filter.limit);
    let next = (next_offset < page.total_count).then(|| page_uri(next_offset));
    let previous = (filter.offset > 0).then(|| page_uri((filter.offset - filter.limit).max(0)));
    Ok(Json(InvitationList {
        meta: ListMeta {
            limit: filter.limit,
            offset: filter.offset,
            next,
            previous,
            total_count: page.total_count,
        },
        objects,
    }))
}

/// One invitation.
///
/// For its creator, an owner of every one of its projects, or a superuser; to anyone else it
/// answers 404, as a missing one does.
#[utoipa::path(
    get,
    path = "/{ns}/api/invitations/{id}/",
    operation_id = "get_invitation",
    tag = "invitations",
    params(NamespaceParam, InvitationIdParam),
    responses(
        (status = 200, description = "The invitation", body = InvitationResource),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown namespace or invitation", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
pub(super) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<InvitationResource>, ApiError> {
    let record = manageable_invitation(&state, &caller, invitation_id(&params)?).await?;
    Ok(Json(InvitationResource::new(
        &caller.namespace,
        &record,
        Timestamp::now(),
    )))
}

/// Send an invitation again.
///
/// A pending or expired invitation gets a fresh link (the old one then answers 410), a new
/// email and a new expiry. For its creator, an owner of every one of its projects, or a
/// superuser.
#[utoipa::path(
    post,
    path = "/{ns}/api/invitations/{id}/resend/",
    operation_id = "resend_invitation",
    tag = "invitations",
    params(NamespaceParam, InvitationIdParam),
    responses(
        (status = 200, description = "Sent again; the invitation, with `message`", body = InvitationResource),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "The address's domain is no longer allowed (`Invitations to addresses at {domain} are not allowed here`), or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace or invitation, or not the caller's to manage", body = ErrorBody),
        (status = 409, description = "Already accepted, revoked or declined, or the address is on the namespace's suppression list (`This person has asked not to receive invitations`)", body = ErrorBody),
        (status = 429, description = "The caller's email limit or the invitee's was reached (the message says which); nothing was queued", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
pub(super) async fn resend_handler(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<InvitationResource>, ApiError> {
    let record = resend(&state, &caller, invitation_id(&params)?).await?;
    let mut resource = InvitationResource::new(&caller.namespace, &record, Timestamp::now());
    resource.message = resent_message(&record);
    Ok(Json(resource))
}

/// Revoke an invitation.
///
/// Its link answers 410, its unsent email is cancelled, and what it gave a still-pending
/// invitee is taken back: a project it added is removed, a role it raised goes back to the one
/// it found (never below what another invitation still offers; a role changed since by
/// someone else is left as it is). For its creator, an owner of every one of its projects, or a superuser.
#[utoipa::path(
    post,
    path = "/{ns}/api/invitations/{id}/revoke/",
    operation_id = "revoke_invitation",
    tag = "invitations",
    params(NamespaceParam, InvitationIdParam),
    responses(
        (status = 200, description = "Revoked; the invitation, with `message`", body = InvitationResource),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace or invitation, or not the caller's to manage", body = ErrorBody),
        (status = 409, description = "Already accepted or revoked", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
pub(super) async fn revoke_handler(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<InvitationResource>, ApiError> {
    let record = revoke(&state, &caller, invitation_id(&params)?).await?;
    let mut resource = InvitationResource::new(&caller.namespace, &record, Timestamp::now());
    resource.message = revoked_message(&record);
    Ok(Json(resource))
}

/// Tastypie's schema of an invitation.
///
/// Its fields, their types and help texts, the filters and the default page size.
#[utoipa::path(
    get,
    path = "/{ns}/api/invitations/schema/",
    operation_id = "get_invitation_schema",
    tag = "invitations",
    params(NamespaceParam),
    responses(
        (status = 200, description = "The schema document", body = Object),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
pub(super) async fn schema(_caller: Caller) -> Json<Value> {
    Json(invitation_schema())
}

/// What an accepted invitation answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AcceptResponse {
    message: String,
    user: UserResource,
}

/// Accept an invitation.
///
/// Uses an accept link: sets the password and activates the user. No login needed, the token
/// is the proof.
#[utoipa::path(
    post,
    path = "/{ns}/api/invitations/accept/",
    operation_id = "accept_invitation",
    tag = "invitations",
    params(NamespaceParam),
    request_body = AcceptRequest,
    responses(
        (status = 200, description = "The account is active", body = AcceptResponse),
        (status = 400, description = "Malformed body, no token (or one that is not a string), or password too short", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 410, description = "The link expired, was used or was revoked", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(()),
)]
pub(super) async fn accept(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<AcceptRequest>,
) -> Result<Json<AcceptResponse>, ApiError> {
    let gone = || ApiError::Gone(GONE_MESSAGE.into());
    // A body without a token is the client's mistake (400), not a dead link (410).
    let Some(Value::String(token)) = body.token else {
        return Err(ApiError::BadRequest(
            "token: required, the token of the email's link (a string)".into(),
        ));
    };
    let token = Token::parse(&token).ok_or_else(gone)?;
    let token_hash = token.hash();
    // Check the link before spending the cost of a password hash on it.
    if !state
        .store
        .token_is_live(&ns, &token_hash, Timestamp::now())
        .await?
    {
        return Err(gone());
    }
    let password = body.password.unwrap_or_default();
    password::validate_new(&password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let password_hash = state
        .password_work
        .run(move || password::hash(&password))
        .await
        .map_err(ApiError::Internal)??;
    match state
        .store
        .accept_invitation(&ns, &token_hash, &password_hash, Timestamp::now())
        .await?
    {
        AcceptOutcome::Accepted(user) => {
            accepted(&state, &ns, &user, client_ip).await;
            Ok(Json(AcceptResponse {
                message: format!(
                    "Welcome, {}: your account is active and you can now log in.",
                    user.display_name()
                ),
                user: UserResource::new(&ns, &user),
            }))
        }
        AcceptOutcome::Gone => Err(gone()),
    }
}
