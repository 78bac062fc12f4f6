//! Automatic reminders (`CBH_REMINDERS`) and the superseded link's "Email me a new link": the
//! trait and its records. Both queue a fresh accept link in the transaction that voids the older
//! ones, and both count against the per-recipient sending limit.

use std::time::Duration;

use async_trait::async_trait;

use super::{SendLimits, StoreResult};
use crate::domain::token::TokenHash;
use crate::domain::{InvitationId, InvitationStatus, Timestamp};

/// One pass of the reminder scan.
#[derive(Debug, Clone)]
pub struct ReminderScan {
    /// When reminders are due, after the invitation was created or last resent (increasing).
    pub schedule: Vec<Duration>,
    /// Only `per_recipient` applies: an automatic reminder is nobody's own sending.
    pub limits: SendLimits,
    /// The domain of the Message-IDs.
    pub mail_domain: String,
    pub now: Timestamp,
    /// The most reminders of one slot handled in one pass.
    pub batch: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReminderReport {
    pub sent: usize,
    /// Over the per-recipient limit: the slot passes without an email (audit
    /// `reminder_skipped`).
    pub skipped: usize,
}

/// A link voided because a newer email carries a fresh one, of an invitation still pending.
#[derive(Debug, Clone)]
pub struct SupersededLink {
    pub invitation_id: InvitationId,
    /// When the newest email to this person was queued.
    pub newer_email_at: Timestamp,
    /// The invitation's language (as given), which its pages fall back to.
    pub language: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewLinkRequest {
    pub namespace: String,
    /// The hash of the superseded link presented.
    pub token_hash: TokenHash,
    pub limits: SendLimits,
    pub mail_domain: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLinkOutcome {
    /// A fresh link was queued to the invitation's stored address.
    Queued,
    /// Not a superseded link (unknown, live, used, or voided by a revoke or an accept).
    NotSuperseded,
    /// The invitation is no longer pending (accepted, revoked, expired, declined, …).
    NotPending(InvitationStatus),
    /// The per-recipient limit was reached: nothing was queued.
    Limited { retry_after: Duration },
}

#[async_trait]
pub trait ReminderStore: Send + Sync {
    /// Queues the reminders due at `scan.now`, each in its own transaction that claims the
    /// invitation (exactly once across nodes), and returns what it did.
    async fn send_due_reminders(&self, scan: &ReminderScan) -> StoreResult<ReminderReport>;

    /// The link of `token_hash` in `namespace`, when it was superseded and its invitation is
    /// still pending.
    async fn superseded_link(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<SupersededLink>>;

    /// Queues a fresh link of the superseded link's invitation to its stored address.
    async fn email_new_link(&self, request: NewLinkRequest) -> StoreResult<NewLinkOutcome>;
}
