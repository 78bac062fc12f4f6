//! The notices to an invitation's creator (`invitation_accepted`, `invitation_declined`,
//! `invitation_failed`): queued by the store with what they announce, sent here by the outbox
//! worker with the outbox's retries.

use anyhow::Context;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use serde::Serialize;

use super::bounce_notice::{BounceNoticeContext, invitee_of, reason_words};
use super::outbox::{
    DeliveryReport, Outbox, PLATFORM_NAME, backoff, file_stem, person, random_unit,
};
use super::templates::{EmailContext, PersonContext, ProjectContext};
use super::{AutoSubmitted, ContentLanguage, SendError, Templates};
use crate::domain::bounce::{BounceReason, StatusCode};
use crate::domain::{NoticeKind, Timestamp};
use crate::store::NoticeMessage;

/// The variables of the `invitation_accepted.*` and `invitation_declined.*` templates.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeContext {
    /// The language the notice is written in: the creator's (`users.language`), else the
    /// default.
    pub lang: String,
    pub platform: String,
    /// The invitation's creator, who receives the notice.
    pub inviter: PersonContext,
    pub invitee: PersonContext,
    pub projects: Vec<ProjectContext>,
    /// When it was accepted or declined: `2026-01-31 09:05 UTC`.
    pub when: String,
    /// The same, ISO 8601 UTC.
    pub when_iso: String,
    /// The creator's invite page.
    pub invite_url: String,
    /// The welcome page, where the creator turns these notices off.
    pub settings_url: String,
    pub namespace: String,
}

impl OutcomeContext {
    /// Sample values in `lang` (`check`, and the tests).
    pub(super) fn sample(lang: &str) -> Self {
        let sample = EmailContext::sample();
        Self {
            lang: lang.to_owned(),
            platform: sample.platform,
            inviter: sample.inviter,
            invitee: sample.invitee,
            projects: sample.projects,
            when: "2030-01-01 09:05 UTC".into(),
            when_iso: "2030-01-01T09:05:00.000Z".into(),
            invite_url: "https://hub.example.org/chembiohub/invite/".into(),
            settings_url: "https://hub.example.org/chembiohub/welcome/".into(),
            namespace: sample.namespace,
        }
    }
}

/// Renders every notice once with sample values in `lang` (at load, so a broken override
/// stops start-up rather than a notice).
pub(super) fn check(templates: &Templates, lang: &str) -> anyhow::Result<()> {
    let outcome = OutcomeContext::sample(lang);
    for kind in [NoticeKind::Accepted, NoticeKind::Declined] {
        templates
            .render_named(kind.as_str(), &outcome)
            .with_context(|| format!("rendering the {} templates in {lang}", kind.as_str()))?;
    }
    let failed = failure_context(
        templates,
        lang,
        outcome.inviter,
        outcome.invitee,
        "permanent error (550): 5.1.1 <bob@example.org>: Recipient address rejected",
        outcome.invite_url,
        outcome.namespace,
    );
    templates
        .render_named(NoticeKind::Failed.as_str(), &failed)
        .with_context(|| format!("rendering the invitation_failed templates in {lang}"))?;
    Ok(())
}

/// The failure notice's variables: those of the bounce notice (`bounced.*`), its reason in
/// the same words (`domain::bounce`), read from the relay's error.
fn failure_context(
    templates: &Templates,
    lang: &str,
    inviter: PersonContext,
    invitee: PersonContext,
    error: &str,
    invite_url: String,
    namespace: String,
) -> BounceNoticeContext {
    let status = error
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ':' | ',' | ';'))
        .filter(|w| w.contains('.'))
        .find_map(StatusCode::parse)
        .map(|code| code.to_string())
        .unwrap_or_default();
    BounceNoticeContext {
        lang: lang.to_owned(),
        platform: PLATFORM_NAME.into(),
        inviter,
        invitee,
        reason: reason_words(templates, lang, BounceReason::of_relay_error(error)),
        status,
        diagnostic: error.to_owned(),
        invite_url,
        namespace,
    }
}

/// "2026-01-31T09:05:00.000Z" -> "2026-01-31 09:05 UTC"
fn minutes(iso: &str) -> String {
    iso.get(..16)
        .map(|m| format!("{} UTC", m.replacen('T', " ", 1)))
        .unwrap_or_else(|| iso.to_owned())
}

/// Claims and sends the due notices; their own counts (the worker reports how many were sent).
pub(super) async fn deliver_due(
    outbox: &Outbox,
    now: Timestamp,
    limit: i64,
) -> anyhow::Result<DeliveryReport> {
    let batch = outbox
        .store
        .claim_notices(now, outbox.settings.lease, limit)
        .await
        .context("claiming notices")?;
    let mut report = DeliveryReport {
        claimed: batch.len(),
        ..DeliveryReport::default()
    };
    let mut sent = Vec::new();
    // One at a time: notices come one per accept, decline or failure, never in thousands.
    for notice in batch {
        let result = if notice.recipient_deactivated {
            Err(SendError::Permanent(
                "not sent: the creator is deactivated".into(),
            ))
        } else {
            match compose(outbox, &notice) {
                Ok(email) => {
                    outbox
                        .transport
                        .send(&email, &file_stem(&notice.message_id))
                        .await
                }
                Err(error) => Err(SendError::Permanent(format!("{error:#}"))),
            }
        };
        let key = &notice.message_id;
        match result {
            Ok(()) => sent.push(key.clone()),
            Err(SendError::Temporary(error))
                if u32::try_from(notice.attempts).unwrap_or(u32::MAX)
                    < outbox.settings.max_attempts =>
            {
                let attempts = u32::try_from(notice.attempts).unwrap_or(u32::MAX);
                let delay = backoff(&outbox.settings, attempts, random_unit());
                tracing::info!(notice_id = notice.id, %error, "notice will be retried");
                report.retried += 1;
                outbox
                    .store
                    .mark_notice_retry(key, Timestamp::now().plus(delay), &error)
                    .await?;
            }
            Err(SendError::Temporary(error) | SendError::Permanent(error)) => {
                tracing::warn!(notice_id = notice.id, %error, "notice not sent");
                report.failed += 1;
                outbox.store.mark_notice_failed(key, &error).await?;
            }
        }
    }
    report.sent = sent.len();
    outbox
        .store
        .mark_notices_sent(&sent, Timestamp::now())
        .await?;
    Ok(report)
}

fn compose(outbox: &Outbox, notice: &NoticeMessage) -> anyhow::Result<Message> {
    let invitation = &notice.invitation;
    let ns = &notice.namespace;
    let inviter = person(&invitation.created_by);
    let invitee = invitee_of(invitation);
    let invite_url = format!("{}/{ns}/invite/", outbox.public_url);
    // The creator's language (from their last page visit), else the default.
    let lang = outbox
        .templates
        .language_for(invitation.creator_language.as_deref());
    let rendered = match notice.kind {
        NoticeKind::Accepted | NoticeKind::Declined => {
            let when_iso = notice.event_at.to_iso8601();
            let context = OutcomeContext {
                lang: lang.clone(),
                platform: PLATFORM_NAME.into(),
                inviter,
                invitee,
                projects: invitation
                    .projects
                    .iter()
                    .map(|p| ProjectContext {
                        id: p.id.0,
                        name: p.name.clone(),
                        role: invitation.roles.role(p.id).as_str(),
                    })
                    .collect(),
                when: minutes(&when_iso),
                when_iso,
                invite_url,
                settings_url: format!("{}/{ns}/welcome/", outbox.public_url),
                namespace: ns.clone(),
            };
            outbox
                .templates
                .render_named(notice.kind.as_str(), &context)?
        }
        NoticeKind::Failed => {
            let error = notice.detail.as_deref().unwrap_or_default();
            let context = failure_context(
                &outbox.templates,
                &lang,
                inviter,
                invitee,
                error,
                invite_url,
                ns.clone(),
            );
            outbox
                .templates
                .render_named(notice.kind.as_str(), &context)?
        }
    };
    let creator = &invitation.created_by;
    let to = Mailbox::new(
        Some(creator.display_name()),
        notice.recipient.parse().context("the creator's address")?,
    );
    let mut email = Message::builder()
        .from(outbox.from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!(
            "<{}@{}>",
            notice.message_id,
            outbox.from.email.domain()
        )))
        .date_now()
        .header(AutoSubmitted)
        .header(ContentLanguage(lang))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .context("building the notice")?;
    if let Some(signer) = &outbox.signer {
        signer.sign(&mut email);
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_render_with_the_invitee_and_the_reason_in_words() {
        let templates = Templates::sample();
        let sample = EmailContext::sample();
        let failed = failure_context(
            &templates,
            "en",
            sample.inviter.clone(),
            sample.invitee.clone(),
            "permanent error (550): 5.1.1 <bob@example.org>: no such user",
            "https://hub.example.org/chembiohub/invite/".into(),
            "chembiohub".into(),
        );
        assert_eq!(failed.status, "5.1.1");
        let email = templates
            .render_named("invitation_failed", &failed)
            .expect("renders");
        assert!(
            email.text.contains("the address does not exist"),
            "{}",
            email.text
        );
        assert!(email.text.contains("no such user"));
        assert_eq!(
            email.subject,
            "Your invitation to bob@example.org could not be delivered"
        );
        assert_eq!(minutes("2026-01-31T09:05:00.000Z"), "2026-01-31 09:05 UTC");
    }

    #[test]
    fn outcome_notices_name_the_invitee_and_the_projects() {
        let templates = Templates::sample();
        let mut context = OutcomeContext::sample("en");
        for (kind, subject) in [
            (
                NoticeKind::Accepted,
                "Bob Smith accepted your invitation to ChemBio Hub Platform",
            ),
            (
                NoticeKind::Declined,
                "Bob Smith declined your invitation to ChemBio Hub Platform",
            ),
        ] {
            let email = templates
                .render_named(kind.as_str(), &context)
                .expect("renders");
            assert_eq!(email.subject, subject);
            assert!(
                email.text.contains("Bob Smith (bob@example.org)"),
                "{}",
                email.text
            );
            assert!(email.text.contains("Kinase screen"));
            assert!(
                email.text.contains("1 January 2030 at 09:05"),
                "{}",
                email.text
            );
            assert!(email.html.contains("Kinase screen"));
        }
        context.invitee.name = "<b>Bob</b>".into();
        let email = templates
            .render_named("invitation_accepted", &context)
            .expect("renders");
        assert!(email.html.contains("&lt;b&gt;Bob"));
        assert!(!email.html.contains("<b>Bob"));
    }

    #[test]
    fn notices_speak_the_creators_language() {
        let templates = Templates::sample();
        let sample = EmailContext::sample();
        let context = OutcomeContext::sample;
        let german = templates
            .render_named("invitation_accepted", &context("de"))
            .expect("renders");
        assert_eq!(
            german.subject,
            "Bob Smith hat Ihre Einladung zu ChemBio Hub Platform angenommen"
        );
        assert!(german.text.contains("1. Januar 2030"), "{}", german.text);
        assert!(german.html.contains(r#"<html lang="de">"#));
        let french = templates
            .render_named("invitation_declined", &context("fr"))
            .expect("renders");
        assert_eq!(
            french.subject,
            "Bob Smith a décliné votre invitation à ChemBio Hub Platform"
        );
        assert!(french.text.contains("janvier 2030"), "{}", french.text);
        let failed = failure_context(
            &templates,
            "de",
            sample.inviter.clone(),
            sample.invitee.clone(),
            "permanent error (550): 5.1.1 <bob@example.org>: no such user",
            "https://hub.example.org/chembiohub/invite/".into(),
            "chembiohub".into(),
        );
        let email = templates
            .render_named("invitation_failed", &failed)
            .expect("renders");
        assert!(
            email.text.contains("Die Adresse existiert nicht"),
            "{}",
            email.text
        );
    }
}
