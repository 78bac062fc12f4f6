//! `GET /{ns}/auth/verify`: forward-auth, so that any application of the platform can sit
//! behind cbh-invite's login. A reverse proxy asks it about each request it is about to pass on
//! (nginx `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`): 200 with who the caller
//! is in `X-Auth-*` headers, which the proxy copies to the application, or 401.
//!
//! It runs for every request of the platform, so it stays cheap and never writes: the same
//! read-only lookup of the session cookie or API key as the API (`extract::authenticate`), one
//! read of the user's memberships, no session renewal, no audit record.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::IntoParams;

use super::error::ErrorBody;
use super::extract::{Namespace, NamespaceParam, authenticate};
use super::pages::return_path;
use super::{ApiError, AppState};
use crate::domain::User;

pub fn router() -> Router<AppState> {
    Router::new().route("/{ns}/auth/verify", get(verify))
}

/// The query of `/{ns}/auth/verify`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the query; the handler reads it from the raw query string.
struct VerifyParams {
    /// `1`: answer a caller who is not logged in with a redirect to the login page (for
    /// Traefik and Caddy, which pass the answer on to the browser) instead of 401 (for nginx).
    redirect: Option<String>,
}

/// Forward-auth: is the request the proxy is about to pass on logged in?
///
/// For a reverse proxy's sub-request, made for every request of the platform's applications:
/// 200 with an empty body and the caller in `X-Auth-*` headers when the request carries a valid
/// session cookie (or `Authorization: ApiKey`), else 401; with `?redirect=1`, a 302 to the login
/// page instead, whose `next` is the original request (`X-Forwarded-Uri`, or `X-Original-URI`;
/// with `X-Forwarded-Proto` and `-Host`, as an absolute URL) when the login page may return
/// there: a path of this namespace, or under `CBH_APP_URL`. It only reads: no session is
/// renewed, nothing recorded.
#[utoipa::path(
    get,
    path = "/{ns}/auth/verify",
    operation_id = "verify_forward_auth",
    tag = "forward-auth",
    params(NamespaceParam, VerifyParams,
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The original request's path and query (Traefik, Caddy): the login page's `next` with `?redirect=1`"),
        ("X-Original-URI" = Option<String>, Header, description = "The same, as nginx configurations usually name it"),
        ("X-Forwarded-Proto" = Option<String>, Header, description = "With `X-Forwarded-Host`: `next` may be an absolute URL under `CBH_APP_URL` on another origin"),
        ("X-Forwarded-Host" = Option<String>, Header, description = "See `X-Forwarded-Proto`"),
    ),
    responses(
        (status = 200, description = "Logged in; the body is empty", headers(
            ("X-Auth-User-Id" = String, description = "The user's id"),
            ("X-Auth-Email" = String, description = "The user's email address"),
            ("X-Auth-Name" = String, description = "First and last name, percent-encoded UTF-8: `%` and every byte outside printable ASCII are encoded, so decode it always (`Jos%C3%A9 Smith`); `+` is encoded too; empty when the user gave no name"),
            ("X-Auth-Superuser" = String, description = "`true` or `false`"),
            ("X-Auth-Projects" = String, description = "The user's projects and roles, `12:viewer,13:editor` (empty when none)"),
        )),
        (status = 302, description = "Not logged in, with `?redirect=1`: to the login page", headers(
            ("Location" = String, description = "The login page, with `next` when the original path may be returned to"),
        )),
        (status = 401, description = "Not logged in, or an invalid API key", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
pub(super) async fn verify(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, _body) = request.into_parts();
    let found = match authenticate(&parts, &state, &ns).await {
        Ok(found) => found,
        Err(ApiError::Unauthorized(message)) => {
            return Ok(if wants_redirect(parts.uri.query()) {
                login_redirect(&state, &ns, &parts.headers)
            } else {
                ApiError::Unauthorized(message).into_response()
            });
        }
        Err(other) => return Err(other),
    };
    let memberships = state.store.memberships(found.user.id).await?;
    let projects = memberships
        .iter()
        .map(|m| format!("{}:{}", m.project.id.0, m.role))
        .collect::<Vec<_>>()
        .join(",");
    let mut response = StatusCode::OK.into_response();
    identity_headers(response.headers_mut(), &found.user, &projects);
    Ok(response)
}

/// `host[:port]` of the public URL, as a proxy's `X-Forwarded-Host` names it.
fn public_authority(public_url: &str) -> String {
    let Ok(url) = url::Url::parse(public_url) else {
        return String::new();
    };
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn wants_redirect(query: Option<&str>) -> bool {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(name, value)| name == "redirect" && matches!(&*value, "1" | "true" | "yes"))
}

/// 302 to the login page of `ns` on `CBH_PUBLIC_URL`, coming back to the original request when
/// the login page would follow it there (`return_path`: the same rule, so that what is refused
/// here could not be slipped in through the login page either).
fn login_redirect(state: &AppState, ns: &str, headers: &HeaderMap) -> Response {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let original = text("x-forwarded-uri").or_else(|| text("x-original-uri"));
    // An app on a host of its own comes back as an absolute URL (when under CBH_APP_URL).
    let absolute = match (
        text("x-forwarded-proto"),
        text("x-forwarded-host"),
        original,
    ) {
        (Some(proto), Some(host), Some(uri)) => Some(format!("{proto}://{host}{uri}")),
        _ => None,
    };
    // A path is this origin's only when the request was for this origin: a path of another
    // host (named by X-Forwarded-Host) would lead nowhere here.
    let elsewhere = text("x-forwarded-host").is_some_and(|host| {
        !host.eq_ignore_ascii_case(&public_authority(&state.config.public_url))
    });
    let next = absolute
        .and_then(|url| return_path(&state.config, &url))
        .or_else(|| {
            original
                .filter(|_| !elsewhere)
                .and_then(|uri| return_path(&state.config, uri))
        });
    let mut location = format!("{}/{ns}/login/", state.config.public_url);
    if let Some(next) = next {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &next)
            .finish();
        location.push('?');
        location.push_str(&query);
    }
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        // Unreachable: the public URL and a returnable path are printable ASCII.
        Err(_) => ApiError::not_logged_in().into_response(),
    }
}

const USER_ID: HeaderName = HeaderName::from_static("x-auth-user-id");
const EMAIL: HeaderName = HeaderName::from_static("x-auth-email");
const NAME: HeaderName = HeaderName::from_static("x-auth-name");
const SUPERUSER: HeaderName = HeaderName::from_static("x-auth-superuser");
const PROJECTS: HeaderName = HeaderName::from_static("x-auth-projects");

fn identity_headers(headers: &mut HeaderMap, user: &User, projects: &str) {
    let name = format!("{} {}", user.first_name, user.last_name);
    for (header, value) in [
        (USER_ID, user.id.0.to_string()),
        (EMAIL, header_text(user.email.as_str())),
        (NAME, header_text(name.trim())),
        (
            SUPERUSER,
            if user.is_superuser { "true" } else { "false" }.to_owned(),
        ),
        (PROJECTS, projects.to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header, value);
        }
    }
}

/// Text for a header value: percent-encoded UTF-8 for `%`, `+` and every byte outside printable
/// ASCII (space kept as is), so that a reader decodes every value the same way (percent- or
/// form-decoding alike), an ASCII name without `%` or `+` reads unchanged, and nothing can end
/// the header line.
pub fn header_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (byte == b' ' || byte.is_ascii_graphic()) && byte != b'%' && byte != b'+' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_encodes_only_what_is_not_printable_ascii_and_the_percent_sign() {
        assert_eq!(header_text("Ada Lovelace"), "Ada Lovelace");
        assert_eq!(header_text("José Müller"), "Jos%C3%A9 M%C3%BCller");
        assert_eq!(header_text("100% Bob+1"), "100%25 Bob%2B1");
        assert_eq!(header_text("a\r\nb\u{7f}"), "a%0D%0Ab%7F");
    }

    #[test]
    fn only_redirect_1_asks_for_a_redirect() {
        assert!(wants_redirect(Some("redirect=1")));
        assert!(wants_redirect(Some("x=2&redirect=true")));
        for query in [
            None,
            Some(""),
            Some("redirect=0"),
            Some("redirect"),
            Some("next=1"),
        ] {
            assert!(!wants_redirect(query), "{query:?}");
        }
    }
}
