//! `/{ns}/setup/{token}`: first run. While a namespace has no user, `serve` logs a one-time URL
//! to this page, where the first superuser chooses its email and password (`cbh-invite user add`
//! does the same for scripts).

use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::context;

use super::forms::{
    FORM_EXPIRED, FormData, FormToken, PageNamespace, form_token_matches, landing_page,
};
use super::language;
use super::link::{Gone, gone, private};
use super::render::{Frame, PageError, page};
use crate::domain::password::{self, MIN_PASSWORD_CHARS};
use crate::domain::{EmailAddress, PersonName, Timestamp, Token};
use crate::http::extract::ClientIp;
use crate::http::extract::path_param;
use crate::http::session::{set_cookies, start_session};
use crate::http::{ApiError, AppState};
use crate::store::{NewUser, SetupOutcome};

pub fn router() -> Router<AppState> {
    Router::new().route("/{ns}/setup/{token}", get(show).post(submit))
}

fn gone_page(ns: &str) -> Result<Response, PageError> {
    let words = Gone {
        title: language::text("setup-gone-title"),
        explanation: language::text("setup-gone-explanation"),
        inviter: None,
        ask: language::text("setup-gone-ask"),
    };
    gone(ns, words)
}

struct SetupForm<'a> {
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    error: Option<&'a str>,
}

fn setup_page(
    state: &AppState,
    ns: &str,
    token: &Token,
    headers: &HeaderMap,
    status: StatusCode,
    form: SetupForm<'_>,
) -> Result<Response, PageError> {
    let form_token = FormToken::for_request(headers, ns, &state.config);
    let frame = Frame {
        title: language::text("setup-title"),
        ns,
        session: None,
    };
    let values = context! {
        form => context! { email => form.email, first_name => form.first_name, last_name => form.last_name },
        token => token.expose(),
        form_token => &form_token.value,
        min_password => MIN_PASSWORD_CHARS,
        notice => (),
        error => form.error,
    };
    let mut response = page(status, "setup.html", &frame, values)?;
    if let Some(cookie) = form_token.set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The token of the path, if it is still good.
async fn live_token(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
) -> Result<Option<Token>, PageError> {
    let Some(token) = path_param(params, "token").and_then(Token::parse) else {
        return Ok(None);
    };
    let live = state
        .store
        .setup_token_is_live(ns, &token.hash(), Timestamp::now())
        .await
        .map_err(ApiError::from)?;
    Ok(live.then_some(token))
}

async fn show(
    State(state): State<AppState>,
    PageNamespace(ns): PageNamespace,
    params: RawPathParams,
    headers: HeaderMap,
) -> Response {
    let response = match live_token(&state, &ns, &params).await {
        Ok(Some(token)) => setup_page(
            &state,
            &ns,
            &token,
            &headers,
            StatusCode::OK,
            SetupForm {
                email: "",
                first_name: "",
                last_name: "",
                error: None,
            },
        ),
        Ok(None) => gone_page(&ns),
        Err(error) => Err(error),
    };
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
    let response = create_first_user(&state, &ns, &params, &headers, &form, client_ip).await;
    private(response)
}

async fn create_first_user(
    state: &AppState,
    ns: &str,
    params: &RawPathParams,
    headers: &HeaderMap,
    form: &FormData,
    client_ip: Option<String>,
) -> Result<Response, PageError> {
    let Some(token) = live_token(state, ns, params).await? else {
        return gone_page(ns);
    };
    let (email, first_name, last_name) = (
        form.text("email"),
        form.text("first_name"),
        form.text("last_name"),
    );
    let refuse = |status, error: &str| {
        setup_page(
            state,
            ns,
            &token,
            headers,
            status,
            SetupForm {
                email: &email,
                first_name: &first_name,
                last_name: &last_name,
                error: Some(error),
            },
        )
    };
    if !form_token_matches(headers, ns, &state.config, form) {
        return refuse(StatusCode::FORBIDDEN, &language::text(FORM_EXPIRED));
    }
    let parsed = EmailAddress::parse(&email)
        .map_err(|e| e.to_string())
        .and_then(|email| {
            let first = PersonName::parse(&first_name, "first name").map_err(|e| e.to_string())?;
            let last = PersonName::parse(&last_name, "last name").map_err(|e| e.to_string())?;
            Ok((email, first, last))
        });
    let (email_address, first, last) = match parsed {
        Ok(values) => values,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    let chosen = form.text("password");
    if chosen != form.text("password_again") {
        return refuse(StatusCode::BAD_REQUEST, &language::text("passwords-differ"));
    }
    if let Err(error) = password::validate_new(&chosen) {
        return refuse(StatusCode::BAD_REQUEST, &error.to_string());
    }
    let password_hash = state
        .password_work
        .run(move || password::hash(&chosen))
        .await
        .map_err(PageError::Internal)?
        .map_err(PageError::Internal)?;
    let outcome = state
        .store
        .complete_setup(
            ns,
            &token.hash(),
            NewUser {
                email: email_address,
                first_name: first,
                last_name: last,
                password_hash: Some(password_hash),
                is_superuser: true,
            },
            Timestamp::now(),
        )
        .await
        .map_err(ApiError::from)?;
    let user = match outcome {
        SetupOutcome::Created(user) => {
            crate::http::record(
                state,
                crate::store::AuditEvent {
                    namespace: ns.to_owned(),
                    at: Timestamp::now(),
                    event: "setup_completed",
                    actor: Some(user.id),
                    subject: Some(user.email.key()),
                    client_ip,
                    detail: None,
                },
            )
            .await;
            user
        }
        SetupOutcome::Gone => return gone_page(ns),
    };
    let cookies = start_session(state, ns, &user).await?;
    let mut response = Redirect::to(&landing_page(ns)).into_response();
    set_cookies(&mut response, cookies);
    Ok(response)
}
