//! Invitations created several at a time, in order (a bulk request, the command line's CSV
//! import), and the answers of bulk requests kept for their `Idempotency-Key`.

use std::time::Duration;

use async_trait::async_trait;

use super::{CreateOutcome, NewInvitation, StoreResult};
use crate::domain::{Timestamp, UserId};

/// What claiming a bulk request's `Idempotency-Key` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkClaim {
    /// The key is new (or its earlier request was abandoned): it is this request's now.
    Claimed,
    /// The same key and body were answered before: that answer, as stored.
    Answered(String),
    /// The same key and body are being worked on by another request.
    InProgress,
    /// The key was used with another body (or for a single invitation).
    KeyReused,
}

#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Creates the invitations in the order given, each decided as if created alone after the
    /// ones before it: the same outcomes as `InvitationStore::create_invitation` one after the
    /// other. They are committed in groups of at most `group_commit::MAX_BATCH`, one group at a
    /// time, so that other requests wait for no more than one group-commit batch; a group that
    /// cannot commit together is created one by one, so one failing invitation fails no other.
    /// With `dry_run`, the same work in one transaction that is rolled back: nothing is kept,
    /// nothing sent. One outcome per invitation, in order.
    async fn create_invitations(
        &self,
        batch: Vec<NewInvitation>,
        dry_run: bool,
    ) -> StoreResult<Vec<StoreResult<CreateOutcome>>>;

    /// Claims the user's key for a bulk request with this body, unless a request younger than
    /// `kept_for` holds it (its answer, or `InProgress`). A claim still unanswered after
    /// `abandoned_after` (its request died) may be taken over. A key used by a single invitation
    /// is `KeyReused`.
    async fn claim_bulk_key(
        &self,
        user: UserId,
        key: &str,
        request_hash: &[u8],
        now: Timestamp,
        kept_for: Duration,
        abandoned_after: Duration,
    ) -> StoreResult<BulkClaim>;

    /// Gives up a claim that has no answer (the request failed before any row was written).
    async fn release_bulk_key(&self, user: UserId, key: &str) -> StoreResult<()>;

    /// Keeps the answer of the request that claimed the key.
    async fn remember_bulk_answer(&self, user: UserId, key: &str, answer: &str) -> StoreResult<()>;
}
