//! Retention: the janitor in `serve` and `prune` delete what is kept no longer, and nothing an
//! invitation shows is lost.

use std::time::Duration;

use cbh_invite::domain::Timestamp;
use cbh_invite::maintenance::Retention;
use cbh_invite::store::{PruneReport, PruneRun};
use serde_json::{Value, json};

use crate::support::wait::until;
use crate::support::{Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(20);

backend_tests!(
    the_janitor_prunes_sent_outbox_rows_and_the_invitation_keeps_its_delivery,
    prune_deletes_old_keys_sessions_audit_and_failed_logins_and_a_dry_run_only_counts,
    an_invitation_resent_after_its_row_was_pruned_is_sent_again,
);

/// Invites `email` and waits until its delivery shows `sent`; returns the invitation.
async fn invite_and_wait_until_sent(app: &TestApp, email: &str) -> (crate::support::Agent, Value) {
    let (editor, project) = app.editor_with_project().await;
    let created = json_with_status(
        editor
            .invite(json!({"email": email, "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let sent = app
        .wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;
    (editor, sent)
}

async fn outbox_rows(app: &TestApp) -> usize {
    app.store
        .list_outbox(None, 100)
        .await
        .expect("outbox")
        .len()
}

fn retention_of(app: &TestApp) -> Retention {
    Retention::new(app.settings.retention, &app.settings.limits)
}

async fn the_janitor_prunes_sent_outbox_rows_and_the_invitation_keeps_its_delivery(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.retention.outbox = Some(Duration::from_secs(1));
        s.retention.interval = Duration::from_secs(1);
    })
    .await;
    let (editor, before) = invite_and_wait_until_sent(&app, "bob@example.org").await;
    assert!(before["delivery"]["sent_at"].is_string(), "{before}");
    assert_eq!(outbox_rows(&app).await, 1);

    // The janitor runs every second and deletes rows sent more than a second ago.
    until("the janitor deletes the sent outbox row", WAIT, || async {
        outbox_rows(&app).await == 0
    })
    .await;
    let id = before["id"].as_i64().expect("id");
    let after = app.invitation(&editor, id).await;
    assert_eq!(after["delivery"], before["delivery"]);
    assert_eq!(
        after, before,
        "the invitation shows the same, row or no row"
    );
}

async fn prune_deletes_old_keys_sessions_audit_and_failed_logins_and_a_dry_run_only_counts(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (mut editor, project) = app.editor_with_project().await;
    // A bulk request's key keeps its answer as long as a single POST's key.
    let bulk = editor
        .request(reqwest::Method::POST, &format!("/{NS}/api/invitations/bulk/"))
        .header("Idempotency-Key", "import-1")
        .json(&json!({"projects_selected": [{"id": project.0}], "objects": [{"email": "eve@example.org"}]}))
        .send()
        .await
        .expect("sent");
    json_with_status(bulk, 200).await;
    editor
        .headers
        .insert("idempotency-key", "once-1".parse().expect("header"));
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    app.login("ada@lab.example", PASSWORD).await;
    let failed = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": "ada@lab.example", "password": "wrong"}),
        )
        .await;
    assert_eq!(failed.status(), 401);
    // More records than one batch deletes (`store::sql::retention::BATCH`, 2000), from the
    // last few seconds.
    let recent = Timestamp::now().millis() - 5_000;
    execute_raw(
        &app,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4500) \
             INSERT INTO audit_log (namespace, at, event) \
             SELECT 'chembiohub', {recent} + i, 'logout' FROM n"
        ),
    )
    .await;
    let retention = retention_of(&app);

    // Now, nothing is old enough, except nothing.
    let now = retention.policy(Timestamp::now());
    let Ok(PruneRun::Done(today)) = app.store.prune(&now, true).await else {
        panic!("dry run");
    };
    assert_eq!(today, PruneReport::default(), "nothing is old yet");

    // A year and a day later, everything is.
    let later = retention.policy(Timestamp::now().plus(Duration::from_secs(366 * 86_400)));
    let Ok(PruneRun::Done(counted)) = app.store.prune(&later, true).await else {
        panic!("dry run");
    };
    assert_eq!(counted.idempotency_keys, 1, "{counted:?}");
    assert_eq!(counted.bulk_answers, 1, "{counted:?}");
    assert_eq!(counted.sessions, 1, "{counted:?}");
    assert_eq!(counted.login_failures, 1, "{counted:?}");
    // The 4500 old ones, login_succeeded and invitation_created at least.
    assert!(counted.audit_records >= 4502, "{counted:?}");
    // A dry run deletes nothing: the same counts again.
    let Ok(PruneRun::Done(again)) = app.store.prune(&later, true).await else {
        panic!("dry run");
    };
    assert_eq!(again, counted);

    let Ok(PruneRun::Done(deleted)) = app.store.prune(&later, false).await else {
        panic!("prune");
    };
    assert_eq!(deleted.idempotency_keys, counted.idempotency_keys);
    assert_eq!(deleted.bulk_answers, counted.bulk_answers);
    assert_eq!(deleted.sessions, counted.sessions);
    assert_eq!(deleted.login_failures, counted.login_failures);
    assert_eq!(deleted.audit_records, counted.audit_records);
    let Ok(PruneRun::Done(left)) = app.store.prune(&later, true).await else {
        panic!("dry run");
    };
    assert_eq!(left.total(), 0, "{left:?}");
    let audit = app
        .store
        .audit_since(Timestamp(0), 100)
        .await
        .expect("audit");
    assert!(audit.is_empty(), "{audit:?}");
}

async fn an_invitation_resent_after_its_row_was_pruned_is_sent_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, before) = invite_and_wait_until_sent(&app, "carol@example.org").await;
    let id = before["id"].as_i64().expect("id");
    let later = retention_of(&app).policy(Timestamp::now().plus(Duration::from_secs(31 * 86_400)));
    let Ok(PruneRun::Done(pruned)) = app.store.prune(&later, false).await else {
        panic!("prune");
    };
    assert_eq!(pruned.outbox_messages, 1);
    assert_eq!(
        app.invitation(&editor, id).await["delivery"],
        before["delivery"]
    );

    let resent = editor
        .post(&format!("/{NS}/api/invitations/{id}/resend/"), &json!({}))
        .await;
    assert!(resent.status().is_success(), "{}", resent.status());
    app.smtp.wait_for(2, WAIT).await;
    let after = app
        .wait_for_invitation(&editor, id, WAIT, |inv| {
            inv["delivery"]["status"] == "sent"
                && inv["delivery"]["sent_at"] != before["delivery"]["sent_at"]
        })
        .await;
    assert_eq!(after["delivery"]["attempts"], 1);
}

/// On PostgreSQL one node prunes at a time: while another holds the janitor's lock, a run is
/// skipped, and once it is released the run goes ahead. The store is opened alone, with no
/// server: a server's own janitor, which runs at start, would take the lock between the two runs.
#[tokio::test]
async fn on_postgres_a_prune_is_skipped_while_another_node_prunes() {
    use sqlx::Connection;
    if !crate::support::postgres::postgres_available(
        "retention::on_postgres_a_prune_is_skipped_while_another_node_prunes",
    ) {
        return;
    }
    let database = crate::support::postgres::TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = crate::support::app::test_settings(
        cbh_invite::config::DatabaseUrl::Postgres(database.url.clone()),
        dir.path(),
        0,
    );
    let store = cbh_invite::store::connect(&settings.database, &settings.pool)
        .await
        .expect("store");
    let policy = Retention::new(settings.retention, &settings.limits).policy(Timestamp::now());
    let mut other = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let mut tx = other.begin().await.expect("begin");
    // The lock the janitor takes (`store::postgres::PRUNE_LOCK`), held by "another node".
    sqlx::query("SELECT pg_advisory_xact_lock(1667393643, 0)")
        .execute(&mut *tx)
        .await
        .expect("lock");
    assert_eq!(
        store.prune(&policy, false).await.expect("prune"),
        PruneRun::Skipped
    );
    tx.rollback().await.expect("release");
    assert!(matches!(
        store.prune(&policy, false).await.expect("prune"),
        PruneRun::Done(_)
    ));
}

/// Runs one statement on the app's database, beside the app.
async fn execute_raw(app: &TestApp, sql: &str) {
    use sqlx::Connection;
    match &app.settings.database {
        cbh_invite::config::DatabaseUrl::Sqlite(path) => {
            let url = format!("sqlite://{}", path.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .expect("statement");
        }
        cbh_invite::config::DatabaseUrl::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .expect("statement");
        }
    }
}
