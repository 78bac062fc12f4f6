//! SQLite with a second writer on the same file (a command such as `prune` or `user add` while
//! `serve` runs, or a second node in tests): requests wait for its write to end instead of
//! failing with "database is locked".

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;

use crate::support::{Backend, NS, PASSWORD, spawn_app};

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
