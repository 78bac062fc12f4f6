//! Webhooks with the real binary: the `webhook` commands, and an event whose delivery was
//! committed but not yet made when the process was killed (SIGKILL) is delivered after restart.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::binary::{Server, on_sqlite, run, stdout_of};
use crate::support::webhooks::Receiver;
use crate::support::{NS, json_with_status};

const WAIT: Duration = Duration::from_secs(30);

fn cli(db: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let dir = db.parent().unwrap_or(Path::new("."));
    let mut vars = vec![("CBH_DATABASE_URL", format!("sqlite://{}", db.display()))];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    run(dir, &vars, args, None)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

async fn start(db: &Path, log: &Path) -> Server {
    let env = [
        ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
        (
            "CBH_MAIL_DIR",
            db.with_extension("mail").display().to_string(),
        ),
        ("CBH_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
        ("CBH_OUTBOX_LEASE", "2s".to_owned()),
        ("CBH_SMTP_RETRY_BASE", "1s".to_owned()),
        ("CBH_SMTP_RETRY_MAX", "1s".to_owned()),
        ("CBH_WEBHOOK_TIMEOUT", "1s".to_owned()),
    ];
    Server::start(&env, log).await
}

#[tokio::test]
async fn sigkill_between_commit_and_delivery_still_delivers_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("hooks.db");
    let log = dir.path().join("serve.log");
    on_sqlite(
        &db,
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    let project = on_sqlite(&db, &["project", "add", "--name", "Kinase screen"], None);
    let grant = [
        "grant",
        "--email",
        "ada@lab.example",
        "--project",
        &project,
        "--role",
        "editor",
    ];
    on_sqlite(&db, &grant, None);
    let key = on_sqlite(
        &db,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    );
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

    let added = stdout_of(&cli(
        &db,
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
    let listed = json_lines(&stdout_of(&cli(&db, &[], &["webhook", "list", "--json"])));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"].to_string(), id);
    assert_eq!(listed[0]["events"], json!(["invitation.created"]));
    assert!(!listed[0].to_string().contains(&secret));

    // The receiver is down: the event is committed with the invitation and waits.
    receiver.stop();
    let mut server = start(&db, &log).await;
    let client = crate::support::agent::client();
    json_with_status(
        client
            .post(format!("{}/{NS}/api/invitations/", server.base))
            .header("authorization", format!("ApiKey ada@lab.example:{key}"))
            .json(&json!({"email": "bob@example.org"}))
            .send()
            .await
            .expect("sent"),
        201,
    )
    .await;
    crate::support::wait::until("a refused attempt recorded", WAIT, || async {
        let rows = json_lines(&stdout_of(&cli(
            &db,
            &[],
            &["webhook", "deliveries", "--status", "queued", "--json"],
        )));
        rows.iter().any(|row| row["attempts"].as_i64() >= Some(1))
    })
    .await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");

    receiver.restart().await;
    let _server = start(&db, &log).await;
    receiver
        .wait_for("the event after the restart", WAIT, |r| {
            r.json()["data"]["email"] == "bob@example.org"
        })
        .await;
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].verified);
    crate::support::wait::until("the delivery marked sent", WAIT, || async {
        let rows = json_lines(&stdout_of(&cli(
            &db,
            &[],
            &["webhook", "deliveries", "--status", "sent", "--json"],
        )));
        rows.len() == 1 && rows[0]["webhook_id"] == accepted[0].id.as_str()
    })
    .await;

    // Nothing failed, so there is nothing to retry; then the endpoint goes.
    let retry = cli(&db, &[], &["webhook", "retry", "1"]);
    assert_eq!(retry.status.code(), Some(2));
    assert_eq!(cli(&db, &[], &["webhook", "retry"]).status.code(), Some(2));
    stdout_of(&cli(&db, &[], &["webhook", "retry", "--failed"]));
    stdout_of(&cli(&db, &[], &["webhook", "remove", &id]));
    assert!(stdout_of(&cli(&db, &[], &["webhook", "list", "--json"])).is_empty());
    assert_eq!(
        cli(&db, &[], &["webhook", "remove", &id]).status.code(),
        Some(2)
    );
}
