//! `/{ns}/api/invitations/`: create, list, read, the schema, accepting a link, resending and
//! revoking. The web pages call the same functions (`invite`, `resend`, `revoke`), so a form and
//! a JSON request follow one set of rules.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::extract::{ApiJson, Caller, ClientIp, Namespace, path_param, printable};
use super::metrics::Metrics;
use super::resources::{
    DEFAULT_LIMIT, INVITATION_FILTERING, InvitationResource, MAX_LIMIT, UserResource,
    invitation_schema, invitation_uri,
};
use super::{ApiError, AppState, audit, record};
use crate::config::Limits;
use crate::domain::password;
use crate::domain::token::random_hex;
use crate::domain::{
    EmailAddress, InvitationId, InvitationStatus, PersonName, Project, ProjectId, Role, Timestamp,
    Token,
};
use crate::store::{
    AcceptOutcome, AuditEvent, CreateOutcome, IdempotencyClaim, InvitationFilter, InvitationRecord,
    LimitKind, NewInvitation, ResendInvitation, ResendOutcome, RevokeOutcome, SendLimits,
};

const IDEMPOTENCY_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const GONE_MESSAGE: &str = "This invitation link is no longer valid: it has expired, been used or been revoked. Ask the person who invited you for a new one.";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/invitations/", get(list).post(create))
        .route("/{ns}/api/invitations", get(list).post(create))
        .route("/{ns}/api/invitations/schema/", get(schema))
        .route("/{ns}/api/invitations/schema", get(schema))
        .route("/{ns}/api/invitations/accept/", post(accept))
        .route("/{ns}/api/invitations/accept", post(accept))
        .route("/{ns}/api/invitations/{id}/", get(detail))
        .route("/{ns}/api/invitations/{id}", get(detail))
        .route("/{ns}/api/invitations/{id}/resend/", post(resend_handler))
        .route("/{ns}/api/invitations/{id}/resend", post(resend_handler))
        .route("/{ns}/api/invitations/{id}/revoke/", post(revoke_handler))
        .route("/{ns}/api/invitations/{id}/revoke", post(revoke_handler))
}

/// The body of `POST /{ns}/api/invitations/`; unknown fields are ignored, as Tastypie does.
#[derive(Debug, Deserialize)]
pub(super) struct InvitationRequest {
    pub email: Option<String>,
    #[serde(default, alias = "firstName")]
    pub first_name: Option<String>,
    #[serde(default, alias = "lastName")]
    pub last_name: Option<String>,
    #[serde(default)]
    pub projects_selected: Option<Vec<ProjectSelection>>,
    #[serde(default)]
    pub remind: Option<bool>,
}

/// A project as the web client sends it: the whole project object; only its id matters.
#[derive(Debug, Deserialize)]
pub(super) struct ProjectSelection {
    pub id: Value,
}

/// The request after validation.
pub(super) struct ValidInvitation {
    email: EmailAddress,
    first_name: PersonName,
    last_name: PersonName,
    projects: Vec<ProjectId>,
    remind: bool,
}

impl InvitationRequest {
    pub(super) fn validate(self) -> Result<ValidInvitation, ApiError> {
        let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(e.to_string());
        let email =
            EmailAddress::parse(self.email.as_deref().unwrap_or("")).map_err(|e| bad(&e))?;
        let first_name = PersonName::parse(self.first_name.as_deref().unwrap_or(""), "first_name")
            .map_err(|e| bad(&e))?;
        let last_name = PersonName::parse(self.last_name.as_deref().unwrap_or(""), "last_name")
            .map_err(|e| bad(&e))?;
        let mut projects = BTreeSet::new();
        for selection in self.projects_selected.unwrap_or_default() {
            let id = match &selection.id {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "projects_selected: '{}' is not a project id",
                    printable(&selection.id.to_string())
                ))
            })?;
            projects.insert(ProjectId(id));
        }
        Ok(ValidInvitation {
            email,
            first_name,
            last_name,
            projects: projects.into_iter().collect(),
            remind: self.remind.unwrap_or(false),
        })
    }
}

impl ValidInvitation {
    /// What makes two requests "the same body" for `Idempotency-Key`: the meaning, not the bytes.
    fn fingerprint(&self) -> Vec<u8> {
        let ids: Vec<String> = self.projects.iter().map(|p| p.0.to_string()).collect();
        // Names cannot contain control characters, so '\n' separates unambiguously.
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.email.key(),
            self.first_name,
            self.last_name,
            ids.join(","),
            self.remind
        );
        Sha256::digest(canonical.as_bytes()).to_vec()
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<InvitationRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let request = body.validate()?;
    let ns = caller.namespace.as_str();
    let idempotency = key.map(|key| IdempotencyClaim {
        key,
        request_hash: request.fingerprint(),
        kept_for: IDEMPOTENCY_KEPT_FOR,
    });
    match invite(&state, &caller, request, idempotency).await? {
        CreateOutcome::Created(record) => Ok(created(&state, ns, &record, false)),
        CreateOutcome::Replayed(record) => Ok(created(&state, ns, &record, true)),
        CreateOutcome::Rejected(rejection) => Err(ApiError::Conflict(rejection.to_string())),
        CreateOutcome::KeyReused => Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request body".into(),
        )),
        CreateOutcome::Limited { limit, retry_after } => {
            Err(limit_error(state.config.limits, limit, retry_after))
        }
    }
}

/// The 429 for a sending limit, saying which one and when to try again.
pub(super) fn limit_error(limits: Limits, kind: LimitKind, retry_after: Duration) -> ApiError {
    let wait = human_duration(retry_after);
    let message = match (
        kind,
        limits.invitations_per_inviter,
        limits.emails_per_recipient,
    ) {
        (LimitKind::PerInviter, Some(limit), _) => format!(
            "Invitation limit reached: you may send {} invitations per {}; try again in {wait}",
            limit.max,
            human_duration(limit.window)
        ),
        (LimitKind::PerRecipient, _, Some(limit)) => format!(
            "Email limit reached for this address: it may receive {} emails per {}; try again in {wait}",
            limit.max,
            human_duration(limit.window)
        ),
        _ => format!("A sending limit was reached; try again in {wait}"),
    };
    ApiError::TooManyRequests(message, retry_after)
}

/// "3 h", "12 min", "40 s": for messages to people.
fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs().max(1);
    if secs >= 3_600 && secs % 3_600 == 0 || secs >= 2 * 3_600 {
        format!("{} h", secs.div_ceil(3_600))
    } else if secs >= 60 {
        format!("{} min", secs.div_ceil(60))
    } else {
        format!("{secs} s")
    }
}

/// Checks the inviter's rights on the projects, then creates the invitation (and wakes the
/// outbox worker when an email was queued).
pub(super) async fn invite(
    state: &AppState,
    caller: &Caller,
    request: ValidInvitation,
    idempotency: Option<IdempotencyClaim>,
) -> Result<CreateOutcome, ApiError> {
    let projects = authorize_projects(state, caller, &request.projects).await?;
    let outcome = state
        .store
        .create_invitation(NewInvitation {
            namespace: caller.namespace.clone(),
            inviter: caller.user.clone(),
            email: request.email,
            first_name: request.first_name,
            last_name: request.last_name,
            projects,
            remind: request.remind,
            token: Token::generate(),
            message_id: format!("<{}@{}>", random_hex(16), state.config.mail_domain()),
            now: Timestamp::now(),
            ttl: state.config.invite_ttl,
            idempotency,
            limits: SendLimits {
                per_inviter: state.config.limits.invitations_per_inviter,
                per_recipient: state.config.limits.emails_per_recipient,
            },
        })
        .await?;
    if let CreateOutcome::Created(record) = &outcome {
        state.outbox_wakeup.notify_one();
        Metrics::count(&state.metrics.invitations_created);
        audit(
            state,
            caller,
            "invitation_created",
            Some(record.id.to_string()),
        )
        .await;
    }
    Ok(outcome)
}

/// Every selected project must exist in the namespace (else 400) and the inviter must be
/// editor or owner of each (else 403); a superuser may invite to any. Returns the projects, in
/// id order.
async fn authorize_projects(
    state: &AppState,
    caller: &Caller,
    ids: &[ProjectId],
) -> Result<Vec<Project>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = state
        .store
        .projects_with_role(&caller.namespace, caller.user.id, ids)
        .await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !found.iter().any(|(p, _)| p.id == **id))
    {
        return Err(ApiError::BadRequest(format!(
            "projects_selected: there is no project with id {}",
            missing.0
        )));
    }
    if !caller.user.is_superuser
        && let Some((project, _)) = found
            .iter()
            .find(|(_, role)| !role.is_some_and(Role::can_invite))
    {
        return Err(ApiError::Forbidden(format!(
            "you must be an editor or owner of project '{}' to invite people to it",
            project.name
        )));
    }
    Ok(found.into_iter().map(|(project, _)| project).collect())
}

fn created(state: &AppState, ns: &str, record: &InvitationRecord, replayed: bool) -> Response {
    let resource = InvitationResource::new(ns, record, Timestamp::now());
    let location = format!(
        "{}{}",
        state.config.public_url,
        invitation_uri(ns, record.id.0)
    );
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

/// The query string of the list: paging and filters.
struct ListQuery {
    limit: i64,
    offset: i64,
    filters: Vec<(String, String)>,
}

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery {
        limit: DEFAULT_LIMIT,
        offset: 0,
        filters: Vec::new(),
    };
    let number = |name: &str, value: &str| {
        value
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be a whole number of at least 0, not '{}'",
                    printable(value)
                ))
            })
    };
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            // Tastypie: limit=0 means "as many as allowed".
            "limit" => {
                query.limit = Some(number("limit", &value)?)
                    .filter(|n| *n > 0)
                    .map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT))
            }
            "offset" => query.offset = number("offset", &value)?,
            other if is_filter(other) => {
                query.filters.push((name.into_owned(), value.into_owned()));
            }
            // Other parameters (format=json, cache busters) are ignored, as Tastypie does.
            _ => {}
        }
    }
    Ok(query)
}

/// Whether a query parameter names a filterable field (`email`, `email__iexact`, …).
fn is_filter(name: &str) -> bool {
    let field = name.split("__").next().unwrap_or(name);
    INVITATION_FILTERING.iter().any(|(f, _)| *f == field)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
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
                        "status must be pending, accepted, expired or revoked, not '{}'",
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
    Ok(Json(json!({
        "meta": {
            "limit": filter.limit,
            "offset": filter.offset,
            "next": next,
            "previous": previous,
            "total_count": page.total_count,
        },
        "objects": objects,
    })))
}

async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<InvitationResource>, ApiError> {
    let record = state
        .store
        .invitation(&caller.namespace, invitation_id(&params)?)
        .await?
        // Another user's invitation is as invisible as a missing one.
        .filter(|r| caller.user.is_superuser || r.created_by.id == caller.user.id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(InvitationResource::new(
        &caller.namespace,
        &record,
        Timestamp::now(),
    )))
}

/// An invitation the caller may resend or revoke: its creator, an owner of one of its projects,
/// or a superuser. To anyone else it is as invisible as a missing one (as in `detail`).
pub(super) async fn manageable_invitation(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ApiError> {
    let record = state
        .store
        .invitation(&caller.namespace, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if caller.user.is_superuser || record.created_by.id == caller.user.id {
        return Ok(record);
    }
    let memberships = state.store.memberships(caller.user.id).await?;
    let owns_one_of_its_projects = memberships
        .iter()
        .any(|m| m.role == Role::Owner && record.projects.iter().any(|p| p.id == m.project.id));
    if owns_one_of_its_projects {
        Ok(record)
    } else {
        Err(ApiError::not_found())
    }
}

fn invitation_id(params: &RawPathParams) -> Result<InvitationId, ApiError> {
    path_param(params, "id")
        .and_then(|id| id.parse::<i64>().ok())
        .map(InvitationId)
        .ok_or_else(ApiError::not_found)
}

/// A fresh link and a new email for a pending or expired invitation; the old link stops working.
pub(super) async fn resend(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ApiError> {
    manageable_invitation(state, caller, id).await?;
    let outcome = state
        .store
        .resend_invitation(ResendInvitation {
            namespace: caller.namespace.clone(),
            id,
            token: Token::generate(),
            message_id: format!("<{}@{}>", random_hex(16), state.config.mail_domain()),
            now: Timestamp::now(),
            ttl: state.config.invite_ttl,
        })
        .await?;
    match outcome {
        ResendOutcome::Resent(record) => {
            state.outbox_wakeup.notify_one();
            audit(state, caller, "invitation_resent", Some(id.to_string())).await;
            Ok(*record)
        }
        ResendOutcome::NotPending(InvitationStatus::Revoked) => Err(ApiError::Conflict(
            "This invitation was revoked: invite the person again instead.".into(),
        )),
        ResendOutcome::NotPending(_) => Err(ApiError::Conflict(
            "This invitation was already accepted: there is no link to send again.".into(),
        )),
        ResendOutcome::NotFound => Err(ApiError::not_found()),
    }
}

/// Revokes a pending or expired invitation (see `Store::revoke_invitation`).
pub(super) async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ApiError> {
    manageable_invitation(state, caller, id).await?;
    match state
        .store
        .revoke_invitation(&caller.namespace, id, Timestamp::now())
        .await?
    {
        RevokeOutcome::Revoked(record) => {
            Metrics::count(&state.metrics.invitations_revoked);
            audit(state, caller, "invitation_revoked", Some(id.to_string())).await;
            Ok(*record)
        }
        RevokeOutcome::NotPending(InvitationStatus::Revoked) => Err(ApiError::Conflict(
            "This invitation was already revoked.".into(),
        )),
        RevokeOutcome::NotPending(_) => Err(ApiError::Conflict(
            "This invitation was already accepted: it can no longer be revoked.".into(),
        )),
        RevokeOutcome::NotFound => Err(ApiError::not_found()),
    }
}

pub(super) fn resent_message(record: &InvitationRecord) -> String {
    format!(
        "Invitation sent again to {}; the earlier link no longer works.",
        record.email
    )
}

pub(super) fn revoked_message(record: &InvitationRecord) -> String {
    format!(
        "Invitation to {} revoked; its link no longer works.",
        record.email
    )
}

async fn resend_handler(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<InvitationResource>, ApiError> {
    let record = resend(&state, &caller, invitation_id(&params)?).await?;
    let mut resource = InvitationResource::new(&caller.namespace, &record, Timestamp::now());
    resource.message = resent_message(&record);
    Ok(Json(resource))
}

async fn revoke_handler(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<InvitationResource>, ApiError> {
    let record = revoke(&state, &caller, invitation_id(&params)?).await?;
    let mut resource = InvitationResource::new(&caller.namespace, &record, Timestamp::now());
    resource.message = revoked_message(&record);
    Ok(Json(resource))
}

async fn schema(_caller: Caller) -> Json<Value> {
    Json(invitation_schema())
}

#[derive(Debug, Deserialize)]
struct AcceptRequest {
    token: Option<String>,
    password: Option<String>,
}

/// Uses an accept link: no login needed, the token is the proof.
async fn accept(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<AcceptRequest>,
) -> Result<Json<Value>, ApiError> {
    let gone = || ApiError::Gone(GONE_MESSAGE.into());
    let token = body
        .token
        .as_deref()
        .and_then(Token::parse)
        .ok_or_else(gone)?;
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
            Ok(Json(json!({
                "message": format!("Welcome, {}: your account is active and you can now log in.", user.display_name()),
                "user": UserResource::new(&ns, &user),
            })))
        }
        AcceptOutcome::Gone => Err(gone()),
    }
}

/// The audit record of an accepted invitation (from the API or the accept page).
pub(super) async fn accepted(
    state: &AppState,
    ns: &str,
    user: &crate::domain::User,
    client_ip: Option<String>,
) {
    Metrics::count(&state.metrics.invitations_accepted);
    record(
        state,
        AuditEvent {
            namespace: ns.to_owned(),
            at: Timestamp::now(),
            event: "invitation_accepted",
            actor: Some(user.id),
            subject: Some(user.email.key()),
            client_ip,
            detail: None,
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_bounded_and_zero_means_maximum() {
        assert_eq!(parse_list_query(None).map(|q| q.limit).ok(), Some(20));
        assert_eq!(
            parse_list_query(Some("limit=5000")).map(|q| q.limit).ok(),
            Some(1000)
        );
        assert_eq!(
            parse_list_query(Some("limit=0")).map(|q| q.limit).ok(),
            Some(1000)
        );
        assert!(parse_list_query(Some("limit=-1")).is_err());
        assert!(parse_list_query(Some("offset=x")).is_err());
    }
}
