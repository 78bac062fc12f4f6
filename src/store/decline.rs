//! Declining an invitation, one-click unsubscribe, and the suppression list they feed.

use async_trait::async_trait;

use super::{InvitationRecord, StoreResult};
use crate::domain::token::TokenHash;
use crate::domain::{InvitationStatus, Timestamp};

/// The answer of everything refused because of the suppression list (a 409 in the API).
pub const SUPPRESSED_MESSAGE: &str = "This person has asked not to receive invitations";

/// What declining by a link did.
#[derive(Debug, Clone)]
pub enum DeclineOutcome {
    /// Declined: every pending invitation to the person in the namespace (the link speaks for
    /// all of them, as accepting accepts all of them), the link's own first.
    Declined(Vec<InvitationRecord>),
    /// The token is known but its link no longer works (expired, used, revoked, declined).
    Gone(InvitationStatus),
    /// No link has this token in the namespace.
    Unknown,
}

/// What a one-click unsubscribe did.
#[derive(Debug, Clone)]
pub enum UnsubscribeOutcome {
    /// The address is on the suppression list now (`declined`: the invitations it declined on
    /// the way; empty when none was pending any more).
    Suppressed {
        email: String,
        declined: Vec<InvitationRecord>,
    },
    /// No invitation has this unsubscribe token (unknown, or deleted since): nothing changed.
    Unknown,
}

/// An address on a namespace's suppression list.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub namespace: String,
    /// The mailbox compared: lower-cased, without the `+tag` (`EmailAddress::recipient_key`).
    pub recipient_key: String,
    /// The address as it was invited.
    pub email: String,
    pub invitation_id: Option<i64>,
    pub created: Timestamp,
}

#[async_trait]
pub trait DeclineStore: Send + Sync {
    /// Declines by the accept link's token: the invitations become `declined`, their links die,
    /// their queued emails are cancelled, the grants only they gave are removed (revoke's rule),
    /// and with `block_future` the address joins the namespace's suppression list. One
    /// transaction, with the `invitation.declined` events.
    async fn decline_invitation(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        block_future: bool,
        now: Timestamp,
    ) -> StoreResult<DeclineOutcome>;
    /// The one-click unsubscribe (`Token::unsubscribe_token`'s hash): suppresses the address
    /// and declines what is still pending, whatever state the link is in.
    async fn unsubscribe(
        &self,
        namespace: &str,
        unsubscribe_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<UnsubscribeOutcome>;
    /// The invitation an unsubscribe token belongs to, for the confirmation page.
    async fn unsubscribe_invitation(
        &self,
        namespace: &str,
        unsubscribe_hash: &TokenHash,
    ) -> StoreResult<Option<InvitationRecord>>;
    /// The suppression list of a namespace, oldest first.
    async fn suppressions(&self, namespace: &str) -> StoreResult<Vec<Suppression>>;
    /// Takes a mailbox (a recipient key) off a namespace's list; whether it was on it.
    async fn remove_suppression(&self, namespace: &str, recipient_key: &str) -> StoreResult<bool>;
}
