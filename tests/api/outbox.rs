//! Delivery in the background: a slow or absent SMTP server never holds up a request, and
//! nothing queued is lost.

use std::time::Duration;

use cbh_invite::config::ServeRole;
use cbh_invite::domain::Timestamp;
use serde_json::json;

use crate::support::wait;
use crate::support::{Backend, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(15);

fn files_contain(db: &std::path::Path, needle: &str) -> bool {
    [db.to_owned(), db.with_extension("db-wal")]
        .iter()
        .any(|path| {
            std::fs::read(path).is_ok_and(|bytes| {
                bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            })
        })
}

async fn a_slow_smtp_server_does_not_hold_up_the_request(backend: Backend) {
    let app = spawn_app(backend).await;
    // The SMTP server keeps the first email unanswered until the test has its answers, however
    // long a busy machine takes.
    app.smtp.hold();
    let (editor, _) = app.editor_with_project().await;

    // The first email occupies the SMTP server.
    json_with_status(
        editor.invite(json!({"email": "first@example.org"})).await,
        201,
    )
    .await;
    wait::until("the worker starting to send", WAIT, || async {
        app.smtp.messages_in_data() > 0
    })
    .await;

    // While it is still being sent, new invitations are answered.
    for i in 0..5 {
        let body = json_with_status(
            editor
                .invite(json!({"email": format!("next{i}@example.org")}))
                .await,
            201,
        )
        .await;
        assert_eq!(body["delivery"]["status"], "queued");
    }
    assert!(
        app.smtp.received().is_empty(),
        "every response came back before the SMTP server finished even one message"
    );
    app.smtp.release();
    app.smtp.wait_for(6, WAIT).await;
}

async fn mail_queued_while_smtp_is_down_is_sent_when_it_comes_back(backend: Backend) {
    let mut app = spawn_app(backend).await;
    app.smtp.stop();
    let (editor, _) = app.editor_with_project().await;

    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let failing = app
        .wait_for_invitation(&editor, id, WAIT, |inv| {
            inv["delivery"]["attempts"].as_i64().unwrap_or(0) >= 2
        })
        .await;
    assert_eq!(
        failing["delivery"]["status"], "queued",
        "still to be retried"
    );
    assert!(failing["delivery"]["last_error"].is_string(), "{failing}");

    app.smtp.restart().await;
    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, vec!["bob@example.org".to_owned()]);
    let sent = app
        .wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;
    // At least the failed attempts seen above; the one in flight when the server came back may
    // have been the one that succeeded.
    assert!(sent["delivery"]["attempts"].as_i64().unwrap_or(0) >= 2);
}

async fn a_permanent_refusal_fails_at_once_with_the_servers_reply(backend: Backend) {
    let app = spawn_app(backend).await;
    app.smtp
        .set_data_reply(Some("550 5.1.1 mailbox unavailable"));
    let (editor, _) = app.editor_with_project().await;

    let created = json_with_status(
        editor.invite(json!({"email": "nobody@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let failed = app
        .wait_for_invitation(&editor, id, WAIT, |inv| {
            inv["delivery"]["status"] == "failed"
        })
        .await;

    assert_eq!(failed["delivery"]["attempts"], 1);
    let error = failed["delivery"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("550"), "{error}");
}

async fn temporary_refusals_are_retried_until_the_attempts_run_out(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.delivery.max_attempts = 3).await;
    app.smtp.set_data_reply(Some("451 4.3.0 try again later"));
    let (editor, _) = app.editor_with_project().await;

    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let failed = app
        .wait_for_invitation(&editor, id, WAIT, |inv| {
            inv["delivery"]["status"] == "failed"
        })
        .await;

    assert_eq!(failed["delivery"]["attempts"], 3);
    assert!(
        failed["delivery"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("451"))
    );
}

async fn a_message_queued_before_a_restart_is_sent_after_it(backend: Backend) {
    // An API-only node queues the message; no worker runs until the restart.
    let mut app = spawn_app_with(backend, |s| s.role = ServeRole::Api).await;
    let (editor, _) = app.editor_with_project().await;
    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let token = app
        .invitation(&editor, id)
        .await
        .get("delivery")
        .map(|d| d["status"] == "queued");
    assert_eq!(token, Some(true));
    assert!(app.smtp.received().is_empty());

    app.settings.role = ServeRole::All;
    app.restart().await;

    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, vec!["bob@example.org".to_owned()]);
    let editor = app
        .api_key_agent(&app.user_by_email("ada@lab.example").await.user)
        .await;
    app.wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;
}

#[tokio::test]
async fn the_plain_token_is_in_the_queued_message_until_it_is_sent() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.role = ServeRole::Api).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;

    let claimed = app
        .store
        .claim_outbox(Timestamp::now(), Duration::ZERO, 10)
        .await
        .expect("claim");
    let token = claimed[0]
        .accept_token
        .clone()
        .expect("token in the queued message");
    assert!(
        files_contain(&app.db_path(), &token),
        "queued: the token is on disk"
    );

    let report = app.outbox.deliver_due().await.expect("delivery");
    assert_eq!(report.sent, 1);
    assert_eq!(app.smtp.received()[0].accept_token(), Some(token.clone()));
    assert!(
        !files_contain(&app.db_path(), &token),
        "sent: no copy of the token is left"
    );
}

async fn a_message_claimed_by_a_worker_that_died_is_sent_after_its_lease(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.role = ServeRole::Api).await;
    let (editor, _) = app.editor_with_project().await;
    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    // Another worker claims the message and dies without a word. The lease is long enough for
    // the check below to fall inside it on a busy machine, and short enough to wait out.
    let lease = Duration::from_secs(5);
    let claimed_at = tokio::time::Instant::now();
    let claimed = app
        .store
        .claim_outbox(Timestamp::now(), lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);

    // While the lease holds, no other worker touches the message; once it ends, one does.
    let during_lease = app.outbox.deliver_due().await.expect("delivery").claimed;
    assert!(
        claimed_at.elapsed() < lease,
        "the machine took longer than the lease to check it: the check proves nothing"
    );
    assert_eq!(during_lease, 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = app.outbox.deliver_due().await.expect("delivery");
        if report.sent == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never retried after the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.smtp.received().len(), 1);
    let sent = app.invitation(&editor, id).await;
    assert_eq!(sent["delivery"]["status"], "sent");
    assert_eq!(sent["delivery"]["attempts"], 2);
}

async fn each_message_has_a_stable_unique_message_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    // The first attempt is refused for now: the message goes out again later.
    app.smtp.set_data_reply(Some("451 4.3.0 try again later"));
    let retried =
        json_with_status(editor.invite(json!({"email": "m0@example.org"})).await, 201).await;
    let retried_id = retried["id"].as_i64().expect("id");
    wait::until(
        "the first attempt reaching the SMTP server",
        WAIT,
        || async { !app.smtp.refused().is_empty() },
    )
    .await;
    app.smtp.set_data_reply(None);
    let failed_attempt = app.smtp.refused()[0].message_id();
    assert!(!failed_attempt.is_empty());
    for i in 1..3 {
        json_with_status(
            editor
                .invite(json!({"email": format!("m{i}@example.org")}))
                .await,
            201,
        )
        .await;
    }

    let mails = app.smtp.wait_for(3, WAIT).await;
    let delivered: Vec<_> = mails
        .iter()
        .filter(|m| m.rcpt_to == ["m0@example.org"])
        .collect();
    assert_eq!(delivered.len(), 1, "the retried message arrived once");
    assert_eq!(
        delivered[0].message_id(),
        failed_attempt,
        "the retry kept the Message-ID of the failed attempt"
    );
    let sent = app
        .wait_for_invitation(&editor, retried_id, WAIT, |inv| {
            inv["delivery"]["status"] == "sent"
        })
        .await;
    assert!(
        sent["delivery"]["attempts"].as_i64() >= Some(2),
        "it was an attempt again: {sent:#}"
    );

    let mut ids: Vec<String> = mails.iter().map(|m| m.message_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one Message-ID per message");
    assert!(ids.iter().all(|id| !id.is_empty()));
}

backend_tests!(
    a_slow_smtp_server_does_not_hold_up_the_request,
    mail_queued_while_smtp_is_down_is_sent_when_it_comes_back,
    a_permanent_refusal_fails_at_once_with_the_servers_reply,
    temporary_refusals_are_retried_until_the_attempts_run_out,
    a_message_queued_before_a_restart_is_sent_after_it,
    a_message_claimed_by_a_worker_that_died_is_sent_after_its_lease,
    each_message_has_a_stable_unique_message_id,
);
