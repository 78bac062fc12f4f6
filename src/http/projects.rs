//! `/{ns}/api/cbh_projects/`: the caller's projects, as the invite form offers them.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{Caller, NamespaceParam};
use super::resources::ListMeta;
use super::{ApiError, AppState};
use crate::domain::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/cbh_projects/", get(list))
        .route("/{ns}/api/cbh_projects", get(list))
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
            ProjectResource {
                id: project.id.0,
                resource_uri: format!("/{}/api/cbh_projects/{}/", caller.namespace, project.id.0),
                name: project.name,
                role: role.map(Role::as_str),
                editor: superuser || role.is_some_and(Role::can_invite),
                owner: superuser || role == Some(Role::Owner),
            }
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
