//! The language a page is written in, chosen per request:
//!
//! 1. the reader's own choice from the language switcher: a plain link `?lang=de` (no
//!    JavaScript) that also sets the cookie `{ns}_language`, which later pages follow;
//! 2. else the browser's `Accept-Language`, when it names a language we have;
//! 3. else, on the accept and decline pages (and their dead-link pages), the invitation's
//!    `language`;
//! 4. else `CBH_DEFAULT_LANGUAGE`.
//!
//! The middleware keeps what the request asks for in a task-local, so that whatever renders
//! below it (a handler, an extractor's rejection, the error page) writes in the same language
//! without threading it through every function; a handler that learns the invitation's
//! language adds it with [`consider_invitation`]. The page's language goes out as
//! `<html lang>` and as the `Content-Language` header.

use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use minijinja::Environment;

use crate::http::AppState;
use crate::http::extract::cookie_in;
use crate::i18n::{Catalogs, FluentValue};

/// The switcher's query parameter.
pub const QUERY: &str = "lang";
/// A year: the choice outlives the session, as a browser's language setting does.
const COOKIE_MAX_AGE: u32 = 365 * 24 * 3600;

/// What a page request asks for, and what its page was written in.
/// The page templates of an application, compiled with its catalogs (`render::environment`).
pub type Templates = Arc<Result<Environment<'static>, minijinja::Error>>;

pub struct PageLanguage {
    catalogs: Arc<Catalogs>,
    /// `None`: the built-in templates (`render` keeps them).
    templates: Option<Templates>,
    /// The switcher's choice (`?lang=`, else the cookie), exactly one of our languages.
    chosen: Option<String>,
    /// The `Accept-Language` tags, best first.
    accepted: Vec<String>,
    default: String,
    /// The invitation's language, on the accept and decline pages.
    invitation: Mutex<Option<String>>,
    /// The language of the page rendered, for `Content-Language`.
    rendered: Mutex<Option<String>>,
}

tokio::task_local! {
    static PAGE: Arc<PageLanguage>;
}

/// The built-in catalogs, for text outside a page request (the unit tests, a page error met
/// outside the pages' layer). They are in the binary and the unit tests load them, so this
/// cannot fail short of a bug those tests catch.
static BUILT_IN: LazyLock<Arc<Catalogs>> = LazyLock::new(|| {
    Arc::new(Catalogs::load(None).unwrap_or_else(|e| {
        tracing::error!(
            error = format!("{e:#}"),
            "the built-in catalogs do not load"
        );
        panic!("the built-in catalogs do not load: {e:#}")
    }))
});

impl PageLanguage {
    /// The language to write in, by the order of the module's documentation.
    fn resolve(&self) -> String {
        if let Some(chosen) = &self.chosen {
            return chosen.clone();
        }
        if names_one_of_ours(&self.catalogs, &self.accepted) {
            let accepted: Vec<&str> = self.accepted.iter().map(String::as_str).collect();
            return self.catalogs.negotiate(&accepted, &self.default);
        }
        let invitation = self.invitation.lock().ok().and_then(|lang| lang.clone());
        match invitation {
            Some(lang) => self.catalogs.negotiate(&[lang.as_str()], &self.default),
            None => self.default.clone(),
        }
    }
}

/// Whether one of `tags` is in a language we have (`de-AT` counts for `de`).
fn names_one_of_ours(catalogs: &Catalogs, tags: &[String]) -> bool {
    let ours = catalogs.languages();
    tags.iter().any(|tag| {
        let asked = primary(tag);
        ours.iter()
            .any(|lang| primary(lang).eq_ignore_ascii_case(asked))
    })
}

fn primary(tag: &str) -> &str {
    tag.split('-').next().unwrap_or(tag)
}

fn with_page<T>(f: impl FnOnce(&PageLanguage) -> T) -> Option<T> {
    PAGE.try_with(|page| f(page)).ok()
}

/// The language of the page being answered (the default language outside a page request).
pub fn current() -> String {
    with_page(PageLanguage::resolve).unwrap_or_else(|| crate::i18n::FALLBACK.to_owned())
}

/// `CBH_DEFAULT_LANGUAGE` (the fallback outside a page request).
pub(super) fn default_language() -> String {
    with_page(|page| page.default.clone()).unwrap_or_else(|| crate::i18n::FALLBACK.to_owned())
}

/// The catalogs of this request (the built-in ones outside a page request).
pub(super) fn catalogs() -> Arc<Catalogs> {
    with_page(|page| page.catalogs.clone()).unwrap_or_else(built_in)
}

/// The page templates of this request; `None`: the built-in ones.
pub(super) fn templates() -> Option<Templates> {
    with_page(|page| page.templates.clone()).flatten()
}

/// The built-in catalogs.
pub(super) fn built_in() -> Arc<Catalogs> {
    BUILT_IN.clone()
}

/// Records the language a page was rendered in, for the `Content-Language` header.
pub(super) fn rendered(lang: &str) {
    with_page(|page| {
        if let Ok(mut rendered) = page.rendered.lock() {
            *rendered = Some(lang.to_owned());
        }
    });
}

/// The accept and decline pages (and their 410 and superseded-link pages): the invitation's
/// language counts when the reader chose none and the browser names none of ours.
pub fn consider_invitation(lang: Option<&str>) {
    with_page(|page| {
        if let Ok(mut invitation) = page.invitation.lock() {
            *invitation = lang.map(str::to_owned);
        }
    });
}

/// A message of the page catalogs in the page's language.
pub fn text(key: &str) -> String {
    text_with(key, &[])
}

/// A message with arguments, in the page's language.
pub fn text_with(key: &str, args: &[(&str, FluentValue)]) -> String {
    catalogs().text(&current(), key, args)
}

/// The cookie that keeps the switcher's choice.
pub fn cookie_name(ns: &str) -> String {
    format!("{ns}_language")
}

/// The layer of every page: reads the switcher's choice and `Accept-Language`, runs the page
/// in their task-local, sets the cookie when `?lang=` chose a language of ours, and sends
/// `Content-Language` with the language the page was written in.
pub async fn middleware(
    State((state, templates)): State<(AppState, Templates)>,
    request: Request,
    next: Next,
) -> Response {
    let catalogs = state.catalogs.clone();
    let ours = catalogs.languages();
    let one_of_ours = |tag: &str| {
        ours.iter()
            .find(|lang| lang.eq_ignore_ascii_case(tag))
            .cloned()
    };
    // The namespace is the path's first segment; an unknown one gets its 404 below.
    let ns = request
        .uri()
        .path()
        .split('/')
        .nth(1)
        .filter(|ns| state.config.namespaces.iter().any(|n| n == ns))
        .map(str::to_owned);
    let asked = request.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == QUERY)
            .and_then(|(_, value)| one_of_ours(value.as_ref()))
    });
    let kept = ns
        .as_deref()
        .and_then(|ns| cookie_in(request.headers(), &cookie_name(ns)).and_then(one_of_ours));
    let accepted = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Catalogs::parse_accept_language)
        .unwrap_or_default();
    let page = Arc::new(PageLanguage {
        catalogs,
        templates: Some(templates),
        chosen: asked.clone().or(kept.clone()),
        accepted,
        default: state.config.default_language.clone(),
        invitation: Mutex::new(None),
        rendered: Mutex::new(None),
    });
    let mut response = PAGE.scope(page.clone(), next.run(request)).await;
    let headers = response.headers_mut();
    if let Some(lang) = page.rendered.lock().ok().and_then(|lang| lang.clone())
        && let Ok(value) = HeaderValue::from_str(&lang)
    {
        headers.insert(header::CONTENT_LANGUAGE, value);
    }
    headers.append(header::VARY, HeaderValue::from_static("Accept-Language"));
    if let (Some(ns), Some(lang)) = (ns, asked)
        && kept.as_ref() != Some(&lang)
    {
        let mut cookie = format!(
            "{}={lang}; {}; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax",
            cookie_name(&ns),
            state.config.cookies.scope(&ns)
        );
        if state.config.secure_cookies() {
            cookie.push_str("; Secure");
        }
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The languages of the switcher: each code with its name in its own language.
pub(super) fn switcher(catalogs: &Catalogs) -> Vec<(String, String)> {
    catalogs
        .languages()
        .into_iter()
        .map(|lang| {
            let name = catalogs.text(&lang, "language-name", &[]);
            (lang, name)
        })
        .collect()
}

/// Runs `f` as a page request whose reader chose `lang`.
#[cfg(test)]
pub(super) fn in_language<T>(lang: &str, f: impl FnOnce() -> T) -> T {
    let page = Arc::new(PageLanguage {
        catalogs: built_in(),
        templates: None,
        chosen: Some(lang.to_owned()),
        accepted: Vec::new(),
        default: crate::i18n::FALLBACK.to_owned(),
        invitation: Mutex::new(None),
        rendered: Mutex::new(None),
    });
    PAGE.sync_scope(page, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(chosen: Option<&str>, accepted: &[&str], invitation: Option<&str>) -> PageLanguage {
        PageLanguage {
            catalogs: built_in(),
            templates: None,
            chosen: chosen.map(str::to_owned),
            accepted: accepted.iter().map(|s| (*s).to_owned()).collect(),
            default: "en".into(),
            invitation: Mutex::new(invitation.map(str::to_owned)),
            rendered: Mutex::new(None),
        }
    }

    #[test]
    fn the_choice_then_the_browser_then_the_invitation_then_the_default() {
        assert_eq!(page(Some("fr"), &["de"], Some("de")).resolve(), "fr");
        assert_eq!(page(None, &["de-AT", "en"], Some("fr")).resolve(), "de");
        assert_eq!(page(None, &["ja", "fr-CA"], None).resolve(), "fr");
        // The browser names none of ours: the invitation's language.
        assert_eq!(page(None, &["ja"], Some("fr")).resolve(), "fr");
        assert_eq!(page(None, &[], Some("de-CH")).resolve(), "de");
        assert_eq!(page(None, &["ja"], None).resolve(), "en");
        assert_eq!(page(None, &[], Some("ja")).resolve(), "en");
    }

    #[test]
    fn every_shipped_language_has_every_key_of_the_english_pages() {
        let catalogs = built_in();
        let english = catalogs.keys("en");
        assert!(
            english.contains("accept-title"),
            "the pages' catalog is built in"
        );
        for lang in catalogs.languages() {
            let keys = catalogs.keys(&lang);
            let missing: Vec<&String> = english.difference(&keys).collect();
            assert!(missing.is_empty(), "{lang} lacks {missing:?}");
        }
    }

    #[test]
    fn every_language_is_listed_under_its_own_name() {
        let names = switcher(&built_in());
        for (lang, name) in [("de", "Deutsch"), ("en", "English"), ("fr", "Français")] {
            assert!(
                names.contains(&(lang.to_owned(), name.to_owned())),
                "{names:?}"
            );
        }
    }
}
