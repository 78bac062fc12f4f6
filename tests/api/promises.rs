//! Promises of the README that no other test held the service to: flags against variables,
//! `CBH_NAMESPACES`, `CBH_MAIL_FROM`, `CBH_SQLITE_SYNC`, a broken template override, a
//! worker-only node, the audit events and metric counters not covered elsewhere, and a session
//! used on another node.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cbh_invite::config::ServeRole;
use cbh_invite::domain::{Role, Timestamp};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::binary::{BIN, Server, on_sqlite};
use crate::support::wait::{self, free_port};
use crate::support::{
    Agent, Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app, spawn_app_with,
};

const WAIT: Duration = Duration::from_secs(30);

/// `cbh-invite serve` with `args` and a clean environment plus `env`, which must stop by
/// itself (a bad setting): its output. Kills it and fails if it is still running after `WAIT`.
fn serve_expecting_exit(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("CBH_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CBH_DATABASE_URL", "sqlite://exit.db")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().expect("status").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running with {env:?} {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A user with an API key made with the command line on the SQLite file `db`: the key.
fn inviter_on(db: &Path) -> String {
    on_sqlite(
        db,
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            // Inviting needs a role somewhere; a superuser needs none.
            "--superuser",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    on_sqlite(
        db,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    )
}

async fn invite_with_key(base: &str, key: &str, email: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/{NS}/api/invitations/"))
        .header("authorization", format!("ApiKey ada@lab.example:{key}"))
        .json(&json!({"email": email}))
        .send()
        .await
        .expect("sent")
}

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn a_flag_beats_its_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("serve.log");
    let (env_port, flag_port) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{flag_port}"),
            "--namespaces",
            "fromflag",
            "--public-url",
            "http://flag.example",
            // The variable is not even a valid value: the flag wins before it is read.
            "--sqlite-sync",
            "full",
        ])
        .current_dir(dir.path())
        .env_clear()
        .env("CBH_DATABASE_URL", "sqlite://flags.db")
        .env("CBH_LISTEN", format!("127.0.0.1:{env_port}"))
        .env("CBH_NAMESPACES", "fromenv")
        .env("CBH_PUBLIC_URL", "http://variable.example")
        .env("CBH_SQLITE_SYNC", "sometimes")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("serve starts");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{flag_port}"),
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = reqwest::get(format!("{}/readyz", server.base)).await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve never answered on the --listen port: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(
        std::net::TcpStream::connect(("127.0.0.1", env_port)).is_err(),
        "nothing listens on CBH_LISTEN's port"
    );
    let base = &server.base;
    assert_eq!(
        status_of(&format!("{base}/fromflag/api/openapi.json")).await,
        200
    );
    assert_eq!(
        status_of(&format!("{base}/fromenv/api/openapi.json")).await,
        404
    );
    // The setup link of the new namespace is built on --public-url.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("http://flag.example/fromflag/setup/") {
            assert!(!logged.contains("variable.example"), "{logged}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no setup link on --public-url: {logged}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cbh_namespaces_is_a_comma_separated_list() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("ns.db");
    let server = Server::start(
        &[
            ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
            ("CBH_NAMESPACES", " alpha, beta-2 ,,gamma_3 ".to_owned()),
            ("CBH_ROLE", "api".to_owned()),
        ],
        &dir.path().join("serve.log"),
    )
    .await;
    for ns in ["alpha", "beta-2", "gamma_3"] {
        assert_eq!(
            status_of(&format!("{}/{ns}/api/openapi.json", server.base)).await,
            200,
            "{ns} is served"
        );
    }
    for ns in ["chembiohub", "beta", ""] {
        assert_eq!(
            status_of(&format!("{}/{ns}/api/openapi.json", server.base)).await,
            404,
            "{ns:?} is not served"
        );
    }
}

#[test]
fn a_bad_namespace_list_stops_serve_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let too_long = "x".repeat(65);
    for (value, why) in [
        ("Alpha", "'Alpha' is not a namespace"),
        ("alpha,has space", "'has space' is not a namespace"),
        ("a/b", "'a/b' is not a namespace"),
        (too_long.as_str(), "is not a namespace"),
        (" , ,", "no namespace given"),
    ] {
        let output = serve_expecting_exit(dir.path(), &[("CBH_NAMESPACES", value)], &[]);
        assert_eq!(output.status.code(), Some(2), "{value:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{value:?}: {stderr}");
        assert!(
            stderr.contains("CBH_NAMESPACES (--namespaces)") && stderr.contains(why),
            "{value:?}: {stderr}"
        );
    }
}

/// The sender, as (display name, address) of the From header, and the envelope sender.
fn sender(mail: &smtp_sink::ReceivedMail) -> (String, String, String) {
    let parsed = mail.parsed();
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .expect("a From header");
    (
        from.name().unwrap_or_default().to_owned(),
        from.address().unwrap_or_default().to_owned(),
        mail.mail_from.clone(),
    )
}

async fn mail_comes_from_noreply_at_the_public_host_by_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let mail = &app.smtp.wait_for(1, WAIT).await[0];
    // The tests' public URL is http://invite.test.example.
    assert_eq!(
        sender(mail),
        (
            "ChemBio Hub".to_owned(),
            "noreply@invite.test.example".to_owned(),
            "noreply@invite.test.example".to_owned()
        )
    );
}

#[tokio::test]
async fn cbh_mail_from_sets_the_sender() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("from.db");
    let key = inviter_on(&db);
    let smtp = smtp_sink::SmtpServer::start().await;
    let server = Server::start(
        &[
            ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
            ("CBH_SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port)),
            (
                "CBH_MAIL_FROM",
                "Lab Invitations <invites@lab.example>".to_owned(),
            ),
            ("CBH_INVITE_RATE", "off".to_owned()),
        ],
        &dir.path().join("serve.log"),
    )
    .await;
    assert_eq!(
        invite_with_key(&server.base, &key, "bob@example.org")
            .await
            .status(),
        201
    );
    let mail = &smtp.wait_for(1, WAIT).await[0];
    assert_eq!(
        sender(mail),
        (
            "Lab Invitations".to_owned(),
            "invites@lab.example".to_owned(),
            "invites@lab.example".to_owned()
        )
    );

    let output = serve_expecting_exit(dir.path(), &[("CBH_MAIL_FROM", "not a mailbox")], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("CBH_MAIL_FROM (--mail-from)"), "{stderr}");
}

/// Both settings keep a 201 through a crash of the process (what `normal` promises; `full`
/// adds a power loss, which a test cannot pull). A value that is neither stops start-up.
#[tokio::test]
async fn cbh_sqlite_sync_normal_and_full_keep_a_201_through_sigkill() {
    for mode in ["normal", "full"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("sync.db");
        let key = inviter_on(&db);
        let mut server = Server::start(
            &[
                ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
                ("CBH_SQLITE_SYNC", mode.to_owned()),
                // Nothing is sent: the queued email is the record to find after the crash.
                ("CBH_ROLE", "api".to_owned()),
                (
                    "CBH_MAIL_DIR",
                    dir.path().join("mail").display().to_string(),
                ),
            ],
            &dir.path().join("serve.log"),
        )
        .await;
        let email = format!("{mode}@example.org");
        assert_eq!(
            invite_with_key(&server.base, &key, &email).await.status(),
            201
        );
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        let queued = on_sqlite(&db, &["outbox", "list", "--status", "queued"], None);
        assert!(queued.contains(&email), "{mode}: {queued}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let output = serve_expecting_exit(dir.path(), &[("CBH_SQLITE_SYNC", "sometimes")], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sqlite-sync") && stderr.contains("sometimes"),
        "{stderr}"
    );
}

#[test]
fn a_broken_template_override_stops_serve_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).expect("folder");
    std::fs::write(
        templates.join("new_user.html"),
        "<p>{% if inviter.name %}unclosed</p>",
    )
    .expect("template");
    let output = serve_expecting_exit(
        dir.path(),
        &[("CBH_TEMPLATE_DIR", templates.to_str().expect("utf-8 path"))],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("new_user.html"),
        "names the template: {stderr}"
    );
    assert!(stderr.contains("CBH_TEMPLATE_DIR"), "{stderr}");
}

async fn a_worker_only_node_refuses_the_api_and_the_pages(backend: Backend) {
    let worker = spawn_app_with(backend, |s| s.role = ServeRole::Worker).await;
    let (editor, _) = worker.editor_with_project().await;

    for path in [
        format!("/{NS}/api/invitations/"),
        format!("/{NS}/api/session/"),
        format!("/{NS}/api/openapi.json"),
        format!("/{NS}/login/"),
    ] {
        json_with_status(editor.get(&path).await, 404).await;
    }
    json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        404,
    )
    .await;
    assert_eq!(worker.anonymous().get("/healthz").await.status(), 200);
    assert_eq!(worker.anonymous().get("/readyz").await.status(), 200);

    // It still delivers what an API node queues.
    let mut api = worker.add_node(|s| s.role = ServeRole::Api).await;
    let to_api = worker.agent_for(&editor, &api.base);
    json_with_status(
        to_api.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let mails = worker.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, ["bob@example.org"]);
    api.stop().await;
}

/// Fills in and submits the first-run setup form of `app`'s namespace.
async fn complete_setup(app: &TestApp, email: &str) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = app.setup_url(NS);
    let form = client.get(&url).send().await.expect("sent");
    assert_eq!(form.status(), StatusCode::OK);
    let body = form.text().await.expect("body");
    let marker = "name=\"form_token\" value=\"";
    let start = body.find(marker).expect("form token") + marker.len();
    let token = &body[start..start + body[start..].find('"').expect("quote")];
    let done = client
        .post(&url)
        .form(&[
            ("form_token", token),
            ("email", email),
            ("password", PASSWORD),
            ("password_again", PASSWORD),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
}

async fn setup_resend_revoke_password_change_and_logout_are_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let started = Timestamp::now();
    complete_setup(&app, "root@lab.example").await;
    let (editor, _) = app.editor_with_project().await;
    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    editor.resend(id).await;
    json_with_status(
        editor
            .post(&format!("/{NS}/api/invitations/{id}/revoke/"), &json!({}))
            .await,
        200,
    )
    .await;
    let session = app.login("ada@lab.example", PASSWORD).await;
    json_with_status(
        session
            .post(
                &format!("/{NS}/api/session/password/"),
                &json!({"old_password": PASSWORD, "new_password": "a brand new password"}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(
        session
            .delete(&format!("/{NS}/api/session/"))
            .await
            .status(),
        204
    );

    let events = app.store.audit_since(started, 100).await.expect("audit");
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e.event == name)
            .unwrap_or_else(|| panic!("no {name} event in {events:#?}"))
    };
    assert_eq!(
        find("setup_completed").actor_email.as_deref(),
        Some("root@lab.example")
    );
    for name in ["invitation_resent", "invitation_revoked"] {
        let event = find(name);
        assert_eq!(
            event.actor_email.as_deref(),
            Some("ada@lab.example"),
            "{name}"
        );
        assert_eq!(event.subject, Some(id.to_string()), "{name}");
        assert_eq!(event.client_ip.as_deref(), Some("127.0.0.1"), "{name}");
    }
    for name in ["password_changed", "logout"] {
        assert_eq!(
            find(name).actor_email.as_deref(),
            Some("ada@lab.example"),
            "{name}"
        );
    }
}

/// The value of the unlabelled metric `name`, if it is there.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls `/metrics` until `done` holds for its text, or fails after `WAIT`.
async fn metrics_when(agent: &Agent, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = agent.get("/metrics").await.text().await.expect("text");
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics_count_accepts_revokes_retries_and_failures(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let invite = |email: &'static str| {
        let editor = &editor;
        async move {
            json_with_status(editor.invite(json!({ "email": email })).await, 201).await["id"]
                .as_i64()
                .expect("id")
        }
    };

    // Refused for now, then sent: one retry; then accepted.
    app.smtp.set_data_reply(Some("451 4.3.0 try again later"));
    invite("retried@example.org").await;
    wait::until("a first attempt", WAIT, || async {
        !app.smtp.refused().is_empty()
    })
    .await;
    app.smtp.set_data_reply(None);
    let token = app.smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;

    // Refused for good: one failure.
    app.smtp.set_data_reply(Some("550 5.1.1 no such user"));
    let failed = invite("failed@example.org").await;
    app.wait_for_invitation(&editor, failed, WAIT, |inv| {
        inv["delivery"]["status"] == "failed"
    })
    .await;
    app.smtp.set_data_reply(None);

    let revoked = invite("revoked@example.org").await;
    json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{revoked}/revoke/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;

    let text = metrics_when(&app.anonymous(), |text| {
        [
            "cbh_emails_failed_total",
            "cbh_invitations_accepted_total",
            "cbh_invitations_revoked_total",
        ]
        .iter()
        .all(|name| metric(text, name).is_some_and(|n| n >= 1.0))
    })
    .await;
    assert_eq!(
        metric(&text, "cbh_emails_failed_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "cbh_invitations_created_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "cbh_invitations_accepted_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "cbh_invitations_revoked_total"),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(&text, "cbh_emails_retried_total").is_some_and(|n| n >= 1.0),
        "{text}"
    );
}

async fn the_outbox_gauges_show_what_waits(backend: Backend) {
    // No worker: what is queued stays queued.
    let app = spawn_app_with(backend, |s| s.role = ServeRole::Api).await;
    let (editor, _) = app.editor_with_project().await;
    for email in ["a@example.org", "b@example.org"] {
        json_with_status(editor.invite(json!({ "email": email })).await, 201).await;
    }
    let text = metrics_when(&app.anonymous(), |text| {
        metric(text, "cbh_outbox_oldest_age_seconds").is_some_and(|age| age >= 1.0)
    })
    .await;
    assert_eq!(metric(&text, "cbh_outbox_depth"), Some(2.0), "{text}");

    app.outbox.deliver_due().await.expect("delivery");
    let text = metrics_when(&app.anonymous(), |text| {
        metric(text, "cbh_outbox_depth") == Some(0.0)
    })
    .await;
    assert_eq!(
        metric(&text, "cbh_outbox_oldest_age_seconds"),
        Some(0.0),
        "{text}"
    );
}

async fn a_session_made_on_one_node_works_on_another(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.add_user("ada@lab.example", "Ada", "", false).await;
    let project = app.add_project("Kinase screen").await;
    app.grant(&ada, project, Role::Editor).await;
    let mut node = app.add_node(|_| {}).await;
    let here = app.login("ada@lab.example", PASSWORD).await;
    let there = app.agent_for(&here, &node.base);

    let me = json_with_status(there.get(&format!("/{NS}/api/session/")).await, 200).await;
    assert_eq!(me["user"]["username"], "ada@lab.example");
    // A write with the session and its CSRF token, on the other node.
    json_with_status(there.invite(json!({"email": "bob@example.org"})).await, 201).await;
    // Ended there, it is ended here too.
    assert_eq!(
        there.delete(&format!("/{NS}/api/session/")).await.status(),
        204
    );
    json_with_status(here.get(&format!("/{NS}/api/session/")).await, 401).await;
    node.stop().await;
}

backend_tests!(
    mail_comes_from_noreply_at_the_public_host_by_default,
    a_worker_only_node_refuses_the_api_and_the_pages,
    setup_resend_revoke_password_change_and_logout_are_audited,
    metrics_count_accepts_revokes_retries_and_failures,
    the_outbox_gauges_show_what_waits,
    a_session_made_on_one_node_works_on_another,
);
