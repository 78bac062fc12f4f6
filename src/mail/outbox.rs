//! The outbox worker: claims due messages, renders and sends them, and records the result.
//!
//! A message is marked sent only after the transport accepted it. Temporary failures are
//! retried with exponential backoff and jitter; permanent ones fail at once. A claim is a lease:
//! if this process dies mid-send, another worker (or this one after a restart) retries the
//! message when the lease ends. The stable Message-ID lets a receiver drop the rare duplicate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use tokio::sync::Notify;

use super::templates::{EmailContext, PersonContext, ProjectContext};
use super::{
    AutoSubmitted, ContentLanguage, SendError, Signer, Templates, Transport, accept_url,
    unsubscribe,
};
use crate::config::DeliverySettings;
use crate::domain::{InvitationId, Timestamp, User};
use crate::store::{InvitationRecord, OutboxMessage, Store};

pub const PLATFORM_NAME: &str = "ChemBio Hub Platform";
/// Messages `deliver_due` claims at once (the running worker claims as connections free up).
const BATCH_SIZE: i64 = 32;
/// Checkpointing the SQLite WAL after scrubbing is not cheap: it copies the WAL into the
/// database, syncs it to disk and blocks the writer meanwhile. After a send it runs at most this
/// often, busy or not; a worker that keeps up with the requests empties the outbox after every
/// few messages, and a checkpoint each time held up the requests behind it (BENCHMARKS.md).
const PURGE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// The creators' notices sent in the same round (`mail::notices`): counted apart, so that
    /// the counts above and /metrics' email counters stay those of the invitations' emails.
    pub notices_sent: usize,
}

/// A batch's invitations by id, or why they could not be read.
pub(super) type Invitations = Result<HashMap<InvitationId, InvitationRecord>, String>;

/// The result of one send, keyed by the Message-ID that was sent.
pub(super) enum Outcome {
    Sent(String),
    Retry(String, Timestamp, String),
    Failed(String, String),
}

/// What this node's worker did, for `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

/// The outbox worker; its loop (`run`) is in `mail::worker`.
pub struct Outbox {
    pub(super) store: Arc<dyn Store>,
    pub(super) transport: Transport,
    pub(super) templates: Templates,
    pub(super) settings: DeliverySettings,
    pub(super) public_url: String,
    pub(super) from: Mailbox,
    /// `CBH_DKIM_*`: signs every message.
    pub(super) signer: Option<Signer>,
    pub(super) wakeup: Arc<Notify>,
    counters: Arc<DeliveryCounters>,
    purge: std::sync::Mutex<PurgeState>,
}

/// Scrubbed tokens wait for a purge (at most `PURGE_EVERY` after the send, as the idle worker
/// wakes at least once per poll interval).
struct PurgeState {
    last: Instant,
    owed: bool,
}

impl Outbox {
    pub fn new(
        store: Arc<dyn Store>,
        transport: Transport,
        templates: Templates,
        settings: DeliverySettings,
        public_url: String,
        from: Mailbox,
        wakeup: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            transport,
            templates,
            settings,
            public_url,
            from,
            signer: None,
            wakeup,
            counters: Arc::default(),
            purge: std::sync::Mutex::new(PurgeState {
                // The first scrub is purged at once.
                last: Instant::now()
                    .checked_sub(PURGE_EVERY)
                    .unwrap_or_else(Instant::now),
                owed: false,
            }),
        }
    }

    /// `CBH_DKIM_*`: every message is signed with this key.
    pub fn with_signer(mut self, signer: Option<Signer>) -> Self {
        self.signer = signer;
        self
    }

    pub fn counters(&self) -> Arc<DeliveryCounters> {
        self.counters.clone()
    }

    /// Delivers one batch of due messages. Tests call this to drive delivery without waiting.
    pub async fn deliver_due(&self) -> anyhow::Result<DeliveryReport> {
        // The creators' notices first: few, and each is news about an outcome.
        let notices = self.deliver_notices().await?;
        let (batch, invitations) = self.claim(BATCH_SIZE as usize).await?;
        let claimed = batch.len();
        if batch.is_empty() {
            self.purge_if_owed().await?;
            return Ok(DeliveryReport {
                notices_sent: notices.sent,
                ..DeliveryReport::default()
            });
        }
        let outcomes: Vec<Outcome> = futures_util::stream::iter(batch)
            .map(|message| self.deliver_one(message, &invitations))
            .buffer_unordered(self.settings.smtp_connections)
            .collect()
            .await;
        Ok(DeliveryReport {
            claimed,
            notices_sent: notices.sent,
            ..self.record(outcomes).await?
        })
    }

    /// Sends the creators' due notices (`mail::notices`); their own counts.
    pub(super) async fn deliver_notices(&self) -> anyhow::Result<DeliveryReport> {
        super::notices::deliver_due(self, Timestamp::now(), BATCH_SIZE).await
    }

    /// Claims up to `limit` due messages, with their invitations as they are now.
    pub(super) async fn claim(
        &self,
        limit: usize,
    ) -> anyhow::Result<(Vec<OutboxMessage>, Arc<Invitations>)> {
        let batch = self
            .store
            .claim_outbox(
                Timestamp::now(),
                self.settings.lease,
                i64::try_from(limit).unwrap_or(i64::MAX),
            )
            .await
            .context("claiming outbox messages")?;
        let invitations = if batch.is_empty() {
            Ok(HashMap::new())
        } else {
            self.invitations_of(&batch).await
        };
        Ok((batch, Arc::new(invitations)))
    }

    /// Records what the sends did: the sent first (in one statement), then the retries and
    /// failures. Counted once recorded, so /metrics never shows a send the outbox does not.
    pub(super) async fn record(&self, outcomes: Vec<Outcome>) -> anyhow::Result<DeliveryReport> {
        let mut report = DeliveryReport::default();
        let mut sent = Vec::new();
        let mut others = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Sent(message_id) => sent.push(message_id),
                other => others.push(other),
            }
        }
        self.store.mark_sent(&sent, Timestamp::now()).await?;
        report.sent = sent.len();
        let count = |counter: &AtomicU64, n: usize| counter.fetch_add(n as u64, Ordering::Relaxed);
        count(&self.counters.sent, report.sent);
        for outcome in others {
            match outcome {
                Outcome::Sent(_) => {}
                Outcome::Retry(message_id, at, error) => {
                    self.store.mark_retry(&message_id, at, &error).await?;
                    report.retried += 1;
                    count(&self.counters.retried, 1);
                }
                Outcome::Failed(message_id, error) => {
                    self.store.mark_failed(&message_id, &error).await?;
                    report.failed += 1;
                    count(&self.counters.failed, 1);
                }
            }
        }
        if self.purge_due(report.sent + report.failed > 0) {
            self.store.purge_scrubbed().await?;
        }
        Ok(report)
    }

    /// After an empty claim: the purge owed by earlier sends, if its time has come.
    pub(super) async fn purge_if_owed(&self) -> anyhow::Result<()> {
        if self.purge_due(false) {
            self.store.purge_scrubbed().await?;
        }
        Ok(())
    }

    /// Whether to purge now; `scrubbed` says tokens were just scrubbed.
    fn purge_due(&self, scrubbed: bool) -> bool {
        let Ok(mut purge) = self.purge.lock() else {
            return true;
        };
        purge.owed |= scrubbed;
        if purge.owed && purge.last.elapsed() >= PURGE_EVERY {
            purge.last = Instant::now();
            purge.owed = false;
            true
        } else {
            false
        }
    }

    /// The invitations of a batch, as they are now, read together (not one query per message).
    /// A database that cannot be read is a temporary failure of every message.
    async fn invitations_of(&self, batch: &[OutboxMessage]) -> Invitations {
        let mut by_namespace: BTreeMap<&str, Vec<InvitationId>> = BTreeMap::new();
        for message in batch {
            by_namespace
                .entry(message.namespace.as_str())
                .or_default()
                .push(message.invitation_id);
        }
        let mut found = HashMap::new();
        for (namespace, ids) in by_namespace {
            let records = self
                .store
                .invitations_by_ids(namespace, &ids)
                .await
                .map_err(|e| format!("reading the invitation: {e}"))?;
            found.extend(records.into_iter().map(|record| (record.id, record)));
        }
        Ok(found)
    }

    pub(super) async fn deliver_one(
        &self,
        message: OutboxMessage,
        invitations: &Invitations,
    ) -> Outcome {
        let id = message.id;
        let sent = match self.compose(&message, invitations) {
            Ok(email) => {
                self.transport
                    .send(&email, &file_stem(&message.message_id))
                    .await
            }
            Err(error) => Err(error),
        };
        match sent {
            Ok(()) => {
                // Debug: a line per email costs more than the rest of the delivery at a few
                // thousand a second; the invitation shows its delivery, and failures are warned.
                tracing::debug!(outbox_id = id, kind = message.kind.as_str(), "email sent");
                Outcome::Sent(message.message_id)
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(outbox_id = id, %error, "email refused permanently");
                Outcome::Failed(message.message_id, error)
            }
            Err(SendError::Temporary(error)) => {
                let attempts = u32::try_from(message.attempts).unwrap_or(u32::MAX);
                if attempts >= self.settings.max_attempts {
                    tracing::warn!(outbox_id = id, %error, attempts, "email failed, no attempts left");
                    Outcome::Failed(message.message_id, error)
                } else {
                    let delay = backoff(&self.settings, attempts, random_unit());
                    tracing::info!(outbox_id = id, %error, attempts, retry_in = ?delay, "email will be retried");
                    Outcome::Retry(message.message_id, Timestamp::now().plus(delay), error)
                }
            }
        }
    }

    /// Renders the message from the invitation as it is now. A database that cannot be read
    /// is a temporary failure; a message that cannot be built never will be.
    fn compose(
        &self,
        message: &OutboxMessage,
        invitations: &Invitations,
    ) -> Result<Message, SendError> {
        let invitation = invitations
            .as_ref()
            .map_err(|e| SendError::Temporary(e.clone()))?
            .get(&message.invitation_id)
            .ok_or_else(|| {
                SendError::Permanent(format!(
                    "invitation {} no longer exists",
                    message.invitation_id
                ))
            })?;
        self.build_message(message, invitation).map_err(|error| {
            tracing::error!(
                outbox_id = message.id,
                error = format!("{error:#}"),
                "cannot compose email"
            );
            SendError::Permanent(format!("{error:#}"))
        })
    }

    fn build_message(
        &self,
        message: &OutboxMessage,
        invitation: &InvitationRecord,
    ) -> anyhow::Result<Message> {
        let ns = &message.namespace;
        let context = EmailContext {
            // The invitation's language, or the closest we have (`de-AT` is written in German).
            lang: self.templates.language_for(invitation.language.as_deref()),
            platform: PLATFORM_NAME.into(),
            inviter: person(&invitation.created_by),
            invitee: PersonContext {
                email: invitation.email.clone(),
                first_name: invitation.first_name.clone(),
                last_name: invitation.last_name.clone(),
                name: format!("{} {}", invitation.first_name, invitation.last_name)
                    .trim()
                    .to_owned(),
            },
            projects: invitation
                .projects
                .iter()
                .map(|p| ProjectContext {
                    id: p.id.0,
                    name: p.name.clone(),
                    role: invitation.roles.role(p.id).as_str(),
                })
                .collect(),
            accept_url: message
                .accept_token
                .as_ref()
                .map(|token| accept_url(&self.public_url, ns, token)),
            decline_url: message
                .accept_token
                .as_ref()
                .map(|token| unsubscribe::decline_url(&self.public_url, ns, token)),
            expires: invitation.expires.map(Timestamp::to_iso8601),
            login_url: format!("{}/{ns}/login/", self.public_url),
            namespace: ns.clone(),
        };
        let rendered = self.templates.render(message.kind, &context)?;
        let to_name = Some(context.invitee.name).filter(|n| !n.is_empty());
        let to_address: lettre::Address = message
            .recipient
            .parse()
            .with_context(|| format!("recipient {} is not an address", message.recipient))?;
        let to = Mailbox::new(to_name, to_address.clone());
        let inviter = &invitation.created_by;
        let reply_to = Mailbox::new(
            Some(inviter.display_name()),
            inviter
                .email
                .as_str()
                .parse()
                .context("inviter's address")?,
        );
        let mut builder = Message::builder();
        // `CBH_BOUNCE_ADDRESS`: the envelope sender names the message, so that a bounce finds
        // it (`mail::bounce`); without it the envelope is taken from From and To.
        if let Some(bounce) = &self.settings.bounce_address
            && let Some(sender) = super::bounce::verp_address(bounce, &message.message_id)
        {
            builder = builder.envelope(
                lettre::address::Envelope::new(Some(sender), vec![to_address])
                    .context("the envelope")?,
            );
        }
        let mut builder = builder
            .from(self.from.clone())
            .reply_to(reply_to)
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(message.message_id.clone()))
            .date_now()
            .header(AutoSubmitted)
            .header(ContentLanguage(context.lang));
        // RFC 8058 one-click unsubscribe, on every message with an accept link.
        if let Some(url) = message
            .accept_token
            .as_deref()
            .and_then(|token| unsubscribe::unsubscribe_url(&self.public_url, ns, token))
        {
            builder = builder
                .header(unsubscribe::ListUnsubscribe(url))
                .header(unsubscribe::ListUnsubscribePost);
        }
        let mut email = builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .context("building the message")?;
        if let Some(signer) = &self.signer {
            signer.sign(&mut email);
        }
        Ok(email)
    }
}

pub(super) fn person(user: &User) -> PersonContext {
    PersonContext {
        email: user.email.to_string(),
        first_name: user.first_name.to_string(),
        last_name: user.last_name.to_string(),
        name: user.display_name(),
    }
}

/// The file name for a Message-ID such as `<abc@host>`.
pub(super) fn file_stem(message_id: &str) -> String {
    message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
        .collect()
}

/// The delay before the retry that follows `attempts` failed attempts: the base doubled per
/// attempt, capped, then "equal jitter" (half fixed, half random) so that many messages that
/// failed together do not retry together.
pub fn backoff(settings: &DeliverySettings, attempts: u32, unit_random: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let raw = settings.retry_base.saturating_mul(1u32 << exponent);
    let capped = raw.min(settings.retry_max);
    capped / 2 + capped.mul_f64(unit_random.clamp(0.0, 1.0) / 2.0)
}

pub(crate) fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let settings = DeliverySettings {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            ..DeliverySettings::default()
        };
        assert_eq!(backoff(&settings, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&settings, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&settings, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&settings, 4, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(&settings, 20, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(&settings, u32::MAX, 1.0), Duration::from_secs(300));
    }

    #[test]
    fn message_ids_make_safe_file_names() {
        assert_eq!(file_stem("<ab12@hub.example.org>"), "ab12@hub.example.org");
        assert_eq!(file_stem("<../../etc/passwd>"), "....etcpasswd");
    }
}
