//! The notices to an invitation's creator: queued here in the caller's transaction, claimed and
//! marked by the outbox worker as the outbox's own messages are.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::FromRow;

use super::backend::{self, Backend, Conn};
use super::rows::{db_error, load_invitation};
use crate::domain::token::random_hex;
use crate::domain::{InvitationId, NoticeKind, Timestamp, UserId};
use crate::store::{NoticeMessage, NoticeRow, NoticeStore, StoreResult};

/// The notice of `kind` about invitation `$1` to its creator. Never to a deactivated creator,
/// never to the invitee (a creator who invited their own address), and an outcome only to a
/// creator who wants them (`$6`: the notice is an outcome).
const QUEUE: &str = "INSERT INTO notices (namespace, invitation_id, kind, recipient_id, recipient, \
     message_key, event_at, detail, status, next_attempt_at, created) \
     SELECT i.namespace, i.id, $2, u.id, u.email, $3, $4, $5, 'queued', $4, $4 \
     FROM invitations i JOIN users u ON u.id = i.created_by \
     WHERE i.id = $1 AND NOT u.deactivated AND u.id <> i.invitee_id \
       AND u.email_key <> i.email_key AND (u.notify_outcomes OR NOT $6)";

/// Queues the notice in the caller's transaction, so that it goes out exactly when what it
/// announces commits. Whether one was queued.
pub(super) async fn queue(
    conn: &mut Conn,
    id: InvitationId,
    kind: NoticeKind,
    detail: Option<&str>,
    now: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(QUEUE)
        .bind(id.0)
        .bind(kind.as_str())
        .bind(random_hex(16))
        .bind(now.millis())
        .bind(detail)
        .bind(kind.is_outcome())
        .execute(&mut *conn)
        .await
        .map_err(db_error("queueing the creator's notice"))?;
    Ok(done.rows_affected() > 0)
}

/// The notice that the invitation's email failed for good: once per invitation (a resend that
/// fails again says nothing more), and not for a revoked or declined one (its email was
/// cancelled, not refused). The row lock of the update makes "once" hold across nodes.
pub(super) async fn queue_failure(
    conn: &mut Conn,
    id: InvitationId,
    error: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    let first: Option<i64> = sqlx::query_scalar(
        "UPDATE invitations SET failure_notified_at = $1 \
         WHERE id = $2 AND failure_notified_at IS NULL \
           AND status NOT IN ('revoked', 'declined') RETURNING id",
    )
    .bind(now.millis())
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("claiming the failure notice"))?;
    if first.is_none() {
        return Ok(false);
    }
    queue(conn, id, NoticeKind::Failed, Some(error), now).await
}

#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    namespace: String,
    invitation_id: i64,
    recipient_id: i64,
    kind: String,
    recipient: String,
    message_key: String,
    event_at: i64,
    detail: Option<String>,
    attempts: i64,
}

#[derive(FromRow)]
struct ListRow {
    id: i64,
    invitation_id: i64,
    kind: String,
    recipient: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
}

#[async_trait]
impl NoticeStore for Backend {
    async fn notify_outcomes(&self, user: UserId) -> StoreResult<bool> {
        let on: Option<bool> =
            sqlx::query_scalar("SELECT notify_outcomes FROM users WHERE id = $1")
                .bind(user.0)
                .fetch_optional(&mut *self.read().await?)
                .await
                .map_err(db_error("reading the user's notice setting"))?;
        Ok(on.unwrap_or(true))
    }

    async fn set_notify_outcomes(&self, user: UserId, on: bool) -> StoreResult<()> {
        sqlx::query("UPDATE users SET notify_outcomes = $1 WHERE id = $2")
            .bind(on)
            .bind(user.0)
            .execute(self.writer())
            .await
            .map_err(db_error("changing the user's notice setting"))?;
        Ok(())
    }

    async fn claim_notices(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<NoticeMessage>> {
        // A read first: the worker asks every round, and notices are rare, so the round
        // without one costs no write (on SQLite, no turn at the one writer).
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM notices WHERE status = 'queued' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until <= $1) LIMIT 1",
        )
        .bind(now.millis())
        .fetch_optional(&mut *self.read().await?)
        .await
        .map_err(db_error("looking for due notices"))?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "UPDATE notices SET lease_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM notices WHERE status = 'queued' \
               AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY next_attempt_at, id LIMIT $3{}) \
             RETURNING id, namespace, invitation_id, recipient_id, kind, recipient, \
               message_key, event_at, detail, attempts",
            backend::SKIP_LOCKED
        ))
        .bind(now.plus(lease).millis())
        .bind(now.millis())
        .bind(limit)
        .fetch_all(self.writer())
        .await
        .map_err(db_error("claiming notices"))?;
        let mut conn = self.read().await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let kind = NoticeKind::parse(&row.kind);
            let invitation =
                load_invitation(&mut conn, &row.namespace, InvitationId(row.invitation_id)).await?;
            let deactivated: Option<bool> =
                sqlx::query_scalar("SELECT deactivated FROM users WHERE id = $1")
                    .bind(row.recipient_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_error("reading the notice's recipient"))?;
            let (Some(kind), Some(invitation)) = (kind, invitation) else {
                drop(conn);
                self.mark_notice_failed(&row.message_key, "not sent: the invitation is gone")
                    .await?;
                conn = self.read().await?;
                continue;
            };
            claimed.push(NoticeMessage {
                id: row.id,
                namespace: row.namespace,
                kind,
                recipient: row.recipient,
                message_id: row.message_key,
                event_at: Timestamp(row.event_at),
                detail: row.detail,
                attempts: row.attempts,
                recipient_deactivated: deactivated.unwrap_or(true),
                invitation,
            });
        }
        Ok(claimed)
    }

    async fn mark_notices_sent(&self, message_ids: &[String], now: Timestamp) -> StoreResult<()> {
        for key in message_ids {
            sqlx::query(
                "UPDATE notices SET status = 'sent', lease_until = NULL, sent_at = $1 \
                 WHERE message_key = $2",
            )
            .bind(now.millis())
            .bind(key)
            .execute(self.writer())
            .await
            .map_err(db_error("marking a notice sent"))?;
        }
        Ok(())
    }

    async fn mark_notice_retry(
        &self,
        message_id: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE notices SET lease_until = NULL, next_attempt_at = $1, last_error = $2 \
             WHERE message_key = $3",
        )
        .bind(next_attempt_at.millis())
        .bind(error)
        .bind(message_id)
        .execute(self.writer())
        .await
        .map_err(db_error("scheduling a notice's retry"))?;
        Ok(())
    }

    async fn mark_notice_failed(&self, message_id: &str, error: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE notices SET status = 'failed', lease_until = NULL, last_error = $1 \
             WHERE message_key = $2",
        )
        .bind(error)
        .bind(message_id)
        .execute(self.writer())
        .await
        .map_err(db_error("marking a notice failed"))?;
        Ok(())
    }

    async fn list_notices(
        &self,
        namespace: &str,
        invitation: Option<i64>,
    ) -> StoreResult<Vec<NoticeRow>> {
        let rows: Vec<ListRow> = sqlx::query_as(
            "SELECT id, invitation_id, kind, recipient, status, attempts, last_error \
             FROM notices WHERE namespace = $1 AND ($2 IS NULL OR invitation_id = $2) \
             ORDER BY id",
        )
        .bind(namespace)
        .bind(invitation)
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(db_error("listing notices"))?;
        Ok(rows
            .into_iter()
            .map(|r| NoticeRow {
                id: r.id,
                invitation_id: r.invitation_id,
                kind: r.kind,
                recipient: r.recipient,
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
            })
            .collect())
    }
}
