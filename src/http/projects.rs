//! `/{ns}/api/cbh_projects/`: the caller's projects, as the invite form offers them.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use super::extract::Caller;
use super::{ApiError, AppState};
use crate::domain::Role;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/cbh_projects/", get(list))
        .route("/{ns}/api/cbh_projects", get(list))
}

#[derive(Debug, Serialize)]
struct ProjectResource {
    id: i64,
    name: String,
    /// The caller's own role; null for a superuser without a grant on the project.
    role: Option<&'static str>,
    /// Whether the caller may invite to this project.
    editor: bool,
    owner: bool,
    resource_uri: String,
}

/// A superuser sees every project of the namespace (it may invite to any); others see theirs.
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "meta": {
            "limit": objects.len(),
            "offset": 0,
            "next": null,
            "previous": null,
            "total_count": objects.len(),
        },
        "objects": objects,
    })))
}
