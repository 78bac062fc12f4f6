//! The pages over plain HTTP (no browser): security headers, CSRF on every form, open-redirect
//! protection, HTML errors, `CBH_APP_URL`, and the first-run setup link's life.

use cbh_invite::config::ServeRole;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::support::{Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app, spawn_app_with};

/// A browser-like client: keeps cookies, does not follow redirects (so tests see them).
struct PageClient {
    client: reqwest::Client,
    base: String,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the hidden field `name` in the page's first form that has one.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end].to_owned()
    }

    fn sets_cookie(&self, name: &str) -> bool {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.starts_with(&format!("{name}=")) && !c.starts_with(&format!("{name}=;")))
    }
}

impl PageClient {
    fn new(app: &TestApp) -> Self {
        Self {
            client: crate::support::agent::client_builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: app.base.clone(),
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&self, path_or_url: &str) -> Page {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        Self::page(self.client.get(url).send().await.expect("sent")).await
    }

    async fn post<F: serde::Serialize + ?Sized>(&self, path_or_url: &str, form: &F) -> Page {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        Self::page(self.client.post(url).form(form).send().await.expect("sent")).await
    }

    /// Logs in through the login page.
    async fn log_in(&self, email: &str, password: &str) {
        let login = self.get(&format!("/{NS}/login/")).await;
        let token = login.hidden("form_token");
        let done = self
            .post(
                &format!("/{NS}/login/"),
                &[
                    ("form_token", token.as_str()),
                    ("email", email),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    }
}

fn assert_page_headers(page: &Page, what: &str) {
    let csp = page.header("content-security-policy");
    assert!(!csp.is_empty(), "{what}: no CSP");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert_eq!(page.header("x-content-type-options"), "nosniff", "{what}");
    // Framing is refused twice (CSP and the older header), links leak nowhere through the
    // referrer, and no cache keeps a page that may hold a session's data or a secret link.
    assert_eq!(page.header("x-frame-options"), "DENY", "{what}");
    assert_eq!(page.header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(page.header("cache-control"), "no-store", "{what}");
    if page.status == StatusCode::OK || page.status.is_client_error() {
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{what}: pages answer HTML, not JSON"
        );
        assert!(
            !page.body.contains(" style=") && !page.body.contains("<script>"),
            "{what}: no inline style or script"
        );
    }
}

async fn every_page_has_a_strict_csp_and_nosniff_and_the_assets_are_served(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let link = app
        .smtp
        .wait_for(1, std::time::Duration::from_secs(10))
        .await[0]
        .accept_link()
        .expect("link");
    let browser = PageClient::new(&app);
    for path in [
        format!("/{NS}/login/"),
        format!("/{NS}/invite/"),
        format!("/{NS}/welcome/"),
        format!("/{NS}/accept/not-a-token"),
        format!("/{NS}/setup/not-a-token"),
        format!("/{NS}/"),
    ] {
        assert_page_headers(&browser.get(&path).await, &path);
    }
    assert_page_headers(&browser.get(&app.local(&link)).await, "accept page");
    browser.log_in("ada@lab.example", PASSWORD).await;
    for path in [format!("/{NS}/invite/"), format!("/{NS}/welcome/")] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_page_headers(&page, &path);
    }

    let without_slash = browser
        .get(&format!("/{NS}/login?next=%2F{NS}%2Fwelcome%2F"))
        .await;
    assert_eq!(without_slash.status, StatusCode::SEE_OTHER);
    assert_eq!(
        without_slash.location(),
        format!("/{NS}/login/?next=%2F{NS}%2Fwelcome%2F")
    );

    let css = browser.get("/static/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    // Assets hold no secret: they may be cached, unlike the pages.
    assert!(css.header("cache-control").contains("max-age"));
    assert!(css.header("content-type").starts_with("text/css"));
    let js = browser.get("/static/invite.js").await;
    assert!(js.header("content-type").starts_with("text/javascript"));
}

async fn the_accept_page_is_private_and_a_dead_link_answers_410_naming_the_inviter(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let mail = &app
        .smtp
        .wait_for(1, std::time::Duration::from_secs(10))
        .await[0];
    let link = app.local(&mail.accept_link().expect("link"));
    let token = mail.accept_token().expect("token");
    let browser = PageClient::new(&app);

    let live = browser.get(&link).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.header("referrer-policy"), "no-referrer");
    assert_eq!(live.header("cache-control"), "no-store");
    assert!(live.body.contains("Ada Lovelace") && live.body.contains("Kinase screen"));

    let unknown = browser
        .get(&format!("/{NS}/accept/{}", "A".repeat(43)))
        .await;
    assert_eq!(unknown.status, StatusCode::GONE);
    assert!(unknown.body.contains("Ask the person who invited you"));

    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    let used = browser.get(&link).await;
    assert_eq!(used.status, StatusCode::GONE);
    assert_eq!(used.header("cache-control"), "no-store");
    assert!(used.body.contains("Ada Lovelace") && used.body.contains("ada@lab.example"));
}

async fn accepting_on_the_page_logs_in_and_goes_to_the_app_url_when_set(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.app_url = Some("https://app.example.org/#/projects".into())
    })
    .await;
    let (editor, project) = app.editor_with_project().await;
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let link = app.local(
        &app.smtp
            .wait_for(1, std::time::Duration::from_secs(10))
            .await[0]
            .accept_link()
            .expect("link"),
    );
    let browser = PageClient::new(&app);
    let form = browser.get(&link).await;
    assert!(
        form.header("content-security-policy")
            .contains("form-action 'self' https://app.example.org;"),
        "the redirect after the form is allowed"
    );
    let token = form.hidden("form_token");

    let mismatch = browser
        .post(
            &link,
            &[
                ("form_token", token.as_str()),
                ("password", "a good long password"),
                ("password_again", "another long password"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert!(mismatch.body.contains("The two passwords are not the same"));

    let accepted = browser
        .post(
            &link,
            &[
                ("form_token", token.as_str()),
                ("password", "a good long password"),
                ("password_again", "a good long password"),
            ],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    assert_eq!(accepted.location(), "https://app.example.org/#/projects");
    assert!(
        accepted.sets_cookie(&format!("{NS}_sessionid"))
            && accepted.sets_cookie(&format!("{NS}csrftoken"))
    );
    let me = browser.get(&format!("/{NS}/api/session/")).await;
    assert_eq!(me.status, StatusCode::OK, "logged in: {}", me.body);
}

async fn the_login_page_follows_only_paths_of_its_own_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let browser = PageClient::new(&app);

    let shown = browser
        .get(&format!("/{NS}/login/?next=https%3A%2F%2Fevil.example%2F"))
        .await;
    assert_eq!(shown.hidden("next"), "", "an absolute URL is dropped");
    let token = shown.hidden("form_token");

    for (next, expected) in [
        ("https://evil.example/".to_owned(), format!("/{NS}/invite/")),
        ("//evil.example/x".to_owned(), format!("/{NS}/invite/")),
        ("/\\evil.example".to_owned(), format!("/{NS}/invite/")),
        ("/\\/evil.example".to_owned(), format!("/{NS}/invite/")),
        ("/a\tb".to_owned(), format!("/{NS}/invite/")),
        // Any path of this origin: the platform's apps live beside the namespace.
        ("/other/invite/".to_owned(), "/other/invite/".to_owned()),
        (format!("/{NS}/welcome/"), format!("/{NS}/welcome/")),
    ] {
        let done = browser
            .post(
                &format!("/{NS}/login/"),
                &[
                    ("form_token", token.as_str()),
                    ("email", "ada@lab.example"),
                    ("password", PASSWORD),
                    ("next", next.as_str()),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(done.location(), expected, "next={next}");
    }
}

async fn a_form_without_its_csrf_token_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let browser = PageClient::new(&app);

    // Login without the cookie and field of the login page: a cross-site post looks like this.
    let forged_login = browser
        .post(
            &format!("/{NS}/login/"),
            &[("email", "ada@lab.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(forged_login.status, StatusCode::FORBIDDEN);
    assert!(!forged_login.sets_cookie(&format!("{NS}_sessionid")));
    assert!(forged_login.body.contains("This form has expired"));

    browser.log_in("ada@lab.example", PASSWORD).await;
    let project_id = project.0.to_string();
    let forged_invite = browser
        .post(
            &format!("/{NS}/invite/"),
            &[
                ("email", "bob@example.org"),
                ("projects", project_id.as_str()),
            ],
        )
        .await;
    assert_eq!(forged_invite.status, StatusCode::FORBIDDEN);
    assert!(
        forged_invite
            .header("content-type")
            .starts_with("text/html")
    );
    let listed = json_with_status(editor.get(&format!("/{NS}/api/invitations/")).await, 200).await;
    assert_eq!(listed["meta"]["total_count"], 0, "nothing was invited");

    let page = browser.get(&format!("/{NS}/invite/")).await;
    let csrf = page.hidden("csrfmiddlewaretoken");
    let invited = browser
        .post(
            &format!("/{NS}/invite/"),
            &[
                ("csrfmiddlewaretoken", csrf.as_str()),
                ("email", "bob@example.org"),
                ("projects", project_id.as_str()),
            ],
        )
        .await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER);
    assert!(
        invited
            .location()
            .starts_with(&format!("/{NS}/invite/?done="))
    );
}

async fn page_errors_are_html_with_the_form_and_the_message(backend: Backend) {
    let app = spawn_app(backend).await;
    app.editor_with_project().await;
    let browser = PageClient::new(&app);
    browser.log_in("ada@lab.example", PASSWORD).await;
    let csrf = browser
        .get(&format!("/{NS}/invite/"))
        .await
        .hidden("csrfmiddlewaretoken");

    let bad_email = browser
        .post(
            &format!("/{NS}/invite/"),
            &[
                ("csrfmiddlewaretoken", csrf.as_str()),
                ("email", "not an <email>"),
                ("first_name", "<b>Bob</b>"),
            ],
        )
        .await;
    assert_eq!(bad_email.status, StatusCode::BAD_REQUEST);
    assert!(bad_email.header("content-type").starts_with("text/html"));
    assert!(bad_email.body.contains("is not a valid email address"));
    assert!(
        bad_email
            .body
            .contains("value=\"&lt;b&gt;Bob&lt;&#x2f;b&gt;\""),
        "the form is shown again with what was typed, escaped"
    );
    assert!(!bad_email.body.contains("<b>Bob"));

    let missing = browser
        .post(
            &format!("/{NS}/invite/999999/revoke/"),
            &[("csrfmiddlewaretoken", csrf.as_str())],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("There is no such invitation."));

    let unknown_namespace = browser.get("/nowhere/login/").await;
    assert_eq!(unknown_namespace.status, StatusCode::NOT_FOUND);
    assert!(
        unknown_namespace
            .header("content-type")
            .starts_with("text/html")
    );
}

async fn the_setup_link_works_once_and_none_is_issued_once_a_user_exists(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let setup = app.setup_url(NS);
    let browser = PageClient::new(&app);

    let form = browser.get(&setup).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.header("cache-control"), "no-store");
    let token = form.hidden("form_token");
    let fields = |password: &str| {
        [
            ("form_token", token.clone()),
            ("email", "root@lab.example".to_owned()),
            ("password", password.to_owned()),
            ("password_again", password.to_owned()),
        ]
    };
    let refused = browser.post(&setup, &fields("short")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("at least 10 characters"));

    let good_form = fields("a good long password");
    let created = browser.post(&setup, &good_form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(created.location(), format!("/{NS}/invite/"));
    assert!(created.sets_cookie(&format!("{NS}_sessionid")));
    let root = app.user_by_email("root@lab.example").await;
    assert!(root.user.is_superuser);

    assert_eq!(browser.get(&setup).await.status, StatusCode::GONE);
    assert_eq!(
        browser.post(&setup, &good_form).await.status,
        StatusCode::GONE
    );

    // A restart issues a link only for the namespace that still has no user.
    app.restart().await;
    let namespaces: Vec<&str> = app
        .setup_links
        .iter()
        .map(|link| link.namespace.as_str())
        .collect();
    assert_eq!(namespaces, ["other"]);
}

async fn a_worker_only_node_issues_no_setup_link(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.role = ServeRole::Worker).await;
    assert!(app.setup_links.is_empty());
}

backend_tests!(
    every_page_has_a_strict_csp_and_nosniff_and_the_assets_are_served,
    the_accept_page_is_private_and_a_dead_link_answers_410_naming_the_inviter,
    accepting_on_the_page_logs_in_and_goes_to_the_app_url_when_set,
    the_login_page_follows_only_paths_of_its_own_origin,
    a_form_without_its_csrf_token_is_refused,
    page_errors_are_html_with_the_form_and_the_message,
    the_setup_link_works_once_and_none_is_issued_once_a_user_exists,
    a_worker_only_node_issues_no_setup_link,
);
