//! Automatic reminders (`CBH_REMINDERS`) and the superseded link's page: reminders at their
//! times with fresh links, none once an invitation is accepted, revoked or expired, each sent
//! once by two nodes and across a restart, skipped over the per-recipient limit, announced to
//! webhooks; an older link shows when the newer email was sent and emails a new link to the
//! invitation's own address.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cbh_invite::config::Limit;
use cbh_invite::domain::Timestamp;
use cbh_invite::mail::Reminders;
use reqwest::StatusCode;
use serde_json::{Value, json};
use smtp_sink::ReceivedMail;
use tokio::sync::Notify;

use crate::support::webhooks::{Receiver, admin_with_webhook};
use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app_with};

const WAIT: Duration = Duration::from_secs(15);
const SECOND: Duration = Duration::from_secs(1);

fn every(schedule: &[u64]) -> impl FnOnce(&mut cbh_invite::config::Settings) {
    let schedule: Vec<Duration> = schedule.iter().map(|s| Duration::from_secs(*s)).collect();
    move |settings| settings.reminders = schedule
}

async fn invite(agent: &Agent, body: Value) -> i64 {
    json_with_status(agent.invite(body).await, 201).await["id"]
        .as_i64()
        .expect("id")
}

fn to(mails: &[ReceivedMail], address: &str) -> Vec<ReceivedMail> {
    mails
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == address))
        .cloned()
        .collect()
}

/// A scan driven by hand on `app`'s store, at any time (the app's own scan is off).
fn scan(app: &TestApp, schedule: &[Duration]) -> Reminders {
    Reminders::new(
        app.store.clone(),
        schedule.to_vec(),
        app.settings.limits.emails_per_recipient,
        "invite.test.example".into(),
        Arc::new(Notify::new()),
    )
}

fn later(by: Duration) -> Timestamp {
    Timestamp::now().plus(by)
}

async fn a_pending_invitation_gets_two_reminders_at_their_times_with_fresh_links(backend: Backend) {
    let app = spawn_app_with(backend, every(&[2, 4])).await;
    let (editor, _) = app.editor_with_project().await;
    let sent_at = tokio::time::Instant::now();
    let id = invite(
        &editor,
        json!({"email": "bob@example.org", "first_name": "Bob"}),
    )
    .await;

    let first = app.smtp.wait_for(1, WAIT).await;
    let second = app.smtp.wait_for(2, WAIT).await;
    let after_first_reminder = sent_at.elapsed();
    let mails = app.smtp.wait_for(3, WAIT).await;
    let after_second_reminder = sent_at.elapsed();

    assert!(
        after_first_reminder >= Duration::from_secs(2),
        "the first reminder came after {after_first_reminder:?}"
    );
    assert!(
        after_second_reminder >= Duration::from_secs(4),
        "the second reminder came after {after_second_reminder:?}"
    );
    assert!(!first[0].subject().starts_with("Reminder"));
    for reminder in &mails[1..] {
        assert_eq!(
            reminder.subject(),
            "Reminder: Ada Lovelace invited you to ChemBio Hub Platform"
        );
        assert_eq!(reminder.rcpt_to, vec!["bob@example.org".to_owned()]);
        assert!(reminder.text().contains("Hello Bob"));
        assert!(reminder.html().contains("Choose your password"));
    }
    let tokens: Vec<String> = mails
        .iter()
        .map(|m| m.accept_token().expect("every email has a link"))
        .collect();
    assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), 3);
    assert_eq!(second[1].accept_token(), Some(tokens[1].clone()));
    let invitation = app
        .wait_for_invitation(&editor, id, WAIT, |i| i["delivery"]["status"] == "sent")
        .await;
    assert_eq!(invitation["reminders_sent"], 2);
    assert_eq!(invitation["status"], "pending");

    // No third: the schedule has two times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.smtp.received_count(), 3);
    // The older links show the superseded page; the newest one works.
    let old = app
        .anonymous()
        .get(&format!("/{NS}/accept/{}", tokens[0]))
        .await;
    assert_eq!(old.status(), StatusCode::GONE);
    assert!(
        old.text()
            .await
            .expect("body")
            .contains("Email me a new link")
    );
    json_with_status(app.accept(&tokens[1], "a good long password").await, 410).await;
    json_with_status(app.accept(&tokens[2], "a good long password").await, 200).await;
    assert_eq!(
        app.audit_subjects("invitation_reminded").await,
        vec![id.to_string(), id.to_string()]
    );
}

async fn no_reminder_goes_once_an_invitation_is_accepted_revoked_declined_bounced_or_expired(
    backend: Backend,
) {
    let app = spawn_app_with(backend, every(&[])).await;
    let (editor, _) = app.editor_with_project().await;
    let accepted = invite(&editor, json!({"email": "acc@example.org"})).await;
    let revoked = invite(&editor, json!({"email": "rev@example.org"})).await;
    let expiring = invite(
        &editor,
        json!({"email": "exp@example.org", "expires_in": "1h"}),
    )
    .await;
    let waiting = invite(&editor, json!({"email": "wait@example.org"})).await;
    let declined = invite(&editor, json!({"email": "dec@example.org"})).await;
    let bounced = invite(&editor, json!({"email": "bou@example.org"})).await;
    let mails = app.smtp.wait_for(6, WAIT).await;
    let token = to(&mails, "acc@example.org")[0]
        .accept_token()
        .expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    let token = to(&mails, "dec@example.org")[0]
        .accept_token()
        .expect("token");
    json_with_status(
        app.anonymous()
            .post(
                &format!("/{NS}/api/invitations/decline/"),
                &json!({"token": token}),
            )
            .await,
        200,
    )
    .await;
    // Its email bounced (as `cbh-invite bounce` records a 5.1.1): no reminder to that address.
    app.wait_for_invitation(&editor, bounced, WAIT, |i| {
        i["delivery"]["status"] == "sent"
    })
    .await;
    let outcome = app
        .store
        .record_bounce(cbh_invite::store::NewBounce {
            verp_id: None,
            message_id: Some(to(&mails, "bou@example.org")[0].message_id()),
            status: "5.1.1".into(),
            permanent: true,
            diagnostic: "550 5.1.1 no such user".into(),
            now: Timestamp::now(),
        })
        .await
        .expect("bounce");
    assert!(
        matches!(outcome, cbh_invite::store::BounceOutcome::Bounced(_)),
        "{outcome:?}"
    );
    json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{revoked}/revoke/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    let reminders = scan(&app, &[Duration::from_secs(2 * 3600)]);

    // Two hours on: the expiring one has expired, the accepted and revoked ones are done.
    let report = reminders
        .remind_due(later(Duration::from_secs(3 * 3600)))
        .await
        .expect("scan");

    assert_eq!((report.sent, report.skipped), (1, 0));
    // Queued for that later time, it is not delivered now: the invitations tell what was queued.
    for (id, count) in [
        (accepted, 0),
        (revoked, 0),
        (expiring, 0),
        (declined, 0),
        (bounced, 0),
        (waiting, 1),
    ] {
        let invitation = app.invitation(&editor, id).await;
        assert_eq!(invitation["reminders_sent"], count, "invitation {id}");
    }
    assert_eq!(
        app.invitation(&editor, waiting).await["delivery"]["status"],
        "queued"
    );
    assert_eq!(
        app.audit_subjects("invitation_reminded").await,
        vec![waiting.to_string()]
    );
    // The slot was used: a second pass sends nothing more.
    let again = reminders
        .remind_due(later(Duration::from_secs(3 * 3600)))
        .await
        .expect("scan");
    assert_eq!((again.sent, again.skipped), (0, 0));
}

async fn a_resend_starts_the_reminder_schedule_again(backend: Backend) {
    let app = spawn_app_with(backend, every(&[])).await;
    let (editor, _) = app.editor_with_project().await;
    let created = Timestamp::now();
    let id = invite(&editor, json!({"email": "bob@example.org"})).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    editor.resend(id).await;
    let reminders = scan(&app, &[2 * SECOND]);

    // Two seconds after the creation, but not after the resend: not due.
    let early = reminders
        .remind_due(Timestamp(created.millis() + 2_500))
        .await
        .expect("scan");
    assert_eq!(early.sent, 0);
    let due = reminders.remind_due(later(3 * SECOND)).await.expect("scan");

    assert_eq!(due.sent, 1);
    assert_eq!(app.invitation(&editor, id).await["reminders_sent"], 1);
}

async fn each_reminder_is_sent_once_by_two_nodes_and_across_a_restart(backend: Backend) {
    let mut app = spawn_app_with(backend, every(&[2, 4])).await;
    let mut second = app.add_node(|_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    let addresses: Vec<String> = (0..6).map(|i| format!("p{i}@example.org")).collect();
    let mut ids = Vec::new();
    for address in &addresses {
        ids.push(invite(&editor, json!({"email": address})).await);
    }
    app.smtp.wait_for(addresses.len() * 2, WAIT).await;

    // Between the two reminders, this node restarts; the other keeps scanning.
    app.restart().await;
    let editor = app.agent_for(&editor, &app.base);
    app.smtp.wait_for(addresses.len() * 3, WAIT).await;
    for id in &ids {
        app.wait_for_invitation(&editor, *id, WAIT, |i| {
            i["reminders_sent"] == 2 && i["delivery"]["status"] == "sent"
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    second.stop().await;
    app.stop().await;

    let received = app.smtp.received();
    assert_eq!(received.len(), addresses.len() * 3);
    let message_ids: HashSet<String> = received.iter().map(|m| m.message_id()).collect();
    assert_eq!(message_ids.len(), received.len());
    for address in &addresses {
        assert_eq!(to(&received, address).len(), 3, "{address}");
    }
}

async fn a_reminder_over_the_recipient_limit_is_skipped_and_recorded(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        // Far apart: a first scan later than the second slot passes both over as one (one
        // reminder, none skipped), which a loaded machine did with 2 s and 3 s.
        settings.reminders = vec![2 * SECOND, 6 * SECOND];
        settings.limits.emails_per_recipient = Some(Limit {
            max: 2,
            window: Duration::from_secs(3600),
        });
        settings.limits.invitations_per_inviter = Some(Limit {
            max: 2,
            window: Duration::from_secs(3600),
        });
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, json!({"email": "bob@example.org"})).await;

    app.smtp.wait_for(2, WAIT).await;
    crate::support::wait::until("the second reminder is passed over", WAIT, || async {
        !app.audit_subjects("reminder_skipped").await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(app.smtp.received_count(), 2);
    assert_eq!(
        app.audit_subjects("reminder_skipped").await,
        vec![id.to_string()]
    );
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(invitation["reminders_sent"], 1);
    assert_eq!(invitation["status"], "pending");
    // The reminder counted against Bob's mailbox, not against the inviter's own limit.
    invite(&editor, json!({"email": "carol@example.org"})).await;
}

async fn a_reminder_is_announced_to_webhooks(backend: Backend) {
    let app = spawn_app_with(backend, every(&[2])).await;
    let receiver = Receiver::start().await;
    admin_with_webhook(&app, &receiver, &["invitation.reminded"]).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, json!({"email": "bob@example.org"})).await;

    receiver
        .wait_for("invitation.reminded", WAIT, |r| {
            r.event() == "invitation.reminded"
        })
        .await;

    let events: Vec<Value> = receiver.accepted().iter().map(|r| r.json()).collect();
    assert_eq!(events.len(), 1, "only the subscribed event: {events:?}");
    assert_eq!(events[0]["type"], "invitation.reminded");
    assert_eq!(events[0]["data"]["id"], id);
    assert_eq!(events[0]["data"]["reminders_sent"], 1);
    assert!(events[0]["data"]["delivery"].is_object());
}

fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {body}"))
        + marker.len();
    let end = body[start..].find('"').expect("closing quote") + start;
    body[start..end].to_owned()
}

fn browser() -> reqwest::Client {
    crate::support::agent::client_builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Opens the superseded page of `token` and presses "Email me a new link", with an address of
/// its own in the form (which must be ignored).
async fn ask_for_a_new_link(app: &TestApp, token: &str) -> reqwest::Response {
    let client = browser();
    let url = format!("{}/{NS}/accept/{token}", app.base);
    let page = client.get(&url).send().await.expect("sent");
    assert_eq!(page.status(), StatusCode::GONE);
    let form_token = hidden(&page.text().await.expect("body"), "form_token");
    client
        .post(format!("{url}/new-link"))
        .form(&[
            ("form_token", form_token.as_str()),
            ("email", "mallory@evil.example"),
        ])
        .send()
        .await
        .expect("sent")
}

async fn a_superseded_link_shows_the_date_and_emails_a_new_link_to_the_stored_address(
    backend: Backend,
) {
    let app = spawn_app_with(backend, every(&[])).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, json!({"email": "bob@example.org"})).await;
    let old = app.smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");
    let resent = editor.resend(id).await;
    app.smtp.wait_for(2, WAIT).await;
    let modified = resent["modified"].as_str().expect("modified").to_owned();

    let page = app.anonymous().get(&format!("/{NS}/accept/{old}")).await;
    assert_eq!(page.status(), StatusCode::GONE);
    let body = page.text().await.expect("body");
    assert!(
        body.contains("A newer email with a new link was sent to you on"),
        "{body}"
    );
    // The date, written in the page's language (English here), with its machine form.
    assert!(
        body.contains(&format!("<time datetime=\"{}", &modified[..16])),
        "{body}"
    );
    let day = modified[8..10].trim_start_matches('0');
    assert!(body.contains(&format!("\">{day} ")), "{body}");
    assert!(body.contains("Email me a new link"));

    // Without the page's form token: refused, nothing queued.
    let forged = browser()
        .post(format!("{}/{NS}/accept/{old}/new-link", app.base))
        .form(&[("form_token", "x".repeat(43))])
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let asked = ask_for_a_new_link(&app, &old).await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(
        asked
            .text()
            .await
            .expect("body")
            .contains("A new link is on its way")
    );
    let mails = app.smtp.wait_for(3, WAIT).await;
    assert_eq!(mails.len(), 3);
    assert_eq!(mails[2].rcpt_to, vec!["bob@example.org".to_owned()]);
    assert!(to(&mails, "mallory@evil.example").is_empty());
    let fresh = mails[2].accept_token().expect("token");
    assert!(
        !mails
            .iter()
            .take(2)
            .any(|m| m.accept_token() == Some(fresh.clone()))
    );
    // The resend's link is superseded in turn; the fresh one works.
    json_with_status(
        app.accept(
            &mails[1].accept_token().expect("token"),
            "a good long password",
        )
        .await,
        410,
    )
    .await;
    json_with_status(app.accept(&fresh, "a good long password").await, 200).await;
    assert_eq!(
        app.audit_subjects("invitation_link_requested").await,
        vec![id.to_string()]
    );
}

/// A reader who asks for no language (no `Accept-Language`, no switcher cookie) reads the page
/// after "Email me a new link" in the invitation's language, as the superseded page before it.
async fn the_page_after_a_new_link_is_in_the_invitations_language(backend: Backend) {
    let app = spawn_app_with(backend, every(&[])).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(
        &editor,
        json!({"email": "bob@example.org", "language": "de"}),
    )
    .await;
    let old = app.smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");
    editor.resend(id).await;
    app.smtp.wait_for(2, WAIT).await;

    let asked = ask_for_a_new_link(&app, &old).await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert_eq!(asked.headers()["content-language"], "de");
    let body = asked.text().await.expect("body");
    assert!(body.contains("<html lang=\"de\">"), "{body}");
    assert!(body.contains("Ein neuer Link ist unterwegs"), "{body}");
}

async fn a_new_link_is_refused_for_a_revoked_invitation_and_over_the_limit(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.reminders = Vec::new();
        settings.limits.emails_per_recipient = Some(Limit {
            max: 2,
            window: Duration::from_secs(3600),
        });
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    let bob = invite(&editor, json!({"email": "bob@example.org"})).await;
    let carol = invite(&editor, json!({"email": "carol@example.org"})).await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    let bob_old = to(&mails, "bob@example.org")[0]
        .accept_token()
        .expect("token");
    let carol_old = to(&mails, "carol@example.org")[0]
        .accept_token()
        .expect("token");
    for id in [bob, carol] {
        editor.resend(id).await;
    }
    app.smtp.wait_for(4, WAIT).await;

    // Bob's mailbox has had its two emails this hour.
    let limited = ask_for_a_new_link(&app, &bob_old).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(
        limited
            .text()
            .await
            .expect("body")
            .contains("Too many emails")
    );

    // Carol's invitation is revoked while her page is open.
    let client = browser();
    let url = format!("{}/{NS}/accept/{carol_old}", app.base);
    let page = client.get(&url).send().await.expect("sent");
    let form_token = hidden(&page.text().await.expect("body"), "form_token");
    json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{carol}/revoke/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    let refused = client
        .post(format!("{url}/new-link"))
        .form(&[("form_token", form_token.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::GONE);
    assert!(!refused.text().await.expect("body").contains("on its way"));
    // And the link now shows today's page, without the offer.
    let gone = app
        .anonymous()
        .get(&format!("/{NS}/accept/{carol_old}"))
        .await;
    assert_eq!(gone.status(), StatusCode::GONE);
    let body = gone.text().await.expect("body");
    assert!(body.contains("no longer works"), "{body}");
    assert!(!body.contains("Email me a new link"));

    // Dave is deactivated: his superseded link stays dead, with nothing to ask for.
    let dave = invite(&editor, json!({"email": "dave@example.org"})).await;
    let dave_old = app.smtp.wait_for(5, WAIT).await[4]
        .accept_token()
        .expect("token");
    editor.resend(dave).await;
    app.smtp.wait_for(6, WAIT).await;
    let client = browser();
    let url = format!("{}/{NS}/accept/{dave_old}", app.base);
    let page = client.get(&url).send().await.expect("sent");
    let form_token = hidden(&page.text().await.expect("body"), "form_token");
    let root = app
        .add_user("root@lab.example", "Root", "Admin", true)
        .await;
    let dave_id = app.user_by_email("dave@example.org").await.user.id.0;
    json_with_status(
        app.api_key_agent(&root)
            .await
            .post(
                &format!("/{NS}/api/users/{dave_id}/deactivate/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    let refused = client
        .post(format!("{url}/new-link"))
        .form(&[("form_token", form_token.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::GONE);

    tokio::time::sleep(SECOND).await;
    assert_eq!(app.smtp.received_count(), 6);
}

backend_tests!(
    a_pending_invitation_gets_two_reminders_at_their_times_with_fresh_links,
    no_reminder_goes_once_an_invitation_is_accepted_revoked_declined_bounced_or_expired,
    a_resend_starts_the_reminder_schedule_again,
    each_reminder_is_sent_once_by_two_nodes_and_across_a_restart,
    a_reminder_over_the_recipient_limit_is_skipped_and_recorded,
    a_reminder_is_announced_to_webhooks,
    a_superseded_link_shows_the_date_and_emails_a_new_link_to_the_stored_address,
    a_new_link_is_refused_for_a_revoked_invitation_and_over_the_limit,
    the_page_after_a_new_link_is_in_the_invitations_language,
);
