//! `/{ns}/invite/`: the "Invite someone" form, and below it the person's invitations with their
//! status and delivery, each with Resend and Revoke buttons. A superuser sees every invitation
//! of the namespace. The form goes through the same code as `POST /{ns}/api/invitations/`.

use axum::Router;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Value, context};
use serde::Serialize;
use serde_json::json;

use super::forms::{FormData, PageUser};
use super::language;
use super::render::{Frame, PageError, page};
use crate::domain::{InvitationId, Role, Timestamp};
use crate::http::extract::path_param;
use crate::http::invitations::{
    self, InvitationRequest, ProjectSelection, manageable_invitation, resent_message,
    revoked_message,
};
use crate::http::{ApiError, AppState};
use crate::store::{CreateOutcome, InvitationFilter, InvitationRecord};

/// Invitations per page of the list.
const PAGE_SIZE: i64 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/invite/", get(show).post(submit))
        .route("/{ns}/invite/{id}/resend/", post(resend))
        .route("/{ns}/invite/{id}/revoke/", post(revoke))
}

/// The values of the form, as typed (shown again after a refusal).
#[derive(Debug, Default, Serialize)]
struct InviteForm {
    email: String,
    first_name: String,
    last_name: String,
    projects: Vec<i64>,
    /// The role given on every chosen project.
    role: String,
    /// The invitee's language (a tag); empty: `CBH_DEFAULT_LANGUAGE`.
    language: String,
}

impl InviteForm {
    fn from_form(form: &FormData) -> Self {
        Self {
            email: form.text("email"),
            first_name: form.text("first_name"),
            last_name: form.text("last_name"),
            projects: form
                .all("projects")
                .filter_map(|id| id.parse().ok())
                .collect(),
            role: form.text("role"),
            language: form.text("language"),
        }
    }
}

/// What the page says above the form, and whether it offers the reminder.
#[derive(Default)]
struct Outcome {
    notice: Option<String>,
    error: Option<String>,
    /// The address already has every selected project: offer "Send Invite Reminder".
    conflict: bool,
}

#[derive(Serialize)]
struct ProjectOption {
    id: i64,
    name: String,
    selected: bool,
}

#[derive(Serialize)]
struct RoleOption {
    value: &'static str,
    selected: bool,
}

#[derive(Serialize)]
struct DeliveryView {
    status: String,
    attempts: i64,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct InvitationRow {
    id: i64,
    email: String,
    name: String,
    /// Each project with the role the invitation offers on it.
    projects: Vec<String>,
    /// Written in the page's language by the template's `datetime` filter.
    created_iso: String,
    created_by: String,
    status: &'static str,
    delivery: DeliveryView,
    /// Pending or expired: it can still be resent or revoked.
    can_change: bool,
}

impl InvitationRow {
    fn new(record: &InvitationRecord, now: Timestamp) -> Self {
        let status = record.status(now);
        let created_iso = record.created.to_iso8601();
        Self {
            id: record.id.0,
            email: record.email.clone(),
            name: format!("{} {}", record.first_name, record.last_name)
                .trim()
                .to_owned(),
            projects: record
                .projects
                .iter()
                .map(|p| {
                    language::text_with(
                        "project-with-role",
                        &[
                            ("project", p.name.clone().into()),
                            (
                                "role",
                                language::text(&format!("page-role-{}", record.roles.role(p.id)))
                                    .into(),
                            ),
                        ],
                    )
                })
                .collect(),
            created_iso,
            created_by: record.created_by.display_name(),
            status: status.as_str(),
            delivery: match &record.delivery {
                Some(d) => DeliveryView {
                    status: d.status.clone(),
                    attempts: d.attempts,
                    last_error: d.last_error.clone(),
                },
                None => DeliveryView {
                    status: "none".into(),
                    attempts: 0,
                    last_error: None,
                },
            },
            can_change: matches!(status.as_str(), "pending" | "expired"),
        }
    }
}

/// The projects the person may invite to (as `GET /{ns}/api/cbh_projects/` marks them), by id
/// and name.
pub(super) async fn offered_projects(
    state: &AppState,
    user: &PageUser,
) -> Result<Vec<(i64, String)>, PageError> {
    let me = &user.caller.user;
    Ok(if me.is_superuser {
        state
            .store
            .projects(user.ns())
            .await?
            .into_iter()
            .map(|p| (p.id.0, p.name))
            .collect()
    } else {
        state
            .store
            .memberships(me.id)
            .await?
            .iter()
            .filter(|m| m.role.can_invite())
            .map(|m| (m.project.id.0, m.project.name.clone()))
            .collect()
    })
}

/// Renders the whole page: the form (with `form` and `outcome`) and one page of the list.
async fn invite_page(
    state: &AppState,
    user: &PageUser,
    status: StatusCode,
    form: &InviteForm,
    outcome: Outcome,
    offset: i64,
) -> Result<Response, PageError> {
    let ns = user.ns();
    let me = &user.caller.user;
    let everyone = me.is_superuser;
    let offered = offered_projects(state, user).await?;
    // One role for the form, up to the highest the person may give somewhere; a project where
    // they may give less refuses the higher one (403 naming it).
    let highest = if everyone {
        Role::Owner
    } else {
        state
            .store
            .memberships(me.id)
            .await?
            .iter()
            .map(|m| m.role)
            .max()
            .unwrap_or(Role::Viewer)
    };
    let roles: Vec<RoleOption> = [Role::Viewer, Role::Editor, Role::Owner]
        .into_iter()
        .filter(|role| *role <= highest)
        .map(|role| RoleOption {
            value: role.as_str(),
            selected: form.role == role.as_str(),
        })
        .collect();
    let projects: Vec<ProjectOption> = offered
        .into_iter()
        .map(|(id, name)| ProjectOption {
            selected: form.projects.contains(&id),
            id,
            name,
        })
        .collect();

    let now = Timestamp::now();
    let filter = InvitationFilter {
        created_by: (!everyone).then_some(me.id),
        limit: PAGE_SIZE,
        offset,
        ..InvitationFilter::default()
    };
    let list = state.store.list_invitations(ns, &filter, now).await?;
    let rows: Vec<InvitationRow> = list
        .objects
        .iter()
        .map(|record| InvitationRow::new(record, now))
        .collect();
    let page_link = |offset: i64| format!("/{ns}/invite/?offset={offset}");
    let newer = (offset > 0).then(|| page_link((offset - PAGE_SIZE).max(0)));
    let older_offset = offset.saturating_add(PAGE_SIZE);
    let older = (older_offset < list.total_count).then(|| page_link(older_offset));

    let frame = Frame {
        title: language::text("invite-title"),
        ns,
        session: Some((me, &user.csrf)),
    };
    let values = context! {
        form => Value::from_serialize(form),
        projects => Value::from_serialize(&projects),
        roles => Value::from_serialize(&roles),
        invitations => Value::from_serialize(&rows),
        everyone => everyone,
        conflict => outcome.conflict,
        notice => outcome.notice,
        error => outcome.error,
        newer => newer,
        older => older,
    };
    page(status, "invite.html", &frame, values)
}

/// What the redirect after a successful post says (`?done={id}&action=…`). The message is built
/// here from the stored invitation, never taken from the query string.
async fn notice_for(
    state: &AppState,
    user: &PageUser,
    query: &[(String, String)],
) -> Option<String> {
    let find = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let id = InvitationId(find("done")?.parse().ok()?);
    let record = manageable_invitation(state, &user.caller, id).await.ok()?;
    match find("action")? {
        "invited" => Some(record.message),
        "resent" => Some(resent_message(&record)),
        "revoked" => Some(revoked_message(&record)),
        _ => None,
    }
}

async fn show(
    State(state): State<AppState>,
    user: PageUser,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let offset = query
        .iter()
        .find(|(name, _)| name == "offset")
        .and_then(|(_, value)| value.parse::<i64>().ok())
        .filter(|offset| *offset >= 0)
        .unwrap_or(0);
    let outcome = Outcome {
        notice: notice_for(&state, &user, &query).await,
        ..Outcome::default()
    };
    invite_page(
        &state,
        &user,
        StatusCode::OK,
        &InviteForm::default(),
        outcome,
        offset,
    )
    .await
}

async fn submit(
    State(state): State<AppState>,
    user: PageUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let typed = InviteForm::from_form(&form);
    let request = InvitationRequest {
        email: Some(typed.email.clone()),
        first_name: Some(typed.first_name.clone()),
        last_name: Some(typed.last_name.clone()),
        projects_selected: Some(
            form.all("projects")
                .map(|id| ProjectSelection {
                    id: json!(id),
                    // Absent: viewer, as before the form had a role.
                    role: form.get("role").map(|role| json!(role)),
                    resource_uri: None,
                })
                .collect(),
        ),
        remind: Some(form.get("remind") == Some("true")),
        expires_in: None,
        return_link: None,
        send_email: None,
        // Empty: the default (`CBH_DEFAULT_LANGUAGE`), as an absent `language` in the API.
        language: (!typed.language.is_empty()).then(|| json!(typed.language)),
    };
    let result = match request.validate() {
        Ok(valid) => invitations::invite(&state, &user.caller, valid, None).await,
        Err(error) => Err(error),
    };
    let refused = |message: String, conflict: bool| Outcome {
        error: Some(message),
        conflict,
        notice: None,
    };
    let (status, outcome) = match result {
        Ok(CreateOutcome::Created(record) | CreateOutcome::Replayed(record)) => {
            // Post/Redirect/Get: a reload of the next page does not invite twice.
            let ns = user.ns();
            return Ok(Redirect::to(&format!(
                "/{ns}/invite/?done={}&action=invited",
                record.id.0
            ))
            .into_response());
        }
        Ok(CreateOutcome::Rejected(rejection)) => {
            (StatusCode::CONFLICT, refused(rejection.to_string(), true))
        }
        Ok(CreateOutcome::Limited { limit, retry_after }) => {
            let error = invitations::limit_error(state.config.limits, limit, retry_after);
            (error.status(), refused(error.to_string(), false))
        }
        Ok(CreateOutcome::Suppressed) => (
            StatusCode::CONFLICT,
            refused(crate::store::SUPPRESSED_MESSAGE.to_owned(), false),
        ),
        Ok(CreateOutcome::Deactivated) => (
            StatusCode::CONFLICT,
            refused(crate::store::DEACTIVATED_MESSAGE.to_owned(), false),
        ),
        Ok(CreateOutcome::KeyReused) => {
            return Err(PageError::Internal(anyhow::anyhow!(
                "an idempotency key was reported for a form without one"
            )));
        }
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable(_))) => return Err(error.into()),
        Err(error) => (error.status(), refused(error.to_string(), false)),
    };
    invite_page(&state, &user, status, &typed, outcome, 0).await
}

/// Which invitation a button acts on.
fn button_target(params: &RawPathParams, ns: &str) -> Result<InvitationId, PageError> {
    path_param(params, "id")
        .and_then(|id| id.parse::<i64>().ok())
        .map(InvitationId)
        .ok_or_else(|| PageError::not_found(Some(ns)))
}

/// After a button: back to the list with what happened, or the page again with why not.
async fn after_button(
    state: &AppState,
    user: &PageUser,
    id: InvitationId,
    action: &str,
    result: Result<InvitationRecord, ApiError>,
) -> Result<Response, PageError> {
    match result {
        Ok(_) => Ok(Redirect::to(&format!(
            "/{}/invite/?done={}&action={action}",
            user.ns(),
            id.0
        ))
        .into_response()),
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable(_))) => Err(error.into()),
        Err(error) => {
            let status = error.status();
            let outcome = Outcome {
                error: Some(match error {
                    ApiError::NotFound(_) => language::text("no-such-invitation"),
                    other => other.to_string(),
                }),
                ..Outcome::default()
            };
            invite_page(state, user, status, &InviteForm::default(), outcome, 0).await
        }
    }
}

async fn resend(
    State(state): State<AppState>,
    user: PageUser,
    params: RawPathParams,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let id = button_target(&params, user.ns())?;
    let result = invitations::resend(&state, &user.caller, id).await;
    after_button(&state, &user, id, "resent", result).await
}

async fn revoke(
    State(state): State<AppState>,
    user: PageUser,
    params: RawPathParams,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let id = button_target(&params, user.ns())?;
    let result = invitations::revoke(&state, &user.caller, id).await;
    after_button(&state, &user, id, "revoked", result).await
}
