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
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{
    ApiJson, Caller, ClientIp, JsonBody, Namespace, decode_json, path_param, printable,
};
use super::metrics::Metrics;
use super::openapi::{InvitationIdParam, NamespaceParam};
use super::resources::{
    DEFAULT_LIMIT, INVITATION_FILTERING, InvitationList, InvitationResource, ListMeta, MAX_LIMIT,
    UserResource, invitation_schema, invitation_uri,
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
/// `firstName` and `lastName` are accepted for `first_name` and `last_name`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "email": "bob@example.org",
    "first_name": "Bob",
    "last_name": "Smith",
    "projects_selected": [{"id": 1, "name": "Kinase screen"}],
}))]
pub struct InvitationRequest {
    /// The invitee's address: at most 254 characters, no control characters, a dot-atom
    /// local part (no quoted strings) and a domain name whose last label has a letter;
    /// surrounding spaces are ignored.
    // The pattern leaves out the length limits and the letter of the last label: it must accept
    // every address the rule accepts, or a client would be told a valid address is invalid.
    #[schema(
        required = true,
        value_type = String,
        pattern = r"^\s*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+\s*$"
    )]
    pub email: Option<String>,
    /// At most 150 characters once surrounding spaces are trimmed; no control characters,
    /// line separators or bidirectional overrides.
    #[serde(default, alias = "firstName")]
    #[schema(schema_with = name_schema)]
    pub first_name: Option<String>,
    /// As `first_name`.
    #[serde(default, alias = "lastName")]
    #[schema(schema_with = name_schema)]
    pub last_name: Option<String>,
    /// Projects to grant the invitee viewer access on; the inviter must be editor or owner of
    /// each. Empty or absent invites to the platform alone.
    #[serde(default)]
    pub projects_selected: Option<Vec<ProjectSelection>>,
    /// When the invitee already has every selected project: send a reminder instead of 409.
    #[serde(default)]
    pub remind: Option<bool>,
}

/// A project as the web client sends it: the whole project object; only its id matters.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectSelection {
    /// The project's id, as a number or a string of digits.
    #[schema(schema_with = project_id_schema)]
    pub id: Value,
}

/// A name: a string (or null) without the characters `PersonName` refuses, whose pattern is
/// built from the same list so that the document cannot drift from the rule.
fn name_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let ranges: String = crate::domain::name::FORBIDDEN_CHARS
        .iter()
        .map(|&(first, last)| format!("\\u{:04x}-\\u{:04x}", u32::from(first), u32::from(last)))
        .collect();
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(format!("^[^{ranges}]*$")))
        .description(Some(
            "At most 150 characters once surrounding spaces are trimmed; no control characters, \
             line separators or bidirectional overrides.",
        ))
        .build()
        .into()
}

fn project_id_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        )
        .build()
        .into()
}

/// Decodes and validates the body of `POST /{ns}/api/invitations/` (what the handler does
/// after the content type and size checks): a 400 that says what is wrong, or a valid request.
/// Public so that the fuzz targets can call it without HTTP.
pub fn validate_body(body: &[u8]) -> Result<ValidInvitation, ApiError> {
    decode_json::<InvitationRequest>(body)?.validate()
}

/// The request after validation.
#[derive(Debug)]
pub struct ValidInvitation {
    email: EmailAddress,
    first_name: PersonName,
    last_name: PersonName,
    projects: Vec<ProjectId>,
    remind: bool,
}

impl ValidInvitation {
    pub fn email(&self) -> &EmailAddress {
        &self.email
    }

    pub fn first_name(&self) -> &PersonName {
        &self.first_name
    }

    pub fn last_name(&self) -> &PersonName {
        &self.last_name
    }

    /// Distinct, positive and in ascending order.
    pub fn projects(&self) -> &[ProjectId] {
        &self.projects
    }

    pub fn remind(&self) -> bool {
        self.remind
    }
}

impl InvitationRequest {
    pub fn validate(self) -> Result<ValidInvitation, ApiError> {
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

/// Invite someone.
///
/// Creates a pending user for an unknown address, or grants an existing one the projects it
/// lacks, and queues the email. `Idempotency-Key` makes a retry return the first answer.
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
        (status = 201, description = "Invited (or reminded); the invitation, with `message`", body = InvitationResource,
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
        (status = 400, description = "Malformed body, invalid field, unknown project or bad Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not editor or owner of a selected project, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 409, description = "The user already has every selected project (send `remind: true`)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 429, description = "The inviter's invitation limit or the invitee's email limit was reached (the message says which)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn create(
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
            client_ip: caller.client_ip.clone(),
        })
        .await?;
    if let CreateOutcome::Created(_) = &outcome {
        state.outbox_wakeup.notify_one();
        Metrics::count(&state.metrics.invitations_created);
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
async fn list(
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

/// The state of an invitation, as the API shows it and filters on it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only describes the wire format; `InvitationStatus` is the real type.
pub enum InvitationState {
    Pending,
    Accepted,
    Expired,
    Revoked,
}

/// One invitation.
///
/// Another user's invitation answers 404, as a missing one does (a superuser sees all).
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

/// Send an invitation again.
///
/// A pending or expired invitation gets a fresh link (the old one then answers 410), a new
/// email and a new expiry. For its creator, an owner of one of its projects, or a superuser.
#[utoipa::path(
    post,
    path = "/{ns}/api/invitations/{id}/resend/",
    operation_id = "resend_invitation",
    tag = "invitations",
    params(NamespaceParam, InvitationIdParam),
    responses(
        (status = 200, description = "Sent again; the invitation, with `message`", body = InvitationResource),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace or invitation, or not the caller's to manage", body = ErrorBody),
        (status = 409, description = "Already accepted or revoked", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
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

/// Revoke an invitation.
///
/// Its link answers 410, its unsent email is cancelled, and the grants only it gave are
/// removed. For its creator, an owner of one of its projects, or a superuser.
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
async fn schema(_caller: Caller) -> Json<Value> {
    Json(invitation_schema())
}

/// The body of `POST /{ns}/api/invitations/accept/`.
#[derive(Debug, Deserialize, ToSchema)]
struct AcceptRequest {
    /// The token of the email's link.
    #[schema(required = true, value_type = String)]
    token: Option<String>,
    /// The new password: at least 10 characters.
    #[schema(required = true, value_type = String)]
    password: Option<String>,
}

/// What an accepted invitation answers.
#[derive(Debug, Serialize, ToSchema)]
struct AcceptResponse {
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
        (status = 400, description = "Malformed body or password too short", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 410, description = "The link expired, was used or was revoked", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(()),
)]
async fn accept(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<AcceptRequest>,
) -> Result<Json<AcceptResponse>, ApiError> {
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
    fn a_body_that_is_not_an_object_is_400() {
        // serde would otherwise read an array as the struct's fields in order.
        for body in [
            &br#"["a@x.org", "Bob", "Smith", [], true]"#[..],
            b"[null, null]",
            b"\"a@x.org\"",
            b"",
            b"  ",
            b"null",
        ] {
            let error = validate_body(body).expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{body:?}");
        }
        assert!(validate_body(b" \r\n\t{\"email\": \"a@x.org\"}").is_ok());
    }

    #[test]
    fn a_body_that_is_not_utf8_is_400_even_in_an_ignored_field() {
        // Found by the invitation_body fuzz target: serde skips an ignored field's bytes
        // without decoding them, so this body used to be accepted.
        let body = b"{\"email\": \"Bob.Smith@Example.ORG\", \"first_name\": \"Bob\", \
            \"last_name\": \"Smith\", \"projects_selected\": [{\"id\": 1, \
            \"name\": \"Kinase sc\x8e\x9een\"}, {\"id\": \"2\"}], \"remine\": true}\n";
        let error = validate_body(body).expect_err("refused");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("not UTF-8"), "{error}");
    }

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

/// Properties of decoding and validating an invitation's body, over any JSON and any bytes.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;

    /// Any JSON value: scalars (with strings that matter here) nested a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[0-9]{1,20}".prop_map(Value::from),
            "[ a-zA-Z.@\r\n-]{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects shaped like an invitation: its field names (and aliases, and others) with values
    /// that are sometimes right, sometimes of the wrong type, sometimes hostile.
    fn invitation_like() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            "[a-z]{1,8}@[a-z]{1,8}\\.(org|COM|x1)".prop_map(Value::from),
            "[ A-Za-z.@\r\n\t\u{0}\u{85}\u{2028}é-]{0,40}".prop_map(Value::from),
            ".{140,160}".prop_map(Value::from),
            any_json(),
        ];
        let id = prop_oneof![
            any::<i64>().prop_map(Value::from),
            (0i64..5).prop_map(Value::from),
            "-?[0-9]{0,20}".prop_map(Value::from),
            any_json(),
        ];
        let selection = prop_oneof![
            4 => (id, any_json()).prop_map(|(id, name)| json!({"id": id, "name": name})),
            1 => any_json(),
        ];
        let projects = prop_oneof![
            3 => prop::collection::vec(selection, 0..5).prop_map(Value::from),
            1 => any_json(),
        ];
        let field = prop::sample::select(vec![
            "email",
            "first_name",
            "firstName",
            "last_name",
            "lastName",
            "remind",
            "other",
        ]);
        (
            prop::collection::vec((field, text), 0..6),
            prop::option::of(projects),
            prop::option::of(prop_oneof![any::<bool>().prop_map(Value::from), any_json()]),
        )
            .prop_map(|(fields, projects, remind)| {
                let mut object: Map<String, Value> = fields
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect();
                if let Some(projects) = projects {
                    object.insert("projects_selected".into(), projects);
                }
                if let Some(remind) = remind {
                    object.insert("remind".into(), remind);
                }
                Value::Object(object)
            })
    }

    /// What any body must give: a request that keeps every rule, or a 400 that says why
    /// without echoing a control character.
    fn check(body: &[u8]) -> Result<(), TestCaseError> {
        match validate_body(body) {
            Ok(valid) => {
                // Only the field itself: an ignored one may hold a lone surrogate escape,
                // which is valid JSON that `Value` cannot hold.
                #[derive(Deserialize)]
                struct EmailOnly {
                    email: String,
                }
                let email: EmailOnly = serde_json::from_slice(body).expect("an email");
                let parsed = EmailAddress::parse(&email.email);
                prop_assert_eq!(Ok(valid.email()), parsed.as_ref());
                for name in [valid.first_name(), valid.last_name()] {
                    prop_assert!(!name.as_str().chars().any(char::is_control));
                    prop_assert!(
                        name.as_str().chars().count() <= crate::domain::name::MAX_NAME_CHARS
                    );
                }
                prop_assert!(valid.projects().iter().all(|p| p.0 > 0));
                prop_assert!(valid.projects().windows(2).all(|w| w[0].0 < w[1].0));
                let _ = valid.remind();
            }
            Err(error) => {
                prop_assert_eq!(error.status(), StatusCode::BAD_REQUEST);
                let message = error.to_string();
                prop_assert!(!message.is_empty());
                prop_assert!(!message.chars().any(char::is_control), "{message:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_json_value_is_a_valid_request_or_a_400(value in any_json()) {
            check(&serde_json::to_vec(&value).expect("serialises"))?;
        }

        #[test]
        fn invitation_like_objects_are_valid_requests_or_400s(value in invitation_like()) {
            check(&serde_json::to_vec(&value).expect("serialises"))?;
        }

        #[test]
        fn any_bytes_are_a_valid_request_or_a_400(body in prop::collection::vec(any::<u8>(), 0..200)) {
            check(&body)?;
        }
    }
}
