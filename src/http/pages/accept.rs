//! `/{ns}/accept/{token}`: the page an invitation email links to, and `/{ns}/welcome/`, where a
//! new member lands when no `CBH_APP_URL` is set.
//!
//! The token is the only proof, and a secret: these responses are never cached nor sent on as a
//! referrer, and the request log shows the path as `/{ns}/accept/<token>`.

use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Value, context};

use super::forms::{
    FORM_EXPIRED, FormData, FormToken, PageNamespace, PageUser, form_token_matches,
};
use super::language;
use super::render::{Frame, PageError, page};
use crate::domain::password::{self, MIN_PASSWORD_CHARS};
use crate::domain::token::TokenHash;
use crate::domain::{Role, Timestamp, Token, User};
use crate::http::extract::ClientIp;
use crate::http::extract::path_param;
use crate::http::session::{set_cookies, start_session};
use crate::http::{ApiError, AppState};
use crate::store::{AcceptLink, AcceptOutcome, InvitationRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/accept/{token}", get(show).post(submit))
        .route("/{ns}/welcome/", get(welcome))
}

/// Marks a response that carries or answers a secret link: not stored by any cache, and the
/// link is not sent as the referrer of anything the page loads or links to.
pub fn keep_private(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Looks up the link of the path: `None` for a malformed or unknown token. A known link's
/// invitation lends its language to the page (when the reader asks for none of ours).
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

pub(super) fn person(user: &User) -> Value {
    context! { name => user.display_name(), email => user.email.as_str() }
}

/// 410: the link has expired, was used or was revoked. Naming the inviter tells the person whom
/// to ask for a new one; whoever holds the token was sent it, so this reveals nothing new.
pub(super) fn gone_page(
    ns: &str,
    invitation: Option<&InvitationRecord>,
) -> Result<Response, PageError> {
    let frame = Frame {
        title: language::text("gone-title"),
        ns,
        session: None,
    };
    let values = context! {
        explanation => language::text("gone-explanation"),
        inviter => invitation.map(|i| person(&i.created_by)),
        ask => language::text("gone-ask"),
    };
    page(StatusCode::GONE, "gone.html", &frame, values)
}

struct AcceptForm<'a> {
    token: &'a Token,
    invitation: &'a InvitationRecord,
    error: Option<&'a str>,
}

fn accept_page(
    state: &AppState,
    ns: &str,
    headers: &HeaderMap,
    status: StatusCode,
    form: AcceptForm<'_>,
) -> Result<Response, PageError> {
    let form_token = FormToken::for_request(headers, ns, &state.config);
    let frame = Frame {
        title: language::text("accept-title"),
        ns,
        session: None,
    };
    let invitation = form.invitation;
    // A role above viewer is named: "Kinase screen (editor)".
    let projects: Vec<String> = invitation
        .projects
        .iter()
        .map(|p| match invitation.roles.role(p.id) {
            Role::Viewer => p.name.clone(),
            role => language::text_with(
                "project-with-role",
                &[
                    ("project", p.name.clone().into()),
                    ("role", language::text(&format!("page-role-{role}")).into()),
                ],
            ),
        })
        .collect();
    let values = context! {
        inviter => person(&invitation.created_by),
        projects => projects,
        email => &invitation.email,
        token => form.token.expose(),
        form_token => &form_token.value,
        min_password => MIN_PASSWORD_CHARS,
        notice => (),
        error => form.error,
    };
    let mut response = page(status, "accept.html", &frame, values)?;
    if let Some(cookie) = form_token.set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn show(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    headers: HeaderMap,
) -> Response {
    let response = match find_link(&state, &ns, &params).await {
        Ok(Some((token, link))) if link.live => accept_page(
            &state,
            &ns,
            &headers,
            StatusCode::OK,
            AcceptForm {
                token: &token,
                invitation: &link.invitation,
                error: None,
            },
        ),
        Ok(Some((token, link))) => {
            match super::superseded::page_if_superseded(&state, &ns, &headers, &token).await {
                Ok(Some(superseded)) => Ok(superseded),
                Ok(None) => gone_page(&ns, Some(&link.invitation)),
                Err(error) => Err(error),
            }
        }
        Ok(None) => gone_page(&ns, None),
        Err(error) => Err(error),
    };
    keep_private(response.unwrap_or_else(IntoResponse::into_response))
}

async fn submit(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let response = accept(&state, &ns, &params, &headers, &form, client_ip).await;
    keep_private(response.unwrap_or_else(IntoResponse::into_response))
}

async fn accept(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
    headers: &HeaderMap,
    form: &FormData,
    client_ip: Option<String>,
) -> Result<Response, PageError> {
    let Some((token, link)) = find_link(state, ns, params).await? else {
        return gone_page(ns, None);
    };
    if !link.live {
        if let Some(superseded) =
            super::superseded::page_if_superseded(state, ns, headers, &token).await?
        {
            return Ok(superseded);
        }
        return gone_page(ns, Some(&link.invitation));
    }
    let refuse = |status, error: &str| {
        accept_page(
            state,
            ns,
            headers,
            status,
            AcceptForm {
                token: &token,
                invitation: &link.invitation,
                error: Some(error),
            },
        )
    };
    if !form_token_matches(headers, ns, &state.config, form) {
        return refuse(StatusCode::FORBIDDEN, &language::text(FORM_EXPIRED));
    }
    let chosen = form.text("password");
    if chosen != form.text("password_again") {
        return refuse(StatusCode::BAD_REQUEST, &language::text("passwords-differ"));
    }
    if let Err(error) = password::validate_new(&chosen) {
        return refuse(StatusCode::BAD_REQUEST, &capitalised(&error.to_string()));
    }
    let token_hash: TokenHash = token.hash();
    let password_hash = state
        .password_work
        .run(move || password::hash(&chosen))
        .await
        .map_err(PageError::Internal)?
        .map_err(PageError::Internal)?;
    let outcome = state
        .store
        .accept_invitation(ns, &token_hash, &password_hash, Timestamp::now())
        .await
        .map_err(ApiError::from)?;
    let user = match outcome {
        AcceptOutcome::Accepted(user) => {
            crate::http::invitations::accepted(state, ns, &user, client_ip).await;
            user
        }
        // Used or revoked in the meantime.
        AcceptOutcome::Gone => return gone_page(ns, Some(&link.invitation)),
    };
    let cookies = start_session(state, ns, &user).await?;
    let target = state
        .config
        .app_url
        .clone()
        .unwrap_or_else(|| format!("/{ns}/welcome/"));
    let mut response = Redirect::to(&target).into_response();
    set_cookies(&mut response, cookies);
    Ok(response)
}

fn capitalised(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

async fn welcome(State(state): State<AppState>, user: PageUser) -> Result<Response, PageError> {
    let me = &user.caller.user;
    let memberships = state.store.memberships(me.id).await?;
    let can_invite = me.is_superuser || memberships.iter().any(|m| m.role.can_invite());
    let rows: Vec<Value> = memberships
        .iter()
        .map(|m| context! { name => &m.project.name, role => m.role.as_str() })
        .collect();
    let frame = Frame {
        title: language::text("welcome-title"),
        ns: user.ns(),
        session: Some((me, &user.csrf)),
    };
    page(
        StatusCode::OK,
        "welcome.html",
        &frame,
        context! { memberships => rows, can_invite => can_invite },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_with_a_capital_and_end_with_a_full_stop() {
        assert_eq!(
            capitalised("password must be at least 10 characters"),
            "Password must be at least 10 characters."
        );
    }
}
