//! The platform's original web client, unchanged: its calls replayed as it makes them (the
//! cookie jar of a browser, the CSRF token read from `{ns}csrftoken`, whole project objects in
//! `projects_selected`, no trailing slash), and the cookie names and scope it depends on.

use std::sync::Arc;

use cbh_invite::config::CookieSettings;
use cbh_invite::domain::{ProjectId, Role};
use reqwest::cookie::{CookieStore, Jar};
use serde_json::{Value, json};

use crate::support::agent::client_builder;
use crate::support::binary::{BIN, Server, on_sqlite, output_within};
use crate::support::wait::free_port;
use crate::support::{Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app, spawn_app_with};

/// A project as the client holds it after `GET /{ns}/api/cbh_projects/`, padded to about
/// `size` bytes by its `custom_field_config`, as a project with a few hundred fields is.
fn project_object(id: ProjectId, name: &str, size: usize) -> Value {
    let mut fields = Vec::new();
    let mut length = 0;
    while length < size {
        let i = fields.len();
        let field = json!({
            "id": i,
            "name": format!("Field {i}"),
            "field_type": "char",
            "allowed_values": "alpha,beta,gamma",
            "description": "A column of the project's data, as the form builder keeps it",
            "position": i,
        });
        length += field.to_string().len() + 1;
        fields.push(field);
    }
    json!({
        "id": id.0,
        "name": name,
        "project_key": name.to_lowercase().replace(' ', "-"),
        "resource_uri": format!("/{NS}/api/cbh_projects/{}", id.0),
        "is_default": false,
        "editor": true,
        "owner": false,
        "custom_field_config": {
            "id": id.0,
            "name": format!("{name} fields"),
            "project_data_fields": fields,
        },
    })
}

/// The value of cookie `name` as the jar would send it to `url`.
fn jar_cookie(jar: &Jar, url: &str, name: &str) -> Option<String> {
    let url = url.parse().expect("url");
    let header = jar.cookies(&url)?;
    header
        .to_str()
        .expect("ascii cookies")
        .split("; ")
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` line of cookie `name` in a response.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_owned()
}

async fn the_web_clients_invitation_calls_work_unchanged(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app
        .add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;
    let kinase = app.add_project("Kinase screen").await;
    let assay = app.add_project("Assay panel").await;
    app.grant(&ada, kinase, Role::Editor).await;
    app.grant(&ada, assay, Role::Owner).await;

    // A browser: one cookie jar, filled by the login.
    let jar = Arc::new(Jar::default());
    let client = client_builder()
        .cookie_provider(jar.clone())
        .build()
        .expect("client");
    let login = client
        .post(format!("{}/{NS}/api/session/", app.base))
        .json(&json!({"username": "ada@lab.example", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), 200);
    // Django's defaults, as the original deployment set them: path `/`, host-only.
    for name in [format!("{NS}_sessionid"), format!("{NS}csrftoken")] {
        let line = set_cookie(&login, &name);
        assert!(line.contains("; Path=/;"), "{line}");
        assert!(!line.to_ascii_lowercase().contains("domain="), "{line}");
    }
    // Path `/`: the browser sends the session with every request to this host, the
    // platform's other applications included.
    let elsewhere = format!("{}/app/anything", app.base);
    assert!(jar_cookie(&jar, &elsewhere, &format!("{NS}_sessionid")).is_some());

    // The client reads the token from the cookie and sends it back in X-CSRFToken.
    let csrf = jar_cookie(&jar, &app.base, &format!("{NS}csrftoken")).expect("CSRF cookie");
    let projects = vec![
        project_object(kinase, "Kinase screen", 50 * 1024),
        project_object(assay, "Assay panel", 50 * 1024),
    ];
    let body = json!({
        "firstName": "Bob",
        "lastName": "Smith",
        "email": "bob@example.org",
        "projects_selected": projects,
    });
    assert!(body.to_string().len() > 100 * 1024, "whole project objects");
    let invitations = format!("{}/{NS}/api/invitations", app.base);
    let post = |body: &Value| {
        client
            .post(&invitations)
            .header("x-csrftoken", &csrf)
            .json(body)
            .send()
    };

    let created = json_with_status(post(&body).await.expect("sent"), 201).await;
    assert_eq!(
        created["message"],
        "Invite sent successfully to bob@example.org, would you like to invite anyone else?"
    );
    assert_eq!(created["first_name"], "Bob");
    assert_eq!(created["last_name"], "Smith");
    let selected: Vec<i64> = created["projects_selected"]
        .as_array()
        .expect("projects")
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(selected.len(), 2);
    assert!(selected.contains(&kinase.0) && selected.contains(&assay.0));

    // Again: the client shows `error` and offers to remind.
    let again = json_with_status(post(&body).await.expect("sent"), 409).await;
    assert_eq!(
        again["error"],
        "User already exists, do you wish to invite again?"
    );
    let mut remind = body.clone();
    remind["remind"] = json!(true);
    let reminded = json_with_status(post(&remind).await.expect("sent"), 201).await;
    assert_eq!(
        reminded["message"],
        "Sign-up reminder sent to bob@example.org, would you like to invite anyone else?"
    );

    // The session's writes still need the token.
    let forged = client
        .post(&invitations)
        .json(&json!({"email": "eve@example.org"}))
        .send()
        .await
        .expect("sent");
    let forged = json_with_status(forged, 403).await;
    assert!(
        forged["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("{NS}csrftoken"))),
        "{forged}"
    );
}

/// Logs in through the API with a client that keeps no cookies; returns the response.
async fn log_in(app: &TestApp) -> reqwest::Response {
    app.anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": "ada@lab.example", "password": PASSWORD}),
        )
        .await
}

async fn cookie_names_path_and_domain_follow_the_settings(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.cookies = CookieSettings::parse(
            "sid_{ns}",
            "csrf_{ns}",
            "/{ns}/",
            Some("invite.test.example"),
            &settings.namespaces,
        )
        .expect("valid cookie settings");
    })
    .await;
    let (editor, project) = app.editor_with_project().await;
    drop(editor);

    let login = log_in(&app).await;
    assert_eq!(login.status(), 200);
    let session_line = set_cookie(&login, &format!("sid_{NS}"));
    let csrf_line = set_cookie(&login, &format!("csrf_{NS}"));
    for line in [&session_line, &csrf_line] {
        assert!(line.contains(&format!("; Path=/{NS}/;")), "{line}");
        assert!(line.contains("; Domain=invite.test.example;"), "{line}");
    }
    let value = |line: &str| {
        line.split(';')
            .next()
            .and_then(|pair| pair.split_once('='))
            .map(|(_, v)| v.to_owned())
            .expect("cookie value")
    };
    let (session, csrf) = (value(&session_line), value(&csrf_line));

    // The configured names are read; the default ones are not.
    let invite = |cookie: String| {
        app.anonymous()
            .request(reqwest::Method::POST, &format!("/{NS}/api/invitations"))
            .header("cookie", cookie)
            .header("x-csrftoken", &csrf)
            .json(&json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}))
            .send()
    };
    json_with_status(
        invite(format!("{NS}_sessionid={session}"))
            .await
            .expect("sent"),
        401,
    )
    .await;
    json_with_status(
        invite(format!("sid_{NS}={session}")).await.expect("sent"),
        201,
    )
    .await;

    // The pages' double-submit cookie follows the same scope.
    let page = app.anonymous().get(&format!("/{NS}/login/")).await;
    let form = set_cookie(&page, &format!("{NS}formtoken"));
    assert!(form.contains(&format!("; Path=/{NS}/;")), "{form}");
    assert!(form.contains("; Domain=invite.test.example;"), "{form}");

    // Logging out clears the configured cookies, in the same scope.
    let logout = app
        .anonymous()
        .request(reqwest::Method::DELETE, &format!("/{NS}/api/session/"))
        .header("cookie", format!("sid_{NS}={session}"))
        .header("x-csrftoken", &csrf)
        .send()
        .await
        .expect("sent");
    assert_eq!(logout.status(), 204);
    let cleared = set_cookie(&logout, &format!("sid_{NS}"));
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(
        cleared.contains("; Domain=invite.test.example;"),
        "{cleared}"
    );
}

async fn the_pages_form_cookie_is_named_per_namespace_on_path_root(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = app.anonymous().get(&format!("/{NS}/login/")).await;
    assert_eq!(page.status(), 200);
    let form = set_cookie(&page, &format!("{NS}formtoken"));
    assert!(form.contains("; Path=/;"), "{form}");
    assert!(!form.to_ascii_lowercase().contains("domain="), "{form}");
    assert!(
        form.contains("SameSite=Strict") && form.contains("HttpOnly"),
        "{form}"
    );
}

/// The variables reach the real binary: a bad path stops it naming the variable; a good set
/// names and scopes the cookies of a login.
#[tokio::test]
async fn the_cookie_variables_reach_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("cookies.db");
    let refused = output_within(
        std::process::Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("CBH_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("CBH_DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("CBH_COOKIE_PATH", "/elsewhere/"),
    );
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("CBH_COOKIE_PATH (--cookie-path)"),
        "{stderr}"
    );

    on_sqlite(
        &db,
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let server = Server::start(
        &[
            ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
            ("CBH_SESSION_COOKIE", "sid_{ns}".into()),
            ("CBH_CSRF_COOKIE", "csrf_{ns}".into()),
            ("CBH_COOKIE_DOMAIN", "invite.test.example".into()),
        ],
        &dir.path().join("serve.log"),
    )
    .await;
    let login = crate::support::agent::client()
        .post(format!("{}/{NS}/api/session/", server.base))
        .json(&json!({"username": "ada@lab.example", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), 200);
    for name in [format!("sid_{NS}"), format!("csrf_{NS}")] {
        let line = set_cookie(&login, &name);
        assert!(
            line.contains("; Path=/; Domain=invite.test.example;"),
            "{line}"
        );
    }
}

backend_tests!(
    the_web_clients_invitation_calls_work_unchanged,
    cookie_names_path_and_domain_follow_the_settings,
    the_pages_form_cookie_is_named_per_namespace_on_path_root,
);
