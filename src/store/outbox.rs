//! The outbox's rows and what the worker and the operator's commands do with them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::StoreResult;
use crate::domain::{InvitationId, InviteKind, Timestamp};

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub namespace: String,
    pub invitation_id: i64,
    pub kind: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When the relay accepted the message.
    pub sent_at: Option<Timestamp>,
}

/// An email claimed by a worker for delivery.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub namespace: String,
    pub invitation_id: InvitationId,
    pub kind: InviteKind,
    pub recipient: String,
    pub message_id: String,
    pub accept_token: Option<String>,
    /// Including the attempt this claim starts.
    pub attempts: i64,
}

/// The outbox: the worker's claims and marks, and the operator's commands.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Reserves up to `limit` due messages for `lease`, counting an attempt on each.
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>>;
    /// Marks messages sent and scrubs their accept tokens. The marks name the Message-ID that
    /// was sent, not the row: a row re-queued (resend) while its old message was in flight
    /// carries a new Message-ID, and the old send's result must not land on it.
    async fn mark_sent(&self, message_ids: &[String], now: Timestamp) -> StoreResult<()>;
    async fn mark_retry(
        &self,
        message_id: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<()>;
    async fn mark_failed(&self, message_id: &str, error: &str) -> StoreResult<()>;
    /// Removes copies of scrubbed secrets that the database may still hold on disk.
    async fn purge_scrubbed(&self) -> StoreResult<()>;
    /// Wakes `wakeup` whenever another node queues an email; runs until cancelled (returns at
    /// once where there are no other nodes).
    async fn watch_outbox(&self, wakeup: Arc<Notify>);
    /// When the next queued message is due (`None`: the outbox is empty).
    async fn next_due(&self) -> StoreResult<Option<Timestamp>>;
    async fn list_outbox(&self, status: Option<&str>, limit: i64) -> StoreResult<Vec<OutboxRow>>;
    /// Queues failed messages again (one, or every failed one), attempts reset; messages of
    /// revoked invitations stay failed. Returns how many were queued.
    async fn retry_outbox(&self, id: Option<i64>, now: Timestamp) -> StoreResult<u64>;
    /// Queued messages, and when the oldest of them was created.
    async fn outbox_depth(&self) -> StoreResult<(i64, Option<Timestamp>)>;
}
