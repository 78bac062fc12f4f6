//! The suppression list from the operator's side and the worker's: `cbh-invite suppression
//! list|remove` (the real binary), and the last guard at claim time for a message queued
//! before its address was suppressed. (Declining itself: `decline.rs`.)

use std::time::Duration;

use cbh_invite::config::ServeRole;
use cbh_invite::domain::Timestamp;
use serde_json::{Value, json};

use crate::decline::{WAIT, decline_path, invite_bob, suppressed_mailboxes};
use crate::support::binary::{on_database, run};
use crate::support::{Backend, json_with_status, spawn_app, spawn_app_with};

async fn the_cli_lists_and_removes_suppressed_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let (id, mail) = invite_bob(&app, &editor, "Bob+Lab@example.org", kinase).await;
    let token = mail.accept_token().expect("token");
    json_with_status(
        app.anonymous()
            .post(
                &decline_path(),
                &json!({"token": token, "block_future": true}),
            )
            .await,
        200,
    )
    .await;

    let listed = on_database(&app.settings.database, &["suppression", "list", "--json"]);
    let rows: Vec<Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["mailbox"], "bob@example.org");
    assert_eq!(rows[0]["email"], "Bob+Lab@example.org");
    assert_eq!(rows[0]["invitation_id"], id);
    let table = on_database(&app.settings.database, &["suppression", "list"]);
    assert!(table.contains("Bob+Lab@example.org"), "{table}");

    // Any case or tag of the address takes it off.
    on_database(
        &app.settings.database,
        &["suppression", "remove", "BOB@Example.org"],
    );
    assert!(suppressed_mailboxes(&app).await.is_empty());
    let url = match &app.settings.database {
        cbh_invite::config::DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        cbh_invite::config::DatabaseUrl::Postgres(url) => url.clone(),
    };
    let again = run(
        &std::env::temp_dir(),
        &[("CBH_DATABASE_URL", url)],
        &["suppression", "remove", "bob@example.org"],
        None,
    );
    assert_eq!(
        again.status.code(),
        Some(2),
        "not on the list: a usage error"
    );
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": kinase.0}]}))
            .await,
        201,
    )
    .await;
}

async fn a_message_queued_before_its_address_was_suppressed_is_not_sent(backend: Backend) {
    // No worker: the test claims and delivers itself.
    let app = spawn_app_with(backend, |s| s.role = ServeRole::Api).await;
    let (editor, kinase) = app.editor_with_project().await;
    let invite = |email: &'static str| {
        editor.invite(json!({"email": email, "projects_selected": [{"id": kinase.0}]}))
    };
    json_with_status(invite("bob+a@example.org").await, 201).await;
    let queued = json_with_status(invite("bob+b@example.org").await, 201).await;
    let queued_id = queued["id"].as_i64().expect("id");
    // Read the first message's link as a worker would, leaving both due again at once.
    let claimed = app
        .store
        .claim_outbox(Timestamp::now(), Duration::ZERO, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let token = claimed
        .iter()
        .find(|m| m.recipient == "bob+a@example.org")
        .and_then(|m| m.accept_token.clone())
        .expect("bob+a's link");
    json_with_status(
        app.anonymous()
            .post(
                &decline_path(),
                &json!({"token": token, "block_future": true}),
            )
            .await,
        200,
    )
    .await;

    let report = app.outbox.deliver_due().await.expect("delivery");
    // Only the creator's notice of the decline: nothing to the suppressed mailbox.
    assert_eq!(report.sent, 0);
    assert_eq!(report.notices_sent, 1);
    let received = app.smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["ada@lab.example"]);
    assert!(received[0].subject().contains("declined your invitation"));
    let invitation = app
        .wait_for_invitation(&editor, queued_id, WAIT, |inv| {
            inv["delivery"]["status"] == "failed"
        })
        .await;
    assert!(
        invitation["delivery"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("suppression list")),
        "{invitation:#}"
    );
    // The declined invitation's own message was cancelled with the decline.
    let rows = app.store.list_outbox(None, 10).await.expect("outbox");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.status == "failed"), "{rows:?}");
}

backend_tests!(
    the_cli_lists_and_removes_suppressed_addresses,
    a_message_queued_before_its_address_was_suppressed_is_not_sent,
);
