//! Bounces that come back: the envelope sender names the message (VERP), and `cbh-invite bounce`
//! (the real binary, fed on standard input as a mail server's pipe does) reads the reports of
//! Postfix, Exim, Microsoft 365 and Gmail, written here after each one's published format: a
//! permanent failure marks the invitation's email bounced, tells its creator once and announces
//! `email.bounced`; a temporary one changes nothing; garbage exits 0; a database that cannot be
//! reached exits 75, so the mail server retries.

use std::process::Output;
use std::time::Duration;

use cbh_invite::config::DatabaseUrl;
use cbh_invite::domain::Timestamp;
use serde_json::{Value, json};

use crate::support::binary::run;
use crate::support::bounce_reports::{
    exim_report, gmail_report, microsoft_365_report, postfix_report,
};
use crate::support::browser::Browser;
use crate::support::smtp::ReceivedMail;
use crate::support::webhooks::{Receiver, admin_with_webhook};
use crate::support::{
    Agent, Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app_with, wait,
};

pub const WAIT: Duration = Duration::from_secs(20);
pub const BOUNCES: &str = "bounces@lab.example";

pub fn database_url(database: &DatabaseUrl) -> String {
    match database {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.clone(),
    }
}

/// The environment `cbh-invite bounce` runs with, as the mail server's pipe would give it: the
/// app's database, and its relay (the test's SMTP server) for the creator's notice.
pub fn bounce_env(app: &TestApp, mail_dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("CBH_DATABASE_URL", database_url(&app.settings.database)),
        (
            "CBH_SMTP_URL",
            format!("smtp://127.0.0.1:{}", app.smtp.port),
        ),
        ("CBH_PUBLIC_URL", "http://invite.test.example".into()),
        ("CBH_NAMESPACES", format!("{NS},other")),
        ("CBH_MAIL_DIR", mail_dir.display().to_string()),
        ("CBH_BOUNCE_ADDRESS", BOUNCES.into()),
    ]
}

/// Runs `cbh-invite bounce [--recipient R]` with `report` on standard input, off the test's
/// thread: the SMTP server the creator's notice goes to runs on it.
async fn feed(app: &TestApp, recipient: Option<&str>, report: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = bounce_env(app, dir.path());
    let mut args = vec!["bounce".to_owned()];
    if let Some(recipient) = recipient {
        args.extend(["--recipient".to_owned(), recipient.to_owned()]);
    }
    run_off_thread(dir, env, args, report.to_owned()).await
}

async fn run_off_thread(
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    args: Vec<String>,
    stdin: String,
) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(dir.path(), &env, &args, Some(&stdin))
    })
    .await
    .expect("the command ran")
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "cbh-invite bounce exited {:?}; its log: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An app whose messages go out from `bounces+ID@lab.example`, and an inviter.
async fn app_with_bounces(backend: Backend) -> (TestApp, Agent) {
    let app = spawn_app_with(backend, |settings| {
        settings.delivery.bounce_address = Some(BOUNCES.parse().expect("address"));
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    (app, editor)
}

/// Invites `email` and waits for its email; returns the invitation's id and the mail.
async fn invite(app: &TestApp, editor: &Agent, email: &str) -> (i64, ReceivedMail) {
    let (created, mail) = app
        .invite_and_wait_for_mail(
            editor,
            json!({"email": email, "first_name": "Nobody"}),
            WAIT,
        )
        .await;
    let id = created["id"].as_i64().expect("id");
    // The relay's acceptance is recorded just after the SMTP server has the message.
    app.wait_for_invitation(editor, id, WAIT, |i| i["delivery"]["status"] == "sent")
        .await;
    (id, mail)
}

/// The VERP envelope sender of a received message, checked against its Message-ID.
fn verp_of(mail: &ReceivedMail) -> String {
    let id = mail
        .message_id()
        .split('@')
        .next()
        .expect("local part")
        .to_owned();
    assert_eq!(id.len(), 32, "the Message-ID's random part: {id}");
    let verp = format!("bounces+{id}@lab.example");
    assert_eq!(mail.mail_from, verp, "MAIL FROM names the message");
    verp
}

/// The notices that reached `creator` so far.
fn notices_to(app: &TestApp, creator: &str) -> Vec<ReceivedMail> {
    app.smtp
        .received()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == creator))
        .collect()
}

async fn the_envelope_sender_names_the_message_when_a_bounce_address_is_set(backend: Backend) {
    let (app, editor) = app_with_bounces(backend).await;
    let (_, first) = invite(&app, &editor, "bob@example.org").await;
    let (_, second) = invite(&app, &editor, "carl@example.org").await;
    let (a, b) = (verp_of(&first), verp_of(&second));
    assert_ne!(a, b, "each message has an id of its own");
    // The From header is still the sender's.
    assert!(
        first
            .data
            .contains("From: \"ChemBio Hub\" <noreply@invite.test.example>"),
        "{}",
        first.data
    );

    // Unset: the envelope sender is the From address, as before.
    let plain = spawn_app_with(backend, |_| {}).await;
    let (editor, _) = plain.editor_with_project().await;
    let (_, mail) = invite(&plain, &editor, "dora@example.org").await;
    assert_eq!(mail.mail_from, "noreply@invite.test.example");
}

async fn a_permanent_bounce_marks_the_email_bounced_and_tells_the_creator_once(backend: Backend) {
    let (app, editor) = app_with_bounces(backend).await;
    let receiver = Receiver::start().await;
    admin_with_webhook(&app, &receiver, &["email.bounced"]).await;
    let (id, mail) = invite(&app, &editor, "nobody@example.org").await;
    let creator = app.invitation(&editor, id).await["created_by"]["username"]
        .as_str()
        .expect("creator")
        .to_owned();
    let verp = verp_of(&mail);
    let diagnostic = "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table";
    let report = postfix_report(&verp, &mail, "5.1.1", diagnostic);

    let output = feed(&app, Some(&verp), &report).await;
    assert_exit(&output, 0);
    let bounced = app.invitation(&editor, id).await;
    assert_eq!(bounced["delivery"]["status"], "bounced", "{bounced:#}");
    assert_eq!(bounced["delivery"]["last_error"], diagnostic);
    assert_eq!(
        bounced["status"], "pending",
        "the invitation itself is unchanged"
    );
    let document =
        json_with_status(editor.get(&format!("/{NS}/api/openapi.json")).await, 200).await;
    assert_eq!(
        document["components"]["schemas"]["DeliveryState"]["enum"],
        json!(["queued", "sent", "failed", "bounced"]),
        "the OpenAPI document names the state"
    );

    let notices = notices_to(&app, &creator);
    assert_eq!(notices.len(), 1, "the creator is told");
    let notice = &notices[0];
    assert_eq!(
        notice.subject(),
        "Your invitation to nobody@example.org could not be delivered"
    );
    assert!(
        notice.text().contains("the address does not exist"),
        "{}",
        notice.text()
    );
    assert!(notice.text().contains("User unknown"), "{}", notice.text());
    assert!(
        notice
            .text()
            .contains("http://invite.test.example/chembiohub/invite/"),
        "{}",
        notice.text()
    );

    // The event, signed, with the invitation as the API shows it.
    receiver
        .wait_for("email.bounced", WAIT, |r| r.event() == "email.bounced")
        .await;
    let event = receiver
        .accepted()
        .into_iter()
        .find(|r| r.event() == "email.bounced")
        .expect("email.bounced");
    assert!(event.verified, "the event's signature checks out");
    let data = &event.json()["data"];
    assert_eq!(data["id"], id);
    assert_eq!(data["delivery"]["status"], "bounced");
    assert_eq!(data["mail"]["status"], "5.1.1");
    assert_eq!(data["mail"]["reason"], "the address does not exist");
    assert_eq!(data["mail"]["recipient"], "nobody@example.org");

    // The same report again (a mail server may deliver it twice): nothing new.
    let before = app.smtp.received_count();
    assert_exit(&feed(&app, Some(&verp), &report).await, 0);
    assert_eq!(app.smtp.received_count(), before, "no second notice");
    assert_eq!(notices_to(&app, &creator).len(), 1);
    let audit = app
        .store
        .audit_since(Timestamp(0), 100)
        .await
        .expect("audit");
    let bounces: Vec<_> = audit
        .iter()
        .filter(|a| a.event == "email_bounced")
        .collect();
    assert_eq!(bounces.len(), 1, "{audit:#?}");
    assert_eq!(bounces[0].subject.as_deref(), Some(id.to_string().as_str()));
    let events = receiver
        .accepted()
        .iter()
        .filter(|r| r.event() == "email.bounced")
        .count();
    assert_eq!(events, 1, "one event");

    // Resending stays possible: a new message, a new id; the old report no longer applies.
    editor.resend(id).await;
    let resent = app
        .wait_for_invitation(&editor, id, WAIT, |i| i["delivery"]["status"] == "sent")
        .await;
    assert_eq!(resent["delivery"]["last_error"], Value::Null);
    assert_exit(&feed(&app, Some(&verp), &report).await, 0);
    let after = app.invitation(&editor, id).await;
    assert_eq!(after["delivery"]["status"], "sent", "{after:#}");
}

async fn the_reports_of_exim_microsoft_365_and_gmail_are_read(backend: Backend) {
    let (app, editor) = app_with_bounces(backend).await;
    let (exim_id, exim_mail) = invite(&app, &editor, "gone@example.net").await;
    let (m365_id, m365_mail) = invite(&app, &editor, "full@contoso.com").await;
    let (gmail_id, gmail_mail) = invite(&app, &editor, "typo@gmail.com").await;

    // Exim: by the To header alone, `5.0.0` made precise by the remote server's `5.1.1`.
    let exim = exim_report(
        &verp_of(&exim_mail),
        &exim_mail,
        "failed",
        "5.0.0",
        "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
    );
    assert_exit(&feed(&app, None, &exim).await, 0);
    // Microsoft 365: mailbox full, by `--recipient` as Postfix's pipe passes it.
    let verp = verp_of(&m365_mail);
    let m365 = microsoft_365_report(
        &verp,
        &m365_mail,
        "5.2.2",
        "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
    );
    assert_exit(&feed(&app, Some(&verp), &m365).await, 0);
    // Gmail: to a plain address, found by the Message-ID of the attached message.
    let gmail = gmail_report("noreply@invite.test.example", &gmail_mail);
    assert_exit(
        &feed(&app, Some("noreply@invite.test.example"), &gmail).await,
        0,
    );

    for (id, words, error) in [
        (exim_id, "the address does not exist", "User unknown"),
        (m365_id, "the mailbox is full", "QuotaExceeded"),
        (gmail_id, "the address does not exist", "does not exist"),
    ] {
        let invitation = app.invitation(&editor, id).await;
        assert_eq!(
            invitation["delivery"]["status"], "bounced",
            "{invitation:#}"
        );
        let last_error = invitation["delivery"]["last_error"]
            .as_str()
            .expect("error");
        assert!(last_error.contains(error), "{last_error}");
        let email = invitation["email"].as_str().expect("email");
        let notice = app
            .smtp
            .received()
            .into_iter()
            .find(|m| m.subject().contains(email))
            .unwrap_or_else(|| panic!("a notice about {email}"));
        assert!(notice.text().contains(words), "{email}: {}", notice.text());
    }
}

async fn a_temporary_failure_changes_nothing_and_garbage_is_dropped(backend: Backend) {
    let (app, editor) = app_with_bounces(backend).await;
    let (id, mail) = invite(&app, &editor, "slow@example.net").await;
    let verp = verp_of(&mail);
    let before = app.smtp.received_count();

    let delayed = exim_report(
        &verp,
        &mail,
        "delayed",
        "4.0.0",
        "451 4.2.0 Mailbox temporarily unavailable",
    );
    assert_exit(&feed(&app, Some(&verp), &delayed).await, 0);
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(invitation["delivery"]["status"], "sent", "{invitation:#}");
    assert_eq!(invitation["delivery"]["last_error"], Value::Null);
    let audit = app
        .store
        .audit_since(Timestamp(0), 100)
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.event == "email_delayed" && a.subject.as_deref() == Some(&id.to_string())),
        "the delay is noted: {audit:#?}"
    );

    // Not a report, and a report about a message that is not ours: exit 0 (a mail server must
    // not retry them for ever), one line logged, nothing changed.
    for (what, input, recipient) in [
        (
            "garbage",
            "\u{1}\u{2} this is not mail at all".to_owned(),
            None,
        ),
        (
            "a letter",
            "From: someone@example.org\r\nSubject: hello\r\n\r\nthanks for the invitation\r\n"
                .to_owned(),
            Some(verp.as_str()),
        ),
        (
            "another message's report",
            postfix_report(
                "bounces+00000000000000000000000000000000@lab.example",
                &mail,
                "5.1.1",
                "550 5.1.1 unknown",
            )
            .replace(&mail.message_id(), "someone-else@example.org"),
            Some("bounces+00000000000000000000000000000000@lab.example"),
        ),
    ] {
        let output = feed(&app, recipient, &input).await;
        assert_exit(&output, 0);
        let log = String::from_utf8_lossy(&output.stderr);
        assert_eq!(log.trim().lines().count(), 1, "{what}: one line: {log}");
    }
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(invitation["delivery"]["status"], "sent", "{invitation:#}");
    assert_eq!(
        app.smtp.received_count(),
        before,
        "nobody was told anything"
    );

    // A database that cannot be reached: 75 (EX_TEMPFAIL), so the mail server keeps the report.
    let report = postfix_report(&verp, &mail, "5.1.1", "550 5.1.1 unknown");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = bounce_env(&app, dir.path());
    let unreachable = match backend {
        Backend::Postgres => format!(
            "postgres://postgres@127.0.0.1:{}/nothing",
            wait::free_port()
        ),
        // A database whose folder cannot be made (its parent is a file).
        Backend::Sqlite => {
            let file = dir.path().join("file");
            std::fs::write(&file, b"").expect("file");
            format!("sqlite://{}", file.join("cbh.db").display())
        }
    };
    env[0].1 = unreachable;
    env.push(("CBH_DB_CONNECT_RETRY", "1s".into()));
    let args = vec!["bounce".into(), "--recipient".into(), verp.clone()];
    let output = run_off_thread(dir, env, args, report).await;
    assert_exit(&output, 75);
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(invitation["delivery"]["status"], "sent");
}

async fn a_notice_the_relay_cannot_take_yet_is_sent_when_the_report_comes_again(backend: Backend) {
    let (mut app, editor) = app_with_bounces(backend).await;
    let (id, mail) = invite(&app, &editor, "nobody@example.org").await;
    let verp = verp_of(&mail);
    let report = postfix_report(&verp, &mail, "5.1.1", "550 5.1.1 User unknown");

    // The relay is down: the bounce is recorded, the notice is not, exit 75.
    app.smtp.stop();
    assert_exit(&feed(&app, Some(&verp), &report).await, 75);
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(
        invitation["delivery"]["status"], "bounced",
        "{invitation:#}"
    );

    // The mail server delivers the report again once the relay is back: the notice, once.
    app.smtp.restart().await;
    let before = app.smtp.received_count();
    assert_exit(&feed(&app, Some(&verp), &report).await, 0);
    assert_eq!(app.smtp.received_count(), before + 1, "the notice");
    assert_exit(&feed(&app, Some(&verp), &report).await, 0);
    assert_eq!(app.smtp.received_count(), before + 1, "and only once");
    let notices = notices_to(&app, "ada@lab.example");
    assert_eq!(notices.len(), 1, "one notice");
}

async fn the_invite_page_shows_a_bounced_invitation_with_its_reason(backend: Backend) {
    let (app, editor) = app_with_bounces(backend).await;
    let (_, mail) = invite(&app, &editor, "nobody@example.org").await;
    let verp = verp_of(&mail);
    let diagnostic = "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown";
    assert_exit(
        &feed(
            &app,
            Some(&verp),
            &postfix_report(&verp, &mail, "5.1.1", diagnostic),
        )
        .await,
        0,
    );

    let browser = Browser::start("bounced").await;
    browser.log_in(&app, "ada@lab.example", PASSWORD).await;
    browser.goto(&format!("{}/{NS}/invite/", app.base)).await;
    let delivery = "#invitations tbody tr[data-delivery=bounced] td[data-label=Delivery]";
    browser.wait_for_text(delivery, "bounced").await;
    let text = browser.text(delivery).await;
    browser
        .check(
            text.contains("User unknown"),
            &format!("the reason is shown: {text}"),
        )
        .await;
    let email = browser
        .text("#invitations tbody tr[data-delivery=bounced] td.email")
        .await;
    browser
        .check(
            email.trim() == "nobody@example.org",
            &format!("the row: {email}"),
        )
        .await;
    browser
        .assert_accessible("the invite page with a bounce")
        .await;
    browser.quit().await;
}

backend_tests!(
    the_envelope_sender_names_the_message_when_a_bounce_address_is_set,
    a_permanent_bounce_marks_the_email_bounced_and_tells_the_creator_once,
    the_reports_of_exim_microsoft_365_and_gmail_are_read,
    a_temporary_failure_changes_nothing_and_garbage_is_dropped,
    a_notice_the_relay_cannot_take_yet_is_sent_when_the_report_comes_again,
    the_invite_page_shows_a_bounced_invitation_with_its_reason,
);
