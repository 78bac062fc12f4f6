//! `/{ns}/projects/`: the person's projects (a superuser sees every one, and may create one);
//! `/{ns}/projects/{id}/`: a project's members and roles, to change or remove (owners and
//! superusers), with an invite form that has this project selected. The forms go through the
//! same code as the JSON API (`http::projects`, `http::members`).

use axum::Router;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Value, context};
use serde::Serialize;

use super::forms::{FormData, PageUser};
use super::language;
use super::render::{Frame, PageError, page};
use crate::domain::{ProjectId, Role, UserId};
use crate::http::extract::path_param;
use crate::http::{ApiError, AppState, members, projects};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/projects/", get(list).post(create))
        .route("/{ns}/projects", get(super::add_slash))
        .route("/{ns}/projects/{id}/", get(show))
        .route("/{ns}/projects/{id}", get(super::add_slash))
        .route("/{ns}/projects/{id}/members/{user_id}/", post(change))
        .route(
            "/{ns}/projects/{id}/members/{user_id}/remove/",
            post(remove),
        )
}

#[derive(Serialize)]
struct ProjectRow {
    id: i64,
    name: String,
    role: Option<&'static str>,
    /// Whether its page (the members) is open to the person: editors, owners, superusers.
    open: bool,
}

/// The value of `?done=` after a change, as a fixed message (never text from the query).
fn done_message(query: Option<&str>) -> Option<String> {
    let done = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(name, _)| name == "done")
        .map(|(_, value)| value.into_owned())?;
    let key = match done.as_str() {
        "created" => "projects-created",
        "role" => "project-role-changed",
        "removed" => "project-member-removed",
        _ => return None,
    };
    Some(language::text(key))
}

async fn list_page(
    state: &AppState,
    user: &PageUser,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
    name: &str,
) -> Result<Response, PageError> {
    let me = &user.caller.user;
    let memberships = state.store.memberships(me.id).await?;
    let role_of = |id: ProjectId| {
        memberships
            .iter()
            .find(|m| m.project.id == id)
            .map(|m| m.role)
    };
    let projects: Vec<ProjectRow> = if me.is_superuser {
        state
            .store
            .projects(user.ns())
            .await?
            .into_iter()
            .map(|p| ProjectRow {
                id: p.id.0,
                role: role_of(p.id).map(Role::as_str),
                name: p.name,
                open: true,
            })
            .collect()
    } else {
        memberships
            .iter()
            .map(|m| ProjectRow {
                id: m.project.id.0,
                name: m.project.name.clone(),
                role: Some(m.role.as_str()),
                open: m.role.can_invite(),
            })
            .collect()
    };
    let frame = Frame {
        title: language::text("projects-title"),
        ns: user.ns(),
        session: Some((me, &user.csrf)),
    };
    let values = context! {
        projects => Value::from_serialize(&projects),
        can_create => me.is_superuser,
        name => name,
        notice => notice,
        error => error,
    };
    page(status, "projects.html", &frame, values)
}

async fn list(
    State(state): State<AppState>,
    user: PageUser,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let notice = done_message(query.as_deref());
    list_page(&state, &user, StatusCode::OK, notice.as_deref(), None, "").await
}

async fn create(
    State(state): State<AppState>,
    user: PageUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let name = form.text("name");
    match projects::create_project(&state, &user.caller, &name).await {
        Ok(project) => Ok(Redirect::to(&format!(
            "/{}/projects/{}/?done=created",
            user.ns(),
            project.id.0
        ))
        .into_response()),
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable(_))) => Err(error.into()),
        Err(error) => {
            let message = capitalised(&error.to_string());
            list_page(&state, &user, error.status(), None, Some(message), &name).await
        }
    }
}

/// "name must be …" as a sentence.
fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    let mut sentence: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !sentence.ends_with('.') {
        sentence.push('.');
    }
    sentence
}

#[derive(Serialize)]
struct MemberRow {
    id: i64,
    email: String,
    name: String,
    status: &'static str,
    role: &'static str,
    is_me: bool,
}

fn target(params: &RawPathParams, name: &str, ns: &str) -> Result<i64, PageError> {
    path_param(params, name)
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or_else(|| PageError::not_found(Some(ns)))
}

async fn project_page(
    state: &AppState,
    user: &PageUser,
    id: ProjectId,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let ns = user.ns();
    let (project, role, members) = match members::members(state, &user.caller, id).await {
        Ok(found) => found,
        Err(ApiError::NotFound(_)) => return Err(PageError::not_found(Some(ns))),
        Err(error @ ApiError::Forbidden(_)) => {
            return Err(PageError::Status {
                status: error.status(),
                ns: Some(ns.to_owned()),
                message: language::text("project-members-refused"),
            });
        }
        Err(error) => return Err(error.into()),
    };
    let me = &user.caller.user;
    let rows: Vec<MemberRow> = members
        .iter()
        .map(|m| {
            let u = &m.account.user;
            MemberRow {
                id: u.id.0,
                email: u.email.to_string(),
                name: format!("{} {}", u.first_name, u.last_name)
                    .trim()
                    .to_owned(),
                status: if m.account.deactivated {
                    "deactivated"
                } else if u.is_active {
                    "active"
                } else {
                    "pending"
                },
                role: m.role.as_str(),
                is_me: u.id == me.id,
            }
        })
        .collect();
    let frame = Frame {
        title: project.name.clone(),
        ns,
        session: Some((me, &user.csrf)),
    };
    let values = context! {
        project => context! { id => project.id.0, name => &project.name },
        members => Value::from_serialize(&rows),
        can_manage => me.is_superuser || role == Some(Role::Owner),
        roles => vec!["viewer", "editor", "owner"],
        notice => notice,
        error => error,
    };
    page(status, "project.html", &frame, values)
}

async fn show(
    State(state): State<AppState>,
    user: PageUser,
    params: RawPathParams,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let id = ProjectId(target(&params, "id", user.ns())?);
    let notice = done_message(query.as_deref());
    project_page(&state, &user, id, StatusCode::OK, notice.as_deref(), None).await
}

/// Changes (`Some`) or removes a member's role, then back to the project's page.
async fn apply(
    state: &AppState,
    user: &PageUser,
    params: &RawPathParams,
    role: Result<Option<Role>, ApiError>,
    done: &str,
) -> Result<Response, PageError> {
    let ns = user.ns();
    let project = ProjectId(target(params, "id", ns)?);
    let member = UserId(target(params, "user_id", ns)?);
    let result = match role {
        Ok(role) => members::change_role(state, &user.caller, project, member, role).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => {
            Ok(Redirect::to(&format!("/{ns}/projects/{}/?done={done}", project.0)).into_response())
        }
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable(_))) => Err(error.into()),
        Err(ApiError::NotFound(message)) if message == "unknown project" => {
            Err(PageError::not_found(Some(ns)))
        }
        Err(error) => {
            let message = capitalised(&error.to_string());
            project_page(state, user, project, error.status(), None, Some(message)).await
        }
    }
}

async fn change(
    State(state): State<AppState>,
    user: PageUser,
    params: RawPathParams,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let role = members::parse_role(form.get("role")).map(Some);
    apply(&state, &user, &params, role, "role").await
}

async fn remove(
    State(state): State<AppState>,
    user: PageUser,
    params: RawPathParams,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    apply(&state, &user, &params, Ok(None), "removed").await
}
