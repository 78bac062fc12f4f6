//! Declining an invitation (the API, the decline page, the accept page's button), the
//! suppression list it feeds, and RFC 8058's one-click unsubscribe, on both backends with a real
//! SMTP server, the real binary for the `suppression` commands, a real webhook receiver and a
//! real browser.

use std::time::Duration;

use cbh_invite::domain::{ProjectId, Role, Timestamp};
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use smtp_sink::ReceivedMail;

use crate::support::browser::Browser;
use crate::support::webhooks::{Receiver, admin_with_webhook};
use crate::support::{Backend, NS, TestApp, json_with_status, spawn_app};

pub(crate) const WAIT: Duration = Duration::from_secs(20);
const SUPPRESSED: &str = "This person has asked not to receive invitations";

pub(crate) fn decline_path() -> String {
    format!("/{NS}/api/invitations/decline/")
}

/// A header of a received message, unfolded.
fn header(mail: &ReceivedMail, name: &str) -> Option<String> {
    let head = mail.data.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// The one-click URL of a message's `List-Unsubscribe` header.
fn unsubscribe_url(mail: &ReceivedMail) -> String {
    let value = header(mail, "List-Unsubscribe").expect("a List-Unsubscribe header");
    value
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

pub(crate) async fn invite_bob(
    app: &TestApp,
    editor: &crate::support::Agent,
    email: &str,
    project: ProjectId,
) -> (i64, ReceivedMail) {
    let (created, mail) = app
        .invite_and_wait_for_mail(
            editor,
            json!({"email": email, "first_name": "Bob", "projects_selected": [{"id": project.0}]}),
            WAIT,
        )
        .await;
    (created["id"].as_i64().expect("id"), mail)
}

async fn status_of(app: &TestApp, editor: &crate::support::Agent, id: i64) -> Value {
    app.invitation(editor, id).await["status"].clone()
}

pub(crate) async fn suppressed_mailboxes(app: &TestApp) -> Vec<String> {
    app.store
        .suppressions(NS)
        .await
        .expect("suppressions")
        .into_iter()
        .map(|s| s.recipient_key)
        .collect()
}

async fn one_click(url: &str, body: &'static str) -> reqwest::Response {
    crate::support::agent::client()
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("request sent")
}

async fn declining_by_api_removes_only_the_grants_it_gave_and_kills_the_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let (id, mail) = invite_bob(&app, &editor, "bob@example.org", kinase).await;
    let token = mail.accept_token().expect("token");
    // A role an administrator gave is not the invitation's to take back.
    let bob = app.user_by_email("bob@example.org").await.user;
    let fragments = app.add_project("Fragment library").await;
    app.grant(&bob, fragments, Role::Editor).await;

    let anonymous = app.anonymous();
    json_with_status(anonymous.post(&decline_path(), &json!({})).await, 400).await;
    let unknown = cbh_invite::domain::Token::generate();
    let error = json_with_status(
        anonymous
            .post(&decline_path(), &json!({"token": unknown.expose()}))
            .await,
        404,
    )
    .await;
    assert!(error["error"].is_string());

    let declined = json_with_status(
        anonymous
            .post(
                &decline_path(),
                &json!({"token": token, "block_future": false}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(declined["status"], "declined");
    assert_eq!(declined["block_future"], false);

    assert_eq!(status_of(&app, &editor, id).await, "declined");
    let bob = app.user_by_email("bob@example.org").await.user;
    assert!(!bob.is_active, "a pending user stays pending");
    let left: Vec<(ProjectId, Role)> = app
        .store
        .memberships(bob.id)
        .await
        .expect("memberships")
        .into_iter()
        .map(|m| (m.project.id, m.role))
        .collect();
    assert_eq!(left, [(fragments, Role::Editor)]);
    // The link is dead for accepting and for declining again.
    json_with_status(app.accept(&token, "a good long password").await, 410).await;
    let again = json_with_status(
        anonymous
            .post(&decline_path(), &json!({"token": token}))
            .await,
        410,
    )
    .await;
    assert!(
        again["error"]
            .as_str()
            .is_some_and(|e| e.contains("declined"))
    );
    // Listed as declined; no suppression without the box.
    let listed = json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?status=declined"))
            .await,
        200,
    )
    .await;
    assert_eq!(listed["meta"]["total_count"], 1);
    assert_eq!(listed["objects"][0]["id"], id);
    assert!(suppressed_mailboxes(&app).await.is_empty());
    // Revoking what was declined is refused.
    json_with_status(
        editor
            .post(&format!("/{NS}/api/invitations/{id}/revoke/"), &json!({}))
            .await,
        409,
    )
    .await;
    // Without the box, the person may be invited again.
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": kinase.0}]}))
            .await,
        201,
    )
    .await;
}

async fn block_future_makes_later_invitations_409_and_queues_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let (_, mail) = invite_bob(&app, &editor, "Bob+Lab@Example.org", kinase).await;
    // Another address of the same mailbox, invited before the decline.
    let (other_id, _) = invite_bob(&app, &editor, "bob@example.org", kinase).await;
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
    assert_eq!(suppressed_mailboxes(&app).await, ["bob@example.org"]);
    // The creator's notice of the decline (queued with it) is out before the count.
    crate::support::wait::until("the decline's notices sent", WAIT, || async {
        let notices = app.store.list_notices(NS, None).await.expect("notices");
        !notices.is_empty() && notices.iter().all(|n| n.status == "sent")
    })
    .await;
    let sent_before = app.smtp.received_count();

    // Side by side, so that the group commit decides them together: the mailbox's addresses
    // are refused one by one, the others are invited.
    let invite = |email: &'static str| {
        editor.invite(json!({"email": email, "projects_selected": [{"id": kinase.0}]}))
    };
    let (a, b, c, d) = tokio::join!(
        invite("BOB@example.org"),
        invite("bob+other@EXAMPLE.org"),
        invite("carol@example.org"),
        invite("dan@example.org"),
    );
    for refused in [a, b] {
        let body = json_with_status(refused, 409).await;
        assert_eq!(body["error"], SUPPRESSED);
    }
    json_with_status(c, 201).await;
    json_with_status(d, 201).await;
    // A resend to the mailbox is refused the same way, and so is a reminder.
    let resend = json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{other_id}/resend/"),
                &json!({}),
            )
            .await,
        409,
    )
    .await;
    assert_eq!(resend["error"], SUPPRESSED);
    let remind = json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "remind": true, "projects_selected": [{"id": kinase.0}]}))
            .await,
        409,
    )
    .await;
    assert_eq!(remind["error"], SUPPRESSED);

    // Only carol's and dan's emails went out.
    let mails = app.smtp.wait_for(sent_before + 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails_after = app.smtp.received();
    assert_eq!(mails_after.len(), mails.len());
    let recipients: Vec<String> = mails_after[sent_before..]
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    assert!(
        recipients
            .iter()
            .all(|r| !r.to_lowercase().starts_with("bob")),
        "{recipients:?}"
    );
}

async fn the_decline_page_asks_first_and_declines_only_with_its_form_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let (id, mail) = invite_bob(&app, &editor, "bob@example.org", kinase).await;
    let decline_link = mail
        .text()
        .split_whitespace()
        .find(|word| word.contains("/decline/"))
        .expect("the email has a decline link")
        .to_owned();
    // (minijinja escapes `/` in HTML.)
    assert!(
        mail.html().replace("&#x2f;", "/").contains(&decline_link),
        "the HTML part links it too"
    );
    let url = app.local(&decline_link);
    let client = crate::support::agent::client();

    let page = client.get(&url).send().await.expect("sent");
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the form token's cookie")
        .to_owned();
    let html = page.text().await.expect("page");
    assert!(
        html.contains("Don&#x27;t send me invitations from ChemBio Hub Platform again")
            || html.contains("Don't send me invitations from ChemBio Hub Platform again"),
        "{html}"
    );
    let form_token = html
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form token field")
        .to_owned();
    assert_eq!(
        status_of(&app, &editor, id).await,
        "pending",
        "a GET changes nothing"
    );

    // Without the cookie (another site's form), or without the field: refused, nothing done.
    let body = format!("form_token={form_token}&block_future=true");
    let forged = client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 403);
    let no_field = client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(COOKIE, &cookie)
        .body("block_future=true")
        .send()
        .await
        .expect("sent");
    assert_eq!(no_field.status(), 403);
    assert_eq!(status_of(&app, &editor, id).await, "pending");
    assert!(suppressed_mailboxes(&app).await.is_empty());

    let done = client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(COOKIE, &cookie)
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .expect("page")
            .contains("You declined the invitation")
    );
    assert_eq!(status_of(&app, &editor, id).await, "declined");
    assert_eq!(suppressed_mailboxes(&app).await, ["bob@example.org"]);
    // The page of a dead link is the 410 page.
    assert_eq!(client.get(&url).send().await.expect("sent").status(), 410);
}

async fn the_email_carries_one_click_unsubscribe_headers_that_work_without_a_cookie(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let (id, mail) = invite_bob(&app, &editor, "bob@example.org", kinase).await;
    let token = mail.accept_token().expect("token");
    assert_eq!(
        header(&mail, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let link = unsubscribe_url(&mail);
    assert!(
        link.starts_with(&format!("{}/{NS}/unsubscribe/", app.public_url)),
        "{link}"
    );
    assert!(
        !link.contains(&token),
        "the header does not carry the accept token"
    );
    let url = app.local(&link);

    // A GET (a scanner following the link) shows a page and changes nothing.
    let page = crate::support::agent::client()
        .get(&url)
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .expect("page")
            .contains("List-Unsubscribe")
    );
    assert_eq!(status_of(&app, &editor, id).await, "pending");
    assert!(suppressed_mailboxes(&app).await.is_empty());
    // A body that is not RFC 8058's is refused.
    assert_eq!(one_click(&url, "List-Unsubscribe=No").await.status(), 400);
    assert_eq!(status_of(&app, &editor, id).await, "pending");

    // The provider's blind POST: no cookie, no CSRF token.
    let done = one_click(&url, "List-Unsubscribe=One-Click").await;
    assert_eq!(done.status(), 200);
    assert_eq!(status_of(&app, &editor, id).await, "declined");
    assert_eq!(suppressed_mailboxes(&app).await, ["bob@example.org"]);
    json_with_status(app.accept(&token, "a good long password").await, 410).await;
    let again = json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": kinase.0}]}))
            .await,
        409,
    )
    .await;
    assert_eq!(again["error"], SUPPRESSED);
    // Again: still 200.
    assert_eq!(
        one_click(&url, "List-Unsubscribe=One-Click").await.status(),
        200
    );

    // An unknown token, or one that is not a token: 200, and nothing changes.
    let carol = invite_bob(&app, &editor, "carol@example.org", kinase)
        .await
        .0;
    for unknown in [
        cbh_invite::domain::Token::generate().expose().to_owned(),
        "not-a-token".to_owned(),
    ] {
        let url = format!("{}/{NS}/unsubscribe/{unknown}", app.base);
        assert_eq!(
            one_click(&url, "List-Unsubscribe=One-Click").await.status(),
            200
        );
        assert_eq!(
            crate::support::agent::client()
                .get(&url)
                .send()
                .await
                .expect("sent")
                .status(),
            410
        );
    }
    assert_eq!(status_of(&app, &editor, carol).await, "pending");
    assert_eq!(suppressed_mailboxes(&app).await, ["bob@example.org"]);
}

async fn declining_delivers_an_invitation_declined_webhook(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    admin_with_webhook(
        &app,
        &receiver,
        &["invitation.declined", "membership.changed"],
    )
    .await;
    let (editor, kinase) = app.editor_with_project().await;
    let (id, mail) = invite_bob(&app, &editor, "bob@example.org", kinase).await;
    let token = mail.accept_token().expect("token");
    json_with_status(
        app.anonymous()
            .post(&decline_path(), &json!({"token": token}))
            .await,
        200,
    )
    .await;

    receiver
        .wait_for("invitation.declined", WAIT, |r| {
            r.verified && r.event() == "invitation.declined" && r.json()["data"]["id"] == id
        })
        .await;
    let declined = receiver
        .accepted()
        .into_iter()
        .find(|r| r.event() == "invitation.declined")
        .expect("delivered");
    assert_eq!(declined.json()["data"]["status"], "declined");
    // The viewer grant it took back is announced too.
    receiver
        .wait_for("membership.changed", WAIT, |r| {
            r.event() == "membership.changed"
                && r.json()["data"]["user"]["email"] == "bob@example.org"
                && r.json()["data"]["new_role"].is_null()
        })
        .await;
    // And the audit log has it.
    let audit = app
        .store
        .audit_since(Timestamp(0), 100)
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.event == "invitation_declined"
                && a.subject.as_deref() == Some(&id.to_string()))
    );
}

async fn the_accept_page_leads_to_the_decline_page_and_its_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let (id, mail) = invite_bob(&app, &editor, "bob@example.org", kinase).await;
    let link = mail.accept_link().expect("link");
    let browser = Browser::start("decline_page").await;

    browser.goto(&app.local(&link)).await;
    browser.wait_for_text(".invited-by", "Ada Lovelace").await;
    browser.submit_and_wait("#decline").await;
    browser
        .wait_for_path("the decline page", |path| {
            path.starts_with(&format!("/{NS}/decline/"))
        })
        .await;
    browser.wait_for_text("h1", "Decline the invitation").await;
    browser.assert_accessible("decline").await;
    // The language switcher is a plain link: the page again, in German, and what follows too.
    browser.click("nav.languages a[hreflang=de]").await;
    browser.wait_for_text("h1", "Einladung ablehnen").await;
    browser.assert_accessible("decline in German").await;
    browser.click("#block-future").await;
    browser.submit_and_wait("#confirm-decline").await;
    browser
        .wait_for_text("#outcome", "Sie haben die Einladung abgelehnt")
        .await;
    browser.assert_accessible("declined").await;
    browser.quit().await;

    assert_eq!(status_of(&app, &editor, id).await, "declined");
    assert_eq!(suppressed_mailboxes(&app).await, ["bob@example.org"]);
}

backend_tests!(
    declining_by_api_removes_only_the_grants_it_gave_and_kills_the_link,
    block_future_makes_later_invitations_409_and_queues_nothing,
    the_decline_page_asks_first_and_declines_only_with_its_form_token,
    the_email_carries_one_click_unsubscribe_headers_that_work_without_a_cookie,
    declining_delivers_an_invitation_declined_webhook,
    the_accept_page_leads_to_the_decline_page_and_its_confirmation,
);
