//! Webhooks with the real binary, on both backends: the `webhook` commands, an event whose
//! delivery was committed but not yet made when the process was killed (SIGKILL) is delivered
//! after restart, and `webhook retry` sends a delivery that really failed once more.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::binary::{CommandDatabase, Server, run, stdout_of};
use crate::support::webhooks::{Mode, Receiver};
use crate::support::{Backend, NS, json_with_status};

const WAIT: Duration = Duration::from_secs(30);

fn cli(db: &CommandDatabase, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    cli_in(db, env, args, None)
}

fn cli_in(
    db: &CommandDatabase,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut vars = vec![("CBH_DATABASE_URL", db.url.clone())];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    run(db.dir(), &vars, args, stdin)
}

/// A command that must succeed; its standard output.
fn ok(db: &CommandDatabase, args: &[&str]) -> String {
    stdout_of(&cli(db, &[], args))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// `ok` off the test's runtime, which meanwhile serves the receiver: a receiver blocked by a
/// running command would time out requests that it means to answer.
async fn ok_off_runtime(db: &CommandDatabase, args: &[&str]) -> String {
    let url = db.url.clone();
    let dir = db.dir().to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&dir, &[("CBH_DATABASE_URL", url)], &args, None)
    })
    .await
    .expect("the command ran");
    stdout_of(&output)
}

async fn deliveries(db: &CommandDatabase, status: &str) -> Vec<Value> {
    json_lines(&ok_off_runtime(db, &["webhook", "deliveries", "--status", status, "--json"]).await)
}

/// `serve` on `db`; `extra` adds or overrides variables.
async fn start(db: &CommandDatabase, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("CBH_DATABASE_URL", db.url.clone()),
        ("CBH_MAIL_DIR", db.dir().join("mail").display().to_string()),
        ("CBH_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("CBH_OUTBOX_LEASE", "2s".to_owned()),
        ("CBH_SMTP_RETRY_BASE", "1s".to_owned()),
        ("CBH_SMTP_RETRY_MAX", "1s".to_owned()),
        ("CBH_WEBHOOK_TIMEOUT", "1s".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Server::start(&env, &db.dir().join("serve.log")).await
}

/// Ada, an editor of one project, and her API key.
fn set_up(db: &CommandDatabase) -> String {
    stdout_of(&cli_in(
        db,
        &[],
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    ));
    let project = ok(db, &["project", "add", "--name", "Kinase screen"]);
    ok(
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
    );
    ok(db, &["apikey", "create", "--email", "ada@lab.example"])
}

/// Adds an endpoint for `invitation.created` to the receiver; its id.
fn add_endpoint(db: &CommandDatabase, receiver: &Receiver) -> String {
    let added = stdout_of(&cli(
        db,
        &[("CBH_WEBHOOK_ALLOW_PRIVATE", "true")],
        &[
            "webhook",
            "add",
            "--url",
            &receiver.url(),
            "--events",
            "invitation.created",
        ],
    ));
    let mut lines = added.lines();
    let id = lines.next().expect("id line").to_owned();
    let secret = lines.next().expect("secret line").to_owned();
    assert!(secret.starts_with("whsec_"));
    receiver.set_secret(&secret);
    id
}

async fn invite(server: &Server, key: &str, email: &str) {
    let client = crate::support::agent::client();
    json_with_status(
        client
            .post(format!("{}/{NS}/api/invitations/", server.base))
            .header("authorization", format!("ApiKey ada@lab.example:{key}"))
            .json(&json!({"email": email}))
            .send()
            .await
            .expect("sent"),
        201,
    )
    .await;
}

async fn sigkill_between_commit_and_delivery_still_delivers_after_restart(backend: Backend) {
    let db = CommandDatabase::new(backend).await;
    let key = set_up(&db);
    let mut receiver = Receiver::start().await;

    // Without CBH_WEBHOOK_ALLOW_PRIVATE a loopback URL is a usage error.
    let refused = cli(&db, &[], &["webhook", "add", "--url", &receiver.url()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused"));
    let bad_event = cli(
        &db,
        &[("CBH_WEBHOOK_ALLOW_PRIVATE", "true")],
        &[
            "webhook",
            "add",
            "--url",
            &receiver.url(),
            "--events",
            "nope",
        ],
    );
    assert_eq!(bad_event.status.code(), Some(2));

    let id = add_endpoint(&db, &receiver);
    let listed = json_lines(&ok(&db, &["webhook", "list", "--json"]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"].to_string(), id);
    assert_eq!(listed[0]["events"], json!(["invitation.created"]));
    assert!(!listed[0].to_string().contains("whsec_"));

    // The receiver is down: the event is committed with the invitation and waits.
    receiver.stop();
    let mut server = start(&db, &[]).await;
    invite(&server, &key, "bob@example.org").await;
    crate::support::wait::until("a refused attempt recorded", WAIT, || async {
        let rows = deliveries(&db, "queued").await;
        rows.iter().any(|row| row["attempts"].as_i64() >= Some(1))
    })
    .await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");

    receiver.restart().await;
    let _server = start(&db, &[]).await;
    receiver
        .wait_for("the event after the restart", WAIT, |r| {
            r.json()["data"]["email"] == "bob@example.org"
        })
        .await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].verified);
    crate::support::wait::until("the delivery marked sent", WAIT, || async {
        let rows = deliveries(&db, "sent").await;
        rows.len() == 1 && rows[0]["webhook_id"] == accepted[0].id.as_str()
    })
    .await;

    // Nothing failed, so there is nothing to retry; then the endpoint goes.
    let retry = cli(&db, &[], &["webhook", "retry", "1"]);
    assert_eq!(retry.status.code(), Some(2));
    assert_eq!(cli(&db, &[], &["webhook", "retry"]).status.code(), Some(2));
    ok(&db, &["webhook", "retry", "--failed"]);
    ok(&db, &["webhook", "remove", &id]);
    assert!(ok(&db, &["webhook", "list", "--json"]).is_empty());
    assert_eq!(
        cli(&db, &[], &["webhook", "remove", &id]).status.code(),
        Some(2)
    );
}

/// A delivery that really failed (the receiver answered 500 until its attempts ran out) is sent
/// again by `webhook retry ID`, and the others by `webhook retry --failed`: once each, with the
/// same `webhook-id`.
async fn webhook_retry_sends_a_delivery_that_really_failed_once_more(backend: Backend) {
    let db = CommandDatabase::new(backend).await;
    let key = set_up(&db);
    let receiver = Receiver::start().await;
    add_endpoint(&db, &receiver);
    receiver.set_mode(Mode::Fail);
    let server = start(
        &db,
        &[
            ("CBH_SMTP_MAX_ATTEMPTS", "2"),
            // Each refusal is the receiver's 500, never a timeout.
            ("CBH_WEBHOOK_TIMEOUT", "10s"),
        ],
    )
    .await;

    invite(&server, &key, "bob@example.org").await;
    crate::support::wait::until("Bob's delivery failed", WAIT, || async {
        deliveries(&db, "failed").await.len() == 1
    })
    .await;
    let failed = deliveries(&db, "failed").await;
    assert_eq!(failed[0]["attempts"], 2, "{failed:?}");
    assert!(
        failed[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{failed:?}"
    );
    let bob_id = failed[0]["webhook_id"]
        .as_str()
        .expect("webhook id")
        .to_owned();
    let refused = |id: &str| {
        receiver
            .received()
            .iter()
            .filter(|r| r.id == id && !r.accepted)
            .count()
    };
    assert_eq!(refused(&bob_id), 2, "one request per attempt");
    assert!(receiver.accepted().is_empty());

    // The receiver recovers; `retry ID` queues that delivery, and it is sent once.
    receiver.set_mode(Mode::Ok);
    let delivery = failed[0]["id"].to_string();
    ok_off_runtime(&db, &["webhook", "retry", &delivery]).await;
    receiver
        .wait_for("Bob's event after retry", WAIT, |r| r.id == bob_id)
        .await;
    crate::support::wait::until("Bob's delivery sent", WAIT, || async {
        deliveries(&db, "sent").await.len() == 1
    })
    .await;
    assert!(deliveries(&db, "failed").await.is_empty());

    // Two more fail; `retry --failed` sends both.
    receiver.set_mode(Mode::Fail);
    invite(&server, &key, "carol@example.org").await;
    invite(&server, &key, "dave@example.org").await;
    crate::support::wait::until("two more deliveries failed", WAIT, || async {
        deliveries(&db, "failed").await.len() == 2
    })
    .await;
    receiver.set_mode(Mode::Ok);
    ok_off_runtime(&db, &["webhook", "retry", "--failed"]).await;
    crate::support::wait::until("every delivery sent", WAIT, || async {
        deliveries(&db, "sent").await.len() == 3
    })
    .await;
    let accepted = receiver.accepted();
    let mut emails: Vec<String> = accepted
        .iter()
        .map(|r| {
            assert!(r.verified, "signed");
            r.json()["data"]["email"]
                .as_str()
                .expect("email")
                .to_owned()
        })
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        ["bob@example.org", "carol@example.org", "dave@example.org"],
        "each event delivered once"
    );
    for row in deliveries(&db, "sent").await {
        let id = row["webhook_id"].as_str().expect("webhook id");
        assert_eq!(refused(id), 2, "{row}");
    }
}

backend_tests!(
    sigkill_between_commit_and_delivery_still_delivers_after_restart,
    webhook_retry_sends_a_delivery_that_really_failed_once_more,
);
