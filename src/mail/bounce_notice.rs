//! The notice that tells an invitation's creator, once, that its email bounced: in words (the
//! address does not exist, the mailbox is full, the server refused), with the server's own.

use anyhow::Context;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use serde::Serialize;

use super::outbox::PLATFORM_NAME;
use super::templates::{EmailContext, PersonContext};
use super::{AutoSubmitted, ContentLanguage, Signer, Templates};
use crate::domain::bounce::{BounceReason, StatusCode};
use crate::domain::token::random_hex;
use crate::store::{BouncedMessage, InvitationRecord};

/// The variables of the `bounced.*` templates.
#[derive(Debug, Clone, Serialize)]
pub struct BounceNoticeContext {
    /// The creator's language (`users.language`, else `CBH_DEFAULT_LANGUAGE`).
    pub lang: String,
    pub platform: String,
    /// The invitation's creator, who receives the notice.
    pub inviter: PersonContext,
    pub invitee: PersonContext,
    /// In words: "the address does not exist", …
    pub reason: String,
    /// The status code (`5.1.1`).
    pub status: String,
    /// The receiving server's words.
    pub diagnostic: String,
    /// The creator's invite page, where the invitation shows "bounced".
    pub invite_url: String,
    pub namespace: String,
}

/// Renders the templates once with sample values (at load, so a broken override stops
/// start-up rather than a notice).
pub(super) fn check(templates: &Templates, lang: &str) -> anyhow::Result<()> {
    let sample = EmailContext::sample();
    let context = BounceNoticeContext {
        lang: lang.to_owned(),
        platform: sample.platform,
        inviter: sample.inviter,
        invitee: sample.invitee,
        reason: reason_words(templates, lang, BounceReason::NoSuchAddress),
        status: "5.1.1".into(),
        diagnostic: "550 5.1.1 <bob@example.org>: Recipient address rejected".into(),
        invite_url: "https://hub.example.org/chembiohub/invite/".into(),
        namespace: sample.namespace,
    };
    templates
        .render_named("bounced", &context)
        .with_context(|| format!("rendering the bounced templates in {lang}"))?;
    Ok(())
}

/// The invitee, as the creator's notices name them: by name, else by address.
pub(super) fn invitee_of(invitation: &InvitationRecord) -> PersonContext {
    let name = format!("{} {}", invitation.first_name, invitation.last_name)
        .trim()
        .to_owned();
    PersonContext {
        email: invitation.email.clone(),
        first_name: invitation.first_name.clone(),
        last_name: invitation.last_name.clone(),
        name: if name.is_empty() {
            invitation.email.clone()
        } else {
            name
        },
    }
}

/// Why the message bounced, in words of the reader's language.
pub(super) fn reason_words(templates: &Templates, lang: &str, reason: BounceReason) -> String {
    let key = match reason {
        BounceReason::NoSuchAddress => "bounce-reason-no-such-address",
        BounceReason::MailboxFull => "bounce-reason-mailbox-full",
        BounceReason::Refused => "bounce-reason-refused",
        BounceReason::GaveUp => "bounce-reason-gave-up",
    };
    templates.catalogs().text(lang, key, &[])
}

/// The notice for a bounced message, to its invitation's creator.
pub fn compose(
    templates: &Templates,
    from: &Mailbox,
    public_url: &str,
    signer: Option<&Signer>,
    bounced: &BouncedMessage,
) -> anyhow::Result<Message> {
    let invitation = &bounced.invitation;
    let creator = &invitation.created_by;
    let lang = templates.language_for(invitation.creator_language.as_deref());
    let reason =
        StatusCode::parse(&bounced.status).map_or(BounceReason::Refused, StatusCode::reason);
    let context = BounceNoticeContext {
        reason: reason_words(templates, &lang, reason),
        lang,
        platform: PLATFORM_NAME.into(),
        inviter: PersonContext {
            email: creator.email.to_string(),
            first_name: creator.first_name.to_string(),
            last_name: creator.last_name.to_string(),
            name: creator.display_name(),
        },
        invitee: invitee_of(invitation),
        status: bounced.status.clone(),
        diagnostic: invitation
            .delivery
            .as_ref()
            .and_then(|d| d.last_error.clone())
            .unwrap_or_default(),
        invite_url: format!("{public_url}/{}/invite/", bounced.namespace),
        namespace: bounced.namespace.clone(),
    };
    let rendered = templates.render_named("bounced", &context)?;
    let to = Mailbox::new(
        Some(creator.display_name()),
        creator
            .email
            .as_str()
            .parse()
            .context("the creator's address")?,
    );
    let mut email = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!(
            "<bounce-{}@{}>",
            random_hex(16),
            from.email.domain()
        )))
        .date_now()
        .header(AutoSubmitted)
        .header(ContentLanguage(context.lang))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .context("building the bounce notice")?;
    if let Some(signer) = signer {
        signer.sign(&mut email);
    }
    Ok(email)
}
