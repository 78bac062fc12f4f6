//! The real binary under faults and in the operator's hands: killed with SIGKILL mid-load
//! (nothing accepted is lost), its logs (no secret in any line), and the outbox, audit and
//! API-key commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use sqlx::Connection;

use crate::support::binary::{Server, on_sqlite, run};
use crate::support::smtp::SmtpServer;
use crate::support::{Backend, NS, json_with_status, spawn_app};

const WAIT: Duration = Duration::from_secs(30);

/// `serve` on the SQLite file `db`, delivering to the SMTP server on `smtp_port`.
pub(crate) async fn start_server(
    db: &Path,
    smtp_port: u16,
    log: &Path,
    extra: &[(&str, &str)],
) -> Server {
    let mut env = vec![
        ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
        ("CBH_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
        ("CBH_OUTBOX_LEASE", "2s".to_owned()),
        ("CBH_SMTP_RETRY_BASE", "1s".to_owned()),
        ("CBH_SMTP_RETRY_MAX", "2s".to_owned()),
        ("CBH_INVITE_RATE", "off".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Server::start(&env, log).await
}

/// A user, a project and an API key made with the command line; returns (key, project id).
pub(crate) fn set_up(db: &Path, password: &str) -> (String, i64) {
    on_sqlite(
        db,
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--first-name",
            "Ada",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    let project = on_sqlite(db, &["project", "add", "--name", "Kinase screen"], None);
    on_sqlite(
        db,
        &[
            "grant",
            "--email",
            "ada@lab.example",
            "--project",
            &project,
            "--role",
            "editor",
        ],
        None,
    );
    let key = on_sqlite(
        db,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    );
    (key, project.parse().expect("project id"))
}

fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    u64::from_le_bytes(bytes) % n
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_no_accepted_invitation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("crash.db");
    let log = dir.path().join("serve.log");
    let smtp = SmtpServer::start().await;
    let (key, project) = set_up(&db, "a long enough password");
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut next_email = 0usize;

    // Three rounds in which the kill cut requests off. On a loaded machine the server can answer
    // everything in flight before the kill lands (the clients are the slower side): such a round
    // proves nothing and is not counted, up to a bound.
    let mut rounds_cut_off = 0;
    let mut round = 0;
    while rounds_cut_off < 3 {
        round += 1;
        assert!(
            round <= 10,
            "the kill cut no request off in {} of {} rounds",
            round - 1 - rounds_cut_off,
            round - 1
        );
        let mut server = start_server(&db, smtp.port, &log, &[]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let killing = Arc::new(AtomicBool::new(false));
        // Requests sent before the kill that got no answer: in flight when it came.
        let cut_off = Arc::new(AtomicUsize::new(0));
        let answered_before_kill = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for worker in 0..6 {
            let base = server.base.clone();
            let key = key.clone();
            let stop = stop.clone();
            let killing = killing.clone();
            let cut_off = cut_off.clone();
            let answered_before_kill = answered_before_kill.clone();
            let accepted = accepted.clone();
            let first = next_email + worker * 10_000;
            clients.push(tokio::spawn(async move {
                let client = crate::support::agent::client();
                let mut i = first;
                while !stop.load(Ordering::SeqCst) {
                    let email = format!("r{round}w{worker}n{i}@example.org");
                    i += 1;
                    let sent_before_kill = !killing.load(Ordering::SeqCst);
                    let sent = client
                        .post(format!("{base}/{NS}/api/invitations/"))
                        .header("authorization", format!("ApiKey ada@lab.example:{key}"))
                        .json(&json!({"email": email, "projects_selected": [{"id": project}]}))
                        .send()
                        .await;
                    if sent.is_ok() && !killing.load(Ordering::SeqCst) {
                        answered_before_kill.fetch_add(1, Ordering::SeqCst);
                    }
                    match sent {
                        Ok(response) if response.status() == 201 => {
                            accepted.lock().expect("lock").push(email);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if sent_before_kill {
                                cut_off.fetch_add(1, Ordering::SeqCst);
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await
                        }
                    }
                }
            }));
        }
        next_email += 100_000;
        // The load is under way (some answers came back) before the kill comes at a random
        // moment.
        let deadline = tokio::time::Instant::now() + WAIT;
        while answered_before_kill.load(Ordering::SeqCst) < 6 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: the load never got going"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_below(600))).await;
        killing.store(true, Ordering::SeqCst);
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.await.expect("client task");
        }
        // Six clients send without pause: the kill cut some of their requests off mid-way.
        if cut_off.load(Ordering::SeqCst) > 0 {
            rounds_cut_off += 1;
        } else {
            eprintln!("round {round}: no request was in flight when the process was killed");
        }
    }
    let accepted: BTreeSet<String> = accepted.lock().expect("lock").iter().cloned().collect();
    assert!(
        accepted.len() > 30,
        "the load ran: {} accepted",
        accepted.len()
    );

    // A last start delivers whatever the killed ones left.
    let _server = start_server(&db, smtp.port, &log, &[]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let delivered: BTreeSet<String> = smtp
            .received()
            .iter()
            .flat_map(|m| m.rcpt_to.clone())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} of {} accepted invitations were never delivered",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the database");
    let half_written: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM invitations i \
         LEFT JOIN outbox o ON o.invitation_id = i.id \
         LEFT JOIN invitation_projects ip ON ip.invitation_id = i.id \
         LEFT JOIN grants g ON g.user_id = i.invitee_id AND g.project_id = ip.project_id \
         WHERE o.id IS NULL OR ip.project_id IS NULL OR g.user_id IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .expect("query");
    assert_eq!(
        half_written, 0,
        "every invitation has its email, project and grant"
    );
    let (users, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT namespace || email_key) FROM users")
            .fetch_one(&mut conn)
            .await
            .expect("query");
    assert_eq!(users, distinct, "no user exists twice");
    for email in &accepted {
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invitations WHERE email = $1")
            .bind(email)
            .fetch_one(&mut conn)
            .await
            .expect("query");
        assert_eq!(stored, 1, "{email} got a 201 but is not stored once");
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("logs.db");
    let log = dir.path().join("serve.log");
    let smtp = SmtpServer::start().await;
    let password = "inviter's secret password";
    let (key, _) = set_up(&db, password);
    let mut server = start_server(
        &db,
        smtp.port,
        &log,
        &[("RUST_LOG", "debug"), ("CBH_LOG_FORMAT", "json")],
    )
    .await;
    let client = crate::support::agent::client();
    let base = server.base.clone();

    let login = client
        .post(format!("{base}/{NS}/api/session/"))
        .json(&json!({"username": "ada@lab.example", "password": password}))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), 200);
    let session_id = login
        .cookies()
        .find(|c| c.name() == format!("{NS}_sessionid"))
        .map(|c| c.value().to_owned())
        .expect("session cookie");
    let invited = client
        .post(format!("{base}/{NS}/api/invitations/"))
        .header("authorization", format!("ApiKey ada@lab.example:{key}"))
        .json(&json!({"email": "bob@example.org"}))
        .send()
        .await
        .expect("sent");
    let request_id = invited.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(invited.status(), 201);
    let token = smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");
    let page = client
        .get(format!("{base}/{NS}/accept/{token}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let invitee_password = "the invitee's new password";
    let accepted = client
        .post(format!("{base}/{NS}/api/invitations/accept/"))
        .json(&json!({"token": token, "password": invitee_password}))
        .send()
        .await
        .expect("sent");
    assert_eq!(accepted.status(), 200);
    assert!(server.sigterm().success(), "SIGTERM exits 0");

    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(logs.lines().count() > 5, "the server logged: {logs}");
    for (what, secret) in [
        ("the inviter's password", password),
        ("the invitee's password", invitee_password),
        ("the API key", key.as_str()),
        ("the accept token", token.as_str()),
        ("the session id", session_id.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} is in the log");
    }
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    assert!(
        logs.contains(&request_id),
        "log lines carry the request id that responses return"
    );
}

/// The commands run the same store code on both backends; this drives them on a SQLite file.
#[tokio::test]
async fn the_operator_retries_failed_mail_and_reads_the_audit_log() {
    let app = spawn_app(Backend::Sqlite).await;
    app.smtp
        .set_data_reply(Some("550 5.1.1 mailbox unavailable"));
    let (editor, _) = app.editor_with_project().await;
    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    app.wait_for_invitation(&editor, id, WAIT, |inv| {
        inv["delivery"]["status"] == "failed"
    })
    .await;
    let db: PathBuf = app.db_path();

    let listed = on_sqlite(&db, &["outbox", "list", "--status", "failed"], None);
    assert!(
        listed.contains("bob@example.org") && listed.contains("550"),
        "{listed}"
    );
    app.smtp.set_data_reply(None);
    let retried = run(
        db.parent().expect("folder"),
        &[("CBH_DATABASE_URL", format!("sqlite://{}", db.display()))],
        &["outbox", "retry", "--failed"],
        None,
    );
    assert!(String::from_utf8_lossy(&retried.stderr).contains("queued 1"));
    app.smtp.wait_for(1, WAIT).await;
    app.wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;

    let audit = on_sqlite(&db, &["audit", "--since", "1h"], None);
    assert!(
        audit.contains("invitation_created actor=ada@lab.example"),
        "{audit}"
    );

    let key = on_sqlite(
        &db,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    );
    let with_key = |key: String| {
        let client = crate::support::agent::client();
        let url = format!("{}/{NS}/api/invitations/", app.base);
        async move {
            client
                .get(url)
                .header("authorization", format!("ApiKey ada@lab.example:{key}"))
                .send()
                .await
                .expect("sent")
                .status()
        }
    };
    assert_eq!(with_key(key.clone()).await, 200);
    on_sqlite(
        &db,
        &["apikey", "revoke", "--email", "ada@lab.example"],
        None,
    );
    assert_eq!(with_key(key).await, 401);
    let audit = on_sqlite(&db, &["audit", "--since", "1h"], None);
    assert!(
        audit.contains("apikey_created") && audit.contains("apikey_revoked"),
        "{audit}"
    );
}

#[tokio::test]
async fn sigterm_lets_a_send_in_flight_finish_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("term.db");
    let log = dir.path().join("serve.log");
    let smtp = SmtpServer::start().await;
    // The SMTP server holds its answer until the test releases it: the send is certainly in
    // flight when the signal comes.
    smtp.hold();
    let (key, _) = set_up(&db, "a long enough password");
    let mut server = start_server(&db, smtp.port, &log, &[]).await;
    let invited = crate::support::agent::client()
        .post(format!("{}/{NS}/api/invitations/", server.base))
        .header("authorization", format!("ApiKey ada@lab.example:{key}"))
        .json(&json!({"email": "bob@example.org"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(invited.status(), 201);
    let deadline = tokio::time::Instant::now() + WAIT;
    while smtp.held_messages().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the send never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    // The server saw the signal while the send was still unanswered, and waits for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("shutting down")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never logged the signal"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(smtp.received().is_empty(), "the send was in flight");
    assert_eq!(smtp.messages_in_data(), 1, "the send was in flight");
    assert!(
        server.child.try_wait().expect("status").is_none(),
        "the server waits for the send in flight"
    );
    smtp.release();

    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("status") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not exit after the send"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    assert_eq!(smtp.received().len(), 1, "the send in flight was finished");
    let sent = on_sqlite(&db, &["outbox", "list", "--status", "sent"], None);
    assert!(
        sent.contains("bob@example.org"),
        "and recorded as sent: {sent}"
    );
}
