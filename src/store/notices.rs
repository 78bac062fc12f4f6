//! The notices to an invitation's creator (`domain::notice`): queued by the store in the
//! transaction of what they announce, sent by the outbox worker.

use std::time::Duration;

use async_trait::async_trait;

use super::{InvitationRecord, StoreResult};
use crate::domain::{NoticeKind, Timestamp, UserId};

/// A notice claimed for delivery, with its invitation as it is now.
#[derive(Debug, Clone)]
pub struct NoticeMessage {
    pub id: i64,
    pub namespace: String,
    pub kind: NoticeKind,
    pub recipient: String,
    /// The random part of its Message-ID, which the marks name.
    pub message_id: String,
    /// When the accept, decline or failure happened.
    pub event_at: Timestamp,
    /// A failure's words from the relay.
    pub detail: Option<String>,
    /// Including the attempt this claim starts.
    pub attempts: i64,
    /// The creator was deactivated since it was queued: it is not sent.
    pub recipient_deactivated: bool,
    pub invitation: InvitationRecord,
}

/// A notice row, for the operator and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRow {
    pub id: i64,
    pub invitation_id: i64,
    pub kind: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// Whether the user gets the accepted and declined notices.
    async fn notify_outcomes(&self, user: UserId) -> StoreResult<bool>;
    async fn set_notify_outcomes(&self, user: UserId, on: bool) -> StoreResult<()>;
    /// Reserves up to `limit` due notices for `lease`, counting an attempt on each.
    async fn claim_notices(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<NoticeMessage>>;
    async fn mark_notices_sent(&self, message_ids: &[String], now: Timestamp) -> StoreResult<()>;
    async fn mark_notice_retry(
        &self,
        message_id: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<()>;
    async fn mark_notice_failed(&self, message_id: &str, error: &str) -> StoreResult<()>;
    /// The notices of the namespace, oldest first (`invitation`: of that invitation only).
    async fn list_notices(
        &self,
        namespace: &str,
        invitation: Option<i64>,
    ) -> StoreResult<Vec<NoticeRow>>;
}
