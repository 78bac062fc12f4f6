//! What an operator runs around a deployment, on the real binary: `check`, `mail test`,
//! `prune` and `backup` (with a second server started on the copy).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::crash::{set_up, start_server};
use crate::support::NS;
use crate::support::binary::run;
use crate::support::smtp::SmtpServer;
use crate::support::tls::TestCa;
use crate::support::wait::{free_port, until};

const WAIT: Duration = Duration::from_secs(30);

fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary off the test's runtime, which meanwhile serves the in-process SMTP server.
async fn cbh(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Ran {
    let dir = dir.to_owned();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&dir, &env, &args, None)
    })
    .await
    .expect("the command ran");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn line<'a>(ran: &'a Ran, prefix: &str) -> &'a str {
    ran.stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| {
            panic!(
                "no line starting {prefix:?} in:\n{}{}",
                ran.stdout, ran.stderr
            )
        })
}

#[tokio::test]
async fn check_passes_with_a_live_relay_and_fails_in_words_when_it_is_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let db = d.join("check.db");
    let smtp = SmtpServer::start().await;
    let mut env = vec![
        ("CBH_DATABASE_URL", sqlite_url(&db)),
        ("CBH_SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port)),
    ];

    let fresh = cbh(d, &env, &["check"]).await;
    assert_eq!(fresh.code, Some(0), "{}{}", fresh.stdout, fresh.stderr);
    assert!(line(&fresh, "ok   database").contains("does not exist yet"));
    assert!(!db.exists(), "check creates no database");

    // An empty file is a database without a schema: every migration is pending, and check
    // applies none of them.
    std::fs::write(&db, b"").expect("empty file");
    let pending = cbh(d, &env, &["check"]).await;
    assert_eq!(
        pending.code,
        Some(0),
        "{}{}",
        pending.stdout,
        pending.stderr
    );
    assert!(
        line(&pending, "ok   database").contains("0001_initial"),
        "{}",
        pending.stdout
    );
    let again = cbh(d, &env, &["check"]).await;
    assert!(
        line(&again, "ok   database").contains("pending"),
        "check applied nothing"
    );

    assert_eq!(cbh(d, &env, &["migrate"]).await.code, Some(0));
    let ready = cbh(d, &env, &["check"]).await;
    assert_eq!(ready.code, Some(0), "{}{}", ready.stdout, ready.stderr);
    assert_eq!(
        ready.stdout.lines().count(),
        6,
        "one line per check:\n{}",
        ready.stdout
    );
    assert!(line(&ready, "ok   settings").contains("valid"));
    assert!(line(&ready, "ok   templates").contains("built-in"));
    assert!(line(&ready, "ok   dkim").contains("not configured"));
    assert!(line(&ready, "ok   bounces").contains("not configured"));
    assert!(line(&ready, "ok   database").contains("no migration pending"));
    assert!(
        line(&ready, "ok   mail").contains(&format!("127.0.0.1:{} answered EHLO", smtp.port)),
        "{}",
        ready.stdout
    );
    assert_eq!(smtp.received_count(), 0, "check sends no message");
    let mut bounces = env.clone();
    bounces.push(("CBH_BOUNCE_ADDRESS", "bounces@lab.example".into()));
    let with_bounces = cbh(d, &bounces, &["check"]).await;
    assert_eq!(
        line(&with_bounces, "ok   bounces"),
        "ok   bounces: envelope sender bounces+{id}@lab.example (pipe that address to `cbh-invite bounce`)"
    );

    let closed = free_port();
    env[1] = ("CBH_SMTP_URL", format!("smtp://127.0.0.1:{closed}"));
    let down = cbh(d, &env, &["check"]).await;
    assert_eq!(down.code, Some(1), "{}{}", down.stdout, down.stderr);
    let failure = line(&down, "FAIL mail");
    assert!(
        failure.contains(&format!("127.0.0.1:{closed}")) && failure.contains("refused"),
        "{failure}"
    );
    assert!(line(&down, "ok   database").contains("no migration pending"));
}

#[tokio::test]
async fn check_fails_on_a_broken_template_override_a_bad_setting_and_an_unreachable_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let templates = d.join("templates");
    std::fs::create_dir(&templates).expect("dir");
    std::fs::write(templates.join("new_user.txt"), "Hello {% if %}").expect("template");
    let db = sqlite_url(&d.join("check.db"));
    let env = vec![
        ("CBH_DATABASE_URL", db.clone()),
        ("CBH_TEMPLATE_DIR", templates.display().to_string()),
    ];
    let broken = cbh(d, &env, &["check"]).await;
    assert_eq!(broken.code, Some(1), "{}{}", broken.stdout, broken.stderr);
    assert!(
        line(&broken, "FAIL templates").contains("new_user.txt"),
        "{}",
        broken.stdout
    );
    // Without a relay, mail goes to the folder: checked by writing there.
    assert!(
        line(&broken, "ok   mail").contains("writable"),
        "{}",
        broken.stdout
    );

    let bad = cbh(d, &[("CBH_INVITE_TTL", "forever".into())], &["check"]).await;
    assert_eq!(bad.code, Some(1));
    assert!(
        line(&bad, "FAIL settings").contains("CBH_INVITE_TTL"),
        "{}",
        bad.stdout
    );

    let closed = free_port();
    let unreachable = vec![(
        "CBH_DATABASE_URL",
        format!("postgres://cbh:secret-pw@127.0.0.1:{closed}/cbh"),
    )];
    let down = cbh(d, &unreachable, &["check"]).await;
    assert_eq!(down.code, Some(1), "{}{}", down.stdout, down.stderr);
    let failure = line(&down, "FAIL database");
    assert!(
        failure.contains(&format!("127.0.0.1:{closed}")),
        "{failure}"
    );
    assert!(
        !down.stdout.contains("secret-pw"),
        "the password is never shown"
    );
}

/// `check` against a relay over TLS (STARTTLS, `smtps://`) that wants a login, whose
/// certificate comes from a CA the test made: each line says how far it got; wrong credentials
/// fail the check in words (the relay's 535), never showing the password.
#[tokio::test]
async fn check_talks_tls_and_auth_to_the_relay_and_fails_on_wrong_credentials() {
    const USER: &str = "mailer@lab.example";
    const PASSWORD: &str = "p@ss word:1";
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = TestCa::new("check relay CA");
    let ca_file = ca.write(d, "relay-ca.pem").display().to_string();
    let sink = |starttls: bool| {
        let cert = ca.server_cert();
        smtp_sink::Options {
            tls: Some(smtp_sink::TlsIdentity {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
            }),
            starttls,
            implicit_tls: !starttls,
            auth: Some((USER.into(), PASSWORD.into())),
            ..smtp_sink::Options::default()
        }
    };
    let starttls = SmtpServer::start_with(sink(true)).await;
    let implicit = SmtpServer::start_with(sink(false)).await;
    let db = sqlite_url(&d.join("check.db"));
    let env = |url: String| {
        vec![
            ("CBH_DATABASE_URL", db.clone()),
            ("CBH_SMTP_URL", url),
            ("CBH_SMTP_CA_FILE", ca_file.clone()),
        ]
    };
    let login = "mailer%40lab.example:p%40ss%20word%3A1";

    let upgraded = cbh(
        d,
        &env(format!(
            "smtp://{login}@127.0.0.1:{}?tls=starttls",
            starttls.port
        )),
        &["check"],
    )
    .await;
    assert_eq!(
        upgraded.code,
        Some(0),
        "{}{}",
        upgraded.stdout,
        upgraded.stderr
    );
    let mail = line(&upgraded, "ok   mail");
    assert!(
        mail.contains("STARTTLS done") && mail.contains(&format!("logged in as {USER}")),
        "{mail}"
    );

    let over_tls = cbh(
        d,
        &env(format!("smtps://{login}@127.0.0.1:{}", implicit.port)),
        &["check"],
    )
    .await;
    assert_eq!(
        over_tls.code,
        Some(0),
        "{}{}",
        over_tls.stdout,
        over_tls.stderr
    );
    let mail = line(&over_tls, "ok   mail");
    assert!(
        mail.contains("over TLS") && mail.contains(&format!("logged in as {USER}")),
        "{mail}"
    );

    let wrong = cbh(
        d,
        &env(format!(
            "smtps://mailer%40lab.example:not-the-password@127.0.0.1:{}",
            implicit.port
        )),
        &["check"],
    )
    .await;
    assert_eq!(wrong.code, Some(1), "{}{}", wrong.stdout, wrong.stderr);
    let failure = line(&wrong, "FAIL mail");
    assert!(
        failure.contains("535") && failure.contains("credentials invalid"),
        "{failure}"
    );
    assert!(
        failure.contains(&format!("127.0.0.1:{}", implicit.port)),
        "{failure}"
    );
    assert!(
        !wrong.stdout.contains("not-the-password") && !wrong.stderr.contains("not-the-password"),
        "the password is never shown"
    );
    assert_eq!(implicit.auth_failures(), 1);
    assert_eq!(starttls.received_count() + implicit.received_count(), 0);
}

/// `CBH_WEBHOOK_TIMEOUT` is read from the environment: a duration is accepted, anything else
/// stops `serve` and fails `check`, naming the variable.
#[tokio::test]
async fn the_webhook_timeout_is_read_and_a_bad_one_is_refused_in_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let env = |timeout: &str| {
        vec![
            ("CBH_DATABASE_URL", sqlite_url(&d.join("hooks.db"))),
            ("CBH_MAIL_DIR", d.join("mail").display().to_string()),
            ("CBH_WEBHOOK_TIMEOUT", timeout.to_owned()),
            ("CBH_LISTEN", format!("127.0.0.1:{}", free_port())),
        ]
    };
    let good = cbh(d, &env("3s"), &["check"]).await;
    assert_eq!(good.code, Some(0), "{}{}", good.stdout, good.stderr);
    assert!(line(&good, "ok   settings").contains("valid"));
    let bad = cbh(d, &env("soon"), &["check"]).await;
    assert_eq!(bad.code, Some(1), "{}{}", bad.stdout, bad.stderr);
    let failure = line(&bad, "FAIL settings");
    assert!(
        failure.contains("CBH_WEBHOOK_TIMEOUT (--webhook-timeout)") && failure.contains("soon"),
        "{failure}"
    );
    let serve = cbh(d, &env("soon"), &["serve"]).await;
    assert_eq!(serve.code, Some(2), "{}", serve.stderr);
    assert!(
        serve.stderr.contains("CBH_WEBHOOK_TIMEOUT"),
        "{}",
        serve.stderr
    );
}

/// A database URL or a `*_FILE` variable that cannot be used is a failed settings check like any
/// other: one `FAIL settings` line on standard output and exit 1 (other commands: exit 2).
#[tokio::test]
async fn check_reports_a_bad_database_url_or_secret_file_as_a_failed_settings_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let url = sqlite_url(&d.join("check.db"));
    let url_file = d.join("database-url");
    std::fs::write(&url_file, &url).expect("url file");
    let url_file = url_file.display().to_string();
    let missing = d.join("missing").display().to_string();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("CBH_DATABASE_URL", "mysql://db.example/cbh".into())],
            "CBH_DATABASE_URL (--database-url): expected sqlite://",
        ),
        (
            vec![(
                "CBH_DATABASE_URL",
                "postgres://cbh@127.0.0.1:1/cbh?sslmode=sometimes".into(),
            )],
            "sslmode=sometimes",
        ),
        (
            vec![(
                "CBH_DATABASE_URL",
                format!("postgres://cbh@127.0.0.1:1/cbh?sslmode=verify-ca&sslrootcert={missing}"),
            )],
            "cannot be read",
        ),
        (
            vec![
                ("CBH_DATABASE_URL", url.clone()),
                ("CBH_DATABASE_URL_FILE", url_file.clone()),
            ],
            "CBH_DATABASE_URL and CBH_DATABASE_URL_FILE are both set",
        ),
        (
            vec![("CBH_DATABASE_URL_FILE", missing.clone())],
            "CBH_DATABASE_URL_FILE: cannot read",
        ),
        (
            vec![
                ("CBH_DATABASE_URL", url.clone()),
                ("CBH_SMTP_URL_FILE", missing.clone()),
            ],
            "CBH_SMTP_URL_FILE: cannot read",
        ),
    ];
    for (env, expected) in cases {
        let ran = cbh(d, &env, &["check"]).await;
        assert_eq!(ran.code, Some(1), "{env:?}: {}{}", ran.stdout, ran.stderr);
        let failure = line(&ran, "FAIL settings");
        assert!(failure.contains(expected), "{env:?}: {failure}");
    }
    // A command other than `check` keeps refusing to start with a usage error.
    let migrate = cbh(
        d,
        &[("CBH_DATABASE_URL", "mysql://db.example/cbh".into())],
        &["migrate"],
    )
    .await;
    assert_eq!(migrate.code, Some(2), "{}", migrate.stderr);
}

#[tokio::test]
async fn mail_test_sends_one_message_and_prints_the_relays_reply() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let smtp = SmtpServer::start().await;
    let env = vec![
        ("CBH_SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port)),
        ("CBH_MAIL_FROM", "Lab <noreply@lab.example>".to_owned()),
    ];
    let sent = cbh(d, &env, &["mail", "test", "--to", "ops@lab.example"]).await;
    assert_eq!(sent.code, Some(0), "{}{}", sent.stdout, sent.stderr);
    assert!(
        sent.stdout.starts_with("250"),
        "the relay's reply: {}",
        sent.stdout
    );
    let received = smtp.wait_for(1, WAIT).await;
    assert_eq!(received[0].rcpt_to, ["ops@lab.example"]);
    assert!(
        received[0].subject().contains("test"),
        "{}",
        received[0].subject()
    );

    let closed = free_port();
    let down = cbh(
        d,
        &[("CBH_SMTP_URL", format!("smtp://127.0.0.1:{closed}"))],
        &["mail", "test", "--to", "ops@lab.example"],
    )
    .await;
    assert_eq!(down.code, Some(1));
    assert!(
        down.stderr.contains("not sent") && down.stderr.contains("refused"),
        "{}",
        down.stderr
    );
}

#[tokio::test]
async fn serve_logs_the_relay_and_its_checks_but_never_its_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("serve.db");
    let log = dir.path().join("serve.log");
    let smtp = SmtpServer::start().await;
    let env = vec![
        ("CBH_DATABASE_URL", sqlite_url(&db)),
        (
            "CBH_SMTP_URL",
            format!("smtp://relayuser:hunter2-pw@127.0.0.1:{}", smtp.port),
        ),
    ];
    let _server = crate::support::binary::Server::start(&env, &log).await;
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    until("serve logs its start-up checks", WAIT, || async {
        // The sink may not offer AUTH: the verdict does not matter here, only what is logged.
        read().contains("start-up check: ok   mail: ")
            || read().contains("start-up check: FAIL mail: ")
    })
    .await;
    let text = read();
    assert!(
        text.contains(&format!(
            "SMTP relay 127.0.0.1:{}, no TLS, as relayuser",
            smtp.port
        )),
        "{text}"
    );
    assert!(text.contains("ok   templates"), "{text}");
    assert!(
        !text.contains("hunter2-pw"),
        "the relay's password is never logged"
    );
}

#[tokio::test]
async fn prune_on_the_command_line_counts_then_deletes_sent_outbox_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let db = d.join("prune.db");
    let log = d.join("serve.log");
    let smtp = SmtpServer::start().await;
    let (key, project) = set_up(&db, "a long enough password");
    let mut server = start_server(&db, smtp.port, &log, &[]).await;
    let created = crate::support::agent::client()
        .post(format!("{}/{NS}/api/invitations/", server.base))
        .header("authorization", format!("ApiKey ada@lab.example:{key}"))
        .json(&json!({"email": "bob@example.org", "projects_selected": [{"id": project}]}))
        .send()
        .await
        .expect("invite");
    assert_eq!(created.status(), 201);
    smtp.wait_for(1, WAIT).await;
    assert!(server.sigterm().success());

    let env = vec![
        ("CBH_DATABASE_URL", sqlite_url(&db)),
        ("CBH_OUTBOX_RETENTION", "1s".to_owned()),
    ];
    until(
        "the sent message is older than the retention",
        WAIT,
        || async {
            cbh(d, &env, &["prune", "--dry-run"])
                .await
                .stdout
                .contains("would delete 1 outbox messages sent")
        },
    )
    .await;
    let dry = cbh(d, &env, &["prune", "--dry-run"]).await;
    assert_eq!(
        dry.stdout.lines().count(),
        1 + cbh_invite::store::PruneReport::default().lines().len(),
        "the expiry sweep's line and a line per kind of record:\n{}",
        dry.stdout
    );
    let pruned = cbh(d, &env, &["prune"]).await;
    assert_eq!(pruned.code, Some(0), "{}", pruned.stderr);
    assert!(
        pruned.stdout.contains("deleted 1 outbox messages sent"),
        "{}",
        pruned.stdout
    );
    let after = cbh(d, &env, &["prune", "--dry-run"]).await;
    assert!(
        after.stdout.contains("would delete 0 outbox messages sent"),
        "{}",
        after.stdout
    );
}

#[tokio::test]
async fn backup_under_load_holds_every_invitation_acknowledged_before_it_began() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let db = d.join("live.db");
    let copy = d.join("copy.db");
    let log = d.join("serve.log");
    let smtp = SmtpServer::start().await;
    let (key, project) = set_up(&db, "a long enough password");
    let server = start_server(&db, smtp.port, &log, &[]).await;

    // Clients invite without pause; each records the invitations acknowledged (201) and when.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(std::sync::Mutex::new(
        Vec::<(std::time::Instant, i64)>::new(),
    ));
    let mut clients = Vec::new();
    for worker in 0..4 {
        let (base, key) = (server.base.clone(), key.clone());
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            let client = crate::support::agent::client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let response = client
                    .post(format!("{base}/{NS}/api/invitations/"))
                    .header("authorization", format!("ApiKey ada@lab.example:{key}"))
                    .json(&json!({
                        "email": format!("w{worker}n{i}@example.org"),
                        "projects_selected": [{"id": project}],
                    }))
                    .send()
                    .await
                    .expect("the server answers");
                assert_eq!(response.status(), 201);
                let body: serde_json::Value = response.json().await.expect("json");
                let id = body["id"].as_i64().expect("id");
                acknowledged
                    .lock()
                    .expect("lock")
                    .push((std::time::Instant::now(), id));
            }
        }));
    }
    until("the load is under way", WAIT, || async {
        acknowledged.lock().expect("lock").len() >= 20
    })
    .await;

    let began = std::time::Instant::now();
    let env = vec![("CBH_DATABASE_URL", sqlite_url(&db))];
    let backed_up = cbh(d, &env, &["backup", &copy.display().to_string()]).await;
    let ended = std::time::Instant::now();
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client");
    }
    assert_eq!(
        backed_up.code,
        Some(0),
        "{}{}",
        backed_up.stdout,
        backed_up.stderr
    );
    assert!(
        backed_up.stderr.contains("integrity check: ok"),
        "{}",
        backed_up.stderr
    );

    let all = acknowledged.lock().expect("lock").clone();
    let before: BTreeSet<i64> = all
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, id)| *id)
        .collect();
    let during = all
        .iter()
        .filter(|(at, _)| *at >= began && *at <= ended)
        .count();
    assert!(before.len() >= 20, "{} acknowledged before", before.len());
    assert!(
        during > 0,
        "invitations were acknowledged while the backup ran"
    );

    // A second server on the copy finds every invitation acknowledged before the backup began.
    let copy_log = d.join("copy.log");
    let copy_smtp = SmtpServer::start().await;
    let second = start_server(&copy, copy_smtp.port, &copy_log, &[]).await;
    let client = crate::support::agent::client();
    for id in &before {
        let found = client
            .get(format!("{}/{NS}/api/invitations/{id}/", second.base))
            .header("authorization", format!("ApiKey ada@lab.example:{key}"))
            .send()
            .await
            .expect("get");
        assert_eq!(found.status(), 200, "invitation {id} is in the copy");
    }

    // A second backup to the same file is refused; the copy is untouched.
    let size = std::fs::metadata(&copy).expect("copy").len();
    let again = cbh(
        d,
        &[("CBH_DATABASE_URL", sqlite_url(&db))],
        &["backup", &copy.display().to_string()],
    )
    .await;
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    assert_eq!(std::fs::metadata(&copy).expect("copy").len(), size);
}

#[tokio::test]
async fn backup_on_postgres_says_to_use_pg_dump() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = vec![(
        "CBH_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/cbh".to_owned(),
    )];
    let refused = cbh(dir.path(), &env, &["backup", "copy.db"]).await;
    assert_eq!(refused.code, Some(2));
    assert!(refused.stderr.contains("pg_dump"), "{}", refused.stderr);
    assert!(!dir.path().join("copy.db").exists());
}

#[tokio::test]
async fn check_on_postgres_lists_pending_migrations_and_applies_none() {
    if !crate::support::postgres::postgres_available(
        "deploy::check_on_postgres_lists_pending_migrations_and_applies_none",
    ) {
        return;
    }
    let database = crate::support::postgres::TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let env = vec![("CBH_DATABASE_URL", database.url.clone())];
    for _ in 0..2 {
        let pending = cbh(d, &env, &["check"]).await;
        assert_eq!(
            pending.code,
            Some(0),
            "{}{}",
            pending.stdout,
            pending.stderr
        );
        let found = line(&pending, "ok   database");
        assert!(
            found.contains("pending")
                && found.contains("0001_initial")
                && found.contains("0007_retention"),
            "{found}"
        );
    }
    assert_eq!(cbh(d, &env, &["migrate"]).await.code, Some(0));
    let ready = cbh(d, &env, &["check"]).await;
    assert!(
        line(&ready, "ok   database").contains("no migration pending"),
        "{}",
        ready.stdout
    );
}
