//! The SMTP relay over TLS (rustls): STARTTLS and implicit TLS to a real server whose
//! certificate comes from a CA the test made (trusted through `CBH_SMTP_CA_FILE`), with AUTH
//! PLAIN and LOGIN. A relay that does not offer STARTTLS when it is required, or whose
//! certificate does not verify, gets nothing, not even the envelope, in plain text.

use std::time::Duration;

use cbh_invite::config::{Settings, SmtpSettings};
use cbh_invite::store::NoticeRow;
use serde_json::{Value, json};
use smtp_sink::{Options, TlsIdentity};

use crate::support::app::spawn_app_with_sink;
use crate::support::tls::TestCa;
use crate::support::wait::until;
use crate::support::{Agent, Backend, NS, TestApp, json_with_status};

const WAIT: Duration = Duration::from_secs(30);
const USER: &str = "mailer@lab.example";
const PASSWORD: &str = "p@ss word:1";

/// A sink with a certificate from a new CA, and that CA's file; `options` says the rest.
struct Relay {
    ca: TestCa,
    sink: Options,
}

fn relay(options: Options) -> Relay {
    let ca = TestCa::new("relay test CA");
    let server = ca.server_cert();
    Relay {
        sink: Options {
            tls: Some(TlsIdentity {
                cert_pem: server.cert_pem,
                key_pem: server.key_pem,
            }),
            ..options
        },
        ca,
    }
}

/// The app on `relay`, its `CBH_SMTP_URL` being `url` with `{port}` filled in, and with
/// `CBH_SMTP_CA_FILE` naming the relay's CA when `trust` is set. One attempt per message.
async fn app_on(backend: Backend, relay: &Relay, url: &str, trust: bool) -> TestApp {
    let ca_dir = tempfile::tempdir().expect("temp dir");
    let ca_file = relay.ca.write(ca_dir.path(), "relay-ca.pem");
    let url = url.to_owned();
    let configure = move |s: &mut Settings| {
        let port = s.smtp.as_ref().expect("smtp").port;
        let mut smtp =
            SmtpSettings::parse(&url.replace("{port}", &port.to_string())).expect("SMTP URL");
        smtp.ca_file = trust.then_some(ca_file);
        s.smtp = Some(smtp);
        s.delivery.max_attempts = 1;
    };
    let app = spawn_app_with_sink(backend, relay.sink.clone(), configure).await;
    // The CA file is read when the transport is built: the folder may go now.
    drop(ca_dir);
    app
}

async fn invite(app: &TestApp) -> (Agent, i64) {
    let (editor, project) = app.editor_with_project().await;
    let created = json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    (editor, created["id"].as_i64().expect("id"))
}

/// Waits until the invitation's one attempt has failed; returns its error.
async fn failed_delivery(app: &TestApp, editor: &Agent, id: i64) -> String {
    let failed = app
        .wait_for_invitation(editor, id, WAIT, |inv: &Value| {
            inv["delivery"]["status"] == "failed"
        })
        .await;
    failed["delivery"]["last_error"]
        .as_str()
        .expect("last_error")
        .to_owned()
}

async fn starttls_to_a_private_ca_with_auth_plain(backend: Backend) {
    let relay = relay(Options {
        starttls: true,
        auth: Some((USER.into(), PASSWORD.into())),
        auth_mechanisms: Some("PLAIN".into()),
        ..Options::default()
    });
    let app = app_on(
        backend,
        &relay,
        "smtp://mailer%40lab.example:p%40ss%20word%3A1@127.0.0.1:{port}?tls=starttls",
        true,
    )
    .await;
    let (editor, id) = invite(&app).await;
    let mail = app.smtp.wait_for(1, WAIT).await.swap_remove(0);
    assert!(mail.tls, "the message came in plain text");
    assert_eq!(mail.user.as_deref(), Some(USER));
    assert_eq!(mail.rcpt_to, ["bob@example.org"]);
    let sent = app
        .wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;
    assert_eq!(sent["delivery"]["attempts"], 1);
}

async fn implicit_tls_with_auth_login(backend: Backend) {
    let relay = relay(Options {
        implicit_tls: true,
        auth: Some((USER.into(), PASSWORD.into())),
        auth_mechanisms: Some("LOGIN".into()),
        ..Options::default()
    });
    let app = app_on(
        backend,
        &relay,
        "smtps://mailer%40lab.example:p%40ss%20word%3A1@127.0.0.1:{port}",
        true,
    )
    .await;
    invite(&app).await;
    let mail = app.smtp.wait_for(1, WAIT).await.swap_remove(0);
    assert!(mail.tls, "the message came in plain text");
    assert_eq!(mail.user.as_deref(), Some(USER));
}

async fn a_relay_without_starttls_gets_nothing_in_plain_text(backend: Backend) {
    // The relay has a certificate but does not offer STARTTLS.
    let relay = relay(Options::default());
    let app = app_on(
        backend,
        &relay,
        "smtp://127.0.0.1:{port}?tls=starttls",
        true,
    )
    .await;
    let (editor, id) = invite(&app).await;
    let error = failed_delivery(&app, &editor, id).await;
    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert_eq!(
        app.smtp.mail_commands(),
        0,
        "the envelope went out in plain text"
    );
    assert!(app.smtp.received().is_empty());
}

async fn a_certificate_from_an_untrusted_ca_is_refused(backend: Backend) {
    let relay = relay(Options {
        starttls: true,
        ..Options::default()
    });
    // No CBH_SMTP_CA_FILE: the relay's CA is not among the built-in roots.
    let app = app_on(
        backend,
        &relay,
        "smtp://127.0.0.1:{port}?tls=starttls",
        false,
    )
    .await;
    let (editor, id) = invite(&app).await;
    let error = failed_delivery(&app, &editor, id).await;
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(app.smtp.mail_commands(), 0);
    assert!(app.smtp.received().is_empty());
}

async fn wrong_credentials_are_refused(backend: Backend) {
    let relay = relay(Options {
        implicit_tls: true,
        auth: Some((USER.into(), PASSWORD.into())),
        ..Options::default()
    });
    let app = app_on(
        backend,
        &relay,
        "smtps://mailer%40lab.example:wrong@127.0.0.1:{port}",
        true,
    )
    .await;
    let (editor, id) = invite(&app).await;
    let error = failed_delivery(&app, &editor, id).await;
    assert!(error.contains("535"), "{error}");
    assert!(
        !error.contains("wrong"),
        "the password is in the error: {error}"
    );
    // The failed invitation queues an `invitation_failed` notice to its creator, which goes
    // through the same relay and fails the same way. Once it has, the relay has seen one AUTH
    // per message: neither was retried with the wrong password.
    let notice = failed_notice(&app, id).await;
    assert_eq!(notice.kind, "invitation_failed");
    let notice_error = notice.last_error.unwrap_or_default();
    assert!(notice_error.contains("535"), "{notice_error}");
    assert!(!notice_error.contains("wrong"), "{notice_error}");
    assert_eq!(app.smtp.auth_failures(), 2);
    assert!(app.smtp.received().is_empty());
}

/// Waits until the invitation's one notice has failed for good; returns it.
async fn failed_notice(app: &TestApp, invitation: i64) -> NoticeRow {
    let notices = || async {
        app.store
            .list_notices(NS, Some(invitation))
            .await
            .expect("notices")
    };
    until("the failure notice to fail", WAIT, || async {
        notices().await.iter().any(|n| n.status == "failed")
    })
    .await;
    let mut all = notices().await;
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

backend_tests!(
    starttls_to_a_private_ca_with_auth_plain,
    implicit_tls_with_auth_login,
    a_relay_without_starttls_gets_nothing_in_plain_text,
    a_certificate_from_an_untrusted_ca_is_refused,
    wrong_credentials_are_refused,
);
