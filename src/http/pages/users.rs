//! `/{ns}/users/`: for superusers, the namespace's users with their status, and a button to
//! deactivate or activate each. The buttons go through the same code as the JSON API
//! (`http::users`).

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
use crate::domain::UserId;
use crate::http::extract::path_param;
use crate::http::{ApiError, AppState, users};
use crate::store::UserFilter;

/// Users per page.
const PAGE_SIZE: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/users/", get(show))
        .route("/{ns}/users", get(super::add_slash))
        .route("/{ns}/users/{id}/deactivate/", post(deactivate))
        .route("/{ns}/users/{id}/activate/", post(activate))
}

#[derive(Serialize)]
struct UserRow {
    id: i64,
    email: String,
    name: String,
    status: &'static str,
    superuser: bool,
    is_me: bool,
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.into_owned())
}

async fn users_page(
    state: &AppState,
    user: &PageUser,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    offset: i64,
) -> Result<Response, PageError> {
    let ns = user.ns();
    let me = &user.caller.user;
    if !me.is_superuser {
        return Err(PageError::Status {
            status: StatusCode::FORBIDDEN,
            ns: Some(ns.to_owned()),
            message: language::text("users-refused"),
        });
    }
    let filter = UserFilter {
        limit: PAGE_SIZE,
        offset,
        ..UserFilter::default()
    };
    let list = state.store.list_accounts(ns, &filter).await?;
    let rows: Vec<UserRow> = list
        .objects
        .iter()
        .map(|account| {
            let u = &account.user;
            UserRow {
                id: u.id.0,
                email: u.email.to_string(),
                name: format!("{} {}", u.first_name, u.last_name)
                    .trim()
                    .to_owned(),
                status: if account.deactivated {
                    "deactivated"
                } else if u.is_active {
                    "active"
                } else {
                    "pending"
                },
                superuser: u.is_superuser,
                is_me: u.id == me.id,
            }
        })
        .collect();
    let page_link = |offset: i64| format!("/{ns}/users/?offset={offset}");
    let newer = (offset > 0).then(|| page_link((offset - PAGE_SIZE).max(0)));
    let older_offset = offset.saturating_add(PAGE_SIZE);
    let older = (older_offset < list.total_count).then(|| page_link(older_offset));
    let frame = Frame {
        title: language::text("users-title"),
        ns,
        session: Some((me, &user.csrf)),
    };
    let values = context! {
        users => Value::from_serialize(&rows),
        notice => notice,
        error => error,
        newer => newer,
        older => older,
    };
    page(status, "users.html", &frame, values)
}

async fn show(
    State(state): State<AppState>,
    user: PageUser,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let query = query.as_deref();
    let offset = query_value(query, "offset")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .unwrap_or(0);
    // The message names the user as stored, never text from the query.
    let notice = match (query_value(query, "done"), query_value(query, "user")) {
        (Some(done), Some(id)) if done == "deactivated" || done == "activated" => {
            match id.parse::<i64>() {
                Ok(id) if user.caller.user.is_superuser => state
                    .store
                    .account(user.ns(), UserId(id))
                    .await?
                    .map(|account| {
                        language::text_with(
                            &format!("users-done-{done}"),
                            &[("email", account.user.email.to_string().into())],
                        )
                    }),
                _ => None,
            }
        }
        _ => None,
    };
    users_page(&state, &user, StatusCode::OK, notice, None, offset).await
}

async fn set_active(
    state: &AppState,
    user: &PageUser,
    params: &RawPathParams,
    form: &FormData,
    active: bool,
) -> Result<Response, PageError> {
    user.check_csrf(form)?;
    let ns = user.ns();
    let id = path_param(params, "id")
        .and_then(|id| id.parse::<i64>().ok())
        .map(UserId)
        .ok_or_else(|| PageError::not_found(Some(ns)))?;
    match users::set_active(state, &user.caller, id, active).await {
        Ok(_) => {
            let done = if active { "activated" } else { "deactivated" };
            Ok(Redirect::to(&format!("/{ns}/users/?done={done}&user={}", id.0)).into_response())
        }
        Err(error @ (ApiError::Internal(_) | ApiError::Unavailable(_))) => Err(error.into()),
        Err(error @ ApiError::Forbidden(_)) => Err(PageError::Status {
            status: error.status(),
            ns: Some(ns.to_owned()),
            message: language::text("users-change-refused"),
        }),
        Err(error) => {
            let status = error.status();
            let message = match error {
                ApiError::NotFound(_) => language::text("no-such-user"),
                ApiError::Conflict(_) => language::text("users-not-yourself"),
                other => other.to_string(),
            };
            users_page(state, user, status, None, Some(message), 0).await
        }
    }
}

async fn deactivate(
    State(state): State<AppState>,
    user: PageUser,
    params: RawPathParams,
    form: FormData,
) -> Result<Response, PageError> {
    set_active(&state, &user, &params, &form, false).await
}

async fn activate(
    State(state): State<AppState>,
    user: PageUser,
    params: RawPathParams,
    form: FormData,
) -> Result<Response, PageError> {
    set_active(&state, &user, &params, &form, true).await
}
