use std::time::Duration;

use serde_json::json;

use crate::support::{Backend, NS, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);

async fn accepting_activates_the_user_who_can_then_log_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let (created, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "Bob@Example.org", "projects_selected": [{"id": project.0}]}),
            WAIT,
        )
        .await;
    let token = mail.accept_token().expect("token");

    let accepted = json_with_status(app.accept(&token, "a good long password").await, 200).await;
    assert_eq!(accepted["user"]["username"], "Bob@example.org");

    let invitee = app.login("bob@example.org", "a good long password").await;
    let me = json_with_status(invitee.get(&format!("/{NS}/api/session/")).await, 200).await;
    assert_eq!(me["user"]["username"], "Bob@example.org");
    let projects =
        json_with_status(invitee.get(&format!("/{NS}/api/cbh_projects/")).await, 200).await;
    assert_eq!(projects["objects"][0]["id"], project.0);
    assert_eq!(projects["objects"][0]["role"], "viewer");

    let id = created["id"].as_i64().expect("id");
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(invitation["status"], "accepted");
}

async fn an_accept_link_works_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let (_, mail) = app
        .invite_and_wait_for_mail(&editor, json!({"email": "bob@example.org"}), WAIT)
        .await;
    let token = mail.accept_token().expect("token");

    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    let again = json_with_status(app.accept(&token, "another long password").await, 410).await;
    assert!(
        again["error"]
            .as_str()
            .is_some_and(|e| e.contains("no longer valid"))
    );
    // The second attempt did not change the password.
    app.login("bob@example.org", "a good long password").await;
}

async fn a_short_password_is_refused_and_the_link_still_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let (_, mail) = app
        .invite_and_wait_for_mail(&editor, json!({"email": "bob@example.org"}), WAIT)
        .await;
    let token = mail.accept_token().expect("token");

    let short = json_with_status(app.accept(&token, "short").await, 400).await;
    assert!(
        short["error"]
            .as_str()
            .is_some_and(|e| e.contains("at least 10"))
    );
    json_with_status(app.accept(&token, "0123456789").await, 200).await;
}

async fn unknown_and_malformed_tokens_are_410(backend: Backend) {
    let app = spawn_app(backend).await;
    for token in [json!("nope"), json!("A".repeat(43)), json!("../../etc")] {
        let response = app
            .anonymous()
            .post(
                &format!("/{NS}/api/invitations/accept/"),
                &json!({"token": token, "password": "a good long password"}),
            )
            .await;
        json_with_status(response, 410).await;
    }
}

async fn an_expired_link_is_410_and_the_invitation_shows_expired(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.invite_ttl = Duration::from_millis(300)).await;
    let (editor, _) = app.editor_with_project().await;
    let (created, mail) = app
        .invite_and_wait_for_mail(&editor, json!({"email": "bob@example.org"}), WAIT)
        .await;
    let token = mail.accept_token().expect("token");
    let id = created["id"].as_i64().expect("id");

    app.wait_for_invitation(&editor, id, WAIT, |inv| inv["status"] == "expired")
        .await;
    json_with_status(app.accept(&token, "a good long password").await, 410).await;
    let listed = json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?status=expired"))
            .await,
        200,
    )
    .await;
    assert_eq!(listed["meta"]["total_count"], 1);
}

#[tokio::test]
async fn no_copy_of_the_token_is_left_in_the_database_files_after_sending() {
    let app = spawn_app(Backend::Sqlite).await;
    let (editor, _) = app.editor_with_project().await;
    let (created, mail) = app
        .invite_and_wait_for_mail(&editor, json!({"email": "bob@example.org"}), WAIT)
        .await;
    let token = mail.accept_token().expect("token");
    let id = created["id"].as_i64().expect("id");
    app.wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;

    let db = app.db_path();
    let files = [
        db.clone(),
        db.with_extension("db-wal"),
        db.with_extension("db-shm"),
    ];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let holders: Vec<String> = files
            .iter()
            .filter(|path| {
                std::fs::read(path).is_ok_and(|bytes| {
                    bytes
                        .windows(token.len())
                        .any(|window| window == token.as_bytes())
                })
            })
            .map(|path| path.display().to_string())
            .collect();
        if holders.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the plain token is still in {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The token still works: only its hash was needed.
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
}

backend_tests!(
    accepting_activates_the_user_who_can_then_log_in,
    an_accept_link_works_once,
    a_short_password_is_refused_and_the_link_still_works,
    unknown_and_malformed_tokens_are_410,
    an_expired_link_is_410_and_the_invitation_shows_expired,
);
