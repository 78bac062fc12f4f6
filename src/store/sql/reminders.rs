//! Automatic reminders and the superseded link's "Email me a new link" (`store::reminders`).
//!
//! A due reminder is claimed like an outbox row: each is decided in a transaction of its own
//! that re-reads the invitation under a row lock (skipping a row another node holds, on
//! PostgreSQL) and moves its `reminder_slot` on before committing, so a slot is used once
//! whatever the number of nodes and restarts. The email, the fresh link, the audit record and
//! the webhook event are written in that same transaction.

use anyhow::Context;
use async_trait::async_trait;
use sqlx::FromRow;

use super::backend::{self, Backend, Conn};
use super::events;
use super::invitation_create::replace_accept_token;
use super::limits::{Sending, limit_reached, lock_mailboxes};
use super::rows::{db_error, load_invitation};
use crate::domain::token::{TokenHash, random_hex};
use crate::domain::{
    EventType, InvitationId, InvitationStatus, InviteKind, Timestamp, Token, UserId,
};
use crate::store::{
    NewLinkOutcome, NewLinkRequest, ReminderReport, ReminderScan, ReminderStore, SendLimits,
    StoreResult, SupersededLink,
};

/// The conditions of a due reminder, on `invitations i`: `$1` now, `$2` the slot, `$3` the
/// latest start of the schedule for that slot to be due (now minus its delay).
///
/// `status = 'pending'`: any other status (accepted, revoked, and whatever later ones such as
/// declined) stops reminders, with no list to keep up to date. The invitation must hold the
/// person's live link (an invitation whose link a newer one superseded, or that never had one,
/// is not reminded: the newer one is), must not be past its expiry, and its last email must
/// have gone out or be on its way: one that failed (or bounced) is not followed by reminders.
/// An invitation created without its email (`send_email: false`) and never resent gets none.
const DUE: &str = "i.status = 'pending' AND i.expires IS NOT NULL AND i.expires > $1 \
     AND i.reminder_slot = $2 AND COALESCE(i.reminder_base, i.created) <= $3 \
     AND EXISTS (SELECT 1 FROM invite_tokens t JOIN users u ON u.id = t.user_id \
       WHERE t.invitation_id = i.id AND t.state = 'live' AND NOT u.deactivated) \
     AND COALESCE((SELECT o.status FROM outbox o WHERE o.invitation_id = i.id), \
       i.delivery_status, 'queued') IN ('queued', 'sent') \
     AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.invitation_id = i.id \
       AND o.bounced_at IS NOT NULL)";

/// What a reminder needs of its invitation, read under the claim's row lock.
#[derive(FromRow)]
struct Claimed {
    namespace: String,
    invitee_id: i64,
    created_by: i64,
    email: String,
    recipient_key: String,
    expires: i64,
    created: i64,
    reminder_base: Option<i64>,
}

/// The `audit_log` row of a reminder (`actor` none: nobody asked for it).
async fn audit(
    conn: &mut Conn,
    namespace: &str,
    event: &str,
    id: InvitationId,
    detail: Option<&str>,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip, detail) \
         VALUES ($1, $2, $3, NULL, $4, NULL, $5)",
    )
    .bind(namespace)
    .bind(now.millis())
    .bind(event)
    .bind(id.0.to_string())
    .bind(detail)
    .execute(&mut *conn)
    .await
    .map_err(db_error("writing the audit log"))?;
    Ok(())
}

/// An email with a fresh link, about to be queued.
struct FreshEmail<'a> {
    namespace: &'a str,
    id: InvitationId,
    kind: &'a str,
    recipient: &'a str,
    token: &'a Token,
    message_id: String,
}

/// Re-queues the invitation's one outbox row (`invitation_id UNIQUE`) as a new message, as a
/// resend does (`invitations::requeue_email`), or queues one when it was pruned or never was.
async fn queue_email(conn: &mut Conn, email: &FreshEmail<'_>, now: Timestamp) -> StoreResult<()> {
    let requeued = sqlx::query(
        "UPDATE outbox SET kind = $1, recipient = $2, message_id = $3, accept_token = $4, \
         status = 'queued', attempts = 0, next_attempt_at = $5, lease_until = NULL, \
         last_error = NULL, created = $5, sent_at = NULL WHERE invitation_id = $6",
    )
    .bind(email.kind)
    .bind(email.recipient)
    .bind(&email.message_id)
    .bind(email.token.expose())
    .bind(now.millis())
    .bind(email.id.0)
    .execute(&mut *conn)
    .await
    .map_err(db_error("queueing the email"))?;
    if requeued.rows_affected() == 0 {
        sqlx::query(super::invitation_create::INSERT_OUTBOX)
            .bind(email.namespace)
            .bind(email.id.0)
            .bind(email.kind)
            .bind(email.recipient)
            .bind(&email.message_id)
            .bind(email.token.expose())
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_error("queueing the email"))?;
    }
    Ok(())
}

/// Counts the email against the recipient's limit only (`extra_emails.automatic`): the inviter
/// did not send it.
async fn record_automatic_email(conn: &mut Conn, sending: &Sending<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO extra_emails (recipient_key, sender_id, created, automatic) \
         VALUES ($1, $2, $3, TRUE)",
    )
    .bind(sending.recipient_key)
    .bind(sending.sender.0)
    .bind(sending.now.millis())
    .execute(&mut *conn)
    .await
    .map_err(db_error("counting the email"))?;
    Ok(())
}

fn per_recipient_only(limits: SendLimits) -> SendLimits {
    SendLimits {
        per_inviter: None,
        per_recipient: limits.per_recipient,
    }
}

enum Decided {
    Sent,
    Skipped,
    /// Another node took it, or it changed since the scan read it.
    Gone,
}

/// One due reminder, in its own transaction.
async fn remind_one(
    store: &Backend,
    scan: &ReminderScan,
    slot: usize,
    id: InvitationId,
    recipient_key: &str,
) -> StoreResult<Decided> {
    let now = scan.now;
    let limits = per_recipient_only(scan.limits);
    let mut tx = store
        .writer()
        .begin_with(backend::BEGIN)
        .await
        .map_err(db_error("starting a reminder"))?;
    // The mailbox's lock before the invitation's row lock, as resend takes them.
    if limits.per_recipient.is_some() {
        lock_mailboxes(&mut tx, [recipient_key]).await?;
    }
    let slot_number = i64::try_from(slot).unwrap_or(i64::MAX);
    let due_from = now.minus(scan.schedule[slot]);
    let claimed: Option<Claimed> = sqlx::query_as(&format!(
        "SELECT i.namespace, i.invitee_id, i.created_by, i.email, i.recipient_key, i.expires, \
         i.created, i.reminder_base FROM invitations i WHERE i.id = $4 AND {DUE}{}",
        backend::SKIP_LOCKED
    ))
    .bind(now.millis())
    .bind(slot_number)
    .bind(due_from.millis())
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error("claiming a reminder"))?;
    let Some(claimed) = claimed else {
        return Ok(Decided::Gone);
    };
    // Slots already past too (the service was down, or the schedule changed) are passed over:
    // one reminder now, not one per missed slot.
    let start = Timestamp(claimed.reminder_base.unwrap_or(claimed.created));
    let next_slot = scan
        .schedule
        .iter()
        .take_while(|delay| start.plus(**delay) <= now)
        .count()
        .max(slot + 1);
    let next_slot = i64::try_from(next_slot).unwrap_or(i64::MAX);
    let sending = Sending {
        sender: UserId(claimed.created_by),
        recipient_key: &claimed.recipient_key,
        limits,
        now,
    };
    if limit_reached(&mut tx, &sending).await?.is_some() {
        sqlx::query("UPDATE invitations SET reminder_slot = $1 WHERE id = $2")
            .bind(next_slot)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error("passing a reminder over"))?;
        let detail = format!(
            "reminder {} not sent: the recipient's sending limit is reached",
            slot + 1
        );
        audit(
            &mut tx,
            &claimed.namespace,
            "reminder_skipped",
            id,
            Some(&detail),
            now,
        )
        .await?;
        tx.commit()
            .await
            .map_err(db_error("committing a skipped reminder"))?;
        return Ok(Decided::Skipped);
    }
    record_automatic_email(&mut tx, &sending).await?;
    let token = Token::generate();
    // The fresh link keeps the invitation's expiry: a reminder does not prolong it.
    replace_accept_token(
        &mut tx,
        &token,
        id,
        UserId(claimed.invitee_id),
        false,
        Timestamp(claimed.expires),
        now,
    )
    .await?;
    let email = FreshEmail {
        namespace: &claimed.namespace,
        id,
        kind: InviteKind::ReminderAuto.as_str(),
        recipient: &claimed.email,
        token: &token,
        message_id: format!("<{}@{}>", random_hex(16), scan.mail_domain),
    };
    queue_email(&mut tx, &email, now).await?;
    sqlx::query(
        "UPDATE invitations SET reminder_slot = $1, reminders_sent = reminders_sent + 1, \
         modified = $2 WHERE id = $3",
    )
    .bind(next_slot)
    .bind(now.millis())
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(db_error("counting the reminder"))?;
    audit(
        &mut tx,
        &claimed.namespace,
        "invitation_reminded",
        id,
        None,
        now,
    )
    .await?;
    let record = load_invitation(&mut tx, &claimed.namespace, id)
        .await?
        .context("the reminded invitation is missing")?;
    events::emit_invitation(
        &mut tx,
        &claimed.namespace,
        EventType::InvitationReminded,
        &record,
        now,
    )
    .await?;
    tx.commit()
        .await
        .map_err(db_error("committing a reminder"))?;
    Ok(Decided::Sent)
}

/// What "Email me a new link" needs of the link's invitation.
#[derive(FromRow)]
struct LinkInvitation {
    id: i64,
    status: String,
    expires: Option<i64>,
    invitee_id: i64,
    created_by: i64,
    namespace: String,
    kind: String,
    email: String,
    recipient_key: String,
    language: Option<String>,
}

/// The invitation of a superseded link (`$1` token hash, `$2` namespace), whatever its state,
/// unless its invitee was deactivated (whose links all stay dead).
const SUPERSEDED_LINK: &str = "SELECT i.id, i.status, i.expires, i.invitee_id, i.created_by, \
     i.namespace, i.kind, i.email, i.recipient_key, i.language \
     FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
     WHERE t.token_hash = $1 AND i.namespace = $2 AND t.state = 'void' \
     AND t.superseded_at IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM users d WHERE d.id = t.user_id AND d.deactivated)";

#[async_trait]
impl ReminderStore for Backend {
    async fn send_due_reminders(&self, scan: &ReminderScan) -> StoreResult<ReminderReport> {
        let mut report = ReminderReport::default();
        for slot in 0..scan.schedule.len() {
            let due_from = scan.now.minus(scan.schedule[slot]);
            let candidates: Vec<(i64, String)> = sqlx::query_as(&format!(
                "SELECT i.id, i.recipient_key FROM invitations i WHERE {DUE} \
                 ORDER BY i.id LIMIT $4"
            ))
            .bind(scan.now.millis())
            .bind(i64::try_from(slot).unwrap_or(i64::MAX))
            .bind(due_from.millis())
            .bind(scan.batch)
            .fetch_all(&mut *self.read().await?)
            .await
            .map_err(db_error("finding due reminders"))?;
            for (id, recipient_key) in candidates {
                match remind_one(self, scan, slot, InvitationId(id), &recipient_key).await? {
                    Decided::Sent => report.sent += 1,
                    Decided::Skipped => report.skipped += 1,
                    Decided::Gone => {}
                }
            }
        }
        Ok(report)
    }

    async fn superseded_link(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<SupersededLink>> {
        let mut conn = self.read().await?;
        let found: Option<LinkInvitation> = sqlx::query_as(SUPERSEDED_LINK)
            .bind(&token_hash.0)
            .bind(namespace)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("reading a superseded link"))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let status = InvitationStatus::effective(&found.status, found.expires.map(Timestamp), now);
        if status != InvitationStatus::Pending || found.status != "pending" {
            return Ok(None);
        }
        // The newest email to this person: the last time one of their links was superseded.
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(t.superseded_at) FROM invite_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.user_id = $1 AND NOT u.deactivated",
        )
        .bind(found.invitee_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error("reading when the newer email was sent"))?;
        Ok(newest.map(|at| SupersededLink {
            invitation_id: InvitationId(found.id),
            newer_email_at: Timestamp(at),
            language: found.language,
        }))
    }

    async fn email_new_link(&self, request: NewLinkRequest) -> StoreResult<NewLinkOutcome> {
        let now = request.now;
        let limits = per_recipient_only(request.limits);
        let mut tx = self
            .writer()
            .begin_with(backend::BEGIN)
            .await
            .map_err(db_error("starting a new link"))?;
        // An invitation's address never changes: its mailbox is read before the locks.
        let mailbox: Option<String> = sqlx::query_scalar(&format!(
            "SELECT recipient_key FROM ({SUPERSEDED_LINK}) AS link"
        ))
        .bind(&request.token_hash.0)
        .bind(&request.namespace)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("reading a superseded link"))?;
        let Some(mailbox) = mailbox else {
            return Ok(NewLinkOutcome::NotSuperseded);
        };
        if limits.per_recipient.is_some() {
            lock_mailboxes(&mut tx, [mailbox.as_str()]).await?;
        }
        // Locked: a revoke, an accept or a second request of this invitation waits its turn.
        let link: Option<LinkInvitation> =
            sqlx::query_as(&format!("{SUPERSEDED_LINK}{}", backend::FOR_UPDATE))
                .bind(&request.token_hash.0)
                .bind(&request.namespace)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error("reading a superseded link"))?;
        let Some(link) = link else {
            return Ok(NewLinkOutcome::NotSuperseded);
        };
        let status = InvitationStatus::effective(&link.status, link.expires.map(Timestamp), now);
        if link.status != "pending" || status != InvitationStatus::Pending {
            return Ok(NewLinkOutcome::NotPending(status));
        }
        let Some(expires) = link.expires else {
            return Ok(NewLinkOutcome::NotSuperseded);
        };
        let sending = Sending {
            sender: UserId(link.created_by),
            recipient_key: &link.recipient_key,
            limits,
            now,
        };
        if let Some(reached) = limit_reached(&mut tx, &sending).await? {
            return Ok(NewLinkOutcome::Limited {
                retry_after: reached.retry_after,
            });
        }
        record_automatic_email(&mut tx, &sending).await?;
        let id = InvitationId(link.id);
        let token = Token::generate();
        // The invitee cannot prolong the invitation: the fresh link keeps its expiry.
        replace_accept_token(
            &mut tx,
            &token,
            id,
            UserId(link.invitee_id),
            false,
            Timestamp(expires),
            now,
        )
        .await?;
        // The invitation's own email again, to its stored address (never one from the page).
        let email = FreshEmail {
            namespace: &link.namespace,
            id,
            kind: &link.kind,
            recipient: &link.email,
            token: &token,
            message_id: format!("<{}@{}>", random_hex(16), request.mail_domain),
        };
        queue_email(&mut tx, &email, now).await?;
        sqlx::query("UPDATE invitations SET modified = $1 WHERE id = $2")
            .bind(now.millis())
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error("updating the invitation"))?;
        audit(
            &mut tx,
            &link.namespace,
            "invitation_link_requested",
            id,
            None,
            now,
        )
        .await?;
        tx.commit()
            .await
            .map_err(db_error("committing a new link"))?;
        Ok(NewLinkOutcome::Queued)
    }
}
