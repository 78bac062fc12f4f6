//! Rendering of the page templates (`templates/pages/`, built into the binary), and the error
//! type of the pages: unlike the JSON API's `ApiError`, it answers with an HTML page, or with a
//! redirect to the login page that brings the person back afterwards.

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use super::language;
use crate::domain::User;
use crate::http::{ApiError, context as request_context};
use crate::i18n::Catalogs;
use crate::mail::outbox::PLATFORM_NAME;
use crate::store::StoreError;

const PAGES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../templates/pages/base.html"),
    ),
    (
        "messages.html",
        include_str!("../../../templates/pages/messages.html"),
    ),
    (
        "invitee_language.html",
        include_str!("../../../templates/pages/invitee_language.html"),
    ),
    (
        "login.html",
        include_str!("../../../templates/pages/login.html"),
    ),
    (
        "invite.html",
        include_str!("../../../templates/pages/invite.html"),
    ),
    (
        "bulk_form.html",
        include_str!("../../../templates/pages/bulk_form.html"),
    ),
    (
        "bulk_preview.html",
        include_str!("../../../templates/pages/bulk_preview.html"),
    ),
    (
        "bulk_results.html",
        include_str!("../../../templates/pages/bulk_results.html"),
    ),
    (
        "accept.html",
        include_str!("../../../templates/pages/accept.html"),
    ),
    (
        "gone.html",
        include_str!("../../../templates/pages/gone.html"),
    ),
    (
        "superseded.html",
        include_str!("../../../templates/pages/superseded.html"),
    ),
    (
        "welcome.html",
        include_str!("../../../templates/pages/welcome.html"),
    ),
    (
        "setup.html",
        include_str!("../../../templates/pages/setup.html"),
    ),
    (
        "projects.html",
        include_str!("../../../templates/pages/projects.html"),
    ),
    (
        "project.html",
        include_str!("../../../templates/pages/project.html"),
    ),
    (
        "users.html",
        include_str!("../../../templates/pages/users.html"),
    ),
    (
        "error.html",
        include_str!("../../../templates/pages/error.html"),
    ),
    (
        "decline.html",
        include_str!("../../../templates/pages/decline.html"),
    ),
    (
        "declined.html",
        include_str!("../../../templates/pages/declined.html"),
    ),
    (
        "unsubscribe.html",
        include_str!("../../../templates/pages/unsubscribe.html"),
    ),
];

/// The page templates with the built-in catalogs, for a page rendered outside the pages' layer.
static BUILT_IN: LazyLock<language::Templates> =
    LazyLock::new(|| Arc::new(environment(&language::built_in())));

/// The page templates with the catalogs' `t()`, `date` and `datetime`; compiled once per
/// application (`pages::router`). A template that does not compile is a bug caught by the unit
/// tests below; should one slip through, each page answers 500 instead of the process stopping.
pub fn environment(catalogs: &Arc<Catalogs>) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // A misspelt variable fails the render (and the tests) instead of printing nothing;
    // `{% if x %}` on a missing value is still allowed.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    for (name, source) in PAGES {
        env.add_template(name, source)?;
    }
    catalogs.register(&mut env);
    Ok(env)
}

/// The person a page is shown to, for the header.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub name: String,
    pub email: String,
    /// Whether the header links to the users page.
    pub superuser: bool,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            name: user.display_name(),
            email: user.email.to_string(),
            superuser: user.is_superuser,
        }
    }
}

/// What every page's frame (`base.html`) shows.
pub struct Frame<'a> {
    /// In the page's language (`language::text`).
    pub title: String,
    pub ns: &'a str,
    /// The logged-in person and the CSRF token of their session (for the "Log out" button).
    pub session: Option<(&'a User, &'a str)>,
}

/// Renders `template` (`.html`: every value is escaped) with the frame's values and `values`.
/// The page is written in the request's language (`language::current`).
pub fn render(template: &str, frame: &Frame<'_>, values: Value) -> Result<String, PageError> {
    let catalogs = language::catalogs();
    let templates = language::templates().unwrap_or_else(|| BUILT_IN.clone());
    let env = templates
        .as_ref()
        .as_ref()
        .map_err(|e| PageError::Internal(anyhow::anyhow!("page templates: {e:#}")))?;
    let lang = language::current();
    let languages: Vec<Value> = language::switcher(&catalogs)
        .into_iter()
        .map(|(code, name)| context! { code => code, name => name })
        .collect();
    let (user, csrf) = match frame.session {
        Some((user, csrf)) => (Some(UserView::from(user)), Some(csrf)),
        None => (None, None),
    };
    let context = context! {
        lang => &lang,
        languages => languages,
        // The language of a page, or an invitation, that names none: `CBH_DEFAULT_LANGUAGE`.
        default_language_name => catalogs.text(&language::default_language(), "language-name", &[]),
        title => &frame.title,
        platform => PLATFORM_NAME,
        ns => frame.ns,
        user => user,
        csrf => csrf,
        ..values
    };
    let html = env
        .get_template(template)
        .and_then(|t| t.render(context))
        .map_err(|e| PageError::Internal(anyhow::anyhow!("rendering page {template}: {e:#}")))?;
    language::rendered(&lang);
    Ok(html)
}

/// An HTML page with a status.
pub fn page(
    status: StatusCode,
    template: &str,
    frame: &Frame<'_>,
    values: Value,
) -> Result<Response, PageError> {
    Ok((status, Html(render(template, frame, values)?)).into_response())
}

/// Why a page could not be shown as asked.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No valid session: the login page, then back to `next` (a local path).
    #[error("login required")]
    LoginRequired { ns: String, next: Option<String> },
    /// A refusal shown as an error page with its status.
    #[error("{message}")]
    Status {
        status: StatusCode,
        ns: Option<String>,
        message: String,
    },
    #[error("the service is temporarily unavailable, try again shortly")]
    Unavailable(#[source] anyhow::Error),
    #[error("an internal error occurred")]
    Internal(#[source] anyhow::Error),
}

impl PageError {
    pub fn not_found(ns: Option<&str>) -> Self {
        PageError::Status {
            status: StatusCode::NOT_FOUND,
            ns: ns.map(str::to_owned),
            message: language::text("error-no-such-page"),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Internal(cause) => PageError::Internal(cause),
            ApiError::Unavailable(cause) => PageError::Unavailable(cause),
            other => PageError::Status {
                status: other.status(),
                ns: None,
                message: other.to_string(),
            },
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        // A full password queue comes up through handlers as an internal error: it is a 503.
        if let PageError::Internal(cause) = &self
            && cause
                .downcast_ref::<crate::http::PasswordWorkBusy>()
                .is_some()
        {
            let busy = PageError::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ns: None,
                message: cause.to_string(),
            };
            return busy.into_response();
        }
        let (status, ns, title) = match &self {
            PageError::LoginRequired { ns, next } => {
                return Redirect::to(&login_url(ns, next.as_deref())).into_response();
            }
            PageError::Status { status, ns, .. } => (*status, ns.clone(), status_title(*status)),
            PageError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                language::text("error-title-unavailable"),
            ),
            PageError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                language::text("error-title"),
            ),
        };
        let ctx = request_context::current();
        if let PageError::Internal(cause) | PageError::Unavailable(cause) = &self {
            tracing::error!(request_id = %ctx.request_id, error = format!("{cause:#}"), "page failed");
        }
        let message = match &self {
            PageError::Unavailable(_) => language::text("error-unavailable"),
            PageError::Internal(_) => language::text("error-internal"),
            _ => self.to_string(),
        };
        let frame = Frame {
            title,
            ns: ns.as_deref().unwrap_or(""),
            session: None,
        };
        let values = context! { message => &message, request_id => &ctx.request_id };
        let mut response = match render("error.html", &frame, values) {
            Ok(html) => (status, Html(html)).into_response(),
            // The error page itself failed: plain text still tells the person what happened.
            Err(_) => {
                (status, format!("{message} (request id {})", ctx.request_id)).into_response()
            }
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The error page's heading: the status in the page's language (its English reason phrase for
/// a status the catalogs do not name).
fn status_title(status: StatusCode) -> String {
    let key = format!("error-title-{}", status.as_u16());
    if language::catalogs().has(crate::i18n::FALLBACK, &key) {
        language::text(&key)
    } else {
        status
            .canonical_reason()
            .map_or_else(|| language::text("error-title"), str::to_owned)
    }
}

/// The login page, with the local path to come back to.
pub fn login_url(ns: &str, next: Option<&str>) -> String {
    match next {
        Some(next) => {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            format!("/{ns}/login/?{query}")
        }
        None => format!("/{ns}/login/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, PersonName, UserId};

    fn user() -> User {
        User {
            id: UserId(1),
            email: EmailAddress::parse("ada@lab.example").expect("valid"),
            first_name: PersonName::from_trusted("<b>Ada</b>".into()),
            last_name: PersonName::default(),
            is_superuser: false,
            is_active: true,
        }
    }

    fn frame<'a>(user: &'a User) -> Frame<'a> {
        Frame {
            title: "Test".into(),
            ns: "chembiohub",
            session: Some((user, "csrf-token")),
        }
    }

    /// Every page template, with values that take most of its branches.
    fn cases() -> Vec<(&'static str, Value)> {
        let person = context! { name => "<i>Ada</i>", email => "ada@lab.example" };
        vec![
            (
                "login.html",
                context! { email => "<x>", next => "/chembiohub/invite/", form_token => "t", notice => (), error => "Login failed" },
            ),
            (
                "invite.html",
                context! {
                    form => context! { email => "<x>", first_name => "", last_name => "", projects => vec![1], role => "editor", language => "de" },
                    projects => vec![context! { id => 1, name => "<script>", selected => true }],
                    roles => vec![context! { value => "viewer", selected => false }, context! { value => "editor", selected => true }],
                    invitations => vec![context! {
                        id => 1, email => "bob@x.org", name => "Bob", projects => vec!["P"],
                        created_iso => "2026-01-01T10:00:00.000Z",
                        created_by => "Ada", status => "pending",
                        delivery => context! { status => "failed", attempts => 3, last_error => "550 <no>" },
                        can_change => true,
                    }],
                    everyone => false, conflict => true, notice => (), error => "User already exists",
                    newer => (), older => "/chembiohub/invite/?offset=20",
                },
            ),
            (
                "bulk_preview.html",
                context! {
                    rows => vec![context! { line => 2, email => "<x>@x.org", first_name => "<x>", last_name => "", error => "<x> is bad" }],
                    valid => 1, invalid => 1, roster => "<x>@x.org\n<script>", projects => vec![1],
                    chosen => vec!["<x>"], notice => (), error => (),
                },
            ),
            (
                "bulk_results.html",
                context! {
                    results => vec![context! { line => 2, email => "<x>@x.org", status => 400, outcome => "<x>", invited => false }],
                    summary => "0 invited, 1 refused, 1 in all", csv => "<script>", notice => (), error => (),
                },
            ),
            (
                "accept.html",
                context! { inviter => person.clone(), projects => vec!["P1", "P2"], email => "bob@x.org", token => "tok", form_token => "t", min_password => 10, notice => (), error => () },
            ),
            (
                "gone.html",
                context! { explanation => "gone", inviter => person.clone(), ask => () },
            ),
            (
                "superseded.html",
                context! { sent_on_iso => "2026-01-01T10:00:00.000Z", offer => true, token => "tok", form_token => "t", notice => (), error => "<x>" },
            ),
            (
                "welcome.html",
                context! { memberships => vec![context! { name => "P1", role => "viewer" }], can_invite => false, notify_outcomes => true, notice => "<x>", error => () },
            ),
            (
                "setup.html",
                context! { form => context! { email => "", first_name => "", last_name => "" }, token => "tok", form_token => "t", min_password => 10, notice => (), error => () },
            ),
            (
                "projects.html",
                context! { projects => vec![context! { id => 1, name => "<x>", role => "owner", open => true }], can_create => true, name => "<x>", notice => (), error => "<x>" },
            ),
            (
                "project.html",
                context! {
                    project => context! { id => 1, name => "<x>" },
                    members => vec![context! { id => 2, email => "<x>@x.org", name => "<x>", status => "active", role => "owner", is_me => false }],
                    can_manage => true, roles => vec!["viewer", "editor", "owner"], notice => (), error => (),
                },
            ),
            (
                "users.html",
                context! {
                    users => vec![context! { id => 2, email => "<x>@x.org", name => "<x>", status => "deactivated", superuser => false, is_me => false }],
                    notice => "<x>", error => (), newer => (), older => "/chembiohub/users/?offset=100",
                },
            ),
            (
                "error.html",
                context! { message => "<oops>", request_id => "r1" },
            ),
            (
                "decline.html",
                context! { inviter => person.clone(), projects => vec!["<x>"], email => "bob@x.org", token => "tok", form_token => "t", notice => (), error => () },
            ),
            (
                "decline.html",
                context! { inviter => person.clone(), projects => Vec::<String>::new(), email => "bob@x.org", token => "tok", form_token => "t", notice => (), error => "<x>" },
            ),
            (
                "declined.html",
                context! { outcome => "<x>", suppressed => true },
            ),
            (
                "unsubscribe.html",
                context! { email => "<x>@x.org", token => "tok" },
            ),
            (
                "accept.html",
                context! { inviter => person.clone(), projects => Vec::<String>::new(), email => "bob@x.org", token => "tok", form_token => "t", min_password => 10, notice => (), error => () },
            ),
        ]
    }

    #[test]
    fn every_page_renders_with_its_values_and_escapes_them() {
        let user = user();
        for (template, values) in cases() {
            let html = render(template, &frame(&user), values)
                .unwrap_or_else(|e| panic!("{template}: {e:?}"));
            assert!(
                html.contains("&lt;b&gt;Ada&lt;&#x2f;b&gt;"),
                "{template} escapes the user's name"
            );
            assert!(
                !html.contains("<script>") && !html.contains("<i>") && !html.contains("<x>"),
                "{template}: {html}"
            );
        }
    }

    #[test]
    fn every_page_renders_in_every_shipped_language_with_no_key_missing() {
        let user = user();
        let catalogs = language::built_in();
        let languages = catalogs.languages();
        assert!(languages.len() >= 3, "{languages:?}");
        for lang in &languages {
            for (template, values) in cases() {
                let html = language::in_language(lang, || render(template, &frame(&user), values))
                    .unwrap_or_else(|e| panic!("{template} in {lang}: {e:?}"));
                assert!(
                    html.contains(&format!("<html lang=\"{lang}\">")),
                    "{template} in {lang}"
                );
                // A message no catalog has would print its key, e.g. `accept-title`.
                assert!(
                    !html.contains("{$"),
                    "{template} in {lang}: an argument is missing"
                );
            }
        }
        let fell_back = catalogs.fallbacks();
        assert!(
            fell_back.is_empty(),
            "messages missing from a catalog: {fell_back:?}"
        );
    }

    #[test]
    fn login_url_carries_the_path_to_come_back_to() {
        assert_eq!(
            login_url("ns", Some("/ns/invite/?offset=20")),
            "/ns/login/?next=%2Fns%2Finvite%2F%3Foffset%3D20"
        );
        assert_eq!(login_url("ns", None), "/ns/login/");
    }
}
