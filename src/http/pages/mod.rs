//! The web pages of the invitation journey, server-rendered with minijinja: log in, invite
//! (with the list of one's invitations), accept a link, the welcome page, first-run setup, and
//! administration (projects and their members, users).
//!
//! They work without JavaScript: plain form posts with a hidden CSRF field, answered by a
//! redirect (Post/Redirect/Get) or by the form again with the server's message. Errors are HTML
//! pages, never JSON. Every page is sent with a Content-Security-Policy that allows no inline
//! script or style, and cannot be framed.
//!
//! Each page is written in the reader's language (`language`): the switcher's choice, else the
//! browser's `Accept-Language`, else (accept and decline) the invitation's, else the default.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;
use render::PageError;

mod accept;
mod assets;
mod bulk;
mod decline;
mod forms;
mod invite;
mod language;
mod link;
mod login;
mod projects;
mod render;
mod setup;
mod superseded;
mod users;

pub(super) use bulk::{
    CARRIED_BODY_BYTES as BULK_CARRIED_BYTES, UPLOAD_BODY_BYTES as BULK_UPLOAD_BYTES,
};
pub(super) use forms::return_path;

pub fn router(state: &AppState) -> Router<AppState> {
    let templates = std::sync::Arc::new(render::environment(&state.catalogs));
    let pages = Router::new()
        .merge(login::router())
        .merge(invite::router())
        .merge(bulk::router())
        .merge(accept::router())
        .merge(decline::router())
        .merge(superseded::router())
        .merge(setup::router())
        .merge(projects::router())
        .merge(users::router())
        .route("/{ns}/", get(home))
        .route("/{ns}/login", get(add_slash))
        .route("/{ns}/invite", get(add_slash))
        .route("/{ns}/welcome", get(add_slash))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), templates),
            language::middleware,
        ));
    pages.merge(assets::router())
}

/// `/{ns}/`: the invite page (which sends a visitor without a session to log in first).
async fn home(forms::PageNamespace(ns): forms::PageNamespace) -> Response {
    Redirect::to(&format!("/{ns}/invite/")).into_response()
}

/// A page typed without its trailing slash: the same page, with it (and the query string).
async fn add_slash(_: forms::PageNamespace, uri: axum::http::Uri) -> Response {
    let target = match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    match HeaderValue::from_str(&target) {
        Ok(location) => (
            axum::http::StatusCode::SEE_OTHER,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => PageError::not_found(None).into_response(),
    }
}

async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Ok(policy) =
        HeaderValue::from_str(&content_security_policy(state.config.app_url.as_deref()))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// Only our own script, style and fetches; no inline code, no plugins, no framing. Forms may
/// post only here; the accept form's redirect to `CBH_APP_URL` counts as a form target for
/// Chromium, so that origin is allowed too.
fn content_security_policy(app_url: Option<&str>) -> String {
    let app_origin = app_url
        .and_then(|raw| url::Url::parse(raw).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null");
    let form_action = match app_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".into(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_has_no_unsafe_inline_and_forbids_framing() {
        for policy in [
            content_security_policy(None),
            content_security_policy(Some("https://app.example.org/x/#/y")),
        ] {
            assert!(!policy.contains("unsafe-inline"), "{policy}");
            assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
            assert!(policy.contains("script-src 'self';"), "{policy}");
        }
        assert!(
            content_security_policy(Some("https://app.example.org/x/"))
                .contains("form-action 'self' https://app.example.org;")
        );
    }
}
