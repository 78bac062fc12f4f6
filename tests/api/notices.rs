//! The inviter is told: an email to an invitation's creator when it is accepted or declined
//! (unless they turned it off, by the API or on the welcome page), and once when its email
//! fails for good; on both backends, with the real SMTP server.

use std::time::Duration;

use cbh_invite::domain::{ProjectId, Timestamp};
use cbh_invite::store::{ChangedBy, NoticeRow};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use smtp_sink::ReceivedMail;

use crate::support::agent::Agent;
use crate::support::wait::until;
use crate::support::{Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app};

const WAIT: Duration = Duration::from_secs(20);
const ADA: &str = "ada@lab.example";
const REFUSED: &str = "550 5.1.1 <bob@example.org>: Recipient address rejected";

fn session_path() -> String {
    format!("/{NS}/api/session/")
}

/// Ada, an editor of a project who can log in, and her session.
async fn ada_with_project(app: &TestApp) -> (Agent, ProjectId) {
    let ada = app.add_user(ADA, "Ada", "Lovelace", false).await;
    let project = app.add_project("Kinase screen").await;
    app.grant(&ada, project, cbh_invite::domain::Role::Editor)
        .await;
    (app.login(ADA, PASSWORD).await, project)
}

async fn invite(app: &TestApp, ada: &Agent, email: &str, first: &str, project: ProjectId) -> i64 {
    let created = json_with_status(
        ada.invite(
            json!({"email": email, "first_name": first, "projects_selected": [{"id": project.0}]}),
        )
        .await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    // Its email is out (or failed) before the test goes on.
    app.wait_for_invitation(ada, id, WAIT, |inv| {
        matches!(inv["delivery"]["status"].as_str(), Some("sent" | "failed"))
    })
    .await;
    id
}

/// The accept token of the last email to `email`.
fn token_for(app: &TestApp, email: &str) -> String {
    app.smtp
        .received()
        .iter()
        .rev()
        .find(|mail| mail.rcpt_to.iter().any(|to| to == email))
        .and_then(ReceivedMail::accept_token)
        .unwrap_or_else(|| panic!("no email to {email}"))
}

async fn notices(app: &TestApp, invitation: i64) -> Vec<NoticeRow> {
    app.store
        .list_notices(NS, Some(invitation))
        .await
        .expect("notices")
}

/// The emails that reached `email`.
fn mail_to(app: &TestApp, email: &str) -> Vec<ReceivedMail> {
    app.smtp
        .received()
        .into_iter()
        .filter(|mail| mail.rcpt_to.iter().any(|to| to == email))
        .collect()
}

/// Waits until `count` emails reached `email`, and returns them.
async fn wait_for_mail_to(app: &TestApp, email: &str, count: usize) -> Vec<ReceivedMail> {
    until(&format!("{count} emails to {email}"), WAIT, || async {
        mail_to(app, email).len() >= count
    })
    .await;
    mail_to(app, email)
}

async fn an_accepted_invitation_tells_its_creator(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, kinase) = ada_with_project(&app).await;
    let id = invite(&app, &ada, "bob@example.org", "Bob", kinase).await;
    assert!(notices(&app, id).await.is_empty(), "nothing to tell yet");

    let token = token_for(&app, "bob@example.org");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;

    let told = wait_for_mail_to(&app, ADA, 1).await;
    assert_eq!(told.len(), 1);
    let mail = &told[0];
    assert_eq!(
        mail.subject(),
        "Bob accepted your invitation to ChemBio Hub Platform"
    );
    let text = mail.text();
    assert!(text.contains("Bob (bob@example.org) accepted"), "{text}");
    assert!(
        text.contains("Kinase screen (editor)") || text.contains("Kinase screen ("),
        "{text}"
    );
    assert!(text.contains(&format!("/{NS}/invite/")), "{text}");
    assert!(text.contains(&format!("/{NS}/welcome/")), "{text}");
    assert!(mail.html().contains("Bob"));
    // Never to the invitee: Bob got his invitation, and nothing else.
    assert_eq!(mail_to(&app, "bob@example.org").len(), 1);
    until("the notice marked sent", WAIT, || async {
        notices(&app, id).await.iter().all(|n| n.status == "sent")
    })
    .await;
    let rows = notices(&app, id).await;
    assert_eq!(
        rows.iter()
            .map(|n| (n.kind.as_str(), n.recipient.as_str(), n.status.as_str()))
            .collect::<Vec<_>>(),
        [("invitation_accepted", ADA, "sent")]
    );
}

async fn declining_by_api_or_page_tells_the_creator(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, kinase) = ada_with_project(&app).await;
    let bob = invite(&app, &ada, "bob@example.org", "Bob", kinase).await;
    let carol = invite(&app, &ada, "carol@example.org", "Carol", kinase).await;

    // Bob by the API.
    let token = token_for(&app, "bob@example.org");
    json_with_status(
        app.anonymous()
            .post(
                &format!("/{NS}/api/invitations/decline/"),
                &json!({"token": token, "block_future": false}),
            )
            .await,
        200,
    )
    .await;
    let told = wait_for_mail_to(&app, ADA, 1).await;
    assert_eq!(
        told[0].subject(),
        "Bob declined your invitation to ChemBio Hub Platform"
    );
    assert!(told[0].text().contains("Bob (bob@example.org) declined"));

    // Carol on the decline page of her email.
    let mail = mail_to(&app, "carol@example.org")
        .pop()
        .expect("carol's email");
    let link = mail
        .text()
        .split_whitespace()
        .find(|word| word.contains("/decline/"))
        .expect("a decline link")
        .to_owned();
    let url = app.local(&link);
    let client = crate::support::agent::client();
    let page = client.get(&url).send().await.expect("sent");
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the form token's cookie")
        .to_owned();
    let html = page.text().await.expect("page");
    let form_token = html
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form token")
        .to_owned();
    let done = client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(reqwest::header::COOKIE, &cookie)
        .body(format!("form_token={form_token}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(done.status(), 200);
    let told = wait_for_mail_to(&app, ADA, 2).await;
    assert_eq!(told.len(), 2);
    assert_eq!(
        told[1].subject(),
        "Carol declined your invitation to ChemBio Hub Platform"
    );
    for id in [bob, carol] {
        let kinds: Vec<String> = notices(&app, id)
            .await
            .into_iter()
            .map(|n| n.kind)
            .collect();
        assert_eq!(kinds, ["invitation_declined"]);
    }
}

/// The value of the hidden field `name` of a page.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {body}"))
        + marker.len();
    let end = body[start..].find('"').expect("closing quote") + start;
    body[start..end].to_owned()
}

async fn opting_out_queues_no_notice_and_the_welcome_page_turns_it_back_on(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, kinase) = ada_with_project(&app).await;
    let shown = json_with_status(ada.get(&session_path()).await, 200).await;
    assert_eq!(shown["notify_outcomes"], true, "on by default");

    // Without the CSRF header, a session cannot change it.
    let forged = ada
        .client
        .patch(format!("{}{}", app.base, session_path()))
        .json(&json!({"notify_outcomes": false}))
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 403);
    let changed = json_with_status(
        ada.request(reqwest::Method::PATCH, &session_path())
            .json(&json!({"notify_outcomes": false}))
            .send()
            .await
            .expect("sent"),
        200,
    )
    .await;
    assert_eq!(changed["notify_outcomes"], false);
    let shown = json_with_status(ada.get(&session_path()).await, 200).await;
    assert_eq!(shown["notify_outcomes"], false);

    let bob = invite(&app, &ada, "bob@example.org", "Bob", kinase).await;
    let token = token_for(&app, "bob@example.org");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    // The notice would have been queued with the accept: none was.
    let rows = notices(&app, bob).await;
    assert!(rows.is_empty(), "{rows:?}");

    // The welcome page shows the setting and turns it back on (a plain form, no script).
    let page = ada.get(&format!("/{NS}/welcome/")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("name=\"notify_outcomes\""), "{html}");
    assert!(!html.contains("value=\"on\" checked"), "shown off: {html}");
    let csrf = hidden(&html, "csrfmiddlewaretoken");
    let without_token = ada
        .client
        .post(format!("{}/{NS}/welcome/", app.base))
        .form(&[("notify_outcomes", "on")])
        .send()
        .await
        .expect("sent");
    assert_eq!(without_token.status(), 403);
    assert!(
        !app.store
            .notify_outcomes(app.user_by_email(ADA).await.user.id)
            .await
            .expect("setting")
    );
    let saved = ada
        .client
        .post(format!("{}/{NS}/welcome/", app.base))
        .form(&[
            ("csrfmiddlewaretoken", csrf.as_str()),
            ("notify_outcomes", "on"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(
        saved.status(),
        StatusCode::OK,
        "followed to the welcome page"
    );
    let html = saved.text().await.expect("page");
    assert!(html.contains("value=\"on\" checked"), "shown on: {html}");
    assert!(html.contains("Your email settings are saved."), "{html}");
    let shown = json_with_status(ada.get(&session_path()).await, 200).await;
    assert_eq!(shown["notify_outcomes"], true);

    let carol = invite(&app, &ada, "carol@example.org", "Carol", kinase).await;
    let token = token_for(&app, "carol@example.org");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    let kinds: Vec<String> = notices(&app, carol)
        .await
        .into_iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(kinds, ["invitation_accepted"]);
    let told = wait_for_mail_to(&app, ADA, 1).await;
    assert_eq!(told.len(), 1, "Bob's acceptance was never announced");
    assert!(told[0].subject().starts_with("Carol accepted"));
}

async fn a_refused_invitation_tells_its_creator_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, kinase) = ada_with_project(&app).await;
    app.smtp
        .set_recipient_reply("bob@example.org", Some(REFUSED));
    let id = invite(&app, &ada, "bob@example.org", "Bob", kinase).await;
    let failed = app.invitation(&ada, id).await;
    assert_eq!(failed["delivery"]["status"], "failed", "{failed}");

    let told = wait_for_mail_to(&app, ADA, 1).await;
    let mail = &told[0];
    assert_eq!(
        mail.subject(),
        "Your invitation to bob@example.org could not be delivered"
    );
    let text = mail.text();
    assert!(text.contains("the address does not exist"), "{text}");
    assert!(text.contains("Recipient address rejected"), "{text}");

    // A resend that fails again tells nobody twice.
    ada.resend(id).await;
    let resent = app
        .wait_for_invitation(&ada, id, WAIT, |inv| inv["delivery"]["status"] == "failed")
        .await;
    assert!(resent["delivery"]["attempts"].as_i64().is_some());
    until("the notice marked sent", WAIT, || async {
        notices(&app, id).await.iter().all(|n| n.status == "sent")
    })
    .await;
    let rows = notices(&app, id).await;
    assert_eq!(
        rows.iter()
            .map(|n| (n.kind.as_str(), n.recipient.as_str()))
            .collect::<Vec<_>>(),
        [("invitation_failed", ADA)]
    );
    assert_eq!(mail_to(&app, ADA).len(), 1);
    assert!(mail_to(&app, "bob@example.org").is_empty());
}

async fn a_deactivated_creator_is_not_told(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, kinase) = ada_with_project(&app).await;
    let id = invite(&app, &ada, "bob@example.org", "Bob", kinase).await;
    let ada_id = app.user_by_email(ADA).await.user.id;
    app.store
        .set_deactivated(
            NS,
            ada_id,
            true,
            ChangedBy {
                user: None,
                client_ip: None,
            },
            Timestamp::now(),
        )
        .await
        .expect("deactivated");
    let token = token_for(&app, "bob@example.org");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    let rows = notices(&app, id).await;
    assert!(rows.is_empty(), "{rows:?}");
}

async fn patching_the_session_with_bad_input_is_400_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, _) = ada_with_project(&app).await;
    let patch = |body: String| {
        ada.request(reqwest::Method::PATCH, &session_path())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    };
    for body in [
        "{\"notify_outcomes\": ",
        "{\"notify_outcomes\": \"no\"}",
        "{\"notify_outcomes\": 0}",
        "{\"notify_outcomes\": null}",
        "{}",
        "[]",
        "{\"notify_outcomes\": false, \"is_superuser\": true}",
    ] {
        let error: Value =
            json_with_status(patch(body.to_owned()).send().await.expect("sent"), 400).await;
        assert!(error["error"].is_string(), "{body}: {error}");
    }
    let oversized = format!(
        "{{\"notify_outcomes\": false, \"x\": \"{}\"}}",
        "a".repeat(70_000)
    );
    let error = json_with_status(patch(oversized).send().await.expect("sent"), 413).await;
    assert!(error["error"].is_string());
    let shown = json_with_status(ada.get(&session_path()).await, 200).await;
    assert_eq!(shown["notify_outcomes"], true);
    assert_eq!(shown["is_superuser"], false);
}

backend_tests!(
    an_accepted_invitation_tells_its_creator,
    declining_by_api_or_page_tells_the_creator,
    opting_out_queues_no_notice_and_the_welcome_page_turns_it_back_on,
    a_refused_invitation_tells_its_creator_once,
    a_deactivated_creator_is_not_told,
    patching_the_session_with_bad_input_is_400_and_changes_nothing,
);
