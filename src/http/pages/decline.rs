//! `/{ns}/decline/{token}`, where an invitation email's decline link and the accept page's
//! **Decline** button lead, and `/{ns}/unsubscribe/{token}`, the one-click unsubscribe link of
//! the email's `List-Unsubscribe` header (RFC 8058). A GET only shows a page that asks to
//! confirm (mail scanners and prefetchers follow links); the POST does it.
//!
//! The decline form is protected like the accept form (double-submit form token). The
//! unsubscribe POST is not: mail providers send it blind, without cookies, and its token (which
//! can only decline and unsubscribe) is the only proof.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use minijinja::context;

use super::forms::{FORM_EXPIRED, FormData, FormToken, PageNamespace, form_token_matches};
use super::language;
use super::link::{gone_page, live_link, person, private};
use super::render::{Frame, PageError, page};
use crate::domain::Token;
use crate::http::extract::{ClientIp, path_param};
use crate::http::invitations::{NotDeclined, decline_by_token, unsubscribe_by_token};
use crate::http::{ApiError, AppState};
use crate::store::InvitationRecord;

/// The form body RFC 8058 requires of the one-click POST.
const ONE_CLICK_KEY: &str = "List-Unsubscribe";
const ONE_CLICK_VALUE: &str = "One-Click";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/{ns}/decline/{token}",
            get(show_decline).post(submit_decline),
        )
        .route(
            "/{ns}/unsubscribe/{token}",
            get(show_unsubscribe).post(one_click),
        )
}

fn decline_page(
    state: &AppState,
    ns: &str,
    headers: &HeaderMap,
    status: StatusCode,
    token: &Token,
    invitation: &InvitationRecord,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let form_token = FormToken::for_request(headers, ns, &state.config);
    let frame = Frame {
        title: language::text("decline-title"),
        ns,
        session: None,
    };
    let projects: Vec<&str> = invitation
        .projects
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let values = context! {
        inviter => person(&invitation.created_by),
        projects => projects,
        email => &invitation.email,
        token => token.expose(),
        form_token => &form_token.value,
        notice => (),
        error => error,
    };
    let mut response = page(status, "decline.html", &frame, values)?;
    if let Some(cookie) = form_token.set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

fn done_page(
    ns: &str,
    title: String,
    outcome: &str,
    suppressed: bool,
) -> Result<Response, PageError> {
    let frame = Frame {
        title,
        ns,
        session: None,
    };
    let values = context! { outcome => outcome, suppressed => suppressed };
    page(StatusCode::OK, "declined.html", &frame, values)
}

async fn show_decline(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    headers: HeaderMap,
) -> Response {
    let response = async {
        let (token, link) = match live_link(&state, &ns, &params, &headers).await? {
            Ok(live) => live,
            Err(dead) => return Ok(dead),
        };
        let invitation = &link.invitation;
        decline_page(
            &state,
            &ns,
            &headers,
            StatusCode::OK,
            &token,
            invitation,
            None,
        )
    }
    .await;
    private(response)
}

async fn submit_decline(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let response = decline(&state, &ns, &params, &headers, &form, client_ip).await;
    private(response)
}

async fn decline(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
    headers: &HeaderMap,
    form: &FormData,
    client_ip: Option<String>,
) -> Result<Response, PageError> {
    let (token, link) = match live_link(state, ns, params, headers).await? {
        Ok(live) => live,
        Err(dead) => return Ok(dead),
    };
    if !form_token_matches(headers, ns, &state.config, form) {
        return decline_page(
            state,
            ns,
            headers,
            StatusCode::FORBIDDEN,
            &token,
            &link.invitation,
            Some(&language::text(FORM_EXPIRED)),
        );
    }
    let block_future = form.get("block_future").is_some_and(|v| v == "true");
    match decline_by_token(state, ns, token.expose(), block_future, client_ip).await? {
        Ok(_) => done_page(
            ns,
            language::text("declined-title"),
            &language::text("declined-outcome"),
            block_future,
        ),
        // Used, revoked or declined in the meantime.
        Err(NotDeclined::Gone(_) | NotDeclined::Unknown) => gone_page(ns, Some(&link.invitation)),
    }
}

async fn show_unsubscribe(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
) -> Response {
    let response = unsubscribe_page(&state, &ns, &params).await;
    private(response)
}

async fn unsubscribe_page(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
) -> Result<Response, PageError> {
    let Some(token) = path_param(params, "token").and_then(Token::parse) else {
        return gone_page(ns, None);
    };
    let invitation = state
        .store
        .unsubscribe_invitation(ns, &token.hash())
        .await
        .map_err(ApiError::from)?;
    let Some(invitation) = invitation else {
        return gone_page(ns, None);
    };
    language::consider_invitation(invitation.language.as_deref());
    let frame = Frame {
        title: language::text("unsubscribe-title"),
        ns,
        session: None,
    };
    let values = context! {
        email => &invitation.email,
        token => token.expose(),
    };
    page(StatusCode::OK, "unsubscribe.html", &frame, values)
}

/// The one-click POST. It answers 200 whatever the token (unknown, or its invitation deleted
/// since): a mail provider has nothing to do with an error, and the answer reveals nothing.
/// Only a body without `List-Unsubscribe=One-Click` is refused, as RFC 8058 asks.
async fn one_click(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = async {
        if !is_one_click(&headers, &body) {
            return Err(PageError::Status {
                status: StatusCode::BAD_REQUEST,
                ns: Some(ns.clone()),
                message: language::text("unsubscribe-not-one-click"),
            });
        }
        let token = path_param(&params, "token").unwrap_or_default();
        let done = unsubscribe_by_token(&state, &ns, token, client_ip).await?;
        let outcome = language::text(if done {
            "unsubscribed-outcome"
        } else {
            "unsubscribed-nothing"
        });
        done_page(&ns, language::text("unsubscribed-title"), &outcome, done)
    }
    .await;
    private(response)
}

/// Whether the body is RFC 8058's: `List-Unsubscribe=One-Click`, form-encoded or as a field of
/// `multipart/form-data` (the two encodings it allows).
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let text = String::from_utf8_lossy(body);
        let field = format!("name=\"{ONE_CLICK_KEY}\"");
        return text.split(field.as_str()).nth(1).is_some_and(|rest| {
            rest.split("\r\n\r\n")
                .nth(1)
                .is_some_and(|value| value.trim_start().starts_with(ONE_CLICK_VALUE))
        });
    }
    url::form_urlencoded::parse(body).any(|(k, v)| k == ONE_CLICK_KEY && v == ONE_CLICK_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_click_body_is_recognised_in_both_encodings() {
        let form = HeaderMap::new();
        assert!(is_one_click(&form, b"List-Unsubscribe=One-Click"));
        assert!(!is_one_click(&form, b"List-Unsubscribe=Nope"));
        assert!(!is_one_click(&form, b""));
        let mut multipart = HeaderMap::new();
        multipart.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=x".parse().expect("header"),
        );
        let body = b"--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n";
        assert!(is_one_click(&multipart, body));
        assert!(!is_one_click(&multipart, b"--x--\r\n"));
    }
}
