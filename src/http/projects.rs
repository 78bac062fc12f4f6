//! `/{ns}/api/cbh_projects/`: the caller's projects, as the invite form offers them; creating
//! one (superusers, who become its owner) and renaming one (its owners and superusers).

use axum::Json;
use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiJson, Caller, NamespaceParam};
use super::members::{ProjectIdParam, may_manage, project_id};
use super::resources::ListMeta;
use super::{ApiError, AppState};
use crate::domain::project::parse_project_name;
use crate::domain::{Project, Role, Timestamp};
use crate::store::ChangedBy;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/cbh_projects/", get(list).post(create))
        .route("/{ns}/api/cbh_projects", get(list).post(create))
        .route("/{ns}/api/cbh_projects/{id}/", patch(rename))
        .route("/{ns}/api/cbh_projects/{id}", patch(rename))
}

/// The body of a new project or a new name.
#[derive(Debug, Deserialize, ToSchema)]
struct ProjectBody {
    /// 1 to 200 characters, trimmed.
    // Any JSON value, so that a missing or non-string name gets a 400 naming the field.
    #[schema(required = true, value_type = String)]
    name: Option<serde_json::Value>,
}

impl ProjectBody {
    fn name(&self) -> Result<String, ApiError> {
        let raw =
            self.name.as_ref().and_then(|v| v.as_str()).ok_or_else(|| {
                ApiError::BadRequest("name is required and must be a string".into())
            })?;
        parse_project_name(raw).map_err(ApiError::BadRequest)
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct ProjectResource {
    id: i64,
    name: String,
    /// The caller's own role (`viewer`, `editor` or `owner`); null for a superuser without a
    /// grant on the project.
    #[schema(required = true)]
    role: Option<&'static str>,
    /// Whether the caller may invite to this project.
    editor: bool,
    owner: bool,
    resource_uri: String,
}

impl ProjectResource {
    fn new(ns: &str, project: Project, role: Option<Role>, superuser: bool) -> Self {
        ProjectResource {
            id: project.id.0,
            resource_uri: format!("/{ns}/api/cbh_projects/{}/", project.id.0),
            name: project.name,
            role: role.map(Role::as_str),
            editor: superuser || role.is_some_and(Role::can_invite),
            owner: superuser || role == Some(Role::Owner),
        }
    }
}

/// All of the caller's projects, in one page.
#[derive(Debug, Serialize, ToSchema)]
struct ProjectList {
    meta: ListMeta,
    objects: Vec<ProjectResource>,
}

/// The caller's projects.
///
/// With the caller's role on each; a superuser sees every project of the namespace (it may
/// invite to any).
#[utoipa::path(
    get,
    path = "/{ns}/api/cbh_projects/",
    operation_id = "list_projects",
    tag = "projects",
    params(NamespaceParam),
    responses(
        (status = 200, description = "The projects", body = ProjectList),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectList>, ApiError> {
    let memberships = state.store.memberships(caller.user.id).await?;
    let superuser = caller.user.is_superuser;
    let projects = if superuser {
        state.store.projects(&caller.namespace).await?
    } else {
        memberships.iter().map(|m| m.project.clone()).collect()
    };
    let objects: Vec<ProjectResource> = projects
        .into_iter()
        .map(|project| {
            let role = memberships
                .iter()
                .find(|m| m.project.id == project.id)
                .map(|m| m.role);
            ProjectResource::new(&caller.namespace, project, role, superuser)
        })
        .collect();
    let count = i64::try_from(objects.len()).unwrap_or(i64::MAX);
    Ok(Json(ProjectList {
        meta: ListMeta {
            limit: count,
            offset: 0,
            next: None,
            previous: None,
            total_count: count,
        },
        objects,
    }))
}

/// Creates a project owned by the caller (a superuser); also used by the projects page.
pub(super) async fn create_project(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Project, ApiError> {
    caller.require_superuser("create projects")?;
    let name = parse_project_name(name).map_err(ApiError::BadRequest)?;
    Ok(state
        .store
        .create_owned_project(
            &caller.namespace,
            &name,
            Some(caller.user.id),
            ChangedBy {
                user: Some(caller.user.id),
                client_ip: caller.client_ip.clone(),
            },
            Timestamp::now(),
        )
        .await?)
}

/// Create a project.
///
/// Superusers only; the creator becomes its owner.
#[utoipa::path(
    post,
    path = "/{ns}/api/cbh_projects/",
    operation_id = "create_project",
    tag = "projects",
    params(NamespaceParam),
    request_body = ProjectBody,
    responses(
        (status = 201, description = "Created", body = ProjectResource),
        (status = 400, description = "Malformed body or name", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ProjectBody>,
) -> Result<(StatusCode, Json<ProjectResource>), ApiError> {
    let project = create_project(&state, &caller, &body.name()?).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProjectResource::new(
            &caller.namespace,
            project,
            Some(Role::Owner),
            caller.user.is_superuser,
        )),
    ))
}

/// Rename a project.
///
/// For the project's owners and superusers.
#[utoipa::path(
    patch,
    path = "/{ns}/api/cbh_projects/{id}/",
    operation_id = "rename_project",
    tag = "projects",
    params(NamespaceParam, ProjectIdParam),
    request_body = ProjectBody,
    responses(
        (status = 200, description = "Renamed", body = ProjectResource),
        (status = 400, description = "Malformed body or name", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an owner of the project nor a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace or project", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    ApiJson(body): ApiJson<ProjectBody>,
) -> Result<Json<ProjectResource>, ApiError> {
    let id = project_id(&params)?;
    let name = body.name()?;
    may_manage(&state, &caller, id).await?;
    let project = state
        .store
        .rename_project(
            &caller.namespace,
            id,
            &name,
            ChangedBy {
                user: Some(caller.user.id),
                client_ip: caller.client_ip.clone(),
            },
            Timestamp::now(),
        )
        .await?
        .ok_or_else(|| ApiError::NotFound("unknown project".into()))?;
    let role = state
        .store
        .projects_with_role(&caller.namespace, caller.user.id, &[id])
        .await?
        .pop()
        .and_then(|(_, role)| role);
    Ok(Json(ProjectResource::new(
        &caller.namespace,
        project,
        role,
        caller.user.is_superuser,
    )))
}
