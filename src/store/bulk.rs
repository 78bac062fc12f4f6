//! Invitations created several at a time, in order (a bulk request, the command line's CSV
//! import), and the answers of bulk requests kept for their `Idempotency-Key`.

use std::time::Duration;

use async_trait::async_trait;

use super::{CreateOutcome, NewInvitation, StoreResult};
use crate::domain::{Timestamp, UserId};

/// What an earlier bulk request with the same `Idempotency-Key` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAnswer {
    /// The same key and body: its answer, as stored.
    Same(String),
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

    /// The answer kept for the user's bulk request with this key, if any younger than
    /// `kept_for`; a key used by a single invitation is `KeyReused`.
    async fn bulk_answer(
        &self,
        user: UserId,
        key: &str,
        request_hash: &[u8],
        now: Timestamp,
        kept_for: Duration,
    ) -> StoreResult<Option<BulkAnswer>>;

    /// Keeps a bulk request's answer for its key (forgetting every answer older than
    /// `kept_for`). A key already kept keeps its first answer.
    async fn remember_bulk_answer(
        &self,
        user: UserId,
        key: &str,
        request_hash: &[u8],
        answer: &str,
        now: Timestamp,
        kept_for: Duration,
    ) -> StoreResult<()>;
}
