//! Issue 13: the domain rules (`CBH_ALLOWED_DOMAINS`, `CBH_DENIED_DOMAINS`) on the API, the
//! invite page, resend and concurrent POSTs (the group commit); and `expires_in`.

use cbh_invite::config::{InviteRules, Settings};
use cbh_invite::domain::domain_rules::parse_list;
use cbh_invite::domain::{DomainRules, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Agent, Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app_with};

fn domains(allowed: &str, denied: &str) -> impl FnOnce(&mut Settings) {
    let rules = DomainRules::new(
        parse_list(allowed).expect("allowed"),
        parse_list(denied).expect("denied"),
    );
    move |settings: &mut Settings| {
        settings.invite_rules = InviteRules {
            domains: rules,
            ..InviteRules::default()
        }
    }
}

fn refusal(domain: &str) -> Value {
    json!(format!(
        "Invitations to addresses at {domain} are not allowed here"
    ))
}

/// Invites `email` to `project` and returns the status and the body.
async fn invite(agent: &Agent, email: &str, project: i64) -> (u16, Value) {
    let response = agent
        .invite(json!({"email": email, "projects_selected": [{"id": project}]}))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn assert_refused(agent: &Agent, email: &str, project: i64, domain: &str) {
    let (status, body) = invite(agent, email, project).await;
    assert_eq!(status, 403, "{email}: {body}");
    assert_eq!(body["error"], refusal(domain), "{email}");
}

async fn assert_invited(agent: &Agent, email: &str, project: i64) {
    let (status, body) = invite(agent, email, project).await;
    assert_eq!(status, 201, "{email}: {body}");
}

async fn only_allowed_domains_may_be_invited(backend: Backend) {
    let app = spawn_app_with(backend, domains("lab.example, *.ox.ac.uk", "")).await;
    let (editor, project) = app.editor_with_project().await;
    assert_invited(&editor, "bob@lab.example", project.0).await;
    assert_invited(&editor, "carl@OX.AC.UK", project.0).await;
    assert_invited(&editor, "dora@chem.ox.ac.uk", project.0).await;
    assert_refused(&editor, "eve@sub.lab.example", project.0, "sub.lab.example").await;
    assert_refused(&editor, "fay@notox.ac.uk", project.0, "notox.ac.uk").await;
    assert_refused(&editor, "gus@Example.ORG", project.0, "example.org").await;
    // Nothing was written for the refused ones.
    assert_eq!(app.count_invitations().await, 3);
    assert!(app.find_user(NS, "gus@example.org").await.is_none());
}

async fn denied_domains_win_and_namespace_entries_apply_in_their_namespace(backend: Backend) {
    let app = spawn_app_with(
        backend,
        domains(
            "*.example.org",
            "spam.example.org, *.mail.example.org, other:lab.example, chembiohub:example.net",
        ),
    )
    .await;
    let (editor, project) = app.editor_with_project().await;
    assert_invited(&editor, "bob@example.org", project.0).await;
    assert_invited(&editor, "bob@chem.example.org", project.0).await;
    assert_refused(
        &editor,
        "eve@spam.example.org",
        project.0,
        "spam.example.org",
    )
    .await;
    assert_refused(
        &editor,
        "eve@mail.example.org",
        project.0,
        "mail.example.org",
    )
    .await;
    assert_refused(
        &editor,
        "eve@x.mail.example.org",
        project.0,
        "x.mail.example.org",
    )
    .await;
    // Outside the allowed list, whatever the denied entries of any namespace say.
    assert_refused(&editor, "eve@example.net", project.0, "example.net").await;
    assert_refused(&editor, "eve@lab.example", project.0, "lab.example").await;

    let scoped = spawn_app_with(
        backend,
        domains("", "other:lab.example, chembiohub:example.net"),
    )
    .await;
    let (editor, project) = scoped.editor_with_project().await;
    // `other:` entries do not apply in chembiohub; chembiohub's do.
    assert_invited(&editor, "bob@lab.example", project.0).await;
    assert_refused(&editor, "eve@example.net", project.0, "example.net").await;
    assert_invited(&editor, "bob@sub.example.net", project.0).await;
}

async fn the_domain_rule_comes_before_the_rights_and_platform_invitations(backend: Backend) {
    let app = spawn_app_with(backend, domains("", "example.com")).await;
    let (editor, _) = app.editor_with_project().await;
    // Platform-only invitations follow the same rule.
    let response = editor.invite(json!({"email": "eve@example.com"})).await;
    let body = json_with_status(response, 403).await;
    assert_eq!(body["error"], refusal("example.com"));
    // A viewer (who may not invite) is told about the domain first: the rule depends on the
    // request alone, so it is checked before any database work.
    let viewer = app.add_user("vic@lab.example", "Vic", "", false).await;
    let project = app.add_project("Viewed").await;
    app.grant(&viewer, project, Role::Viewer).await;
    let viewer = app.api_key_agent(&viewer).await;
    assert_refused(&viewer, "eve@example.com", project.0, "example.com").await;
    let (status, _) = invite(&viewer, "bob@example.org", project.0).await;
    assert_eq!(status, 403, "the rights are still checked");
}

async fn resend_to_an_address_that_became_disallowed_is_refused(backend: Backend) {
    let mut app = spawn_app_with(backend, |_| {}).await;
    let (editor, project) = app.editor_with_project().await;
    let (status, body) = invite(&editor, "bob@example.com", project.0).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().expect("id");

    app.settings.invite_rules.domains =
        DomainRules::new(Vec::new(), parse_list("*.example.com").expect("denied"));
    app.restart().await;
    let editor = app.agent_for(&editor, &app.base);
    let response = editor
        .post(&format!("/{NS}/api/invitations/{id}/resend/"), &json!({}))
        .await;
    let body = json_with_status(response, 403).await;
    assert_eq!(body["error"], refusal("example.com"));
    // The page's button says the same.
    let client = page_client(&app, "ada@lab.example").await;
    let page = client
        .get(format!("{}/{NS}/invite/", app.base))
        .send()
        .await
        .expect("sent");
    let csrf = hidden(&page.text().await.expect("body"), "csrfmiddlewaretoken");
    let button = client
        .post(format!("{}/{NS}/invite/{id}/resend/", app.base))
        .form(&[("csrfmiddlewaretoken", csrf.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(button.status(), StatusCode::FORBIDDEN);
    let body = button.text().await.expect("body");
    assert!(
        body.contains("Invitations to addresses at example.com are not allowed here"),
        "{body}"
    );
    // Still invisible invitations stay 404, whatever their address.
    let stranger = app.add_user("sam@lab.example", "Sam", "", false).await;
    let stranger = app.api_key_agent(&stranger).await;
    let response = stranger
        .post(&format!("/{NS}/api/invitations/{id}/resend/"), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn concurrent_invitations_through_the_group_commit_keep_the_rule(backend: Backend) {
    let app = spawn_app_with(backend, domains("", "*.denied.example")).await;
    let (editor, project) = app.editor_with_project().await;
    let posts = (0..24).map(|i| {
        let editor = &editor;
        async move {
            let domain = if i % 2 == 0 {
                "ok.example"
            } else {
                "x.denied.example"
            };
            invite(editor, &format!("p{i}@{domain}"), project.0).await
        }
    });
    let results = futures_util::future::join_all(posts).await;
    for (i, (status, body)) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(*status, 201, "{i}: {body}");
        } else {
            assert_eq!(*status, 403, "{i}: {body}");
            assert_eq!(body["error"], refusal("x.denied.example"));
        }
    }
    assert_eq!(app.count_invitations().await, 12);
}

/// The hidden field `name` of a page.
pub(crate) fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {body}"))
        + marker.len();
    let end = body[start..].find('"').expect("closing quote") + start;
    body[start..end].to_owned()
}

/// The body of the page at `url`, as `client` sees it.
pub(crate) async fn page_text(client: &reqwest::Client, url: &str) -> String {
    let page = client.get(url).send().await.expect("sent");
    page.text().await.expect("body")
}

/// A cookie-keeping client logged in through the login page.
pub(crate) async fn page_client(app: &TestApp, email: &str) -> reqwest::Client {
    let client = crate::support::agent::client_builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = format!("{}/{NS}/login/", app.base);
    let page = client.get(&login).send().await.expect("sent");
    let token = hidden(&page.text().await.expect("body"), "form_token");
    let done = client
        .post(&login)
        .form(&[
            ("form_token", token.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    client
}

async fn the_invite_page_shows_the_refusal(backend: Backend) {
    let app = spawn_app_with(backend, domains("", "example.com")).await;
    let (_, project) = app.editor_with_project().await;
    let client = page_client(&app, "ada@lab.example").await;
    let url = format!("{}/{NS}/invite/", app.base);
    let page = client.get(&url).send().await.expect("sent");
    let csrf = hidden(&page.text().await.expect("body"), "csrfmiddlewaretoken");
    let project = project.0.to_string();
    let refused = client
        .post(&url)
        .form(&[
            ("csrfmiddlewaretoken", csrf.as_str()),
            ("email", "eve@Example.com"),
            ("first_name", "Eve"),
            ("projects", project.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = refused.text().await.expect("body");
    assert!(
        body.contains("Invitations to addresses at example.com are not allowed here"),
        "{body}"
    );
    assert!(
        body.contains("value=\"eve@Example.com\""),
        "the form keeps what was typed"
    );
    assert_eq!(app.count_invitations().await, 0);
    let invited = client
        .post(&url)
        .form(&[
            ("csrfmiddlewaretoken", csrf.as_str()),
            ("email", "bob@example.org"),
            ("projects", project.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(invited.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count_invitations().await, 1);
}

backend_tests!(
    only_allowed_domains_may_be_invited,
    denied_domains_win_and_namespace_entries_apply_in_their_namespace,
    the_domain_rule_comes_before_the_rights_and_platform_invitations,
    resend_to_an_address_that_became_disallowed_is_refused,
    concurrent_invitations_through_the_group_commit_keep_the_rule,
    the_invite_page_shows_the_refusal,
);

/// `expires - created` of an invitation as the API shows it (or `expires - modified` after a
/// resend, which sets both from one clock reading).
fn lifetime(invitation: &Value, since: &str) -> std::time::Duration {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let at = |field: &str| {
        let text = invitation[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {invitation}"));
        OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339")
    };
    (at("expires") - at(since)).try_into().expect("positive")
}

const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

async fn invite_for(agent: &Agent, email: &str, expires_in: Value) -> (u16, Value) {
    let response = agent
        .invite(json!({"email": email, "expires_in": expires_in}))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn expires_in_sets_the_lifetime_within_its_bounds(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    let (status, body) = invite_for(&editor, "default@example.org", Value::Null).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        lifetime(&body, "created").as_secs(),
        7 * DAY,
        "CBH_INVITE_TTL"
    );
    for (email, asked, secs) in [
        ("hour@example.org", "1h", HOUR),
        ("month@example.org", "30d", 30 * DAY),
        ("minutes@example.org", " 90m ", 90 * 60),
    ] {
        let (status, body) = invite_for(&editor, email, json!(asked)).await;
        assert_eq!(status, 201, "{asked}: {body}");
        assert_eq!(lifetime(&body, "created").as_secs(), secs, "{asked}");
    }
    let before = app.count_invitations().await;
    for bad in [
        json!("59m"),
        json!("3599s"),
        json!("31d"),
        json!("721h"),
        json!("soon"),
        json!("1h30m"),
        json!(""),
        json!(3600),
        json!(["1h"]),
    ] {
        let (status, body) = invite_for(&editor, "bad@example.org", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("expires_in")),
            "{bad}: {body}"
        );
    }
    let (_, body) = invite_for(&editor, "bad@example.org", json!("31d")).await;
    assert_eq!(body["error"], "expires_in must be from 1h to 30d");
    assert_eq!(app.count_invitations().await, before, "nothing written");

    // CBH_INVITE_TTL_MAX moves the upper bound.
    let longer = spawn_app_with(backend, |s| {
        s.invite_rules.ttl_max = std::time::Duration::from_secs(90 * DAY);
    })
    .await;
    let (editor, _) = longer.editor_with_project().await;
    let (status, body) = invite_for(&editor, "long@example.org", json!("60d")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(lifetime(&body, "created").as_secs(), 60 * DAY);
    let (status, body) = invite_for(&editor, "longer@example.org", json!("91d")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "expires_in must be from 1h to 90d");
}

async fn resend_gives_the_same_lifetime_again(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    let (status, own) = invite_for(&editor, "own@example.org", json!("2h")).await;
    assert_eq!(status, 201, "{own}");
    let (status, default) = invite_for(&editor, "default@example.org", Value::Null).await;
    assert_eq!(status, 201, "{default}");
    for (invitation, secs) in [(&own, 2 * HOUR), (&default, 7 * DAY)] {
        let id = invitation["id"].as_i64().expect("id");
        let response = editor
            .post(&format!("/{NS}/api/invitations/{id}/resend/"), &json!({}))
            .await;
        let resent = json_with_status(response, 200).await;
        assert_eq!(lifetime(&resent, "modified").as_secs(), secs, "{resent}");
        assert_ne!(resent["expires"], invitation["expires"], "a new expiry");
    }
}

async fn the_idempotency_key_covers_expires_in(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    let post = |expires_in: Value| {
        editor
            .request(reqwest::Method::POST, &format!("/{NS}/api/invitations/"))
            .header("Idempotency-Key", "team-1")
            .json(&json!({"email": "bob@example.org", "expires_in": expires_in}))
            .send()
    };
    let first = json_with_status(post(json!("1d")).await.expect("sent"), 201).await;
    // The same meaning, spelt otherwise: a replay.
    let again = post(json!("24h")).await.expect("sent");
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(json_with_status(again, 201).await["id"], first["id"]);
    // Another lifetime, or none, is another request.
    for other in [json!("2d"), Value::Null] {
        let response = post(other.clone()).await.expect("sent");
        let body = json_with_status(response, 422).await;
        assert!(body["error"].is_string(), "{other}: {body}");
    }
    assert_eq!(app.count_invitations().await, 1);
}

async fn the_documents_describe_expires_in_and_the_domain_refusal(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    let document = json_with_status(
        app.anonymous()
            .get(&format!("/{NS}/api/openapi.json"))
            .await,
        200,
    )
    .await;
    let request = &document["components"]["schemas"]["InvitationRequest"];
    let field = &request["properties"]["expires_in"];
    assert!(
        field["description"]
            .as_str()
            .is_some_and(|d| d.contains("CBH_INVITE_TTL_MAX")),
        "{request}"
    );
    let post = &document["paths"]["/{ns}/api/invitations/"]["post"]["responses"];
    assert!(
        post["403"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("are not allowed here")),
        "{post}"
    );
    let schema = json_with_status(
        editor.get(&format!("/{NS}/api/invitations/schema/")).await,
        200,
    )
    .await;
    let field = &schema["fields"]["expires_in"];
    assert_eq!(field["type"], "string", "{schema}");
    assert_eq!(field["readonly"], false);
    assert_eq!(field["nullable"], true);
}

async fn concurrent_invitations_keep_each_its_own_lifetime(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    // New invitees at once: the group commit stores them together (`invitation_batch`).
    let asked = |i: usize| match i % 3 {
        0 => (json!("2h"), 2 * HOUR),
        1 => (json!("3d"), 3 * DAY),
        _ => (Value::Null, 7 * DAY),
    };
    let posts = (0..18).map(|i| {
        let editor = &editor;
        async move { invite_for(editor, &format!("t{i}@example.org"), asked(i).0).await }
    });
    let created = futures_util::future::join_all(posts).await;
    for (i, (status, body)) in created.iter().enumerate() {
        assert_eq!(*status, 201, "{i}: {body}");
        assert_eq!(lifetime(body, "created").as_secs(), asked(i).1, "{i}");
    }
    let resends = created.iter().map(|(_, body)| {
        let editor = &editor;
        let id = body["id"].as_i64().expect("id");
        async move {
            let response = editor
                .post(&format!("/{NS}/api/invitations/{id}/resend/"), &json!({}))
                .await;
            json_with_status(response, 200).await
        }
    });
    let resent = futures_util::future::join_all(resends).await;
    for (i, body) in resent.iter().enumerate() {
        assert_eq!(
            lifetime(body, "modified").as_secs(),
            asked(i).1,
            "{i}: {body}"
        );
    }
}

backend_tests!(
    concurrent_invitations_keep_each_its_own_lifetime,
    the_documents_describe_expires_in_and_the_domain_refusal,
    expires_in_sets_the_lifetime_within_its_bounds,
    resend_gives_the_same_lifetime_again,
    the_idempotency_key_covers_expires_in,
);

/// The real binary, configured through its environment: a bad rule stops it with the variable
/// named; good ones reach the service.
#[tokio::test]
async fn the_variables_configure_the_service_and_bad_ones_stop_it() {
    use std::process::Command;

    use crate::support::binary::{BIN, Server, on_sqlite, output_within};
    use crate::support::wait::free_port;

    let dir = tempfile::tempdir().expect("temp dir");
    for (env, variable) in [
        (
            vec![("CBH_INVITE_TTL", "60d")],
            "CBH_INVITE_TTL (--invite-ttl)",
        ),
        (
            vec![("CBH_INVITE_TTL", "40d"), ("CBH_INVITE_TTL_MAX", "35d")],
            "CBH_INVITE_TTL (--invite-ttl)",
        ),
        (
            vec![("CBH_INVITE_TTL_MAX", "forever")],
            "CBH_INVITE_TTL_MAX",
        ),
        (vec![("CBH_ALLOWED_DOMAINS", "*")], "CBH_ALLOWED_DOMAINS"),
        (
            vec![("CBH_DENIED_DOMAINS", "nowhere:example.com")],
            "CBH_DENIED_DOMAINS",
        ),
    ] {
        let output = output_within(
            Command::new(BIN)
                .arg("serve")
                .current_dir(dir.path())
                .env_clear()
                .env("CBH_LISTEN", format!("127.0.0.1:{}", free_port()))
                .env("CBH_DATABASE_URL", "sqlite://exit.db")
                .envs(env.iter().copied()),
        );
        assert!(!output.status.success(), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{env:?}: {stderr}");
    }

    let db = dir.path().join("rules.db");
    on_sqlite(
        &db,
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--superuser",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    let key = on_sqlite(
        &db,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    );
    let server = Server::start(
        &[
            ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
            (
                "CBH_MAIL_DIR",
                dir.path().join("mail").display().to_string(),
            ),
            ("CBH_INVITE_TTL_MAX", "90d".into()),
            ("CBH_DENIED_DOMAINS", "chembiohub:*.example.com".into()),
        ],
        &dir.path().join("serve.log"),
    )
    .await;
    let invite = |email: &str, expires_in: &str| {
        reqwest::Client::new()
            .post(format!("{}/{NS}/api/invitations/", server.base))
            .header("authorization", format!("ApiKey ada@lab.example:{key}"))
            .json(&json!({"email": email, "expires_in": expires_in}))
            .send()
    };
    let refused = invite("eve@x.example.com", "1h").await.expect("sent");
    let body = json_with_status(refused, 403).await;
    assert_eq!(body["error"], refusal("x.example.com"));
    let long = invite("bob@example.org", "60d").await.expect("sent");
    let body = json_with_status(long, 201).await;
    assert_eq!(lifetime(&body, "created").as_secs(), 60 * DAY);
}
