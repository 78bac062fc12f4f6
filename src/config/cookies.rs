//! How the session, CSRF and form-token cookies are named and scoped (`CBH_SESSION_COOKIE`,
//! `CBH_CSRF_COOKIE`, `CBH_COOKIE_PATH`, `CBH_COOKIE_DOMAIN`).
//!
//! The defaults are those of the original deployment, which the platform's web client reads:
//! `{ns}_sessionid` and `{ns}csrftoken` (Django's `SESSION_COOKIE_NAME` and `CSRF_COOKIE_NAME`
//! set per namespace) on Django's default path `/`, host-only. The name carries the namespace,
//! so two namespaces on one host keep their sessions apart although both cookies go to every
//! path; and the path `/` lets a reverse proxy's forward-auth sub-request see the session of a
//! request for any application of the platform.

/// The placeholder a name or path template carries for the namespace.
pub const NS_PLACEHOLDER: &str = "{ns}";

/// Validated cookie names and scope; names and path are templates in which `{ns}` stands for
/// the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    session: String,
    csrf: String,
    path: String,
    /// `None`: host-only (no `Domain` attribute).
    domain: Option<String>,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            session: "{ns}_sessionid".into(),
            csrf: "{ns}csrftoken".into(),
            path: "/".into(),
            domain: None,
        }
    }
}

/// The double-submit cookie of the pages' forms without a session (log in, accept, setup):
/// named like the CSRF cookie, per namespace, and scoped by the same path and domain.
const FORM_TOKEN: &str = "{ns}formtoken";

impl CookieSettings {
    /// Checks the templates against every namespace served: each name must be a valid cookie
    /// name, the three names distinct, the path must cover `/{ns}/` (where the cookies are
    /// read), and with several namespaces the names or the path must carry `{ns}`, or logging
    /// in to one namespace would overwrite the session of another.
    pub fn parse(
        session: &str,
        csrf: &str,
        path: &str,
        domain: Option<&str>,
        namespaces: &[String],
    ) -> Result<Self, String> {
        let settings = Self {
            session: session.trim().to_owned(),
            csrf: csrf.trim().to_owned(),
            path: path.trim().to_owned(),
            domain: domain
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(parse_domain)
                .transpose()?,
        };
        let per_namespace = settings.path.contains(NS_PLACEHOLDER);
        for (var, template) in [
            ("CBH_SESSION_COOKIE (--session-cookie)", &settings.session),
            ("CBH_CSRF_COOKIE (--csrf-cookie)", &settings.csrf),
        ] {
            if namespaces.len() > 1 && !per_namespace && !template.contains(NS_PLACEHOLDER) {
                return Err(format!(
                    "{var}: '{template}' must contain {NS_PLACEHOLDER} when several namespaces are \
                     served (or CBH_COOKIE_PATH must), so that each keeps its own cookie"
                ));
            }
        }
        for ns in namespaces {
            let names = [
                (
                    "CBH_SESSION_COOKIE (--session-cookie)",
                    settings.session_name(ns),
                ),
                ("CBH_CSRF_COOKIE (--csrf-cookie)", settings.csrf_name(ns)),
            ];
            for (var, name) in &names {
                if !is_cookie_name(name) {
                    return Err(format!(
                        "{var}: '{name}' is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"
                    ));
                }
            }
            if names[0].1 == names[1].1
                || names
                    .iter()
                    .any(|(_, n)| *n == settings.form_token_name(ns))
            {
                return Err(format!(
                    "CBH_SESSION_COOKIE and CBH_CSRF_COOKIE: the session, CSRF and form cookies \
                     of '{ns}' need distinct names (the form cookie is {})",
                    settings.form_token_name(ns)
                ));
            }
            let path = settings.path(ns);
            if !is_cookie_path(&path) {
                return Err(format!(
                    "CBH_COOKIE_PATH (--cookie-path): '{path}' is not a path (it starts with /, \
                     without spaces, ';' or control characters)"
                ));
            }
            if !path_matches(&path, &format!("/{ns}/")) {
                return Err(format!(
                    "CBH_COOKIE_PATH (--cookie-path): '{path}' does not cover /{ns}/, where the \
                     cookies are read"
                ));
            }
        }
        Ok(settings)
    }

    pub fn session_name(&self, ns: &str) -> String {
        self.session.replace(NS_PLACEHOLDER, ns)
    }

    pub fn csrf_name(&self, ns: &str) -> String {
        self.csrf.replace(NS_PLACEHOLDER, ns)
    }

    pub fn form_token_name(&self, ns: &str) -> String {
        FORM_TOKEN.replace(NS_PLACEHOLDER, ns)
    }

    pub fn path(&self, ns: &str) -> String {
        self.path.replace(NS_PLACEHOLDER, ns)
    }

    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The `Path` and, when set, `Domain` attributes of a `Set-Cookie` for namespace `ns`.
    pub fn scope(&self, ns: &str) -> String {
        match &self.domain {
            Some(domain) => format!("Path={}; Domain={domain}", self.path(ns)),
            None => format!("Path={}", self.path(ns)),
        }
    }
}

/// RFC 6265's cookie-name: an RFC 7230 token.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_cookie_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 256
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

/// RFC 6265 5.1.4: whether a cookie with path `cookie_path` is sent with a request for
/// `request_path`.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// A host name (`platform.example`); a leading dot, which browsers ignore, is dropped.
fn parse_domain(raw: &str) -> Result<String, String> {
    let domain = raw.strip_prefix('.').unwrap_or(raw).to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(format!(
            "CBH_COOKIE_DOMAIN (--cookie-domain): '{raw}' is not a host name such as platform.example"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespaces(list: &[&str]) -> Vec<String> {
        list.iter().map(|ns| (*ns).to_owned()).collect()
    }

    #[test]
    fn defaults_are_the_original_deployments_names_on_path_root_host_only() {
        let cookies = CookieSettings::default();
        assert_eq!(cookies.session_name("chembiohub"), "chembiohub_sessionid");
        assert_eq!(cookies.csrf_name("chembiohub"), "chembiohubcsrftoken");
        assert_eq!(cookies.form_token_name("chembiohub"), "chembiohubformtoken");
        assert_eq!(cookies.scope("chembiohub"), "Path=/");
        assert_eq!(
            CookieSettings::parse(
                "{ns}_sessionid",
                "{ns}csrftoken",
                "/",
                None,
                &namespaces(&["chembiohub", "other"])
            ),
            Ok(cookies)
        );
    }

    #[test]
    fn overrides_are_templates_and_the_domain_is_a_host_name() {
        let cookies = CookieSettings::parse(
            "sid_{ns}",
            "csrf_{ns}",
            "/{ns}/",
            Some(".Platform.example"),
            &namespaces(&["a", "b"]),
        )
        .expect("valid");
        assert_eq!(cookies.session_name("a"), "sid_a");
        assert_eq!(cookies.csrf_name("b"), "csrf_b");
        assert_eq!(cookies.scope("a"), "Path=/a/; Domain=platform.example");
        // One namespace: no placeholder needed.
        let single =
            CookieSettings::parse("sessionid", "csrftoken", "/", None, &namespaces(&["a"]))
                .expect("valid");
        assert_eq!(single.session_name("a"), "sessionid");
        // Several, with the namespace in the path only.
        assert!(
            CookieSettings::parse(
                "sessionid",
                "csrftoken",
                "/{ns}/",
                None,
                &namespaces(&["a", "b"])
            )
            .is_ok()
        );
    }

    #[test]
    fn bad_overrides_are_refused_naming_the_variable() {
        let two = namespaces(&["a", "b"]);
        for (session, csrf, path, domain, variable) in [
            (
                "sessionid",
                "{ns}csrftoken",
                "/",
                None,
                "CBH_SESSION_COOKIE",
            ),
            ("{ns}_sessionid", "csrftoken", "/", None, "CBH_CSRF_COOKIE"),
            ("{ns} id", "{ns}csrftoken", "/", None, "CBH_SESSION_COOKIE"),
            ("{ns};x", "{ns}csrftoken", "/", None, "CBH_SESSION_COOKIE"),
            (
                "{ns}x",
                "{ns}x",
                "/",
                None,
                "CBH_SESSION_COOKIE and CBH_CSRF_COOKIE",
            ),
            (
                "{ns}formtoken",
                "{ns}x",
                "/",
                None,
                "CBH_SESSION_COOKIE and CBH_CSRF_COOKIE",
            ),
            ("{ns}_s", "{ns}c", "app/", None, "CBH_COOKIE_PATH"),
            ("{ns}_s", "{ns}c", "/app/", None, "CBH_COOKIE_PATH"),
            ("{ns}_s", "{ns}c", "/a", None, "CBH_COOKIE_PATH"),
            ("{ns}_s", "{ns}c", "/;x", None, "CBH_COOKIE_PATH"),
            (
                "{ns}_s",
                "{ns}c",
                "/",
                Some("bad domain"),
                "CBH_COOKIE_DOMAIN",
            ),
            ("{ns}_s", "{ns}c", "/", Some("x..y"), "CBH_COOKIE_DOMAIN"),
            ("{ns}_s", "{ns}c", "/", Some("-x.y"), "CBH_COOKIE_DOMAIN"),
        ] {
            let error = CookieSettings::parse(session, csrf, path, domain, &two)
                .expect_err(&format!("{session} {csrf} {path} {domain:?}"));
            assert!(error.starts_with(variable), "{error}");
        }
        // `/a` covers `/a/` but not `/ab/`.
        assert!(path_matches("/a", "/a/"));
        assert!(!path_matches("/a", "/ab/"));
    }
}
