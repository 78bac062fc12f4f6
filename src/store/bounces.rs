//! Bounces: a report that a message the relay accepted was refused later (`cbh-invite bounce`).

use async_trait::async_trait;

use super::{InvitationRecord, StoreResult};
use crate::domain::Timestamp;

/// A report, as `mail::bounce` read it.
#[derive(Debug, Clone)]
pub struct NewBounce {
    /// The VERP id: the random part of the message's Message-ID. Tried first.
    pub verp_id: Option<String>,
    /// The Message-ID the report quotes (with or without its angle brackets).
    pub message_id: Option<String>,
    /// `5.1.1`.
    pub status: String,
    /// `5.x.x`: marks the delivery bounced. Otherwise only noted in the audit log.
    pub permanent: bool,
    /// The remote server's words: the delivery's `last_error`.
    pub diagnostic: String,
    pub now: Timestamp,
}

/// A message that bounced, and its invitation as it is now.
#[derive(Debug, Clone)]
pub struct BouncedMessage {
    pub namespace: String,
    pub message_id: String,
    /// The status code of the bounce that marked it (`5.1.1`).
    pub status: String,
    pub invitation: InvitationRecord,
    /// The creator has not been told yet, and this caller now holds the notice: it sends it,
    /// or gives it back with `release_bounce_notice`.
    pub notice_due: bool,
}

#[derive(Debug, Clone)]
pub enum BounceOutcome {
    /// Marked bounced now: its audit record and `email.bounced` event were written with it.
    Bounced(Box<BouncedMessage>),
    /// It had bounced before; nothing changed (the notice is due again when sending it failed
    /// the first time).
    AlreadyBounced(Box<BouncedMessage>),
    /// A temporary failure (`4.x.x`), recorded in the audit log; the delivery is unchanged.
    Delayed {
        namespace: String,
        invitation_id: i64,
    },
    /// No message of ours has that id (never ours, or resent since: a resend gives the message a
    /// new id, so the old one's bounce does not mark the new one).
    Unknown,
}

#[async_trait]
pub trait BounceStore: Send + Sync {
    /// Applies a report to the message it names, in one transaction.
    async fn record_bounce(&self, bounce: NewBounce) -> StoreResult<BounceOutcome>;
    /// The notice of the bounce of `message_id` could not be sent yet: the next copy of the
    /// report sends it.
    async fn release_bounce_notice(&self, message_id: &str) -> StoreResult<()>;
}
