//! `POST /{ns}/api/invitations/{id}/resend/` and `…/revoke/`: what they change, when they
//! refuse, and who may use them.

use std::time::Duration;

use cbh_invite::config::ServeRole;
use cbh_invite::domain::{ProjectId, Role, User};
use serde_json::{Value, json};
use smtp_sink::ReceivedMail;

use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);

fn resend_path(id: i64) -> String {
    format!("/{NS}/api/invitations/{id}/resend/")
}

fn revoke_path(id: i64) -> String {
    format!("/{NS}/api/invitations/{id}/revoke/")
}

async fn invite(agent: &Agent, email: &str, projects: &[ProjectId]) -> i64 {
    let selected: Vec<Value> = projects.iter().map(|p| json!({"id": p.0})).collect();
    let created = json_with_status(
        agent
            .invite(json!({"email": email, "projects_selected": selected}))
            .await,
        201,
    )
    .await;
    created["id"].as_i64().expect("id")
}

async fn project_ids_of(app: &TestApp, user: &User) -> Vec<ProjectId> {
    app.store
        .memberships(user.id)
        .await
        .expect("memberships")
        .into_iter()
        .map(|m| m.project.id)
        .collect()
}

/// The one email among `mails` that `matches`; panics unless there is exactly one.
fn only(mails: &[ReceivedMail], matches: impl Fn(&ReceivedMail) -> bool) -> &ReceivedMail {
    let found: Vec<&ReceivedMail> = mails.iter().filter(|m| matches(m)).collect();
    assert_eq!(
        found.len(),
        1,
        "{} matching emails among {}",
        found.len(),
        mails.len()
    );
    found[0]
}

async fn resend_sends_a_fresh_link_and_the_old_one_answers_410(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org", &[project]).await;
    let old_token = app.smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");

    let resent = json_with_status(editor.post(&resend_path(id), &json!({})).await, 200).await;
    assert_eq!(resent["id"], id);
    assert_eq!(resent["status"], "pending");
    assert_eq!(
        resent["message"],
        "Invitation sent again to bob@example.org; the earlier link no longer works."
    );

    let mails = app.smtp.wait_for(2, WAIT).await;
    // Found by its link, not its place: the two may arrive in either order.
    let old_mail = only(&mails, |m| m.accept_token().as_ref() == Some(&old_token));
    let new_mail = only(&mails, |m| m.accept_token().as_ref() != Some(&old_token));
    let new_token = new_mail.accept_token().expect("the new email has a link");
    assert_ne!(new_mail.message_id(), old_mail.message_id());
    json_with_status(app.accept(&old_token, "a good long password").await, 410).await;
    json_with_status(app.accept(&new_token, "a good long password").await, 200).await;
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(invitation["status"], "accepted");
    assert_eq!(invitation["delivery"]["status"], "sent");
}

async fn resend_and_revoke_are_409_once_the_invitation_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org", &[project]).await;
    let token = app.smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;

    let resend = json_with_status(editor.post(&resend_path(id), &json!({})).await, 409).await;
    assert!(
        resend["error"]
            .as_str()
            .is_some_and(|e| e.contains("already accepted"))
    );
    let revoke = json_with_status(editor.post(&revoke_path(id), &json!({})).await, 409).await;
    assert!(
        revoke["error"]
            .as_str()
            .is_some_and(|e| e.contains("already accepted"))
    );
    // Nothing changed: the member keeps the project.
    let bob = app.user_by_email("bob@example.org").await.user;
    assert!(bob.is_active);
    assert_eq!(project_ids_of(&app, &bob).await, [project]);
}

async fn a_revoked_invitation_cannot_be_resent_nor_revoked_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org", &[project]).await;

    let revoked = json_with_status(editor.post(&revoke_path(id), &json!({})).await, 200).await;
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        revoked["message"],
        "Invitation to bob@example.org revoked; its link no longer works."
    );
    let again = json_with_status(editor.post(&revoke_path(id), &json!({})).await, 409).await;
    assert!(
        again["error"]
            .as_str()
            .is_some_and(|e| e.contains("already revoked"))
    );
    let resend = json_with_status(editor.post(&resend_path(id), &json!({})).await, 409).await;
    assert!(
        resend["error"]
            .as_str()
            .is_some_and(|e| e.contains("revoked"))
    );
    let listed = json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?status=revoked"))
            .await,
        200,
    )
    .await;
    assert_eq!(listed["meta"]["total_count"], 1);
}

async fn revoke_makes_the_link_410_and_removes_only_the_grants_no_other_invitation_gives(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let ada = app.user_by_email("ada@lab.example").await.user;
    let fragments = app.add_project("Fragment library").await;
    app.grant(&ada, fragments, Role::Editor).await;

    let first = invite(&editor, "bob@example.org", &[kinase]).await;
    // A pending user invited to one more project gets a fresh link (the first one is void).
    let second = invite(&editor, "bob@example.org", &[kinase, fragments]).await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    // The second invitation's email is the one naming both projects, whatever came first.
    let second_token = only(&mails, |m| m.text().contains("Fragment library"))
        .accept_token()
        .expect("token");
    let bob = app.user_by_email("bob@example.org").await.user;
    assert_eq!(project_ids_of(&app, &bob).await, [kinase, fragments]);

    json_with_status(editor.post(&revoke_path(second), &json!({})).await, 200).await;

    json_with_status(app.accept(&second_token, "a good long password").await, 410).await;
    let bob = app.user_by_email("bob@example.org").await.user;
    assert!(!bob.is_active, "the invitee stays pending");
    // Kinase screen is still given by the first invitation, which was not revoked.
    assert_eq!(project_ids_of(&app, &bob).await, [kinase]);
    assert_eq!(app.invitation(&editor, first).await["status"], "pending");

    // The first invitation can still bring Bob in, with its own projects only.
    json_with_status(editor.post(&resend_path(first), &json!({})).await, 200).await;
    let earlier: Vec<Option<String>> = mails.iter().map(|m| m.accept_token()).collect();
    let token = only(&app.smtp.wait_for(3, WAIT).await, |m| {
        !earlier.contains(&m.accept_token())
    })
    .accept_token()
    .expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    assert_eq!(
        project_ids_of(&app, &app.user_by_email("bob@example.org").await.user).await,
        [kinase]
    );
}

async fn revoke_keeps_grants_of_other_roles_and_cancels_an_unsent_email(backend: Backend) {
    // No worker: the email stays queued until the test delivers by hand.
    let app = spawn_app_with(backend, |s| s.role = ServeRole::Api).await;
    let (editor, project) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org", &[project]).await;
    let bob = app.user_by_email("bob@example.org").await.user;
    let other = app.add_project("Assay results").await;
    app.grant(&bob, other, Role::Editor).await;

    let revoked = json_with_status(editor.post(&revoke_path(id), &json!({})).await, 200).await;
    assert_eq!(revoked["delivery"]["status"], "failed");
    assert_eq!(
        revoked["delivery"]["last_error"],
        "not sent: the invitation was revoked"
    );
    // The editor role came from an administrator, not from the invitation.
    assert_eq!(project_ids_of(&app, &bob).await, [other]);
    let report = app.outbox.deliver_due().await.expect("delivery");
    assert_eq!(
        report.claimed, 0,
        "the revoked invitation's email is never sent"
    );
    assert!(app.smtp.received().is_empty());
}

async fn resend_replaces_a_queued_email_instead_of_sending_both(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.role = ServeRole::Api).await;
    let (editor, project) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org", &[project]).await;

    json_with_status(editor.post(&resend_path(id), &json!({})).await, 200).await;
    let report = app.outbox.deliver_due().await.expect("delivery");
    assert_eq!((report.claimed, report.sent), (1, 1), "one email, not two");
    let token = app.smtp.received()[0].accept_token().expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
}

async fn a_resend_while_the_first_email_is_being_sent_still_delivers_the_new_link(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    // The SMTP server reads each message and then holds its answer: the first send is
    // certainly in flight when the resend arrives, however fast or slow the machine.
    app.smtp.hold();
    let id = invite(&editor, "bob@example.org", &[project]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.smtp.held_messages().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first send never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = app.smtp.held_messages()[0].accept_token().expect("token");

    json_with_status(editor.post(&resend_path(id), &json!({})).await, 200).await;

    // The race happened: the resend was answered while the first send was still unanswered.
    assert!(app.smtp.received().is_empty(), "nothing was answered yet");
    assert!(
        app.smtp.messages_in_data() >= 1,
        "the first send is still in flight"
    );
    app.smtp.release();

    // The first send finishes (its outcome lands on a row that no longer exists), then the new
    // email goes out: both arrive, and only the second link works.
    let mails = app.smtp.wait_for(2, WAIT).await;
    app.wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;
    only(&mails, |m| m.accept_token().as_ref() == Some(&first));
    let second = only(&mails, |m| m.accept_token().as_ref() != Some(&first))
        .accept_token()
        .expect("token");
    json_with_status(app.accept(&first, "a good long password").await, 410).await;
    json_with_status(app.accept(&second, "a good long password").await, 200).await;
}

async fn an_expired_invitation_can_be_resent(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.invite_ttl = Duration::from_millis(300)).await;
    let (editor, project) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org", &[project]).await;
    let expired = app
        .wait_for_invitation(&editor, id, WAIT, |inv| inv["status"] == "expired")
        .await;

    let resent = json_with_status(editor.post(&resend_path(id), &json!({})).await, 200).await;
    assert!(
        resent["expires"].as_str() > expired["expires"].as_str(),
        "a new expiry: {resent:#}"
    );
    let mails = app.smtp.wait_for(2, WAIT).await;
    assert_ne!(mails[0].accept_token(), mails[1].accept_token());
}

async fn only_the_creator_a_project_owner_or_a_superuser_may_resend_or_revoke(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, project) = app.editor_with_project().await;
    let eve = app.add_user("eve@lab.example", "Eve", "", false).await;
    app.grant(&eve, project, Role::Editor).await;
    let eve = app.api_key_agent(&eve).await;
    let olga = app.add_user("olga@lab.example", "Olga", "", false).await;
    app.grant(&olga, project, Role::Owner).await;
    let olga = app.api_key_agent(&olga).await;
    let root = app.add_user("root@lab.example", "", "", true).await;
    let root = app.api_key_agent(&root).await;

    let first = invite(&ada, "bob@example.org", &[project]).await;
    let second = invite(&ada, "carol@example.org", &[project]).await;

    // Another editor of the project sees nothing there, as for a missing invitation.
    json_with_status(eve.post(&resend_path(first), &json!({})).await, 404).await;
    json_with_status(eve.post(&revoke_path(first), &json!({})).await, 404).await;
    json_with_status(
        app.anonymous().post(&revoke_path(first), &json!({})).await,
        401,
    )
    .await;
    json_with_status(ada.post(&revoke_path(999_999), &json!({})).await, 404).await;
    json_with_status(
        ada.post(&format!("/{NS}/api/invitations/x/revoke/"), &json!({}))
            .await,
        404,
    )
    .await;

    json_with_status(olga.post(&resend_path(first), &json!({})).await, 200).await;
    json_with_status(olga.post(&revoke_path(first), &json!({})).await, 200).await;
    json_with_status(root.post(&resend_path(second), &json!({})).await, 200).await;
    json_with_status(root.post(&revoke_path(second), &json!({})).await, 200).await;
}

async fn a_session_must_send_its_csrf_token_to_resend_or_revoke(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org", &[project]).await;
    let session = app.login("ada@lab.example", crate::support::PASSWORD).await;

    let forged = session
        .client
        .post(format!("{}{}", session.base, revoke_path(id)))
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    json_with_status(forged, 403).await;
    assert_eq!(app.invitation(&editor, id).await["status"], "pending");
    json_with_status(session.post(&revoke_path(id), &json!({})).await, 200).await;
}

backend_tests!(
    resend_sends_a_fresh_link_and_the_old_one_answers_410,
    resend_and_revoke_are_409_once_the_invitation_is_accepted,
    a_revoked_invitation_cannot_be_resent_nor_revoked_again,
    revoke_makes_the_link_410_and_removes_only_the_grants_no_other_invitation_gives,
    revoke_keeps_grants_of_other_roles_and_cancels_an_unsent_email,
    resend_replaces_a_queued_email_instead_of_sending_both,
    a_resend_while_the_first_email_is_being_sent_still_delivers_the_new_link,
    an_expired_invitation_can_be_resent,
    only_the_creator_a_project_owner_or_a_superuser_may_resend_or_revoke,
    a_session_must_send_its_csrf_token_to_resend_or_revoke,
);
