//! `/{ns}/login/` (the form) and `/{ns}/logout/` (the header's button).

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;

use super::forms::{
    FORM_EXPIRED, FormData, FormToken, PageNamespace, PageUser, form_token_matches, landing_page,
    return_path,
};
use super::language;
use super::render::{Frame, PageError, page};
use crate::http::extract::ClientIp;
use crate::http::session::{authenticate, end_session, set_cookies, start_session};
use crate::http::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/login/", get(show).post(submit))
        .route("/{ns}/logout/", post(logout))
}

/// What the form shows again after a refusal.
struct LoginForm<'a> {
    email: &'a str,
    next: Option<&'a str>,
    error: Option<&'a str>,
}

fn login_page(
    state: &AppState,
    ns: &str,
    headers: &HeaderMap,
    status: StatusCode,
    form: LoginForm<'_>,
) -> Result<Response, PageError> {
    let token = FormToken::for_request(headers, ns, &state.config);
    let frame = Frame {
        title: language::text("login-title"),
        ns,
        session: None,
    };
    let values = context! {
        email => form.email,
        next => form.next.unwrap_or(""),
        form_token => &token.value,
        notice => (),
        error => form.error,
    };
    let mut response = page(status, "login.html", &frame, values)?;
    if let Some(cookie) = token.set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn show(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let next = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "next")
        .and_then(|(_, value)| return_path(&state.config, &value));
    login_page(
        &state,
        &ns,
        &headers,
        StatusCode::OK,
        LoginForm {
            email: "",
            next: next.as_deref(),
            error: None,
        },
    )
}

async fn submit(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    let next = form
        .get("next")
        .and_then(|next| return_path(&state.config, next));
    let email = form.text("email");
    let refuse = |status, error: &str| {
        login_page(
            &state,
            &ns,
            &headers,
            status,
            LoginForm {
                email: &email,
                next: next.as_deref(),
                error: Some(error),
            },
        )
    };
    if !form_token_matches(&headers, &ns, &state.config, &form) {
        return refuse(StatusCode::FORBIDDEN, &language::text(FORM_EXPIRED));
    }
    let password = form.text("password");
    match authenticate(&state, &ns, Some(email.as_str()), password, client_ip).await {
        Ok(user) => {
            let cookies = start_session(&state, &ns, &user).await?;
            let target = next.unwrap_or_else(|| landing_page(&ns));
            let mut response = Redirect::to(&target).into_response();
            set_cookies(&mut response, cookies);
            Ok(response)
        }
        // The same message for an unknown email, a wrong password and a pending user.
        Err(ApiError::Unauthorized(message)) => refuse(StatusCode::UNAUTHORIZED, &message),
        Err(error @ ApiError::TooManyRequests(..)) => {
            refuse(StatusCode::TOO_MANY_REQUESTS, &error.to_string())
        }
        Err(other) => Err(other.into()),
    }
}

async fn logout(
    State(state): State<AppState>,
    user: PageUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let cookies = end_session(&state, &user.caller).await?;
    let mut response = Redirect::to(&format!("/{}/login/", user.ns())).into_response();
    set_cookies(&mut response, cookies);
    Ok(response)
}
