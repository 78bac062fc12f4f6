//! Extractors that turn a request into typed, checked values: the namespace, the caller, and
//! a JSON body. Each rejects with an `ApiError`, so every refusal is JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{Method, header, request::Parts};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::{ApiError, AppState};
/// Echo user input in a message without control characters, and not too much of it.
pub use crate::domain::email::printable;
use crate::domain::token::TokenHash;
use crate::domain::{EmailAddress, Timestamp, Token, User};

/// The most a request body may hold, but for `INVITATIONS_BODY_BYTES`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most a body written to the invitation list (`POST /{ns}/api/invitations`, and bulk
/// writes there) may hold: the platform's web client sends whole project objects in
/// `projects_selected`, each with its `custom_field_config`, easily tens of KiB.
pub const INVITATIONS_BODY_BYTES: usize = 1024 * 1024;

/// The body limit of a request's path: `INVITATIONS_BODY_BYTES` on the invitation list and its
/// bulk POST, `MAX_BODY_BYTES` elsewhere. Decided from the path alone because the body is read (and
/// bounded) before routing.
pub fn body_limit(path: &str) -> usize {
    let rest = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, rest)| rest);
    match rest {
        Some(
            "api/invitations"
            | "api/invitations/"
            | "api/invitations/bulk"
            | "api/invitations/bulk/",
        ) => INVITATIONS_BODY_BYTES,
        Some("invite/several/") => crate::http::pages::BULK_UPLOAD_BYTES,
        Some("invite/several/send/" | "invite/several/results.csv") => {
            crate::http::pages::BULK_CARRIED_BYTES
        }
        _ => MAX_BODY_BYTES,
    }
}

/// The body limit of this request (`body_limit`), as a request extension, for the messages of
/// the 413 answers.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl BodyLimit {
    pub fn of(extensions: &axum::http::Extensions) -> usize {
        extensions
            .get::<BodyLimit>()
            .map_or(MAX_BODY_BYTES, |limit| limit.0)
    }
}
pub const CSRF_HEADER: &str = "x-csrftoken";

/// A namespace this service serves; any other answers 404, logged in or not.
#[derive(Debug, Clone)]
pub struct Namespace(pub String);

/// The namespace every API path starts with, as the OpenAPI document describes it.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes a path parameter; the `Namespace` extractor reads it.
pub struct NamespaceParam {
    /// One of the namespaces served (`CBH_NAMESPACES`); any other answers 404.
    ns: String,
}

impl FromRequestParts<AppState> for Namespace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        let ns = params
            .iter()
            .find(|(name, _)| *name == "ns")
            .map(|(_, value)| value)
            .ok_or_else(ApiError::not_found)?;
        if state.config.serves(ns) {
            Ok(Namespace(ns.to_owned()))
        } else {
            Err(ApiError::NotFound(format!(
                "unknown namespace '{}'",
                printable(ns)
            )))
        }
    }
}

/// A path parameter other than the namespace, as text.
pub fn path_param<'a>(params: &'a RawPathParams, name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// How the caller proved who it is.
#[derive(Debug, Clone)]
pub enum Credential {
    Session { id_hash: TokenHash },
    ApiKey,
}

/// The logged-in caller. Session-authenticated unsafe requests must carry `X-CSRFToken`
/// matching the session's token (Django's convention); API keys need no CSRF token because
/// a browser never sends them by itself.
#[derive(Debug, Clone)]
pub struct Caller {
    pub namespace: String,
    pub user: User,
    pub credential: Credential,
    /// The peer address of the connection, for the audit log.
    pub client_ip: Option<String>,
}

impl Caller {
    /// 403 unless the caller is a superuser; `what` completes "only a superuser may …".
    pub fn require_superuser(&self, what: &str) -> Result<(), ApiError> {
        if self.user.is_superuser {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("only a superuser may {what}")))
        }
    }
}

/// The client's address as an extractor (never fails).
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

/// The address of the connection's peer. Forwarding headers are not trusted: behind a proxy
/// this is the proxy's address, and throttling by client address then counts all its clients.
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

/// Whose credentials a request carries, before any CSRF check.
pub struct Authenticated {
    pub user: User,
    pub credential: Credential,
    /// The hash of the session's CSRF token (a session only).
    pub csrf_hash: Option<TokenHash>,
    /// The language stored for the person (a session only: the pages keep it up to date).
    pub language: Option<String>,
}

/// The one lookup of a request's credentials: an `Authorization: ApiKey` header, else the
/// namespace's session cookie. `Caller` (the API), `PageUser` (the pages, sessions only) and
/// forward-auth (`/{ns}/auth/verify`) all go through it, so whatever makes a key or a session
/// invalid does so for each of them. It only reads: it neither renews the session nor records
/// anything, which forward-auth, called for every request of the platform, relies on.
pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
    namespace: &str,
) -> Result<Authenticated, ApiError> {
    if let Some(authorization) = parts.headers.get(header::AUTHORIZATION) {
        let (email, key) = authorization
            .to_str()
            .ok()
            .and_then(parse_api_key_header)
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization header must be 'ApiKey <email>:<key>'".into())
            })?;
        let user = state
            .store
            .user_by_api_key(namespace, &email, &key.hash())
            .await?
            .ok_or_else(|| ApiError::Unauthorized("invalid API key".into()))?;
        return Ok(Authenticated {
            user,
            credential: Credential::ApiKey,
            csrf_hash: None,
            language: None,
        });
    }
    session_user(parts, state, namespace)
        .await?
        .ok_or_else(ApiError::not_logged_in)
}

/// The user of the namespace's session cookie, if it names a live session of that namespace.
pub async fn session_user(
    parts: &Parts,
    state: &AppState,
    namespace: &str,
) -> Result<Option<Authenticated>, ApiError> {
    let name = state.config.cookies.session_name(namespace);
    let Some(session_id) = cookie(parts, &name).and_then(Token::parse) else {
        return Ok(None);
    };
    let id_hash = session_id.hash();
    let session = state
        .store
        .session(namespace, &id_hash, Timestamp::now())
        .await?;
    Ok(session.map(|session| Authenticated {
        user: session.user,
        credential: Credential::Session { id_hash },
        csrf_hash: Some(session.csrf_hash),
        language: session.language,
    }))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Namespace(namespace) = Namespace::from_request_parts(parts, state).await?;
        let found = authenticate(parts, state, &namespace).await?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if let (Some(csrf_hash), false) = (&found.csrf_hash, safe) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(Token::parse);
            let valid =
                presented.is_some_and(|token| constant_time_eq(&token.hash().0, &csrf_hash.0));
            if !valid {
                return Err(ApiError::Forbidden(format!(
                    "CSRF token missing or incorrect: send the {} cookie's value in X-CSRFToken",
                    state.config.cookies.csrf_name(&namespace)
                )));
            }
        }
        Ok(Caller {
            namespace,
            user: found.user,
            credential: found.credential,
            client_ip: client_ip(parts),
        })
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// `ApiKey <email>:<key>`, Tastypie's ApiKeyAuthentication format.
fn parse_api_key_header(value: &str) -> Option<(EmailAddress, Token)> {
    let rest = value.strip_prefix("ApiKey ")?;
    let (email, key) = rest.trim().rsplit_once(':')?;
    Some((EmailAddress::parse(email).ok()?, Token::parse(key)?))
}

/// The value of a cookie in the request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The bytes of a JSON request body: 415 unless the content type is JSON, 413 past the path's
/// `body_limit`.
/// Decoding is left to `decode_json`, so that it can be called (and fuzzed) without a request.
pub struct JsonBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let is_json = content_type
            .split(';')
            .next()
            .map(|mime| mime.trim().to_ascii_lowercase())
            .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "request body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        let limit = BodyLimit::of(request.extensions());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::BadRequest(format!("could not read the request body: {rejection}"))
                }
            })?;
        Ok(JsonBody(bytes))
    }
}

/// A JSON object decoded into `T`: 400 when it does not parse or does not have the expected
/// shape.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // serde also fills a struct from an array, field by field (`["a@x.org", "Bob"]`); every body
    // of this API is an object, so anything else is refused before it can be read that way.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "malformed JSON body: expected a JSON object".into(),
        ));
    }
    // JSON is UTF-8 (RFC 8259). Checked on the whole body because serde skips the fields it
    // ignores without decoding them, so bad bytes there would otherwise pass (found by fuzzing).
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: not UTF-8 ({e})")))?;
    serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
}

/// A JSON request body decoded into `T` (`JsonBody`, then `decode_json`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let JsonBody(bytes) = JsonBody::from_request(request, state).await?;
        decode_json(&bytes).map(ApiJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_invitation_list_takes_large_bodies() {
        for path in [
            "/chembiohub/api/invitations",
            "/chembiohub/api/invitations/",
            "/chembiohub/api/invitations/bulk",
            "/chembiohub/api/invitations/bulk/",
        ] {
            assert_eq!(body_limit(path), INVITATIONS_BODY_BYTES, "{path}");
        }
        for path in [
            "/chembiohub/api/invitations/accept/",
            "/chembiohub/api/invitations/1/resend/",
            "/chembiohub/api/session/",
            "/chembiohub/login/",
            "/api/invitations/",
            "/",
        ] {
            assert_eq!(body_limit(path), MAX_BODY_BYTES, "{path}");
        }
    }

    #[test]
    fn api_key_header_format() {
        let key = Token::generate();
        let header = format!("ApiKey Ann@X.org:{}", key.expose());
        let (email, parsed) = parse_api_key_header(&header).expect("parses");
        assert_eq!(email.as_str(), "Ann@x.org");
        assert_eq!(parsed, key);
        assert!(parse_api_key_header("Bearer abc").is_none());
        assert!(parse_api_key_header("ApiKey ann@x.org").is_none());
        assert!(parse_api_key_header("ApiKey ann@x.org:short").is_none());
    }
}
