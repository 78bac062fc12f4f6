//! The outbox: the worker's claims and marks, and the operator's commands.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::{FromRow, QueryBuilder};
use tokio::sync::Notify;

use super::backend::{self, Backend, Db};
use super::events;
use super::notices;
use super::rows::{db_error, load_invitation};
use super::suppressions;
use crate::domain::{EmailAddress, EventType, InvitationId, InviteKind, Timestamp};
use crate::store::{OutboxMessage, OutboxRow, OutboxStore, StoreResult};

#[derive(FromRow)]
struct OutboxListRow {
    id: i64,
    namespace: String,
    invitation_id: i64,
    kind: String,
    recipient: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created: i64,
}

#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    namespace: String,
    invitation_id: i64,
    kind: String,
    recipient: String,
    message_id: String,
    accept_token: Option<String>,
    attempts: i64,
}

impl Backend {
    /// The last guard of the suppression list: a message queued before its address was
    /// suppressed is not sent but failed, its link scrubbed (creation and resend already refuse
    /// a suppressed address, and a decline cancels its own invitations' messages).
    async fn drop_suppressed(&self, rows: Vec<ClaimedRow>) -> StoreResult<Vec<ClaimedRow>> {
        if rows.is_empty() {
            return Ok(rows);
        }
        let key = |row: &ClaimedRow| {
            let email = EmailAddress::from_trusted(row.recipient.clone());
            (row.namespace.clone(), email.recipient_key())
        };
        let pairs = rows.iter().map(key).collect();
        let suppressed = suppressions::suppressed_among(&mut *self.read().await?, &pairs).await?;
        if suppressed.is_empty() {
            return Ok(rows);
        }
        let (dropped, kept): (Vec<ClaimedRow>, Vec<ClaimedRow>) = rows
            .into_iter()
            .partition(|row| suppressed.contains(&key(row)));
        for row in dropped {
            sqlx::query("UPDATE outbox SET accept_token = NULL WHERE message_id = $1")
                .bind(&row.message_id)
                .execute(self.writer())
                .await
                .map_err(db_error("scrubbing a suppressed message"))?;
            // Not a delivery failure: the creator is not told.
            self.fail_message(
                &row.message_id,
                "not sent: the address is on the namespace's suppression list",
                false,
            )
            .await?;
        }
        Ok(kept)
    }

    /// Marks the message failed for good, with its `email.failed` event, and (`tell_creator`)
    /// queues the creator's failure notice in the same transaction.
    async fn fail_message(
        &self,
        message_id: &str,
        error: &str,
        tell_creator: bool,
    ) -> StoreResult<()> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting to mark a message failed"))?;
        let failed: Option<(String, i64, String, String, i64)> = sqlx::query_as(
            "UPDATE outbox SET status = 'failed', lease_until = NULL, \
             last_error = $1 WHERE message_id = $2 \
             RETURNING namespace, invitation_id, kind, recipient, attempts",
        )
        .bind(error)
        .bind(message_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("marking message failed"))?;
        let failed_invitation = failed.as_ref().map(|row| InvitationId(row.1));
        if let Some((namespace, invitation_id, kind, recipient, attempts)) = failed
            && events::has_endpoints(&mut tx, &namespace).await?
            && let Some(record) =
                load_invitation(&mut tx, &namespace, InvitationId(invitation_id)).await?
        {
            let now = Timestamp::now();
            let mail = serde_json::json!({
                "kind": kind,
                "recipient": recipient,
                "attempts": attempts,
                "last_error": error,
            });
            let data = events::invitation_mail_data(&namespace, &record, now, mail);
            events::emit(&mut tx, &namespace, EventType::EmailFailed, &data, now).await?;
        }
        let mut told = false;
        if tell_creator && let Some(id) = failed_invitation {
            told = notices::queue_failure(&mut tx, id, error, Timestamp::now()).await?;
        }
        tx.commit()
            .await
            .map_err(db_error("committing a failed message"))?;
        if told {
            backend::email_queued(self);
        }
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for Backend {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let rows: Vec<ClaimedRow> = self
            .on_writer(move |pool| async move {
                sqlx::query_as(backend::CLAIM_OUTBOX)
                    .bind(now.plus(lease).millis())
                    .bind(now.millis())
                    .bind(limit)
                    .fetch_all(&pool)
                    .await
                    .map_err(db_error("claiming outbox messages"))
            })
            .await?;
        let rows = self.drop_suppressed(rows).await?;
        rows.into_iter()
            .map(|row| {
                let kind = InviteKind::parse(&row.kind)
                    .with_context(|| format!("outbox message {} has kind {}", row.id, row.kind))?;
                Ok(OutboxMessage {
                    id: row.id,
                    namespace: row.namespace,
                    invitation_id: InvitationId(row.invitation_id),
                    kind,
                    recipient: row.recipient,
                    message_id: row.message_id,
                    accept_token: row.accept_token,
                    attempts: row.attempts,
                })
            })
            .collect()
    }

    async fn mark_sent(&self, message_ids: &[String], now: Timestamp) -> StoreResult<()> {
        if message_ids.is_empty() {
            return Ok(());
        }
        let message_ids = message_ids.to_vec();
        self.on_writer(move |pool| async move {
            let mut query = QueryBuilder::<Db>::new(
                "UPDATE outbox SET status = 'sent', accept_token = NULL, lease_until = NULL, sent_at = ",
            );
            query.push_bind(now.millis()).push(" WHERE message_id IN (");
            let mut list = query.separated(", ");
            for message_id in message_ids {
                list.push_bind(message_id);
            }
            query.push(")");
            query
                .build()
                .persistent(false)
                .execute(&pool)
                .await
                .map_err(db_error("marking messages sent"))?;
            Ok(())
        })
        .await
    }

    async fn mark_retry(
        &self,
        message_id: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET lease_until = NULL, next_attempt_at = $1, last_error = $2 \
             WHERE message_id = $3",
        )
        .bind(next_attempt_at.millis())
        .bind(error)
        .bind(message_id)
        .execute(self.writer())
        .await
        .map_err(db_error("scheduling retry"))?;
        Ok(())
    }

    async fn mark_failed(&self, message_id: &str, error: &str) -> StoreResult<()> {
        self.fail_message(message_id, error, true).await
    }

    async fn purge_scrubbed(&self) -> StoreResult<()> {
        backend::purge_scrubbed(self).await
    }

    async fn watch_outbox(&self, wakeup: Arc<Notify>) {
        backend::watch_outbox(self, wakeup).await
    }

    async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until \
             ELSE next_attempt_at END) FROM outbox WHERE status = 'queued'",
        )
        .fetch_one(&mut *self.read().await?)
        .await
        .map_err(db_error("reading the outbox"))?;
        Ok(due.map(Timestamp))
    }

    async fn list_outbox(&self, status: Option<&str>, limit: i64) -> StoreResult<Vec<OutboxRow>> {
        let mut query = QueryBuilder::<Db>::new(
            "SELECT id, namespace, invitation_id, kind, recipient, status, attempts, \
             next_attempt_at, last_error, created FROM outbox",
        );
        if let Some(status) = status {
            query.push(" WHERE status = ").push_bind(status);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        let rows: Vec<OutboxListRow> = query
            .build_query_as()
            .fetch_all(&mut *self.read().await?)
            .await
            .map_err(db_error("listing the outbox"))?;
        Ok(rows
            .into_iter()
            .map(|r| OutboxRow {
                id: r.id,
                namespace: r.namespace,
                invitation_id: r.invitation_id,
                kind: r.kind,
                recipient: r.recipient,
                status: r.status,
                attempts: r.attempts,
                next_attempt_at: Timestamp(r.next_attempt_at),
                last_error: r.last_error,
                created: Timestamp(r.created),
            })
            .collect())
    }

    async fn retry_outbox(&self, id: Option<i64>, now: Timestamp) -> StoreResult<u64> {
        let mut query = QueryBuilder::<Db>::new(
            "UPDATE outbox SET status = 'queued', attempts = 0, lease_until = NULL, \
             next_attempt_at = ",
        );
        query.push_bind(now.millis()).push(
            " WHERE status = 'failed' AND invitation_id NOT IN \
             (SELECT id FROM invitations WHERE status IN ('revoked', 'declined'))",
        );
        if let Some(id) = id {
            query.push(" AND id = ").push_bind(id);
        }
        let done = query
            .build()
            .execute(self.writer())
            .await
            .map_err(db_error("queueing failed messages again"))?;
        Ok(done.rows_affected())
    }

    async fn outbox_depth(&self) -> StoreResult<(i64, Option<Timestamp>)> {
        let (depth, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created) FROM outbox WHERE status = 'queued'")
                .fetch_one(&mut *self.read().await?)
                .await
                .map_err(db_error("measuring the outbox"))?;
        Ok((depth, oldest.map(Timestamp)))
    }
}
