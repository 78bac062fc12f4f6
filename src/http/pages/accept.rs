//! `/{ns}/accept/{token}`: the page an invitation email links to, and `/{ns}/welcome/`, where a
//! new member lands when no `CBH_APP_URL` is set.
//!
//! The token is the only proof, and a secret: these responses are never cached nor sent on as a
//! referrer, and the request log shows the path as `/{ns}/accept/<token>`.

use axum::Router;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Value, context};

use super::forms::{
    FORM_EXPIRED, FormData, FormToken, PageNamespace, PageUser, form_token_matches,
};
use super::language;
use super::link::{gone_page, live_link, person, private};
use super::render::{Frame, PageError, page};
use crate::domain::password::{self, MIN_PASSWORD_CHARS};
use crate::domain::token::TokenHash;
use crate::domain::{Role, Timestamp, Token};
use crate::http::extract::ClientIp;
use crate::http::session::{set_cookies, start_session};
use crate::http::{ApiError, AppState};
use crate::store::{AcceptOutcome, InvitationRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/accept/{token}", get(show).post(submit))
        .route("/{ns}/welcome/", get(welcome).post(save_notices))
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
    let response = async {
        let (token, link) = match live_link(&state, &ns, &params, &headers).await? {
            Ok(live) => live,
            Err(dead) => return Ok(dead),
        };
        let form = AcceptForm {
            token: &token,
            invitation: &link.invitation,
            error: None,
        };
        accept_page(&state, &ns, &headers, StatusCode::OK, form)
    }
    .await;
    private(response)
}

async fn submit(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    private(accept(&state, &ns, &params, &headers, &form, client_ip).await)
}

async fn accept(
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

async fn welcome(
    State(state): State<AppState>,
    user: PageUser,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let saved = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(name, value)| name == "done" && value == "notices");
    let me = &user.caller.user;
    let notify_outcomes = state.store.notify_outcomes(me.id).await?;
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
        context! {
            memberships => rows,
            can_invite => can_invite,
            notify_outcomes => notify_outcomes,
            notice => saved.then(|| language::text("welcome-settings-saved")),
            error => (),
        },
    )
}

/// The welcome page's email settings form: a checkbox, so an unticked box (absent from the
/// form) turns the notices off.
async fn save_notices(
    State(state): State<AppState>,
    user: PageUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let on = form.get("notify_outcomes").is_some();
    crate::http::session::set_notify_outcomes(&state, &user.caller, on).await?;
    Ok(Redirect::to(&format!("/{}/welcome/?done=notices", user.ns())).into_response())
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
