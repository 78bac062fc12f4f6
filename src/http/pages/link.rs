//! What the pages behind a secret link share: the accept and decline pages (an invitation's
//! link) and the setup page (a namespace's first-run link). Their answers are kept private,
//! and a link that no longer works answers 410 with the same page, in one place.
//!
//! An invitation link that a newer email replaced, while its invitation is still pending,
//! answers the superseded page (which offers a new link) from the accept page and the decline
//! page alike; expired, used, revoked and declined links answer the plain 410 page.

use axum::extract::RawPathParams;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};

use super::language;
use super::render::{Frame, PageError, page};
use crate::domain::{Timestamp, Token, User};
use crate::http::extract::path_param;
use crate::http::{ApiError, AppState};
use crate::store::{AcceptLink, InvitationRecord};

/// Marks a response that carries or answers a secret link: not stored by any cache, and the
/// link is not sent as the referrer of anything the page loads or links to.
fn keep_private(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A link page's result as the response, error pages included, kept private.
pub(super) fn private(response: Result<Response, PageError>) -> Response {
    keep_private(response.unwrap_or_else(IntoResponse::into_response))
}

pub(super) fn person(user: &User) -> Value {
    context! { name => user.display_name(), email => user.email.as_str() }
}

/// The words of a 410 page, in the page's language.
pub(super) struct Gone<'a> {
    pub title: String,
    pub explanation: String,
    /// Whom to ask, when the link names them.
    pub inviter: Option<&'a User>,
    pub ask: String,
}

/// 410: the link no longer works.
pub(super) fn gone(ns: &str, words: Gone<'_>) -> Result<Response, PageError> {
    let frame = Frame {
        title: words.title,
        ns,
        session: None,
    };
    let values = context! {
        explanation => words.explanation,
        inviter => words.inviter.map(person),
        ask => words.ask,
    };
    page(StatusCode::GONE, "gone.html", &frame, values)
}

/// 410: the invitation link has expired, was used, revoked or declined. Naming the inviter
/// tells the person whom to ask for a new one; whoever holds the token was sent it, so this
/// reveals nothing new.
pub(super) fn gone_page(
    ns: &str,
    invitation: Option<&InvitationRecord>,
) -> Result<Response, PageError> {
    gone(
        ns,
        Gone {
            title: language::text("gone-title"),
            explanation: language::text("gone-explanation"),
            inviter: invitation.map(|i| &i.created_by),
            ask: language::text("gone-ask"),
        },
    )
}

/// Looks up the invitation link of the path: `None` for a malformed or unknown token. A known
/// link's invitation lends its language to the page (when the reader asks for none of ours).
pub(super) async fn find_link(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
) -> Result<Option<(Token, AcceptLink)>, PageError> {
    let Some(token) = path_param(params, "token").and_then(Token::parse) else {
        return Ok(None);
    };
    let link = state
        .store
        .accept_link(ns, &token.hash(), Timestamp::now())
        .await
        .map_err(ApiError::from)?;
    if let Some(link) = &link {
        language::consider_invitation(link.invitation.language.as_deref());
    }
    Ok(link.map(|link| (token, link)))
}

/// The answer of a dead invitation link: the superseded page when a newer email replaced it
/// and its invitation is still pending, else the plain 410 page.
pub(super) async fn dead_link_page(
    state: &AppState,
    ns: &str,
    headers: &HeaderMap,
    token: &Token,
    invitation: &InvitationRecord,
) -> Result<Response, PageError> {
    match super::superseded::page_if_superseded(state, ns, headers, token).await? {
        Some(superseded) => Ok(superseded),
        None => gone_page(ns, Some(invitation)),
    }
}

/// The invitation link of the path when it works (`Ok`); else the page it answers (`Err`):
/// the superseded page or the plain 410.
pub(super) async fn live_link(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
    headers: &HeaderMap,
) -> Result<Result<(Token, AcceptLink), Response>, PageError> {
    match find_link(state, ns, params).await? {
        Some((token, link)) if link.live => Ok(Ok((token, link))),
        Some((token, link)) => dead_link_page(state, ns, headers, &token, &link.invitation)
            .await
            .map(Err),
        None => gone_page(ns, None).map(Err),
    }
}
