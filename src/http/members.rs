//! `/{ns}/api/cbh_projects/{id}/members/`: who has which role on a project, and changing it.
//! Editors and owners see the members; owners and superusers change them; a project that has
//! an owner keeps one (409).

use axum::Json;
use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, Caller, NamespaceParam, path_param, printable};
use super::resources::ListMeta;
use super::users::{AccountResource, user_id};
use super::{ApiError, AppState};
use crate::domain::{Project, ProjectId, Role, Timestamp, UserId};
use crate::store::{ChangedBy, Member, RoleChange, RoleOutcome};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/cbh_projects/{id}/members/", get(list))
        .route("/{ns}/api/cbh_projects/{id}/members", get(list))
        .route(
            "/{ns}/api/cbh_projects/{id}/members/{user_id}/",
            axum::routing::put(put_role).delete(remove),
        )
        .route(
            "/{ns}/api/cbh_projects/{id}/members/{user_id}",
            axum::routing::put(put_role).delete(remove),
        )
}

/// One member of a project.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResource {
    pub user: AccountResource,
    /// `viewer`, `editor` or `owner`.
    pub role: &'static str,
}

impl MemberResource {
    fn new(namespace: &str, member: &Member) -> Self {
        Self {
            user: AccountResource::new(namespace, &member.account),
            role: member.role.as_str(),
        }
    }
}

/// The members of a project, owners first, then by email.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub meta: ListMeta,
    pub objects: Vec<MemberResource>,
}

/// The body of `PUT …/members/{user_id}/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleBody {
    /// `viewer`, `editor` or `owner`.
    // Any JSON value, so that a missing or wrong role gets a 400 naming the field.
    #[schema(required = true, value_type = String)]
    role: Option<serde_json::Value>,
}

/// The ids in a member's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes path parameters; `project_id` and `user_id` read them.
pub struct MemberPathParams {
    /// The project's id; one that is not a number answers 404.
    id: i64,
    /// The user's id; one that is not a number answers 404.
    user_id: i64,
}

/// The id in a project's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes a path parameter; `project_id` reads it.
pub struct ProjectIdParam {
    /// The project's id; one that is not a number answers 404.
    id: i64,
}

pub(super) fn project_id(params: &RawPathParams) -> Result<ProjectId, ApiError> {
    path_param(params, "id")
        .and_then(|id| id.parse::<i64>().ok())
        .map(ProjectId)
        .ok_or_else(|| ApiError::NotFound("unknown project".into()))
}

/// The project and the caller's role on it (`None` for a superuser without a grant); 404 for a
/// project the namespace does not have.
pub(super) async fn project_and_role(
    state: &AppState,
    caller: &Caller,
    id: ProjectId,
) -> Result<(Project, Option<Role>), ApiError> {
    state
        .store
        .projects_with_role(&caller.namespace, caller.user.id, &[id])
        .await?
        .pop()
        .ok_or_else(|| ApiError::NotFound("unknown project".into()))
}

/// Owners and superusers may change a project's members.
pub(super) async fn may_manage(
    state: &AppState,
    caller: &Caller,
    id: ProjectId,
) -> Result<Project, ApiError> {
    let (project, role) = project_and_role(state, caller, id).await?;
    if caller.user.is_superuser || role == Some(Role::Owner) {
        Ok(project)
    } else {
        Err(not_an_owner())
    }
}

fn not_an_owner() -> ApiError {
    ApiError::Forbidden("only the project's owners and superusers may change it".into())
}

/// The members of a project, for its editors, owners and superusers.
pub(super) async fn members(
    state: &AppState,
    caller: &Caller,
    id: ProjectId,
) -> Result<(Project, Option<Role>, Vec<Member>), ApiError> {
    let (_, role) = project_and_role(state, caller, id).await?;
    if !caller.user.is_superuser && !role.is_some_and(Role::can_invite) {
        return Err(ApiError::Forbidden(
            "only the project's editors, owners and superusers may see its members".into(),
        ));
    }
    let (project, members) = state
        .store
        .members(&caller.namespace, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("unknown project".into()))?;
    Ok((project, role, members))
}

/// Gives, changes or removes (`None`) a user's role, as the caller; also used by the pages.
pub(super) async fn change_role(
    state: &AppState,
    caller: &Caller,
    project: ProjectId,
    user: UserId,
    role: Option<Role>,
) -> Result<Option<Member>, ApiError> {
    may_manage(state, caller, project).await?;
    let outcome = state
        .store
        .set_role(RoleChange {
            namespace: caller.namespace.clone(),
            project,
            user,
            role,
            // Checked again in the change's transaction: an owner demoted meanwhile is refused.
            acting_owner: (!caller.user.is_superuser).then_some(caller.user.id),
            by: ChangedBy {
                user: Some(caller.user.id),
                client_ip: caller.client_ip.clone(),
            },
            now: Timestamp::now(),
        })
        .await?;
    match outcome {
        RoleOutcome::Changed {
            account, old, new, ..
        } => match (old, new) {
            (None, None) => Err(ApiError::NotFound(
                "this user has no role on this project".into(),
            )),
            (_, Some(role)) => Ok(Some(Member { account, role })),
            (_, None) => Ok(None),
        },
        RoleOutcome::NoProject => Err(ApiError::NotFound("unknown project".into())),
        RoleOutcome::NoUser => Err(ApiError::NotFound("unknown user".into())),
        RoleOutcome::NotAllowed => Err(not_an_owner()),
        RoleOutcome::LastOwner => Err(ApiError::Conflict(
            "a project keeps at least one owner: make someone else owner first".into(),
        )),
    }
}

/// Reads a role as the API and the pages receive it.
pub(super) fn parse_role(raw: Option<&str>) -> Result<Role, ApiError> {
    let raw = raw.unwrap_or("");
    raw.parse::<Role>().map_err(|_| {
        ApiError::BadRequest(format!(
            "role must be viewer, editor or owner, not '{}'",
            printable(raw)
        ))
    })
}

/// The members of a project.
///
/// For the project's editors and owners, and superusers.
#[utoipa::path(
    get,
    path = "/{ns}/api/cbh_projects/{id}/members/",
    operation_id = "list_members",
    tag = "projects",
    params(NamespaceParam, ProjectIdParam),
    responses(
        (status = 200, description = "The members", body = MemberList),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an editor or owner of the project, nor a superuser", body = ErrorBody),
        (status = 404, description = "Unknown namespace or project", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<MemberList>, ApiError> {
    let (_, _, members) = members(&state, &caller, project_id(&params)?).await?;
    let objects: Vec<MemberResource> = members
        .iter()
        .map(|m| MemberResource::new(&caller.namespace, m))
        .collect();
    let count = i64::try_from(objects.len()).unwrap_or(i64::MAX);
    Ok(Json(MemberList {
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

/// Give a user a role on a project, or change it.
///
/// For the project's owners and superusers. Taking the owner role from a project's last owner
/// is refused (409).
#[utoipa::path(
    put,
    path = "/{ns}/api/cbh_projects/{id}/members/{user_id}/",
    operation_id = "set_member_role",
    tag = "projects",
    params(NamespaceParam, MemberPathParams),
    request_body = RoleBody,
    responses(
        (status = 200, description = "The member with its role", body = MemberResource),
        (status = 400, description = "Malformed body or unknown role", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an owner of the project nor a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace, project or user", body = ErrorBody),
        (status = 409, description = "The project would have no owner left", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn put_role(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<MemberResource>, ApiError> {
    let project = project_id(&params)?;
    let user = user_id(&params, "user_id")?;
    let role = parse_role(body.role.as_ref().and_then(|v| v.as_str()))?;
    let member = change_role(&state, &caller, project, user, Some(role))
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a role given is missing")))?;
    Ok(Json(MemberResource::new(&caller.namespace, &member)))
}

/// Remove a user's role on a project.
///
/// For the project's owners and superusers. Removing a project's last owner is refused (409).
#[utoipa::path(
    delete,
    path = "/{ns}/api/cbh_projects/{id}/members/{user_id}/",
    operation_id = "remove_member",
    tag = "projects",
    params(NamespaceParam, MemberPathParams),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an owner of the project nor a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace, project or user, or the user has no role on the project", body = ErrorBody),
        (status = 409, description = "The project would have no owner left", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Response, ApiError> {
    let project = project_id(&params)?;
    let user = user_id(&params, "user_id")?;
    change_role(&state, &caller, project, user, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
