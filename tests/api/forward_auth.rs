//! Forward-auth (`GET /{ns}/auth/verify`): directly, and through a real nginx running the
//! README's configuration in front of cbh-invite and an application that echoes its headers.

use std::collections::BTreeSet;
use std::sync::Arc;

use cbh_invite::domain::{Role, Timestamp};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::agent::client_builder;
use crate::support::nginx::{EchoServer, Nginx, echoed_headers, forward_auth_server};
use crate::support::wait::free_port;
use crate::support::{Backend, NS, PASSWORD, json_with_status, spawn_app, spawn_app_with};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii header")
}

fn projects_set(list: &str) -> BTreeSet<String> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn verify_names_the_caller_of_a_session_or_key_and_only_reads(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app
        .add_user("ada@lab.example", "José", "Müller", false)
        .await;
    let kinase = app.add_project("Kinase screen").await;
    let assay = app.add_project("Assay panel").await;
    app.grant(&ada, kinase, Role::Viewer).await;
    app.grant(&ada, assay, Role::Editor).await;
    let verify = format!("/{NS}/auth/verify");

    // No credentials: 401, with the API's error body.
    let anonymous = app.anonymous().get(&verify).await;
    json_with_status(anonymous, 401).await;

    let session = app.login("ada@lab.example", PASSWORD).await;
    let audit_before = app
        .store
        .audit_since(Timestamp(0), 10_000)
        .await
        .expect("audit")
        .len();
    for _ in 0..5 {
        let answer = session.get(&verify).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(header(&answer, "x-auth-user-id"), ada.id.0.to_string());
        assert_eq!(header(&answer, "x-auth-email"), "ada@lab.example");
        assert_eq!(header(&answer, "x-auth-name"), "Jos%C3%A9 M%C3%BCller");
        assert_eq!(header(&answer, "x-auth-superuser"), "false");
        assert_eq!(
            projects_set(header(&answer, "x-auth-projects")),
            projects_set(&format!("{}:viewer,{}:editor", kinase.0, assay.0))
        );
        // A session renewed on the way would come back as a cookie.
        assert!(answer.headers().get("set-cookie").is_none());
        assert!(answer.bytes().await.expect("body").is_empty());
    }
    let audit_after = app
        .store
        .audit_since(Timestamp(0), 10_000)
        .await
        .expect("audit")
        .len();
    assert_eq!(audit_before, audit_after, "forward-auth records nothing");

    // An API key works the same way; a superuser without projects says so.
    let root = app.add_user("root@lab.example", "Root", "", true).await;
    let key = app.api_key_agent(&root).await;
    let answer = key.get(&verify).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(header(&answer, "x-auth-superuser"), "true");
    assert_eq!(header(&answer, "x-auth-name"), "Root");
    assert_eq!(header(&answer, "x-auth-projects"), "");
    let bad_key = app
        .anonymous()
        .request(reqwest::Method::GET, &verify)
        .header("authorization", "ApiKey root@lab.example:nope")
        .send()
        .await
        .expect("sent");
    json_with_status(bad_key, 401).await;

    // Logged out: 401 again.
    assert_eq!(
        session
            .delete(&format!("/{NS}/api/session/"))
            .await
            .status(),
        204
    );
    json_with_status(session.get(&verify).await, 401).await;
}

async fn verify_redirects_to_the_login_page_only_with_a_returnable_next(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.app_url = Some("http://invite.test.example/app/".into());
    })
    .await;
    let client = client_builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let login = "http://invite.test.example/chembiohub/login/";
    let redirect = |uri_header: &'static str, uri: &'static str| {
        client
            .get(format!("{}/{NS}/auth/verify?redirect=1", app.base))
            .header(uri_header, uri)
            .send()
    };
    for (uri_header, uri, location) in [
        (
            "x-forwarded-uri",
            "/app/page?x=1&y=2",
            format!("{login}?next=%2Fapp%2Fpage%3Fx%3D1%26y%3D2"),
        ),
        (
            "x-original-uri",
            "/chembiohub/invite/",
            format!("{login}?next=%2Fchembiohub%2Finvite%2F"),
        ),
        // Any path of this origin: the platform's apps live beside the namespace.
        (
            "x-forwarded-uri",
            "/other/",
            format!("{login}?next=%2Fother%2F"),
        ),
        // Another origin, or not a path: the login page without `next`.
        ("x-forwarded-uri", "//evil.example/app/", login.to_owned()),
        ("x-forwarded-uri", "/\\evil.example/app/", login.to_owned()),
        (
            "x-forwarded-uri",
            "https://evil.example/app/",
            login.to_owned(),
        ),
        ("x-forwarded-uri", "/app/../admin/", login.to_owned()),
    ] {
        let answer = redirect(uri_header, uri).await.expect("sent");
        assert_eq!(answer.status(), 302, "{uri}");
        assert_eq!(header(&answer, "location"), location, "{uri}");
    }
    // Without `redirect=1`: 401, as nginx needs.
    let plain = client
        .get(format!("{}/{NS}/auth/verify?redirect=0", app.base))
        .header("x-forwarded-uri", "/app/")
        .send()
        .await
        .expect("sent");
    json_with_status(plain, 401).await;

    // Without CBH_APP_URL an app on this origin still gets its `next`.
    let bare = spawn_app_with(backend, |settings| settings.app_url = None).await;
    let answer = client
        .get(format!("{}/{NS}/auth/verify?redirect=1", bare.base))
        .header("x-forwarded-uri", "/lab/runs/7")
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 302);
    let location = header(&answer, "location");
    assert!(
        location.ends_with("/login/?next=%2Flab%2Fruns%2F7"),
        "{location}"
    );
}

async fn verify_returns_to_an_app_on_another_host_under_the_app_url(backend: Backend) {
    // Traefik and Caddy name the original host; an app on a host of its own shares the cookies
    // through CBH_COOKIE_DOMAIN.
    let app = spawn_app_with(backend, |settings| {
        settings.public_url = Some("https://auth.hub.example".into());
        settings.app_url = Some("https://lab.hub.example/".into());
    })
    .await;
    let client = client_builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let login = "https://auth.hub.example/chembiohub/login/";
    for (host, uri, location) in [
        (
            "lab.hub.example",
            "/runs/7?tab=a",
            format!("{login}?next=https%3A%2F%2Flab.hub.example%2Fruns%2F7%3Ftab%3Da"),
        ),
        // This service's own host: a path of this origin.
        (
            "auth.hub.example",
            "/other/x",
            format!("{login}?next=%2Fother%2Fx"),
        ),
        // Another host is not the app, and its path is not this origin's: no `next`.
        ("evil.example", "/runs/7", login.to_owned()),
        ("lab.hub.example.evil.example", "/runs/7", login.to_owned()),
    ] {
        let answer = client
            .get(format!("{}/{NS}/auth/verify?redirect=1", app.base))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", uri)
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), 302, "{host}{uri}");
        assert_eq!(header(&answer, "location"), location, "{host}{uri}");
    }
}

/// A browser on the platform: cookies kept, redirects shown rather than followed.
struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let client = client_builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .build()
            .expect("client");
        Self {
            client,
            jar,
            base: base.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("sent")
    }

    fn csrf(&self) -> String {
        let url = self.base.parse().expect("url");
        let cookies = self.jar.cookies(&url).expect("cookies");
        cookies
            .to_str()
            .expect("ascii")
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{NS}csrftoken=")))
            .expect("CSRF cookie")
            .to_owned()
    }
}

async fn nginx_puts_the_platforms_application_behind_the_login(backend: Backend) {
    let port = free_port();
    let proxy = format!("http://127.0.0.1:{port}");
    let app = spawn_app_with(backend, |settings| {
        settings.public_url = Some(proxy.clone());
        settings.app_url = Some(format!("{proxy}/"));
    })
    .await;
    let ada = app
        .add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;
    let kinase = app.add_project("Kinase screen").await;
    app.grant(&ada, kinase, Role::Owner).await;
    let upstream = EchoServer::start().await;
    let cbh = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let nginx = Nginx::start(port, &forward_auth_server(port, cbh, upstream.address)).await;
    let browser = Browser::new(&nginx.base);

    // No cookie: the application's API answers 401, its pages send to the login page.
    assert_eq!(
        browser.get("/api/data").await.status(),
        401,
        "{}",
        nginx.error_log()
    );
    let page = browser.get("/page?x=1&y=2").await;
    assert_eq!(page.status(), 302, "{}", nginx.error_log());
    assert_eq!(
        header(&page, "location"),
        format!("{proxy}/chembiohub/login/?next=%2Fpage%3Fx%3D1%26y%3D2")
    );
    assert_eq!(upstream.requests(), 0, "nothing reached the application");

    // Logging in through the proxy: the application sees who it is, never what the client says.
    let login = browser
        .client
        .post(format!("{proxy}/{NS}/api/session/"))
        .json(&json!({"username": "ada@lab.example", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), 200);
    let seen: Value = {
        let answer = browser
            .client
            .get(format!("{proxy}/page?x=1"))
            .header("x-auth-email", "eve@evil.example")
            .header("x-auth-superuser", "true")
            .send()
            .await
            .expect("sent");
        json_with_status(answer, 200).await
    };
    let headers = echoed_headers(&seen);
    assert_eq!(headers["x-auth-user-id"], ada.id.0.to_string());
    assert_eq!(headers["x-auth-email"], "ada@lab.example");
    assert_eq!(headers["x-auth-name"], "Ada Lovelace");
    assert_eq!(headers["x-auth-superuser"], "false");
    assert_eq!(headers["x-auth-projects"], format!("{}:owner", kinase.0));
    assert_eq!(seen["uri"], "/page?x=1");
    // A POST with a body: the sub-request goes without it and still answers.
    let posted = browser
        .client
        .post(format!("{proxy}/api/data"))
        .json(&json!({"payload": "x".repeat(20_000)}))
        .send()
        .await
        .expect("sent");
    let posted = json_with_status(posted, 200).await;
    assert_eq!(posted["method"], "POST");
    assert_eq!(
        posted["body_length"], 20_014,
        "the application gets the whole body"
    );
    assert_eq!(echoed_headers(&posted)["x-auth-email"], "ada@lab.example");

    // Logging out through the proxy: 401 again.
    let logout = browser
        .client
        .delete(format!("{proxy}/{NS}/api/session/"))
        .header("x-csrftoken", browser.csrf())
        .send()
        .await
        .expect("sent");
    assert_eq!(logout.status(), 204);
    assert_eq!(browser.get("/api/data").await.status(), 401);

    // A person on the app's page: to the login page, log in there, and back to the page.
    let page = browser.get("/page?x=1").await;
    assert_eq!(page.status(), 302);
    let login_url = header(&page, "location").to_owned();
    let html = browser
        .client
        .get(&login_url)
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    let hidden = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).expect("hidden field") + marker.len();
        // As the browser reads the attribute: the template escapes `/` and `&`.
        html[start..start + html[start..].find('"').expect("quote")]
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
    };
    assert_eq!(hidden("next"), "/page?x=1");
    let done = browser
        .client
        .post(format!("{proxy}/{NS}/login/"))
        .form(&[
            ("form_token", hidden("form_token").as_str()),
            ("next", hidden("next").as_str()),
            ("email", "ada@lab.example"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login form");
    assert_eq!(done.status(), 303);
    assert_eq!(header(&done, "location"), "/page?x=1");
    let back = json_with_status(browser.get("/page?x=1").await, 200).await;
    assert_eq!(echoed_headers(&back)["x-auth-email"], "ada@lab.example");

    deactivated_user_step(&app, &browser, ada.id.0).await;
}

/// `browser` is logged in as Ada (through the login page): a superuser deactivates her, and the
/// proxy turns her away at once, on the API (401) and on the pages (to the login page).
async fn deactivated_user_step(app: &crate::support::TestApp, browser: &Browser, ada: i64) {
    let root = app.add_user("root@lab.example", "Root", "", true).await;
    let root = app.api_key_agent(&root).await;
    let done = root
        .post(&format!("/{NS}/api/users/{ada}/deactivate/"), &json!({}))
        .await;
    assert_eq!(done.status(), 200, "deactivating Ada");
    assert_eq!(browser.get("/api/data").await.status(), 401);
    let page = browser.get("/page?x=1").await;
    assert_eq!(page.status(), 302);
    assert!(header(&page, "location").contains("/login/"));
}

#[test]
fn the_readme_shows_the_nginx_configuration_the_test_runs() {
    let readme = include_str!("../../README.md");
    let conf = crate::support::nginx::FORWARD_AUTH_CONF;
    assert!(
        readme.contains(&format!("```nginx\n{conf}```")),
        "README.md must show docs/nginx-forward-auth.conf as it is"
    );
}

backend_tests!(
    verify_names_the_caller_of_a_session_or_key_and_only_reads,
    verify_redirects_to_the_login_page_only_with_a_returnable_next,
    verify_returns_to_an_app_on_another_host_under_the_app_url,
    nginx_puts_the_platforms_application_behind_the_login,
);
