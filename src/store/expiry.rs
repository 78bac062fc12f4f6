//! The expiry sweep: a pending invitation past its expiry becomes `expired` in storage, once,
//! with its links voided, its unsent token scrubbed, an audit record (`invitation_expired`) and
//! the `invitation.expired` webhook event, all in one transaction.
//!
//! Until the sweep reaches it, such an invitation already reads as `expired`
//! (`InvitationStatus::effective`): the sweep changes what is stored and announces it, never
//! what a client sees of the invitation.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::{InvitationId, Timestamp};

#[async_trait]
pub trait ExpiryStore: Send + Sync {
    /// Marks at most `batch` pending invitations whose expiry is at or before `now` as
    /// `expired`, in one transaction, and returns them. An invitation is claimed by the
    /// `UPDATE … RETURNING` that changes its status, so of several sweeps (nodes, restarts,
    /// `cbh-invite prune` beside `serve`) exactly one marks and announces it.
    async fn expire_due(&self, now: Timestamp, batch: i64) -> StoreResult<Vec<InvitationId>>;

    /// How many pending invitations are past their expiry at `now` (`prune --dry-run`).
    async fn count_expiry_due(&self, now: Timestamp) -> StoreResult<u64>;
}
