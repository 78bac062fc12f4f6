//! SQLite with a second writer on the same file (a command such as `prune` or `user add` while
//! `serve` runs, or a second node in tests): requests wait for its write to end instead of
//! failing with "database is locked".

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;

use crate::support::{Backend, NS, PASSWORD, json_with_status, spawn_app};

#[tokio::test]
async fn logins_wait_for_another_process_writing_the_sqlite_file() {
    let app = spawn_app(Backend::Sqlite).await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let mut other =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db_path().display()))
            .await
            .expect("a second connection to the database file");
    let client = reqwest::Client::new();
    for round in 0..5 {
        // The other writer holds the write lock while the login reads, then commits a change:
        // a login that began reading before that commit cannot write on that old snapshot.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .expect("BEGIN IMMEDIATE");
        sqlx::query(
            "INSERT INTO audit_log (namespace, at, event, detail) \
             VALUES ($1, 0, 'other_writer', 'a test')",
        )
        .bind(NS)
        .execute(&mut other)
        .await
        .expect("a write");
        let login = tokio::spawn({
            let client = client.clone();
            let url = format!("{}/{NS}/api/session/", app.base);
            async move {
                client
                    .post(url)
                    .json(&json!({"username": "ada@lab.example", "password": PASSWORD}))
                    .send()
                    .await
                    .expect("sent")
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The race happened: the login is held up by the other writer's lock.
        assert!(
            !login.is_finished(),
            "round {round}: the login did not wait for the other writer"
        );
        sqlx::query("COMMIT")
            .execute(&mut other)
            .await
            .expect("COMMIT");
        let answer = login.await.expect("the login task");
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        assert_eq!(status, 200, "round {round}: {body}");
    }
}

/// An API request's two reads (its key, the caller's roles) are answered on the request's own
/// thread with connections of their own (`read_direct`, issue 16): what another process commits
/// to the file, a key revoked or a role taken away, counts from the next request on, as through
/// sqlx's readers.
#[tokio::test]
async fn a_key_or_role_changed_by_another_process_counts_from_the_next_request() {
    let app = spawn_app(Backend::Sqlite).await;
    let (editor, project) = app.editor_with_project().await;
    let invite = |email: &str| json!({"email": email, "projects_selected": [{"id": project.0}]});
    let path = format!("/{NS}/api/invitations/");
    let answer = editor.post(&path, &invite("bob@example.org")).await;
    json_with_status(answer, 201).await;

    let mut other =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db_path().display()))
            .await
            .expect("a second connection to the database file");
    // The editor's role, lowered to viewer by the other process: 403 on the project.
    sqlx::query("UPDATE grants SET role = 'viewer' WHERE project_id = $1")
        .bind(project.0)
        .execute(&mut other)
        .await
        .expect("lowering the role");
    let answer = editor.post(&path, &invite("carol@example.org")).await;
    json_with_status(answer, 403).await;

    // Every key deleted by the other process: 401.
    sqlx::query("DELETE FROM api_keys")
        .execute(&mut other)
        .await
        .expect("deleting the keys");
    let answer = editor.post(&path, &invite("dan@example.org")).await;
    json_with_status(answer, 401).await;
}
