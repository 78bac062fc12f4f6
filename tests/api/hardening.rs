//! Limits an attacker meets: bounded password work, and the smaller hardening items.

use serde_json::json;

use crate::support::{Backend, NS, spawn_app_with};

#[tokio::test]
async fn a_burst_of_logins_past_the_password_queue_gets_503_at_once() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        // Only the queue is under test: no login throttle answers first.
        s.limits.login_failures_per_account = None;
        s.limits.login_account_ceiling = None;
        s.limits.login_failures_per_client = None;
    })
    .await;
    app.add_user("alice@example.org", "Alice", "A", false).await;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Far more than the hashing threads and their queue can hold at once.
    let burst = 100 + 10 * cores;
    let client = reqwest::Client::new();
    let url = format!("{}/{NS}/api/session/", app.base);
    let attempts = (0..burst).map(|_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let response = client
                .post(url)
                .json(&json!({"username": "alice@example.org", "password": "wrong password"}))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, retry_after, body)
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let busy: Vec<_> = answers.iter().filter(|(s, ..)| *s == 503).collect();
    assert!(!busy.is_empty(), "no 503 among {burst} concurrent logins");
    for (_, retry_after, body) in &busy {
        assert!(retry_after, "503 without Retry-After");
        assert!(body["error"].is_string(), "{body}");
    }
    for (status, _, body) in &answers {
        assert!(matches!(status, 401 | 503), "{status}: {body}");
    }
    assert!(
        answers.iter().any(|(s, ..)| *s == 401),
        "no login was checked at all"
    );
}

#[test]
fn help_never_prints_a_secret_from_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [
        (
            "CBH_DATABASE_URL",
            "postgres://cbh:db-s3cret@db.example/cbh".to_owned(),
        ),
        (
            "CBH_SMTP_URL",
            "smtp://mailer:smtp-s3cret@mail.example:587".to_owned(),
        ),
    ];
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["audit", "--help"],
        &["user", "add", "--help"],
    ] {
        let output = crate::support::binary::run(dir.path(), &env, args, None);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(printed.contains("--database-url"), "{args:?}: {printed}");
        assert!(
            !printed.contains("s3cret"),
            "{args:?} printed a secret:\n{printed}"
        );
    }
}

#[tokio::test]
async fn metrics_keep_answering_while_the_database_is_down() {
    // Fails unless PostgreSQL answers, or CBH_TEST_POSTGRES=skip says to skip (and prints so).
    if !crate::support::postgres::postgres_available(
        "hardening::metrics_keep_answering_while_the_database_is_down",
    ) {
        return;
    }
    let app = spawn_app_with(Backend::Postgres, |s| {
        s.pool.acquire_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let before = app.anonymous().get("/metrics").await;
    assert_eq!(before.status(), 200);
    let before = before.text().await.expect("text");
    assert!(before.contains("cbh_database_up 1"), "{before}");
    assert!(before.contains("cbh_outbox_depth 0"), "{before}");

    let name = match &app.settings.database {
        cbh_invite::config::DatabaseUrl::Postgres(url) => {
            url.rsplit('/').next().expect("database name").to_owned()
        }
        other => panic!("not PostgreSQL: {other:?}"),
    };
    let mut admin = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&crate::support::postgres::postgres_admin_url())
            .await
            .expect("admin connection")
    };
    // The database refuses new connections and loses the ones it had: down, for the app.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .expect("close the database");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .expect("end its connections");
    assert_eq!(app.anonymous().get("/readyz").await.status(), 503);

    let during = app.anonymous().get("/metrics").await;
    assert_eq!(during.status(), 200);
    let during = during.text().await.expect("text");
    assert!(during.contains("cbh_database_up 0"), "{during}");
    assert!(!during.contains("cbh_outbox_depth"), "{during}");
    assert!(
        during.contains("cbh_invitations_created_total 0"),
        "{during}"
    );
    assert!(during.contains("cbh_http_requests_total{"), "{during}");

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .expect("open the database again");
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_and_not_on_the_public_address() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let metrics_base = app.metrics_base.clone().expect("a metrics address");
    let apart = reqwest::get(format!("{metrics_base}/metrics"))
        .await
        .expect("request");
    assert_eq!(apart.status(), 200);
    assert!(
        apart
            .text()
            .await
            .expect("text")
            .contains("cbh_invitations_created_total")
    );
    assert_eq!(app.anonymous().get("/metrics").await.status(), 404);
    // The metrics address serves nothing else.
    let other = reqwest::get(format!("{metrics_base}/{NS}/api/session/"))
        .await
        .expect("request");
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn every_response_carries_hsts_when_published_over_https() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.public_url = Some("https://hub.example.org".into());
    })
    .await;
    for path in ["/healthz", "/nowhere", &format!("/{NS}/login/")] {
        let response = app.anonymous().get(path).await;
        assert_eq!(
            response
                .headers()
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    let plain = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let response = plain.anonymous().get("/healthz").await;
    assert!(!response.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn a_safe_incoming_request_id_is_kept_and_anything_else_replaced() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let with_id = |id: &str| {
        app.anonymous()
            .request(reqwest::Method::GET, "/nowhere")
            .header("x-request-id", id)
            .send()
    };
    let kept = with_id("proxy-7f3a.b_9").await.expect("request");
    assert_eq!(kept.headers()["x-request-id"], "proxy-7f3a.b_9");
    let body: serde_json::Value = kept.json().await.expect("json");
    assert_eq!(body["request_id"], "proxy-7f3a.b_9");

    for bad in ["a b", "<script>", "x%0d%0ay", &"a".repeat(65)] {
        let replaced = with_id(bad).await.expect("request");
        let echoed = replaced.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_ne!(echoed, bad);
        assert!(
            !echoed.is_empty() && echoed.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{echoed}"
        );
    }
}

#[tokio::test]
async fn a_forged_username_cannot_forge_an_audit_line() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let forged = "x\n2026-01-01T00:00:00Z chembiohub login_succeeded actor=admin@lab.example \u{1b}[2J\u{9b}31m";
    let refused = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": forged, "password": "wrong password"}),
        )
        .await;
    assert_eq!(refused.status(), 401);

    let text = crate::support::binary::on_sqlite(&app.db_path(), &["audit"], None);
    assert!(text.contains("login_failed"), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("20"),
            "a line that is not a record: {line:?}"
        );
        // The forged record stays inside the subject of the real one.
        assert_ne!(
            line.split(' ').nth(2),
            Some("login_succeeded"),
            "a forged record: {line:?}"
        );
    }
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters printed: {text:?}"
    );

    let json_lines = crate::support::binary::on_sqlite(&app.db_path(), &["audit", "--json"], None);
    let records: Vec<serde_json::Value> = json_lines
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let failed = records
        .iter()
        .find(|r| r["event"] == "login_failed")
        .expect("the failed login");
    let subject = failed["subject"].as_str().expect("subject");
    assert!(subject.contains("login_succeeded"), "{subject}");
    assert!(!subject.chars().any(char::is_control), "{subject:?}");
    assert!(failed["at"].is_string() && failed["namespace"] == NS);
}

/// A client that keeps cookies and shows redirects instead of following them.
fn page_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Logs in through the login page with `next`; returns where it redirects.
async fn login_page_redirect(client: &reqwest::Client, base: &str, next: &str) -> String {
    let page = client
        .get(format!("{base}/{NS}/login/"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    let marker = "name=\"form_token\" value=\"";
    let start = page.find(marker).expect("form token") + marker.len();
    let token = &page[start..start + page[start..].find('"').expect("quote")];
    let done = client
        .post(format!("{base}/{NS}/login/"))
        .form(&[
            ("form_token", token),
            ("email", "ada@lab.example"),
            ("password", crate::support::PASSWORD),
            ("next", next),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(done.status(), 303, "next={next}");
    done.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test]
async fn login_next_with_dot_segments_goes_to_the_default_page() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.app_url = Some("http://invite.test.example/app/".into());
    })
    .await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let client = page_client();
    let landing = format!("/{NS}/invite/");
    for (next, expected) in [
        (format!("/{NS}/../other/invite/"), landing.clone()),
        (format!("/{NS}/./invite/"), landing.clone()),
        (format!("/{NS}/%2e%2e/other/invite/"), landing.clone()),
        (format!("/{NS}/%2E%2E/other/invite/"), landing.clone()),
        (format!("/{NS}/.%2e/other/invite/"), landing.clone()),
        (format!("/{NS}/%252e%252e/other/"), landing.clone()),
        ("/app/../other/".to_owned(), landing.clone()),
        // Any path of this origin, not only the namespace's or the app's.
        ("/apple/".to_owned(), "/apple/".to_owned()),
        (format!("/{NS}/welcome/"), format!("/{NS}/welcome/")),
        // CBH_APP_URL is on this service's origin: its paths are local too.
        ("/app/projects/7".to_owned(), "/app/projects/7".to_owned()),
    ] {
        let location = login_page_redirect(&client, &app.base, &next).await;
        assert_eq!(location, expected, "next={next}");
    }

    let elsewhere = spawn_app_with(Backend::Sqlite, |s| {
        s.app_url = Some("https://app.example.org/app/".into());
    })
    .await;
    elsewhere
        .add_user("ada@lab.example", "Ada", "", false)
        .await;
    // A path stays on this origin (never turned into the app's); the app is reached by its
    // absolute URL, and no other origin is.
    let client = page_client();
    let location = login_page_redirect(&client, &elsewhere.base, "/app/projects/7").await;
    assert_eq!(location, "/app/projects/7");
    let app_page = "https://app.example.org/app/projects/7";
    let location = login_page_redirect(&client, &elsewhere.base, app_page).await;
    assert_eq!(location, app_page);
    let other = "https://other.example.org/app/projects/7";
    let location = login_page_redirect(&client, &elsewhere.base, other).await;
    assert_eq!(location, landing, "another origin is never followed");
}
