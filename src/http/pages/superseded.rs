//! A link superseded by a newer email (an automatic or manual reminder, a resend): instead of
//! the plain 410, a page that says when the newer email was sent and offers **Email me a new
//! link** (`POST /{ns}/accept/{token}/new-link`). The new link goes to the invitation's stored
//! address only, counts against the per-recipient limit, and is refused once the invitation is
//! no longer pending. Expired, revoked and used links keep the plain 410 page (`link`), and the
//! accept and decline pages answer this one alike (`link::dead_link_page`).

use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use minijinja::context;

use super::forms::{FORM_EXPIRED, FormData, FormToken, PageNamespace, form_token_matches};
use super::language;
use super::link::{gone_page, private};
use super::render::{Frame, PageError, page};
use crate::domain::token::TokenHash;
use crate::domain::{Timestamp, Token};
use crate::http::extract::path_param;
use crate::http::{ApiError, AppState};
use crate::store::{NewLinkOutcome, NewLinkRequest, SendLimits, SupersededLink};

pub fn router() -> Router<AppState> {
    Router::new().route("/{ns}/accept/{token}/new-link", post(new_link))
}

/// What the page shows below its explanation.
struct Shown<'a> {
    status: StatusCode,
    /// The "Email me a new link" form.
    offer: bool,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

fn superseded_page(
    state: &AppState,
    ns: &str,
    headers: &HeaderMap,
    token: &Token,
    link: &SupersededLink,
    shown: Shown<'_>,
) -> Result<Response, PageError> {
    let form_token = FormToken::for_request(headers, ns, &state.config);
    let frame = Frame {
        title: language::text("superseded-title"),
        ns,
        session: None,
    };
    // Written in the page's language by the template's `datetime` filter.
    let iso = link.newer_email_at.to_iso8601();
    let values = context! {
        sent_on_iso => iso,
        offer => shown.offer,
        token => token.expose(),
        form_token => &form_token.value,
        notice => shown.notice,
        error => shown.error,
    };
    let mut response = page(shown.status, "superseded.html", &frame, values)?;
    if let Some(cookie) = form_token.set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The superseded page for `token`, when its link was superseded and its invitation is still
/// pending; `None` otherwise (the caller answers the plain 410).
pub(super) async fn page_if_superseded(
    state: &AppState,
    ns: &str,
    headers: &HeaderMap,
    token: &Token,
) -> Result<Option<Response>, PageError> {
    let Some(link) = superseded_link(state, ns, &token.hash(), Timestamp::now()).await? else {
        return Ok(None);
    };
    let shown = Shown {
        status: StatusCode::GONE,
        offer: true,
        notice: None,
        error: None,
    };
    superseded_page(state, ns, headers, token, &link, shown).map(Some)
}

/// The superseded link of `token_hash`, if it is one. Its invitation lends its language to the
/// page (when the reader asks for none of ours), before any of the page's text is written: the
/// page that offers "Email me a new link" and the one after it read alike.
async fn superseded_link(
    state: &AppState,
    ns: &str,
    token_hash: &TokenHash,
    now: Timestamp,
) -> Result<Option<SupersededLink>, PageError> {
    let link = state
        .store
        .superseded_link(ns, token_hash, now)
        .await
        .map_err(ApiError::from)?;
    if let Some(link) = &link {
        language::consider_invitation(link.language.as_deref());
    }
    Ok(link)
}

async fn new_link(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let response = request_new_link(&state, &ns, &params, &headers, &form).await;
    private(response)
}

async fn request_new_link(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
    headers: &HeaderMap,
    form: &FormData,
) -> Result<Response, PageError> {
    let Some(token) = path_param(params, "token").and_then(Token::parse) else {
        return gone_page(ns, None);
    };
    let now = Timestamp::now();
    let token_hash = token.hash();
    let Some(link) = superseded_link(state, ns, &token_hash, now).await? else {
        return plain_gone(state, ns, &token).await;
    };
    if !form_token_matches(headers, ns, &state.config, form) {
        let expired = language::text(FORM_EXPIRED);
        let shown = Shown {
            status: StatusCode::FORBIDDEN,
            offer: true,
            notice: None,
            error: Some(&expired),
        };
        return superseded_page(state, ns, headers, &token, &link, shown);
    }
    let outcome = state
        .store
        .email_new_link(NewLinkRequest {
            namespace: ns.to_owned(),
            token_hash,
            limits: SendLimits {
                per_inviter: None,
                per_recipient: state.config.limits.emails_per_recipient,
            },
            mail_domain: state.config.mail_domain().to_owned(),
            now,
        })
        .await
        .map_err(ApiError::from)?;
    match outcome {
        NewLinkOutcome::Queued => {
            state.outbox_wakeup.notify_one();
            let queued = language::text("superseded-queued");
            let shown = Shown {
                status: StatusCode::OK,
                offer: false,
                notice: Some(&queued),
                error: None,
            };
            superseded_page(state, ns, headers, &token, &link, shown)
        }
        NewLinkOutcome::Limited { retry_after } => {
            let limited = language::text("superseded-limited");
            let shown = Shown {
                status: StatusCode::TOO_MANY_REQUESTS,
                offer: false,
                notice: None,
                error: Some(&limited),
            };
            let mut response = superseded_page(state, ns, headers, &token, &link, shown)?;
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            Ok(response)
        }
        // Accepted, revoked, declined or expired since the page was shown.
        NewLinkOutcome::NotSuperseded | NewLinkOutcome::NotPending(_) => {
            plain_gone(state, ns, &token).await
        }
    }
}

/// The plain 410 page, naming the inviter when the link is known.
async fn plain_gone(state: &AppState, ns: &str, token: &Token) -> Result<Response, PageError> {
    let link = state
        .store
        .accept_link(ns, &token.hash(), Timestamp::now())
        .await
        .map_err(ApiError::from)?;
    if let Some(link) = &link {
        language::consider_invitation(link.invitation.language.as_deref());
    }
    gone_page(ns, link.as_ref().map(|link| &link.invitation))
}
