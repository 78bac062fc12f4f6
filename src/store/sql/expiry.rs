//! The expiry sweep (`store::ExpiryStore`).
//!
//! The claim is the status change itself: one `UPDATE … RETURNING` moves the due invitations
//! from `pending` to `expired`, and only the transaction whose update changed a row announces
//! it. On PostgreSQL the inner `SELECT … FOR UPDATE SKIP LOCKED` passes over rows another
//! sweep (or a resend, revoke or accept) holds, and the outer `status = 'pending'` is checked
//! again on the row as it is when the lock is taken, so two sweeps never both take one row;
//! SQLite's single writer runs them one after the other.

use anyhow::Context;
use async_trait::async_trait;

use super::backend::{self, Backend, Conn};
use super::events;
use super::rows::{db_error, load_invitation};
use crate::domain::{EventType, InvitationId, Timestamp};
use crate::store::{ExpiryStore, StoreResult};

/// Due for the sweep, on `invitations`: `$1` now. The partial index `invitations_expiry`
/// (migration 0015) serves it.
const DUE: &str = "status = 'pending' AND expires IS NOT NULL AND expires <= $1";

/// Every link of the invitation (`$1`) dies for good: a live one is voided, and none answers
/// the "superseded" page any more (that page offers a new link, which an expired invitation
/// must not get without its inviter). A later resend issues a new link; these stay dead.
const VOID_LINKS: &str = "UPDATE invite_tokens SET state = CASE WHEN state = 'live' THEN 'void' \
     ELSE state END, superseded_at = NULL WHERE invitation_id = $1";

/// The plain token kept for an email not sent yet is wiped, and that email is not sent: its
/// link could not work. One being sent right now may still go out (as with revoke), with a
/// dead link.
const SCRUB_EMAIL: &str = "UPDATE outbox SET accept_token = NULL, \
     status = CASE WHEN status = 'queued' THEN 'failed' ELSE status END, \
     last_error = CASE WHEN status = 'queued' THEN 'not sent: the invitation expired' \
       ELSE last_error END \
     WHERE invitation_id = $1 AND (status = 'queued' OR accept_token IS NOT NULL)";

/// The audit record (`actor` none: nobody asked for it).
async fn audit_expired(
    conn: &mut Conn,
    namespace: &str,
    id: InvitationId,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip) \
         VALUES ($1, $2, 'invitation_expired', NULL, $3, NULL)",
    )
    .bind(namespace)
    .bind(now.millis())
    .bind(id.0.to_string())
    .execute(&mut *conn)
    .await
    .map_err(db_error("writing the audit log"))?;
    Ok(())
}

#[async_trait]
impl ExpiryStore for Backend {
    async fn expire_due(&self, now: Timestamp, batch: i64) -> StoreResult<Vec<InvitationId>> {
        let mut tx = self
            .writer()
            .begin_with(backend::BEGIN)
            .await
            .map_err(db_error("starting the expiry sweep"))?;
        let mut expired: Vec<(i64, String)> = sqlx::query_as(&format!(
            "UPDATE invitations SET status = 'expired', modified = $1 \
             WHERE id IN (SELECT id FROM invitations WHERE {DUE} ORDER BY id LIMIT $2{}) \
             AND {DUE} RETURNING id, namespace",
            backend::SKIP_LOCKED
        ))
        .bind(now.millis())
        .bind(batch)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("marking invitations expired"))?;
        expired.sort_unstable();
        for (id, namespace) in &expired {
            let id = InvitationId(*id);
            sqlx::query(VOID_LINKS)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db_error("voiding the expired links"))?;
            sqlx::query(SCRUB_EMAIL)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db_error("scrubbing the expired invitation's email"))?;
            audit_expired(&mut tx, namespace, id, now).await?;
            if events::has_endpoints(&mut tx, namespace).await? {
                let record = load_invitation(&mut tx, namespace, id)
                    .await?
                    .context("the expired invitation is missing")?;
                events::emit_invitation(
                    &mut tx,
                    namespace,
                    EventType::InvitationExpired,
                    &record,
                    now,
                )
                .await?;
            }
        }
        tx.commit()
            .await
            .map_err(db_error("committing the expiry sweep"))?;
        Ok(expired
            .into_iter()
            .map(|(id, _)| InvitationId(id))
            .collect())
    }

    async fn count_expiry_due(&self, now: Timestamp) -> StoreResult<u64> {
        let count: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM invitations WHERE {DUE}"))
                .bind(now.millis())
                .fetch_one(&mut *self.read().await?)
                .await
                .map_err(db_error("counting expired invitations"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
