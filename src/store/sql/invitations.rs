//! Reading and listing invitations, and what happens to one after it is created: resend, revoke
//! and accept.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::{FromRow, QueryBuilder};

use super::backend::{self, Backend, Conn, Db};
use super::events;
use super::invitation_create::{INSERT_OUTBOX, replace_accept_token};
use super::invitation_grants::{UndoneGrant, undo_invitation_grants};
use super::limits::{Sending, limit_reached, lock_mailboxes, lock_sender, record_extra_email};
use super::notices;
use super::rows::{
    INVITATION_SELECT, InvitationRow, USER_COLUMNS, UserRow, db_error, load_invitation,
    with_projects,
};
use super::suppressions;
use crate::domain::token::TokenHash;
use crate::domain::{
    EmailAddress, EventType, InvitationId, InvitationStatus, NoticeKind, Timestamp, User, UserId,
};
use crate::store::{
    AcceptLink, AcceptOutcome, CreateOutcome, InvitationFilter, InvitationPage, InvitationRecord,
    InvitationStore, NewInvitation, ResendInvitation, ResendOutcome, RevokeOutcome, StoreResult,
};

/// The user of a link that works: token hash, now, namespace.
const LIVE_LINK_USER: &str = "SELECT t.user_id FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
     WHERE t.token_hash = $1 AND t.state = 'live' AND t.expires > $2 \
     AND i.status <> 'revoked' AND i.namespace = $3 \
     AND NOT EXISTS (SELECT 1 FROM users d WHERE d.id = t.user_id AND d.deactivated)";

/// What resend and revoke need to know of an invitation before changing it.
#[derive(FromRow)]
struct InvitationState {
    status: String,
    expires: Option<i64>,
    invitee_id: i64,
    kind: String,
    email: String,
    /// The invitation's own lifetime (`expires_in`), if it has one.
    ttl_seconds: Option<i64>,
}

impl InvitationState {
    /// Resend and revoke apply to a pending invitation, and to an expired one whether the
    /// sweep marked it (`expired`) or not yet (`pending` past its expiry).
    fn can_change(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "expired")
    }

    fn effective_status(&self, now: Timestamp) -> InvitationStatus {
        InvitationStatus::effective(&self.status, self.expires.map(Timestamp), now)
    }
}

async fn invitation_state(
    conn: &mut Conn,
    namespace: &str,
    id: InvitationId,
) -> StoreResult<Option<InvitationState>> {
    // Locked: a resend and a revoke of one invitation happen one after the other.
    sqlx::query_as(&format!(
        "SELECT status, expires, invitee_id, kind, email, ttl_seconds FROM invitations \
         WHERE namespace = $1 AND id = $2{}",
        backend::FOR_UPDATE
    ))
    .bind(namespace)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("reading invitation"))
}

/// The outbox keeps one row per invitation (`invitation_id UNIQUE`), so a resend re-queues that
/// row as a new message (new Message-ID and token, no attempts, due now) rather than adding a
/// second one: an email still waiting for a retry is replaced, never sent alongside the new one.
/// A worker may be sending the old message right now; its `mark_sent`/`mark_retry` name the
/// Message-ID it sent, so they cannot land on the new message. The old email may still arrive,
/// with a link that no longer works. Overwriting the old token wipes it (`secure_delete`).
async fn requeue_email(
    conn: &mut Conn,
    resend: &ResendInvitation,
    current: &InvitationState,
) -> StoreResult<()> {
    let requeued = sqlx::query(
        "UPDATE outbox SET kind = $1, recipient = $2, \
         message_id = $3, accept_token = $4, status = 'queued', attempts = 0, \
         next_attempt_at = $5, lease_until = NULL, last_error = NULL, created = $5, \
         sent_at = NULL, bounced_at = NULL, bounce_status = NULL, bounce_notified_at = NULL \
         WHERE invitation_id = $6",
    )
    .bind(&current.kind)
    .bind(&current.email)
    .bind(&resend.message_id)
    .bind(resend.token.expose())
    .bind(resend.now.millis())
    .bind(resend.id.0)
    .execute(&mut *conn)
    .await
    .map_err(db_error("queueing the email again"))?;
    if requeued.rows_affected() == 0 {
        sqlx::query(INSERT_OUTBOX)
            .bind(&resend.namespace)
            .bind(resend.id.0)
            .bind(&current.kind)
            .bind(&current.email)
            .bind(&resend.message_id)
            .bind(resend.token.expose())
            .bind(resend.now.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_error("queueing the email"))?;
    }
    Ok(())
}

pub(super) async fn user_by_id(conn: &mut Conn, id: i64) -> StoreResult<User> {
    let user: UserRow = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error("reading user"))?;
    Ok(user.into())
}

/// `invitation.revoked`, and a `membership.changed` per grant it took back.
async fn announce_revoked(
    conn: &mut Conn,
    namespace: &str,
    record: &InvitationRecord,
    invitee_id: i64,
    undone: &[UndoneGrant],
    now: Timestamp,
) -> StoreResult<()> {
    events::emit_invitation(conn, namespace, EventType::InvitationRevoked, record, now).await?;
    if undone.is_empty() || !events::has_endpoints(&mut *conn, namespace).await? {
        return Ok(());
    }
    let invitee = user_by_id(&mut *conn, invitee_id).await?;
    for grant in undone {
        let Some(project) = record.projects.iter().find(|p| p.id == grant.project) else {
            continue;
        };
        let data = events::membership_data(project, &invitee, Some(grant.old), grant.new);
        events::emit(conn, namespace, EventType::MembershipChanged, &data, now).await?;
    }
    Ok(())
}

/// An email still queued (or waiting for a retry) is not sent any more. One being sent right
/// now may still go out: the worker then marks it sent, which is the truth, and it cannot be
/// retried because the row is no longer queued.
async fn cancel_queued_email(conn: &mut Conn, id: InvitationId) -> StoreResult<()> {
    sqlx::query(
        "UPDATE outbox SET status = 'failed', accept_token = NULL, \
         last_error = 'not sent: the invitation was revoked' \
         WHERE invitation_id = $1 AND status = 'queued'",
    )
    .bind(id.0)
    .execute(&mut *conn)
    .await
    .map_err(db_error("cancelling the revoked invitation's email"))?;
    Ok(())
}

#[async_trait]
impl InvitationStore for Backend {
    async fn create_invitation(&self, new: NewInvitation) -> StoreResult<CreateOutcome> {
        backend::create_invitation(self, new).await
    }

    async fn invitation(
        &self,
        namespace: &str,
        id: InvitationId,
    ) -> StoreResult<Option<InvitationRecord>> {
        let mut conn = self.read().await?;
        load_invitation(&mut conn, namespace, id).await
    }

    async fn invitations_by_ids(
        &self,
        namespace: &str,
        ids: &[InvitationId],
    ) -> StoreResult<Vec<InvitationRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.read().await?;
        let mut query = QueryBuilder::<Db>::new(INVITATION_SELECT);
        query
            .push(" WHERE i.namespace = ")
            .push_bind(namespace)
            .push(" AND i.id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        query.push(")");
        let rows: Vec<InvitationRow> = query
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("reading invitations"))?;
        with_projects(&mut conn, rows).await
    }

    async fn list_invitations(
        &self,
        namespace: &str,
        filter: &InvitationFilter,
        now: Timestamp,
    ) -> StoreResult<InvitationPage> {
        fn push_conditions<'a>(
            query: &mut QueryBuilder<'a, Db>,
            namespace: &'a str,
            filter: &'a InvitationFilter,
            now: Timestamp,
        ) {
            query.push(" WHERE i.namespace = ").push_bind(namespace);
            if let Some(creator) = filter.created_by {
                query.push(" AND i.created_by = ").push_bind(creator.0);
            }
            if let Some(email) = &filter.email {
                query.push(" AND i.email = ").push_bind(email);
            }
            if let Some(email) = &filter.email_iexact {
                query
                    .push(" AND i.email_key = ")
                    .push_bind(email.to_lowercase());
            }
            match filter.status {
                None => {}
                Some(InvitationStatus::Pending) => {
                    query
                        .push(" AND i.status = 'pending' AND (i.expires IS NULL OR i.expires > ")
                        .push_bind(now.millis())
                        .push(")");
                }
                // Marked by the sweep, or past its expiry and not swept yet.
                Some(InvitationStatus::Expired) => {
                    query
                        .push(
                            " AND (i.status = 'expired' OR (i.status = 'pending' AND i.expires <= ",
                        )
                        .push_bind(now.millis())
                        .push("))");
                }
                Some(status) => {
                    query.push(" AND i.status = ").push_bind(status.as_str());
                }
            }
        }

        let mut conn = self.read().await?;
        let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM invitations i");
        push_conditions(&mut count, namespace, filter, now);
        let total_count: i64 = count
            .build_query_scalar()
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("counting invitations"))?;

        let mut page = QueryBuilder::<Db>::new(INVITATION_SELECT);
        push_conditions(&mut page, namespace, filter, now);
        page.push(" ORDER BY i.id DESC LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<InvitationRow> = page
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("listing invitations"))?;
        Ok(InvitationPage {
            total_count,
            objects: with_projects(&mut conn, rows).await?,
        })
    }

    async fn token_is_live(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(LIVE_LINK_USER)
            .bind(&token_hash.0)
            .bind(now.millis())
            .bind(namespace)
            .fetch_optional(&mut *self.read().await?)
            .await
            .map_err(db_error("checking accept link"))?;
        Ok(found.is_some())
    }

    async fn accept_invitation(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        password_hash: &str,
        now: Timestamp,
    ) -> StoreResult<AcceptOutcome> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting accept"))?;
        // Locked: of two accepts racing on one link, the second finds it used.
        let user_id: Option<i64> =
            sqlx::query_scalar(&format!("{LIVE_LINK_USER}{}", backend::FOR_UPDATE))
                .bind(&token_hash.0)
                .bind(now.millis())
                .bind(namespace)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error("checking accept link"))?;
        let Some(user_id) = user_id else {
            return Ok(AcceptOutcome::Gone);
        };
        let was_active = user_by_id(&mut tx, user_id).await?.is_active;
        sqlx::query("UPDATE users SET password_hash = $1, is_active = TRUE WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("activating user"))?;
        sqlx::query(
            "UPDATE invite_tokens SET state = CASE WHEN token_hash = $1 THEN 'used' ELSE 'void' END \
             WHERE user_id = $2 AND state = 'live'",
        )
        .bind(&token_hash.0)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error("using accept link"))?;
        // Expired ones too, swept or not (the sweep changes nothing a client sees): their
        // grants were given when they were created, and the invitee now holds them.
        let accepted: Vec<i64> = sqlx::query_scalar(
            "UPDATE invitations SET status = 'accepted', modified = $1 \
             WHERE invitee_id = $2 AND status IN ('pending', 'expired') RETURNING id",
        )
        .bind(now.millis())
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("marking invitations accepted"))?;
        let user = user_by_id(&mut tx, user_id).await?;
        let mut told = false;
        for id in &accepted {
            told |=
                notices::queue(&mut tx, InvitationId(*id), NoticeKind::Accepted, None, now).await?;
        }
        if events::has_endpoints(&mut tx, namespace).await? {
            for id in accepted {
                if let Some(record) = load_invitation(&mut tx, namespace, InvitationId(id)).await? {
                    events::emit_invitation(
                        &mut tx,
                        namespace,
                        EventType::InvitationAccepted,
                        &record,
                        now,
                    )
                    .await?;
                }
            }
            if !was_active {
                let data = events::user_data(&user);
                events::emit(&mut tx, namespace, EventType::UserActivated, &data, now).await?;
            }
        }
        tx.commit().await.map_err(db_error("committing accept"))?;
        if told {
            backend::email_queued(self);
        }
        Ok(AcceptOutcome::Accepted(user))
    }

    async fn resend_invitation(&self, resend: ResendInvitation) -> StoreResult<ResendOutcome> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting resend"))?;
        // Before the invitation's row lock, as creation takes them before the invitee's; the
        // mailbox is read first (an invitation's address never changes).
        lock_sender(&mut tx, resend.sender, resend.limits).await?;
        let email: Option<String> =
            sqlx::query_scalar("SELECT email FROM invitations WHERE namespace = $1 AND id = $2")
                .bind(&resend.namespace)
                .bind(resend.id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error("reading invitation"))?;
        let Some(email) = email else {
            return Ok(ResendOutcome::NotFound);
        };
        let recipient_key = EmailAddress::from_trusted(email).recipient_key();
        // Always: it serialises the suppression list's decision too (`suppressions`).
        lock_mailboxes(&mut tx, [recipient_key.as_str()]).await?;
        let Some(current) = invitation_state(&mut tx, &resend.namespace, resend.id).await? else {
            return Ok(ResendOutcome::NotFound);
        };
        if !current.can_change() {
            return Ok(ResendOutcome::NotPending(
                current.effective_status(resend.now),
            ));
        }
        if suppressions::is_suppressed(&mut tx, &resend.namespace, &recipient_key).await? {
            return Ok(ResendOutcome::Suppressed);
        }
        let sending = Sending {
            sender: resend.sender,
            recipient_key: &recipient_key,
            limits: resend.limits,
            now: resend.now,
        };
        if let Some(reached) = limit_reached(&mut tx, &sending).await? {
            return Ok(ResendOutcome::Limited {
                limit: reached.limit,
                retry_after: reached.retry_after,
            });
        }
        record_extra_email(&mut tx, &sending).await?;
        // The same lifetime again: the invitation's own, else today's default.
        let ttl = current
            .ttl_seconds
            .and_then(|secs| u64::try_from(secs).ok())
            .map_or(resend.ttl, Duration::from_secs);
        let expires = resend.now.plus(ttl);
        replace_accept_token(
            &mut tx,
            &resend.token,
            resend.id,
            UserId(current.invitee_id),
            false,
            expires,
            resend.now,
        )
        .await?;
        // A resend starts the reminder schedule again (`CBH_REMINDERS`), and makes an
        // invitation the sweep marked expired pending again.
        sqlx::query(
            "UPDATE invitations SET status = 'pending', expires = $1, modified = $2, \
             reminder_base = $2, reminder_slot = 0 WHERE id = $3",
        )
        .bind(expires.millis())
        .bind(resend.now.millis())
        .bind(resend.id.0)
        .execute(&mut *tx)
        .await
        .map_err(db_error("renewing invitation expiry"))?;
        requeue_email(&mut tx, &resend, &current).await?;
        let record = load_invitation(&mut tx, &resend.namespace, resend.id)
            .await?
            .context("the resent invitation is missing")?;
        events::emit_invitation(
            &mut tx,
            &resend.namespace,
            EventType::InvitationResent,
            &record,
            resend.now,
        )
        .await?;
        tx.commit().await.map_err(db_error("committing resend"))?;
        Ok(ResendOutcome::Resent(Box::new(record)))
    }

    async fn revoke_invitation(
        &self,
        namespace: &str,
        id: InvitationId,
        now: Timestamp,
    ) -> StoreResult<RevokeOutcome> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting revoke"))?;
        let Some(current) = invitation_state(&mut tx, namespace, id).await? else {
            return Ok(RevokeOutcome::NotFound);
        };
        if !current.can_change() {
            return Ok(RevokeOutcome::NotPending(current.effective_status(now)));
        }
        sqlx::query("UPDATE invitations SET status = 'revoked', modified = $1 WHERE id = $2")
            .bind(now.millis())
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error("revoking invitation"))?;
        sqlx::query(
            "UPDATE invite_tokens SET state = 'void' WHERE invitation_id = $1 AND state = 'live'",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(db_error("voiding the revoked link"))?;
        let undone = undo_invitation_grants(&mut tx, id, UserId(current.invitee_id)).await?;
        cancel_queued_email(&mut tx, id).await?;
        let record = load_invitation(&mut tx, namespace, id)
            .await?
            .context("the revoked invitation is missing")?;
        announce_revoked(
            &mut tx,
            namespace,
            &record,
            current.invitee_id,
            &undone,
            now,
        )
        .await?;
        tx.commit().await.map_err(db_error("committing revoke"))?;
        Ok(RevokeOutcome::Revoked(Box::new(record)))
    }

    async fn accept_link(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<AcceptLink>> {
        let mut conn = self.read().await?;
        // `live` repeats the condition of `accept_invitation` and `token_is_live`.
        let found: Option<(i64, bool)> = sqlx::query_as(
            "SELECT t.invitation_id, \
               (t.state = 'live' AND t.expires > $1 AND i.status <> 'revoked' \
                AND NOT u.deactivated) AS live \
             FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
             JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $2 AND i.namespace = $3",
        )
        .bind(now.millis())
        .bind(&token_hash.0)
        .bind(namespace)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error("reading accept link"))?;
        let Some((invitation_id, live)) = found else {
            return Ok(None);
        };
        let invitation = load_invitation(&mut conn, namespace, InvitationId(invitation_id)).await?;
        Ok(invitation.map(|invitation| AcceptLink { invitation, live }))
    }
}
