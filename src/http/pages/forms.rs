//! What the page handlers take from a request: the namespace, the logged-in person, a posted
//! form, and the CSRF checks of both kinds of form.
//!
//! - Forms of a logged-in person carry the session's CSRF token in a hidden field
//!   (`csrfmiddlewaretoken`, as in Django); it must hash to the one stored with the session.
//! - Forms without a session (log in, accept, setup) use a double-submit token: the page sets it
//!   in a `SameSite=Strict`, HttpOnly cookie and in a hidden field, and the post must bring both,
//!   equal. A form posted from another site arrives without the cookie, so it is refused; this
//!   stops a "login CSRF" that would sign a victim into an attacker's account.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};

use super::language;
use super::render::PageError;
use crate::domain::Token;
use crate::http::extract::{Caller, Namespace, constant_time_eq, cookie, cookie_in};
use crate::http::{AppState, HttpConfig};

pub const SESSION_CSRF_FIELD: &str = "csrfmiddlewaretoken";
pub const FORM_TOKEN_FIELD: &str = "form_token";
/// The message key of a form whose token does not match.
pub const FORM_EXPIRED: &str = "form-expired";

/// A namespace this service serves; any other is a 404 page.
pub struct PageNamespace(pub String);

impl FromRequestParts<AppState> for PageNamespace {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        Namespace::from_request_parts(parts, state)
            .await
            .map(|Namespace(ns)| PageNamespace(ns))
            .map_err(|_| PageError::not_found(None))
    }
}

/// The person behind a page request, from the session cookie. Without a valid session, a GET
/// is sent to the login page and comes back afterwards; a POST is sent to log in and then to
/// the invite page (its form is gone).
pub struct PageUser {
    /// The same caller the JSON API would see, so pages reuse the API's rules.
    pub caller: Caller,
    /// The session's CSRF token, for the hidden field of this page's forms.
    pub csrf: String,
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let PageNamespace(ns) = PageNamespace::from_request_parts(parts, state).await?;
        let next = (parts.method == Method::GET)
            .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
            .flatten()
            .and_then(|path| local_path(&ns, &path));
        let login = || PageError::LoginRequired {
            ns: ns.clone(),
            next: next.clone(),
        };
        let session = crate::http::extract::session_user(parts, state, &ns)
            .await?
            .ok_or_else(login)?;
        let csrf_hash = session.csrf_hash.ok_or_else(login)?;
        // The page needs the plain token for its forms; only the cookie has it. A cookie that
        // does not match the session (tampered, or from an older login) means logging in again.
        let csrf = cookie(parts, &state.config.cookies.csrf_name(&ns))
            .and_then(Token::parse)
            .filter(|token| constant_time_eq(&token.hash().0, &csrf_hash.0))
            .ok_or_else(login)?;
        remember_language(state, &session.user, session.language.as_deref()).await;
        Ok(PageUser {
            caller: Caller {
                namespace: ns,
                user: session.user,
                credential: session.credential,
                client_ip: super::super::extract::client_ip(parts),
            },
            csrf: csrf.expose().to_owned(),
        })
    }
}

/// Stores the language of this page as the person's (for the emails sent to them as an
/// inviter), when it differs from the one stored: a compare per visit, a write per change.
/// A failed write is logged, not shown: the page itself does not depend on it.
async fn remember_language(state: &AppState, user: &crate::domain::User, stored: Option<&str>) {
    let lang = language::current();
    if stored == Some(lang.as_str()) {
        return;
    }
    if let Err(error) = state.store.set_user_language(user.id, &lang).await {
        tracing::warn!(
            user = user.id.0,
            error = format!("{error:#}"),
            "storing the user's language"
        );
    }
}

impl PageUser {
    pub fn ns(&self) -> &str {
        &self.caller.namespace
    }

    /// The posted form must carry this session's CSRF token.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        let sent = form.get(SESSION_CSRF_FIELD).unwrap_or("");
        if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::Status {
                status: StatusCode::FORBIDDEN,
                ns: Some(self.ns().to_owned()),
                message: language::text(FORM_EXPIRED),
            })
        }
    }
}

/// A posted HTML form (`application/x-www-form-urlencoded`), as name-value pairs in order; a
/// name may repeat (the projects of a multi-select).
#[derive(Debug, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// A form read some other way (the fields of a multipart upload).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A text field as typed, or empty.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_owned()
    }
}

impl FromRequest<AppState> for FormData {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(PageError::Status {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ns: None,
                message: language::text("error-html-form"),
            });
        }
        let limit = crate::http::extract::BodyLimit::of(request.extensions());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| PageError::Status {
                status: rejection.status(),
                ns: None,
                message: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    language::text_with(
                        "error-form-too-large",
                        &[("limit", limit.to_string().into())],
                    )
                } else {
                    language::text("error-form-unreadable")
                },
            })?;
        Ok(FormData(
            url::form_urlencoded::parse(&bytes)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        ))
    }
}

/// The double-submit token of a form without a session: the one the browser already has, or a
/// new one with the `Set-Cookie` that gives it.
pub struct FormToken {
    pub value: String,
    pub set_cookie: Option<HeaderValue>,
}

impl FormToken {
    pub fn for_request(headers: &HeaderMap, ns: &str, config: &HttpConfig) -> Self {
        let name = config.cookies.form_token_name(ns);
        if let Some(token) = cookie_in(headers, &name).and_then(Token::parse) {
            return Self {
                value: token.expose().to_owned(),
                set_cookie: None,
            };
        }
        let token = Token::generate();
        let mut cookie = format!(
            "{name}={}; {}; HttpOnly; SameSite=Strict",
            token.expose(),
            config.cookies.scope(ns)
        );
        if config.secure_cookies() {
            cookie.push_str("; Secure");
        }
        Self {
            value: token.expose().to_owned(),
            set_cookie: HeaderValue::from_str(&cookie).ok(),
        }
    }
}

/// Whether a form without a session came from our own page: the hidden field equals the cookie.
pub fn form_token_matches(
    headers: &HeaderMap,
    ns: &str,
    config: &HttpConfig,
    form: &FormData,
) -> bool {
    match (
        cookie_in(headers, &config.cookies.form_token_name(ns)).and_then(Token::parse),
        form.get(FORM_TOKEN_FIELD),
    ) {
        (Some(cookie), Some(field)) => {
            constant_time_eq(cookie.expose().as_bytes(), field.as_bytes())
        }
        _ => false,
    }
}

/// `next` if it is a path of this namespace on this site, else `None`.
///
/// Open-redirect protection: only a local path that begins with `/{ns}/` is followed, never an
/// absolute URL (`https://evil.example`), a scheme-relative one (`//evil.example`), a
/// backslash form that browsers treat as one (`/\evil.example`), or anything with spaces or
/// control characters.
///
/// A `.` or `..` segment, plain or percent-encoded, is refused too: `/{ns}/../other/` starts
/// with the namespace but leads out of it once the browser resolves it.
pub fn local_path(ns: &str, next: &str) -> Option<String> {
    path_under(&format!("/{ns}/"), next)
}

/// Where the login page may send a person back to: any path on this origin (the platform's
/// apps behind forward-auth live beside the namespace, not under it), or an absolute URL under
/// `CBH_APP_URL` when the app is on an origin of its own (sharing the cookies through
/// `CBH_COOKIE_DOMAIN`).
///
/// Open-redirect protection: a path must start with a single `/`, so never an absolute URL of
/// another origin (`https://evil.example`), a scheme-relative one (`//evil.example`) or the
/// backslash form browsers treat as one (`/\evil.example`); no spaces or control characters,
/// and no `.` or `..` segment, plain or percent-encoded.
pub fn return_path(config: &HttpConfig, next: &str) -> Option<String> {
    path_under("/", next).or_else(|| {
        let app = url::Url::parse(config.app_url.as_deref()?).ok()?;
        let public = url::Url::parse(&config.public_url).ok()?;
        if app.origin() == public.origin() {
            // Its paths are this origin's, which the first rule already judged.
            return None;
        }
        let mut prefix = app.path().to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        // The exact text of the app's origin, then a path under the app's: nothing can slip
        // between the two (`https://app.example.evil.org/`, `https://app.example@evil.org/`).
        let origin = app.origin().ascii_serialization();
        let path = next.strip_prefix(origin.as_str())?;
        path_under(&prefix, path).map(|_| next.to_owned())
    })
}

/// `next` when it is a plain path beginning with `prefix` (which starts and ends with `/`).
fn path_under(prefix: &str, next: &str) -> Option<String> {
    let safe = next.starts_with(prefix)
        && !next.starts_with("//")
        && next.len() <= 1024
        && next.bytes().all(|b| b.is_ascii_graphic())
        && !next.contains('\\')
        && !has_dot_segment(next);
    safe.then(|| next.to_owned())
}

/// Whether the path part of `next` has a `.` or `..` segment, also once percent-decoded (as
/// often as it takes: `%252e` is `%2e` after one round), or an encoded `/` or `\` that would
/// make one once decoded.
fn has_dot_segment(next: &str) -> bool {
    let path = next.split(['?', '#']).next().unwrap_or_default();
    let mut decoded = path.to_owned();
    for _ in 0..4 {
        let lower = decoded.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") {
            return true;
        }
        if decoded
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return true;
        }
        let once = percent_decoded(&decoded);
        if once == decoded {
            return false;
        }
        decoded = once;
    }
    // Still changing after four rounds: not a path anyone means.
    true
}

/// `%XX` sequences decoded (anything else, and what does not decode to UTF-8, kept as is).
fn percent_decoded(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| raw.to_owned())
}

/// Where a person lands after logging in, when nothing else was asked for.
pub fn landing_page(ns: &str) -> String {
    format!("/{ns}/invite/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_of_the_namespace_are_followed() {
        assert_eq!(
            local_path("ns", "/ns/invite/?offset=20").as_deref(),
            Some("/ns/invite/?offset=20")
        );
        for bad in [
            "https://evil.example/ns/",
            "//evil.example/ns/",
            "/\\evil.example",
            "/ns",
            "/other/invite/",
            "/ns/\\evil",
            "/ns/ x",
            "/ns/\r\nLocation: x",
            "javascript:alert(1)",
            "",
            "/ns/../other/",
            "/ns/./invite/",
            "/ns/%2e%2e/other/",
            "/ns/%2E%2e/other/",
            "/ns/.%2e/other/",
            "/ns/%252e%252e/other/",
            "/ns/..%2fother/",
            "/ns/invite/..",
        ] {
            assert_eq!(local_path("ns", bad), None, "{bad:?}");
        }
    }

    fn config(public_url: &str, app_url: &str) -> HttpConfig {
        HttpConfig {
            namespaces: vec!["ns".into()],
            public_url: public_url.into(),
            app_url: Some(app_url.into()),
            cookies: Default::default(),
            invite_ttl: std::time::Duration::from_secs(60),
            invite_rules: crate::config::InviteRules::default(),
            link_sharing: Default::default(),
            debug: false,
            limits: Default::default(),
            body_timeout: std::time::Duration::from_secs(30),
            metrics_public: true,
            webhook_allow_private: false,
            mail_domain: "hub.example".into(),
            default_language: "en".into(),
        }
    }

    #[test]
    fn any_path_of_this_origin_is_followed_but_never_another_origin() {
        let same = config("https://hub.example", "https://hub.example/app/");
        for good in ["/app/x?y=1", "/other/", "/ns/invite/", "/", "/x:y/z"] {
            assert_eq!(return_path(&same, good).as_deref(), Some(good), "{good}");
        }
        for bad in [
            "https://hub.example/app/x",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\/evil.example",
            "/ x",
            "/a\r\nLocation: x",
            "/a\tb",
            "javascript:alert(1)",
            "evil.example/",
            "",
            "/../other/",
            "/%2e%2e/other/",
        ] {
            assert_eq!(return_path(&same, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn urls_under_the_app_url_are_followed_on_its_own_origin() {
        let other = config("https://auth.hub.example", "https://app.hub.example/lab/");
        assert_eq!(
            return_path(&other, "https://app.hub.example/lab/x?y=1").as_deref(),
            Some("https://app.hub.example/lab/x?y=1")
        );
        assert_eq!(
            return_path(&other, "/ns/invite/").as_deref(),
            Some("/ns/invite/")
        );
        for bad in [
            "https://app.hub.example/other/",
            "https://app.hub.example.evil.org/lab/",
            "https://app.hub.example@evil.org/lab/",
            "https://app.hub.example:8443/lab/",
            "http://app.hub.example/lab/",
            "https://app.hub.example/lab/../admin/",
            "https://app.hub.example//evil.org/lab/",
        ] {
            assert_eq!(return_path(&other, bad), None, "{bad}");
        }
    }

    #[test]
    fn repeated_fields_are_all_kept() {
        let form = FormData(vec![
            ("projects".into(), "1".into()),
            ("email".into(), "a@b.org".into()),
            ("projects".into(), "2".into()),
        ]);
        assert_eq!(form.all("projects").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(form.get("email"), Some("a@b.org"));
        assert_eq!(form.text("missing"), "");
    }
}
