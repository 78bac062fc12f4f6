//! Sending limits, counted over the emails queued within each window: an invitation's first
//! email by its row in `invitations`, every later one (a resend) by its row in `extra_emails`.

use std::collections::BTreeSet;
use std::time::Duration;

use super::backend::{self, Conn};
use super::rows::db_error;
use crate::domain::{Timestamp, UserId};
use crate::store::{CreateOutcome, Limit, LimitKind, NewInvitation, SendLimits, StoreResult};

/// Emails sent by one inviter (`$1`) since `$2`, and when the oldest of them was queued.
/// An invitation created without its email (`rows::NO_EMAIL`) is not counted, nor an automatic
/// reminder or a link the invitee asked for (`automatic`).
pub(super) const SENT_BY: &str = "SELECT COUNT(*), MIN(created) FROM (\
     SELECT created FROM invitations WHERE created_by = $1 AND created > $2 \
     AND COALESCE(delivery_status, '') <> 'none' \
     UNION ALL SELECT created FROM extra_emails WHERE sender_id = $1 AND created > $2 \
     AND NOT automatic) AS sent";

/// Emails queued to one mailbox (`$1`, a recipient key) since `$2`, in every namespace.
const SENT_TO: &str = "SELECT COUNT(*), MIN(created) FROM (\
     SELECT created FROM invitations WHERE recipient_key = $1 AND created > $2 \
     AND COALESCE(delivery_status, '') <> 'none' \
     UNION ALL SELECT created FROM extra_emails WHERE recipient_key = $1 AND created > $2) AS sent";

/// An email about to be queued, as the sending limits see it.
pub(super) struct Sending<'a> {
    pub(super) sender: UserId,
    pub(super) recipient_key: &'a str,
    pub(super) limits: SendLimits,
    pub(super) now: Timestamp,
}

/// A limit reached, and how long until the oldest counted email leaves its window.
pub(super) struct Reached {
    pub(super) limit: LimitKind,
    pub(super) retry_after: Duration,
}

/// Serialises, until the transaction ends, what the sender's limit decides: two transactions
/// (of two nodes, or two committers) would otherwise each count N-1 and each queue one more.
/// Taken before any row lock of the transaction, so that the order of locks is the same in all.
pub(super) async fn lock_sender(
    conn: &mut Conn,
    sender: UserId,
    limits: SendLimits,
) -> StoreResult<()> {
    if limits.per_inviter.is_some() {
        backend::lock_sender(conn, sender.0).await?;
    }
    Ok(())
}

/// Serialises, until the transaction ends, what the recipient limit decides for these
/// mailboxes (recipient keys): one mailbox may be invited from two namespaces, or under two
/// `+tags`, by two transactions at once. Taken after the senders' locks and before any row
/// lock, in one order (of the lock keys), so that no two transactions wait for each other.
pub(super) async fn lock_mailboxes<'k>(
    conn: &mut Conn,
    mailboxes: impl IntoIterator<Item = &'k str>,
) -> StoreResult<()> {
    let keys: BTreeSet<i32> = mailboxes.into_iter().map(mailbox_lock_key).collect();
    if keys.is_empty() {
        return Ok(());
    }
    backend::lock_mailboxes(conn, keys.into_iter().collect()).await
}

/// A mailbox's lock key: 32-bit FNV-1a of its recipient key, the same on every node and
/// version (two mailboxes that share one only wait for each other).
fn mailbox_lock_key(mailbox: &str) -> i32 {
    let hash = mailbox.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// The first sending limit that this email would exceed, if any. The caller holds the
/// sender's and the mailbox's locks (`lock_sender`, `lock_mailboxes`).
pub(super) async fn limit_reached(
    conn: &mut Conn,
    sending: &Sending<'_>,
) -> StoreResult<Option<Reached>> {
    if let Some(limit) = sending.limits.per_inviter {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(SENT_BY)
            .bind(sending.sender.0)
            .bind(sending.now.minus(limit.window).millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("counting the inviter's emails"))?;
        if count >= i64::from(limit.max) {
            return Ok(Some(reached(
                LimitKind::PerInviter,
                limit,
                oldest,
                sending.now,
            )));
        }
    }
    if let Some(limit) = sending.limits.per_recipient {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(SENT_TO)
            .bind(sending.recipient_key)
            .bind(sending.now.minus(limit.window).millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("counting the recipient's emails"))?;
        if count >= i64::from(limit.max) {
            return Ok(Some(reached(
                LimitKind::PerRecipient,
                limit,
                oldest,
                sending.now,
            )));
        }
    }
    Ok(None)
}

/// `limit_reached` for a new invitation.
pub(super) async fn sending_limit_reached(
    conn: &mut Conn,
    new: &NewInvitation,
) -> StoreResult<Option<CreateOutcome>> {
    let recipient_key = new.email.recipient_key();
    let sending = Sending {
        sender: new.inviter.id,
        recipient_key: &recipient_key,
        limits: new.limits,
        now: new.now,
    };
    Ok(limit_reached(conn, &sending)
        .await?
        .map(|reached| CreateOutcome::Limited {
            limit: reached.limit,
            retry_after: reached.retry_after,
        }))
}

/// Counts an email queued beyond an invitation's first (a resend) against the limits.
pub(super) async fn record_extra_email(conn: &mut Conn, sending: &Sending<'_>) -> StoreResult<()> {
    sqlx::query("INSERT INTO extra_emails (recipient_key, sender_id, created) VALUES ($1, $2, $3)")
        .bind(sending.recipient_key)
        .bind(sending.sender.0)
        .bind(sending.now.millis())
        .execute(&mut *conn)
        .await
        .map_err(db_error("counting the email"))?;
    Ok(())
}

fn reached(kind: LimitKind, limit: Limit, oldest: Option<i64>, now: Timestamp) -> Reached {
    let frees_at = oldest.map_or(now, Timestamp).plus(limit.window);
    let wait_ms = frees_at.millis().saturating_sub(now.millis()).max(1_000);
    Reached {
        limit: kind,
        retry_after: Duration::from_millis(wait_ms.unsigned_abs()),
    }
}
