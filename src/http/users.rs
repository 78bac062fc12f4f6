//! `/{ns}/api/users/`: the namespace's users, for superusers, and deactivating or activating
//! one. `is_active` means "can log in": the user has accepted (or was made with a password)
//! and is not deactivated; `is_pending` and `is_deactivated` tell the two reasons apart.

use axum::Json;
use axum::Router;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{Caller, NamespaceParam, path_param, printable};
use super::resources::ListMeta;
use super::{ApiError, AppState};
use crate::domain::{Timestamp, UserId};
use crate::store::{Account, AccountOutcome, ChangedBy, UserFilter};

/// Users per page unless `limit` says otherwise, and the most one page holds.
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/users/", get(list))
        .route("/{ns}/api/users", get(list))
        .route("/{ns}/api/users/{id}/deactivate/", post(deactivate))
        .route("/{ns}/api/users/{id}/deactivate", post(deactivate))
        .route("/{ns}/api/users/{id}/activate/", post(activate))
        .route("/{ns}/api/users/{id}/activate", post(activate))
}

/// A user as administration shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountResource {
    pub id: i64,
    /// The email address (Django's `username`).
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_superuser: bool,
    /// Can log in: has accepted (or was created with a password) and is not deactivated.
    pub is_active: bool,
    /// Invited, has not accepted yet.
    pub is_pending: bool,
    /// Deactivated by a superuser.
    pub is_deactivated: bool,
    #[schema(format = DateTime)]
    pub date_joined: String,
    pub resource_uri: String,
}

impl AccountResource {
    pub fn new(namespace: &str, account: &Account) -> Self {
        let user = &account.user;
        Self {
            id: user.id.0,
            username: user.email.to_string(),
            email: user.email.to_string(),
            first_name: user.first_name.to_string(),
            last_name: user.last_name.to_string(),
            is_superuser: user.is_superuser,
            is_active: account.can_log_in(),
            is_pending: !user.is_active,
            is_deactivated: account.deactivated,
            date_joined: account.created.to_iso8601(),
            resource_uri: format!("/{namespace}/api/users/{}/", user.id.0),
        }
    }
}

/// A page of users, by email.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub meta: ListMeta,
    pub objects: Vec<AccountResource>,
}

/// The id in a user's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes a path parameter; `user_id` reads it.
pub struct UserIdParam {
    /// The user's id; one that is not a number answers 404.
    id: i64,
}

pub(super) fn user_id(params: &RawPathParams, name: &str) -> Result<UserId, ApiError> {
    path_param(params, name)
        .and_then(|id| id.parse::<i64>().ok())
        .map(UserId)
        .ok_or_else(|| ApiError::NotFound("unknown user".into()))
}

/// The users of the namespace.
///
/// Superusers only. Tastypie's list: `limit` and `offset`, and the filters `email` (ignoring
/// case) and `is_active` (`true`: those who can log in; `false`: pending or deactivated).
#[utoipa::path(
    get,
    path = "/{ns}/api/users/",
    operation_id = "list_users",
    tag = "users",
    params(
        NamespaceParam,
        ("limit" = Option<i64>, Query, minimum = 0, description = "Page size: default 20, at most 1000, 0 means the most"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "How many to skip"),
        ("email" = Option<String>, Query, description = "This address, ignoring case (also `email__exact`, `email__iexact`)"),
        ("is_active" = Option<bool>, Query, description = "`true`: users who can log in; `false`: pending or deactivated"),
    ),
    responses(
        (status = 200, description = "A page of users", body = AccountList),
        (status = 400, description = "Malformed paging or filter", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a superuser", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<AccountList>, ApiError> {
    caller.require_superuser("list users")?;
    let (filter, echoed) = parse_query(raw.as_deref())?;
    let ns = caller.namespace.as_str();
    let page = state.store.list_accounts(ns, &filter).await?;
    let page_uri = |offset: i64| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params.append_pair("limit", &filter.limit.to_string());
        params.append_pair("offset", &offset.to_string());
        for (name, value) in &echoed {
            params.append_pair(name, value);
        }
        format!("/{ns}/api/users/?{}", params.finish())
    };
    let next_offset = filter.offset.saturating_add(filter.limit);
    Ok(Json(AccountList {
        meta: ListMeta {
            limit: filter.limit,
            offset: filter.offset,
            next: (next_offset < page.total_count).then(|| page_uri(next_offset)),
            previous: (filter.offset > 0)
                .then(|| page_uri(filter.offset.saturating_sub(filter.limit).max(0))),
            total_count: page.total_count,
        },
        objects: page
            .objects
            .iter()
            .map(|account| AccountResource::new(ns, account))
            .collect(),
    }))
}

/// Paging and filters; the filters as given, for the `next` and `previous` links.
fn parse_query(raw: Option<&str>) -> Result<(UserFilter, Vec<(String, String)>), ApiError> {
    let mut filter = UserFilter {
        limit: DEFAULT_LIMIT,
        ..UserFilter::default()
    };
    let mut echoed = Vec::new();
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
                filter.limit = Some(number("limit", &value)?)
                    .filter(|n| *n > 0)
                    .map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT));
            }
            "offset" => filter.offset = number("offset", &value)?,
            "email" | "email__exact" | "email__iexact" => {
                filter.email = Some(value.to_string());
                echoed.push((name.into_owned(), value.into_owned()));
            }
            "is_active" | "is_active__exact" => {
                filter.can_log_in = Some(match value.as_ref() {
                    "true" | "True" | "1" => true,
                    "false" | "False" | "0" => false,
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "is_active must be true or false, not '{}'",
                            printable(other)
                        )));
                    }
                });
                echoed.push((name.into_owned(), value.into_owned()));
            }
            other if other.starts_with("is_active__") || other.starts_with("email__") => {
                return Err(ApiError::BadRequest(format!(
                    "filter '{}' is not supported: use email, email__iexact or is_active",
                    printable(other)
                )));
            }
            // Other parameters (format=json, cache busters) are ignored, as Tastypie does.
            _ => {}
        }
    }
    Ok((filter, echoed))
}

/// Deactivates or activates a user, as the caller (a superuser); also used by the users page.
pub(super) async fn set_active(
    state: &AppState,
    caller: &Caller,
    id: UserId,
    active: bool,
) -> Result<Account, ApiError> {
    let verb = if active { "activate" } else { "deactivate" };
    caller.require_superuser(&format!("{verb} users"))?;
    if !active && id == caller.user.id {
        return Err(ApiError::Conflict(
            "you cannot deactivate yourself: ask another superuser".into(),
        ));
    }
    let outcome = state
        .store
        .set_deactivated(
            &caller.namespace,
            id,
            !active,
            ChangedBy {
                user: Some(caller.user.id),
                client_ip: caller.client_ip.clone(),
            },
            Timestamp::now(),
        )
        .await?;
    match outcome {
        AccountOutcome::Done { account, .. } => Ok(account),
        AccountOutcome::NotFound => Err(ApiError::NotFound("unknown user".into())),
    }
}

/// Deactivate a user.
///
/// Superusers only. The user's sessions end, and its API keys and accept links stop working;
/// logging in answers as for a wrong password. Deactivating a deactivated user changes
/// nothing. A superuser cannot deactivate itself (409).
#[utoipa::path(
    post,
    path = "/{ns}/api/users/{id}/deactivate/",
    operation_id = "deactivate_user",
    tag = "users",
    params(NamespaceParam, UserIdParam),
    responses(
        (status = 200, description = "The user, deactivated", body = AccountResource),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace or user", body = ErrorBody),
        (status = 409, description = "The caller itself", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<AccountResource>, ApiError> {
    let account = set_active(&state, &caller, user_id(&params, "id")?, false).await?;
    Ok(Json(AccountResource::new(&caller.namespace, &account)))
}

/// Activate a deactivated user again.
///
/// Superusers only. The user can log in again with its password and API keys; sessions and
/// accept links ended by the deactivation stay ended.
#[utoipa::path(
    post,
    path = "/{ns}/api/users/{id}/activate/",
    operation_id = "activate_user",
    tag = "users",
    params(NamespaceParam, UserIdParam),
    responses(
        (status = 200, description = "The user, no longer deactivated", body = AccountResource),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace or user", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<Json<AccountResource>, ApiError> {
    let account = set_active(&state, &caller, user_id(&params, "id")?, true).await?;
    Ok(Json(AccountResource::new(&caller.namespace, &account)))
}
