use std::time::Duration;

use cbh_invite::domain::Role;
use serde_json::json;
use smtp_sink::mail_parser::MimeHeaders;

use crate::support::{Backend, NS, json_with_status, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

async fn the_new_user_email_is_multipart_with_the_accept_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    json_with_status(
        editor
            .invite(json!({
                "email": "bob@example.org",
                "first_name": "Bob",
                "last_name": "Smith",
                "projects_selected": [{"id": project.0}],
            }))
            .await,
        201,
    )
    .await;

    let mails = app.smtp.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(mail.rcpt_to, vec!["bob@example.org".to_owned()]);
    assert!(
        mail.mail_from.contains('@'),
        "envelope sender: {}",
        mail.mail_from
    );
    let parsed = mail.parsed();
    assert_eq!(
        parsed.subject(),
        Some("You have been invited to view ChemBio Hub Platform by Ada Lovelace")
    );
    let to = parsed.to().and_then(|a| a.first()).expect("To");
    assert_eq!(to.address(), Some("bob@example.org"));
    assert_eq!(to.name(), Some("Bob Smith"));
    let reply_to = parsed.reply_to().and_then(|a| a.first()).expect("Reply-To");
    assert_eq!(reply_to.address(), Some("ada@lab.example"));
    assert!(
        parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .is_some()
    );
    assert!(parsed.date().is_some());
    let message_id = parsed.message_id().expect("Message-ID");
    assert!(message_id.contains('@'));
    let content_type = parsed.content_type().expect("Content-Type");
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("alternative"));

    let text = mail.text();
    let html = mail.html();
    assert!(text.contains("Kinase screen"));
    assert!(html.contains("Kinase screen"));
    let link = mail.accept_link().expect("accept link in the text part");
    assert!(
        link.starts_with(&format!("http://invite.test.example/{NS}/accept/")),
        "{link}"
    );
    let token = mail.accept_token().expect("token");
    assert!(token.len() >= 22, "at least 128 bits");
    assert!(
        html.replace("&#x2f;", "/").contains(&link),
        "the HTML part carries the same link (slashes may be escaped as entities)"
    );
}

async fn the_link_host_never_comes_from_request_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let response = editor
        .request(reqwest::Method::POST, &format!("/{NS}/api/invitations/"))
        .header("host", "evil.example")
        .header("origin", "https://evil.example")
        .header("x-forwarded-host", "evil.example")
        .json(&json!({"email": "bob@example.org"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(location.starts_with("http://invite.test.example/"));

    let mails = app.smtp.wait_for(1, WAIT).await;
    assert!(!mails[0].data.contains("evil.example"));
    assert!(
        mails[0]
            .accept_link()
            .is_some_and(|l| l.starts_with("http://invite.test.example/"))
    );
}

async fn names_are_escaped_in_html_and_cannot_add_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor
            .invite(json!({
                "email": "bob@example.org",
                "first_name": "<b>Bob</b>",
                "last_name": "Bcc: victim@example.org",
            }))
            .await,
        201,
    )
    .await;

    let mails = app.smtp.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert!(mail.html().contains("&lt;b&gt;Bob&lt;"), "{}", mail.html());
    assert!(!mail.html().contains("<b>Bob</b>"));
    assert_eq!(mail.rcpt_to, vec!["bob@example.org".to_owned()]);
    assert!(mail.parsed().bcc().is_none());
    let headers_end = mail.data.find("\r\n\r\n").expect("header block");
    assert!(
        !mail.data[..headers_end]
            .lines()
            .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
        "no header line was injected"
    );
}

/// Names that pass validation but look like header syntax (a second address, quotes, an
/// RFC 2047 encoded word hiding CRLF) stay one display name: each message still goes to the one
/// invitee alone, in the envelope and in the headers, with no Cc or Bcc.
async fn a_crafted_name_cannot_add_a_header_or_a_recipient(backend: Backend) {
    let app = spawn_app(backend).await;
    let inviter = app
        .add_user(
            "ada@lab.example",
            "Ada\" <evil@evil.example>, \"Eve",
            "Bcc: victim@evil.example",
            false,
        )
        .await;
    let project = app.add_project("Kinase screen").await;
    app.grant(&inviter, project, Role::Editor).await;
    let editor = app.api_key_agent(&inviter).await;
    let crafted = [
        ("Eve\" <evil@evil.example>, \"Mallory", "Smith"),
        (
            "=?utf-8?q?Eve=0D=0ABcc:_victim@evil.example?=",
            "Cc: victim@evil.example",
        ),
        ("Bob, victim@evil.example;", "<victim@evil.example>"),
        ("Zoë Ω", "Bcc:\u{a0}victim@evil.example"),
    ];
    for (i, (first, last)) in crafted.iter().enumerate() {
        json_with_status(
            editor
                .invite(json!({
                    "email": format!("bob{i}@example.org"),
                    "first_name": first,
                    "last_name": last,
                }))
                .await,
            201,
        )
        .await;
    }

    let mails = app.smtp.wait_for(crafted.len(), WAIT).await;
    assert_eq!(mails.len(), crafted.len());
    for mail in &mails {
        assert_eq!(mail.rcpt_to.len(), 1, "one envelope recipient");
        let invitee = mail.rcpt_to[0].clone();
        assert!(invitee.ends_with("@example.org"), "{invitee}");
        let (first, last) = crafted[invitee[3..4].parse::<usize>().expect("index")];
        let parsed = mail.parsed();
        let to: Vec<_> = parsed.to().expect("To").iter().collect();
        assert_eq!(to.len(), 1, "one To address: {to:?}");
        assert_eq!(to[0].address(), Some(invitee.as_str()));
        assert_eq!(
            to[0].name(),
            Some(format!("{first} {last}").as_str()),
            "the name is kept whole as the display name"
        );
        let reply_to: Vec<_> = parsed.reply_to().expect("Reply-To").iter().collect();
        assert_eq!(reply_to.len(), 1, "one Reply-To address: {reply_to:?}");
        assert_eq!(reply_to[0].address(), Some("ada@lab.example"));
        assert!(parsed.cc().is_none() && parsed.bcc().is_none());
        let headers_end = mail.data.find("\r\n\r\n").expect("header block");
        let injected = mail.data[..headers_end].lines().any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("bcc:") || line.starts_with("cc:")
        });
        assert!(!injected, "no header line was injected:\n{}", mail.data);
        assert!(!mail.data.contains("\r\nBcc:") && !mail.data.contains("\nCc:"));
    }
}

async fn operator_templates_override_the_built_in_ones(backend: Backend) {
    let templates = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        templates.path().join("new_user.subject.txt"),
        "Welcome aboard, {{ invitee.first_name }}!",
    )
    .expect("write");
    std::fs::write(
        templates.path().join("new_user.txt"),
        "Join via {{ accept_url }} ({{ inviter.name }} sent this)",
    )
    .expect("write");
    let dir = templates.path().to_owned();
    let app = crate::support::spawn_app_with(backend, |s| s.template_dir = Some(dir)).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "first_name": "Bob"}))
            .await,
        201,
    )
    .await;

    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].subject(), "Welcome aboard, Bob!");
    assert!(mails[0].text().contains("(Ada Lovelace sent this)"));
    assert!(mails[0].accept_link().is_some());
    // The HTML part was not overridden and still comes from the built-in template.
    assert!(mails[0].html().contains("has invited you"));
}

backend_tests!(
    the_new_user_email_is_multipart_with_the_accept_link,
    the_link_host_never_comes_from_request_headers,
    names_are_escaped_in_html_and_cannot_add_headers,
    a_crafted_name_cannot_add_a_header_or_a_recipient,
    operator_templates_override_the_built_in_ones,
);
