//! The emails in every shipped language: each renders from the catalogs alone (no key missing,
//! no argument missing), and the English ones are the original's, byte for byte.

use std::sync::Arc;

use super::bounce_notice::BounceNoticeContext;
use super::templates::{EmailContext, ProjectContext, Templates};
use crate::domain::InviteKind;
use crate::i18n::Catalogs;

fn templates() -> (Arc<Catalogs>, Templates) {
    let catalogs = Arc::new(Catalogs::load(None).expect("catalogs load"));
    let templates = Templates::load(None, catalogs.clone(), "en").expect("templates load");
    (catalogs, templates)
}

/// The sample with 0, 1 or 2 projects (the second one editor), with and without a link and a
/// first name: every branch of the templates.
fn variants(lang: &str) -> Vec<EmailContext> {
    let mut out = Vec::new();
    for projects in 0..3 {
        for link in [true, false] {
            for first_name in ["Bob", ""] {
                let mut context = EmailContext::sample();
                context.lang = lang.to_owned();
                context.projects = (0..projects)
                    .map(|i| ProjectContext {
                        id: i + 1,
                        name: format!("Project {i}"),
                        role: if i == 1 { "editor" } else { "viewer" },
                    })
                    .collect();
                if !link {
                    context.accept_url = None;
                    context.decline_url = None;
                    context.expires = None;
                }
                context.invitee.first_name = first_name.to_owned();
                out.push(context);
            }
        }
    }
    out
}

fn bounce_context(lang: &str) -> BounceNoticeContext {
    let sample = EmailContext::sample();
    BounceNoticeContext {
        lang: lang.to_owned(),
        platform: sample.platform,
        inviter: sample.inviter,
        invitee: sample.invitee,
        reason: "the mailbox is full".into(),
        status: "5.2.2".into(),
        diagnostic: "552 5.2.2 Mailbox full".into(),
        invite_url: "https://hub.example.org/chembiohub/invite/".into(),
        namespace: sample.namespace,
    }
}

#[test]
fn every_email_renders_in_every_language_from_its_own_catalog() {
    let (catalogs, templates) = templates();
    assert_eq!(catalogs.languages(), ["de", "en", "fr"]);
    for lang in catalogs.languages() {
        for kind in InviteKind::ALL {
            // Only these kinds go without a link.
            let linkless = matches!(
                kind,
                InviteKind::ProjectAccessChanged | InviteKind::ReminderActive
            );
            for context in variants(&lang) {
                if context.accept_url.is_none() && !linkless {
                    continue;
                }
                let email = templates.render(kind, &context).expect("renders");
                for part in [&email.subject, &email.text, &email.html] {
                    // Fluent writes a missing argument as `{$name}`.
                    assert!(!part.contains("{$"), "{lang} {kind:?}: {part}");
                    assert!(!part.contains("{ $"), "{lang} {kind:?}: {part}");
                }
                assert!(email.html.contains(&format!("<html lang=\"{lang}\">")));
            }
        }
        let email = templates
            .render_named("bounced", &bounce_context(&lang))
            .expect("renders");
        assert!(email.html.contains(&format!("<html lang=\"{lang}\">")));
    }
    assert_eq!(catalogs.fallbacks(), Vec::<(String, String)>::new());
}

#[test]
fn german_and_french_emails_are_written_in_their_language() {
    let (_, templates) = templates();
    let mut context = EmailContext::sample();
    context.expires = Some("2026-11-30T14:05:00.000Z".into());
    context.lang = "de".into();
    let email = templates
        .render(InviteKind::NewUser, &context)
        .expect("renders");
    assert_eq!(
        email.subject,
        "Ada Lovelace hat Sie zu ChemBio Hub Platform eingeladen"
    );
    assert!(
        email.text.starts_with("Guten Tag Bob,\n\n"),
        "{}",
        email.text
    );
    assert!(
        email.text.contains(
            "Ada Lovelace (ada@example.org) hat Sie zu ChemBio Hub Platform eingeladen, um folgendes Projekt einzusehen:"
        ),
        "{}",
        email.text
    );
    assert!(
        email
            .text
            .contains("gültig bis zum 30. November 2026 um 14:05 Uhr (UTC)."),
        "{}",
        email.text
    );
    assert!(email.html.contains(">Einladung annehmen</a>"));

    context.lang = "fr".into();
    let email = templates
        .render(InviteKind::NewUser, &context)
        .expect("renders");
    assert_eq!(
        email.subject,
        "Ada Lovelace vous invite à rejoindre ChemBio Hub Platform"
    );
    assert!(email.text.starts_with("Bonjour Bob,\n\n"), "{}", email.text);
    assert!(
        email
            .text
            .contains("expire le 30 novembre 2026 à 14\u{a0}h\u{a0}05 (UTC)."),
        "{}",
        email.text
    );
    assert!(email.html.contains(">Accepter l’invitation</a>"));
}

#[test]
fn html_values_in_messages_are_escaped_once() {
    let (_, templates) = templates();
    let mut context = EmailContext::sample();
    context.lang = "de".into();
    context.inviter.name = "<b>Ada</b> & Co".into();
    let email = templates
        .render(InviteKind::Reminder, &context)
        .expect("renders");
    assert!(
        email.html.contains("&lt;b&gt;Ada&lt;&#x2f;b&gt; &amp; Co (<a href=\"mailto:ada@example.org\">ada@example.org</a>)"),
        "{}",
        email.html
    );
    assert!(email.text.contains("<b>Ada</b> & Co (ada@example.org)"));
}

/// The English emails as the templates wrote them before the catalogs (the sample, one project
/// at a raised role): the catalogs must not change a byte.
#[test]
fn english_emails_are_the_originals() {
    let (_, templates) = templates();
    let mut context = EmailContext::sample();
    context.projects[0].role = "editor";
    let email = templates
        .render(InviteKind::NewUser, &context)
        .expect("renders");
    assert_eq!(
        email.text,
        "Hello Bob,\n\n\
         Ada Lovelace (ada@example.org) has invited you to ChemBio Hub Platform, to view:\n\n  \
         - Kinase screen (editor)\n\n\n\
         To accept, choose your password here:\n\n  \
         https://hub.example.org/chembiohub/accept/sample\n\n\
         This link works once and expires on 1 January 2030 at 00:00 (UTC).\n\
         If you were not expecting this invitation, you can ignore this email.\n\n\
         Not for you? Decline this invitation (you can also ask for no more):\n\n  \
         https://hub.example.org/chembiohub/decline/sample\n"
    );
    assert_eq!(
        email.html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n\
         <body style=\"font-family: sans-serif; line-height: 1.5; color: #1a1a1a;\">\n\
         <p>Hello Bob,</p>\n\
         <p>Ada Lovelace (<a href=\"mailto:ada@example.org\">ada@example.org</a>) has invited you to ChemBio Hub Platform, to view:</p>\n\
         <ul><li>Kinase screen (editor)</li></ul>\n\
         <p><a href=\"https:&#x2f;&#x2f;hub.example.org&#x2f;chembiohub&#x2f;accept&#x2f;sample\" style=\"display: inline-block; padding: 0.6em 1.2em; background: #0b5394; color: #ffffff; text-decoration: none; border-radius: 4px;\">Accept the invitation</a></p>\n\
         <p>Or open this address: https:&#x2f;&#x2f;hub.example.org&#x2f;chembiohub&#x2f;accept&#x2f;sample</p>\n\
         <p>This link works once and expires on 1 January 2030 at 00:00 (UTC). If you were not expecting this invitation, you can ignore this email.</p>\n\
         <p style=\"color: #555555;\">Not for you? <a href=\"https:&#x2f;&#x2f;hub.example.org&#x2f;chembiohub&#x2f;decline&#x2f;sample\">Decline this invitation</a> (you can also ask for no more).</p>\n\
         </body>\n</html>"
    );
}
