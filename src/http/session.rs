//! `/{ns}/api/session/`: log in (POST), who am I (GET), my settings (PATCH), log out (DELETE).
//!
//! Sessions live in the database, so any node can serve any request. The login needs no CSRF
//! token: it only takes JSON, which a cross-site form cannot send.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{ApiJson, Caller, ClientIp, Credential, Namespace, NamespaceParam};
use super::resources::UserResource;
use super::{ApiError, AppState, HttpConfig, audit};
use crate::domain::{EmailAddress, Timestamp, Token, User, password};
use crate::store::{
    AuditEvent, LoginAttempt, LoginAttemptId, LoginLimits, LoginReservation, NewSession,
};

/// Django's default session age: two weeks.
const SESSION_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
const LOGIN_FAILED: &str = "Login failed: unknown email or wrong password";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/{ns}/api/session/",
            get(current).post(login).patch(update).delete(logout),
        )
        .route(
            "/{ns}/api/session",
            get(current).post(login).patch(update).delete(logout),
        )
        .route("/{ns}/api/session/password/", post(change_password))
        .route("/{ns}/api/session/password", post(change_password))
}

/// The body of a login; `email` is accepted for `username`.
#[derive(Debug, Deserialize, ToSchema)]
struct LoginRequest {
    /// The user's email address.
    #[serde(alias = "email")]
    #[schema(required = true, value_type = String)]
    username: Option<String>,
    #[schema(required = true, value_type = String)]
    password: Option<String>,
}

/// Who is logged in, and their settings.
#[derive(Debug, Serialize, ToSchema)]
struct SessionResource {
    user: UserResource,
    is_superuser: bool,
    /// Whether the user gets an email when an invitation they created is accepted or
    /// declined. (The email that an invitation could not be delivered always goes.)
    notify_outcomes: bool,
}

async fn session_body(
    state: &AppState,
    ns: &str,
    user: &User,
) -> Result<SessionResource, ApiError> {
    Ok(SessionResource {
        user: UserResource::new(ns, user),
        is_superuser: user.is_superuser,
        notify_outcomes: state.store.notify_outcomes(user.id).await?,
    })
}

/// The settings a user changes on their own session (`PATCH`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SessionSettings {
    /// `false`: no email when an invitation the user created is accepted or declined.
    #[schema(required = true, value_type = bool)]
    notify_outcomes: Option<bool>,
}

/// Who am I.
#[utoipa::path(
    get,
    path = "/{ns}/api/session/",
    operation_id = "get_session",
    tag = "session",
    params(NamespaceParam),
    responses(
        (status = 200, description = "The caller", body = SessionResource),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn current(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SessionResource>, ApiError> {
    Ok(Json(
        session_body(&state, &caller.namespace, &caller.user).await?,
    ))
}

/// Change the caller's settings.
///
/// `notify_outcomes: false` stops the emails about the caller's invitations being accepted or
/// declined; the email that an invitation could not be delivered still goes. The welcome page
/// has the same switch.
#[utoipa::path(
    patch,
    path = "/{ns}/api/session/",
    operation_id = "update_session",
    tag = "session",
    params(NamespaceParam),
    request_body = SessionSettings,
    responses(
        (status = 200, description = "Changed", body = SessionResource),
        (status = 400, description = "Malformed body, unknown field, or `notify_outcomes` missing or not a boolean", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SessionSettings>,
) -> Result<Json<SessionResource>, ApiError> {
    let on = body
        .notify_outcomes
        .ok_or_else(|| ApiError::BadRequest("notify_outcomes is required: true or false".into()))?;
    set_notify_outcomes(&state, &caller, on).await?;
    Ok(Json(
        session_body(&state, &caller.namespace, &caller.user).await?,
    ))
}

/// Turns the caller's accepted and declined notices on or off; also used by the welcome page.
pub(super) async fn set_notify_outcomes(
    state: &AppState,
    caller: &Caller,
    on: bool,
) -> Result<(), ApiError> {
    state.store.set_notify_outcomes(caller.user.id, on).await?;
    let event = AuditEvent {
        namespace: caller.namespace.clone(),
        at: Timestamp::now(),
        event: "settings_changed",
        actor: Some(caller.user.id),
        subject: Some(caller.user.email.to_string()),
        client_ip: caller.client_ip.clone(),
        detail: Some(format!("notify_outcomes={on}")),
    };
    super::record(state, event).await;
    Ok(())
}

/// Log in.
///
/// Sets the session cookie (HttpOnly; `{ns}_sessionid` unless `CBH_SESSION_COOKIE` says
/// otherwise) and the CSRF cookie (`{ns}csrftoken`, `CBH_CSRF_COOKIE`). No CSRF token needed: the body
/// must be JSON, which a cross-site form cannot send.
#[utoipa::path(
    post,
    path = "/{ns}/api/session/",
    operation_id = "log_in",
    tag = "session",
    params(NamespaceParam),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = SessionResource,
            headers(("Set-Cookie" = String, description = "The session cookie (`{ns}_sessionid`) and the CSRF cookie (`{ns}csrftoken`)"))),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Unknown email, wrong password or pending user (one message for all)", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this account or from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(()),
)]
async fn login(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let user = authenticate(
        &state,
        &ns,
        body.username.as_deref(),
        body.password.unwrap_or_default(),
        client_ip,
    )
    .await?;
    let cookies = start_session(&state, &ns, &user).await?;
    let mut response = Json(session_body(&state, &ns, &user).await?).into_response();
    set_cookies(&mut response, cookies);
    Ok(response)
}

/// Checks an email and password; also used by the login page. Every failure is the same 401,
/// and too many recent failures (for the account from this client address, for the account
/// from everywhere, or from this address) are a 429: for an unknown email too, and before any
/// password hashing, so both answer alike.
pub(super) async fn authenticate(
    state: &AppState,
    ns: &str,
    username: Option<&str>,
    password: String,
    client_ip: Option<String>,
) -> Result<User, ApiError> {
    let parsed = username.map(EmailAddress::parse);
    // Failures are counted per submitted address, known or not. What is not an address is
    // stored with its control characters escaped: the audit log must not carry a forged line.
    let account = match &parsed {
        Some(Ok(email)) => email.key(),
        _ => crate::domain::printable::escape_controls(
            &username
                .unwrap_or("")
                .trim()
                .to_lowercase()
                .chars()
                .take(254)
                .collect::<String>(),
        ),
    };
    let attempt = reserve_attempt(state, ns, account, client_ip, None).await?;
    let checked = async {
        let found = match parsed {
            Some(Ok(email)) => state.store.user_by_email(ns, &email).await?,
            _ => None,
        };
        // Unknown, pending, deactivated and wrong-password logins take the same path and the
        // same time.
        let (user, stored_hash) = match found {
            Some(creds) if creds.user.is_active && !creds.deactivated => {
                (Some(creds.user), creds.password_hash)
            }
            _ => (None, None),
        };
        let verified = state
            .password_work
            .run(move || password::verify(&password, stored_hash.as_deref()))
            .await
            .map_err(ApiError::Internal)?;
        Ok::<_, ApiError>(user.filter(|_| verified))
    }
    .await;
    match checked {
        Ok(Some(user)) => {
            state.store.login_succeeded(attempt, user.id).await?;
            Ok(user)
        }
        // The reserved row already records the failure.
        Ok(None) => Err(ApiError::Unauthorized(LOGIN_FAILED.into())),
        Err(error) => {
            release_attempt(state, attempt).await;
            Err(error)
        }
    }
}

/// Counts an attempt at `account`'s password before the password is checked, as a failure
/// until it proves right: 429 when a limit on failed logins is reached (for an unknown account
/// too, and before any hashing, so both answer alike).
async fn reserve_attempt(
    state: &AppState,
    ns: &str,
    account: String,
    client_ip: Option<String>,
    detail: Option<&'static str>,
) -> Result<LoginAttemptId, ApiError> {
    let limits = state.config.limits;
    let now = Timestamp::now();
    let reservation = state
        .store
        .reserve_login(LoginAttempt {
            namespace: ns.to_owned(),
            account,
            client_ip,
            now,
            limits: LoginLimits {
                per_account_and_client: limits.login_failures_per_account,
                per_account: limits.login_account_ceiling,
                per_client: limits.login_failures_per_client,
            },
            detail,
        })
        .await?;
    match reservation {
        LoginReservation::Reserved(attempt) => Ok(attempt),
        LoginReservation::Refused { until } => Err(ApiError::TooManyRequests(
            "Too many failed logins: try again later".into(),
            Duration::from_millis(until.millis().saturating_sub(now.millis()).unsigned_abs()),
        )),
    }
}

/// Takes back a reserved attempt whose password was never judged wrong (no verdict was given,
/// or the change of password records its own event).
async fn release_attempt(state: &AppState, attempt: LoginAttemptId) {
    if let Err(error) = state.store.release_login(attempt).await {
        tracing::warn!(
            error = format!("{error:#}"),
            "a login attempt stays counted as failed"
        );
    }
}

/// Creates a session for `user` and returns the `Set-Cookie` headers that hand it over: the
/// HttpOnly session id and the CSRF token that scripts and forms echo back.
pub(super) async fn start_session(
    state: &AppState,
    ns: &str,
    user: &User,
) -> Result<Vec<HeaderValue>, ApiError> {
    let session_id = Token::generate();
    let csrf = Token::generate();
    let now = Timestamp::now();
    state
        .store
        .create_session(NewSession {
            id_hash: session_id.hash(),
            csrf_hash: csrf.hash(),
            user_id: user.id,
            now,
            expires: now.plus(SESSION_AGE),
        })
        .await?;
    let config = &state.config;
    let cookies = &config.cookies;
    let mut headers = Vec::new();
    for cookie in [
        cookie(
            config,
            ns,
            &cookies.session_name(ns),
            session_id.expose(),
            true,
            SESSION_AGE,
        ),
        cookie(
            config,
            ns,
            &cookies.csrf_name(ns),
            csrf.expose(),
            false,
            SESSION_AGE,
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.push(value);
        }
    }
    Ok(headers)
}

/// The body of a password change.
#[derive(Debug, Deserialize, ToSchema)]
struct PasswordChange {
    #[schema(required = true, value_type = String)]
    old_password: Option<String>,
    /// At least 10 characters.
    #[schema(required = true, value_type = String)]
    new_password: Option<String>,
}

/// What a password change answers.
#[derive(Debug, Serialize, ToSchema)]
struct PasswordChanged {
    message: &'static str,
}

/// Change the caller's password.
///
/// Every other session of the user ends and its outstanding accept links stop working; the
/// session that made the change stays.
#[utoipa::path(
    post,
    path = "/{ns}/api/session/password/",
    operation_id = "change_password",
    tag = "session",
    params(NamespaceParam),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed", body = PasswordChanged),
        (status = 400, description = "Malformed body or new password too short", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "The current password is wrong (counted as a failed login), or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many failed logins for this account", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable, or too many passwords being checked", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Json<PasswordChanged>, ApiError> {
    let new_password = body.new_password.unwrap_or_default();
    password::validate_new(&new_password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let email = caller.user.email.clone();
    // A wrong current password is a failed login: a stolen session must not make guessing
    // the password cheaper than the login page does.
    let attempt = reserve_attempt(
        &state,
        &caller.namespace,
        email.key(),
        caller.client_ip.clone(),
        Some("password_change"),
    )
    .await?;
    let checked =
        check_current_password(&state, &caller, email, body.old_password, new_password).await;
    let new_hash = match checked {
        Ok(Some(hash)) => {
            release_attempt(&state, attempt).await;
            hash
        }
        // The reserved row already records the failure.
        Ok(None) => return Err(ApiError::Forbidden("the current password is wrong".into())),
        Err(error) => {
            release_attempt(&state, attempt).await;
            return Err(error);
        }
    };
    let keep = match &caller.credential {
        Credential::Session { id_hash } => Some(id_hash),
        Credential::ApiKey => None,
    };
    state
        .store
        .change_password(caller.user.id, &new_hash, keep)
        .await?;
    audit(&state, &caller, "password_changed", None).await;
    Ok(Json(PasswordChanged {
        message: "Password changed; your other sessions have been logged out.",
    }))
}

/// The hash of the new password when the current one is right.
async fn check_current_password(
    state: &AppState,
    caller: &Caller,
    email: EmailAddress,
    old_password: Option<String>,
    new_password: String,
) -> Result<Option<String>, ApiError> {
    let stored = state
        .store
        .user_by_email(&caller.namespace, &email)
        .await?
        .and_then(|creds| creds.password_hash);
    let old_password = old_password.unwrap_or_default();
    let (verified, new_hash) = state
        .password_work
        .run(move || {
            let verified = password::verify(&old_password, stored.as_deref());
            let new_hash = verified.then(|| password::hash(&new_password)).transpose();
            (verified, new_hash)
        })
        .await
        .map_err(ApiError::Internal)?;
    match (verified, new_hash?) {
        (true, Some(hash)) => Ok(Some(hash)),
        _ => Ok(None),
    }
}

/// Log out.
///
/// Deletes the session and clears its cookies.
#[utoipa::path(
    delete,
    path = "/{ns}/api/session/",
    operation_id = "log_out",
    tag = "session",
    params(NamespaceParam),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let cookies = end_session(&state, &caller).await?;
    audit(&state, &caller, "logout", None).await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookies(&mut response, cookies);
    Ok(response)
}

/// Deletes the caller's session (if it came with one) and returns the `Set-Cookie` headers that
/// clear its cookies; also used by the pages' "Log out" button.
pub(super) async fn end_session(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<HeaderValue>, ApiError> {
    if let Credential::Session { id_hash } = &caller.credential {
        state.store.delete_session(id_hash).await?;
    }
    let config = &state.config;
    let ns = &caller.namespace;
    let mut headers = Vec::new();
    for (name, http_only) in [
        (config.cookies.session_name(ns), true),
        (config.cookies.csrf_name(ns), false),
    ] {
        let expired = cookie(config, ns, &name, "", http_only, Duration::ZERO);
        if let Ok(value) = HeaderValue::from_str(&expired) {
            headers.push(value);
        }
    }
    Ok(headers)
}

pub(super) fn set_cookies(response: &mut Response, cookies: Vec<HeaderValue>) {
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

/// A `Set-Cookie` value for namespace `ns`, scoped as configured (`CBH_COOKIE_PATH`,
/// `CBH_COOKIE_DOMAIN`); `Secure` when the service is published over https.
pub(super) fn cookie(
    config: &HttpConfig,
    ns: &str,
    name: &str,
    value: &str,
    http_only: bool,
    age: Duration,
) -> String {
    let mut cookie = format!(
        "{name}={value}; {}; Max-Age={}; SameSite=Lax",
        config.cookies.scope(ns),
        age.as_secs()
    );
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if config.secure_cookies() {
        cookie.push_str("; Secure");
    }
    cookie
}
