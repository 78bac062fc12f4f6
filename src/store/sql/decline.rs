//! Declining an invitation (its link, or the one-click unsubscribe link of its email).

use anyhow::Context;
use async_trait::async_trait;

use super::backend::{self, Backend, Conn};
use super::events;
use super::invitation_create::VOID_USER_LINKS;
use super::invitation_grants::{UndoneGrant, undo_invitation_grants};
use super::invitations::user_by_id;
use super::limits::lock_mailboxes;
use super::notices;
use super::rows::{db_error, load_invitation};
use super::suppressions;
use crate::domain::token::TokenHash;
use crate::domain::{
    EmailAddress, EventType, InvitationId, InvitationStatus, NoticeKind, Timestamp, UserId,
};
use crate::store::{
    DeclineOutcome, DeclineStore, InvitationRecord, StoreResult, Suppression, UnsubscribeOutcome,
};

/// The invitation a token (`$1`: the accept token's hash, or the unsubscribe token's in
/// `UNSUBSCRIBE_LINK`) belongs to in namespace `$2`, with what deciding needs.
const ACCEPT_LINK: &str = "SELECT t.invitation_id, t.user_id, i.email, \
     (t.state = 'live' AND t.expires > $3 AND i.status = 'pending' \
      AND NOT u.deactivated) AS live \
     FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
     JOIN users u ON u.id = t.user_id \
     WHERE t.token_hash = $1 AND i.namespace = $2";

/// `live` is never true here: unsubscribing does not depend on the link's state.
const UNSUBSCRIBE_LINK: &str = "SELECT t.invitation_id, t.user_id, i.email, \
     (t.expires < $3 AND 1 = 0) AS live \
     FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
     WHERE t.unsubscribe_hash = $1 AND i.namespace = $2 LIMIT 1";

#[derive(sqlx::FromRow)]
struct Link {
    invitation_id: i64,
    user_id: i64,
    email: String,
    live: bool,
}

async fn find_link(
    conn: &mut Conn,
    sql: &str,
    namespace: &str,
    hash: &TokenHash,
    now: Timestamp,
) -> StoreResult<Option<Link>> {
    sqlx::query_as(sql)
        .bind(&hash.0)
        .bind(namespace)
        .bind(now.millis())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error("reading the link"))
}

/// Declines every pending invitation to the person (`user_id`) in the namespace, the link's own
/// (`first`) first, and the expired ones, swept or not (the sweep changes nothing a client
/// sees): status `declined`, links void, queued emails cancelled, the grants only they gave
/// removed (revoke's rule; a pending user stays pending), and the events. The caller holds the
/// mailbox's lock.
async fn decline_pending(
    conn: &mut Conn,
    namespace: &str,
    user_id: i64,
    first: i64,
    now: Timestamp,
) -> StoreResult<Vec<InvitationRecord>> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE invitations SET status = 'declined', modified = $1 \
         WHERE invitee_id = $2 AND namespace = $3 AND status IN ('pending', 'expired') \
         RETURNING id",
    )
    .bind(now.millis())
    .bind(user_id)
    .bind(namespace)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error("declining invitations"))?;
    ids.sort_by_key(|id| (*id != first, *id));
    sqlx::query(VOID_USER_LINKS)
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error("voiding the declined links"))?;
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        let id = InvitationId(id);
        let undone = undo_invitation_grants(&mut *conn, id, UserId(user_id)).await?;
        sqlx::query(
            "UPDATE outbox SET status = 'failed', accept_token = NULL, \
             last_error = 'not sent: the invitation was declined' \
             WHERE invitation_id = $1 AND status = 'queued'",
        )
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(db_error("cancelling the declined invitation's email"))?;
        let record = load_invitation(&mut *conn, namespace, id)
            .await?
            .context("the declined invitation is missing")?;
        announce_declined(&mut *conn, namespace, &record, user_id, &undone, now).await?;
        notices::queue(&mut *conn, id, NoticeKind::Declined, None, now).await?;
        records.push(record);
    }
    Ok(records)
}

/// `invitation.declined`, and a `membership.changed` per grant it took back.
async fn announce_declined(
    conn: &mut Conn,
    namespace: &str,
    record: &InvitationRecord,
    invitee_id: i64,
    undone: &[UndoneGrant],
    now: Timestamp,
) -> StoreResult<()> {
    if !events::has_endpoints(&mut *conn, namespace).await? {
        return Ok(());
    }
    events::emit_invitation(conn, namespace, EventType::InvitationDeclined, record, now).await?;
    if undone.is_empty() {
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

#[async_trait]
impl DeclineStore for Backend {
    async fn decline_invitation(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        block_future: bool,
        now: Timestamp,
    ) -> StoreResult<DeclineOutcome> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting decline"))?;
        let Some(link) = find_link(&mut tx, ACCEPT_LINK, namespace, token_hash, now).await? else {
            return Ok(DeclineOutcome::Unknown);
        };
        // The mailbox's lock before any row lock (as creation takes it), then the link again:
        // of a decline and an accept racing on one link, the second finds it dead.
        let key = EmailAddress::from_trusted(link.email.clone()).recipient_key();
        lock_mailboxes(&mut tx, [key.as_str()]).await?;
        let locked: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT t.user_id FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
             WHERE t.token_hash = $1 AND t.state = 'live' AND i.status = 'pending'{}",
            super::backend::FOR_UPDATE
        ))
        .bind(&token_hash.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("locking the link"))?;
        if !link.live || locked.is_none() {
            let status = load_invitation(&mut tx, namespace, InvitationId(link.invitation_id))
                .await?
                .map_or(InvitationStatus::Revoked, |record| record.status(now));
            return Ok(DeclineOutcome::Gone(status));
        }
        let declined =
            decline_pending(&mut tx, namespace, link.user_id, link.invitation_id, now).await?;
        if block_future {
            suppressions::suppress(&mut tx, namespace, &link.email, link.invitation_id, now)
                .await?;
        }
        tx.commit().await.map_err(db_error("committing decline"))?;
        backend::email_queued(self);
        Ok(DeclineOutcome::Declined(declined))
    }

    async fn unsubscribe(
        &self,
        namespace: &str,
        unsubscribe_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<UnsubscribeOutcome> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting unsubscribe"))?;
        let Some(link) =
            find_link(&mut tx, UNSUBSCRIBE_LINK, namespace, unsubscribe_hash, now).await?
        else {
            return Ok(UnsubscribeOutcome::Unknown);
        };
        let key = EmailAddress::from_trusted(link.email.clone()).recipient_key();
        lock_mailboxes(&mut tx, [key.as_str()]).await?;
        let declined =
            decline_pending(&mut tx, namespace, link.user_id, link.invitation_id, now).await?;
        suppressions::suppress(&mut tx, namespace, &link.email, link.invitation_id, now).await?;
        tx.commit()
            .await
            .map_err(db_error("committing unsubscribe"))?;
        backend::email_queued(self);
        Ok(UnsubscribeOutcome::Suppressed {
            email: link.email,
            declined,
        })
    }

    async fn unsubscribe_invitation(
        &self,
        namespace: &str,
        unsubscribe_hash: &TokenHash,
    ) -> StoreResult<Option<InvitationRecord>> {
        let mut conn = self.read().await?;
        let Some(link) = find_link(
            &mut conn,
            UNSUBSCRIBE_LINK,
            namespace,
            unsubscribe_hash,
            Timestamp::now(),
        )
        .await?
        else {
            return Ok(None);
        };
        load_invitation(&mut conn, namespace, InvitationId(link.invitation_id)).await
    }

    async fn suppressions(&self, namespace: &str) -> StoreResult<Vec<Suppression>> {
        suppressions::list(self, namespace).await
    }

    async fn remove_suppression(&self, namespace: &str, recipient_key: &str) -> StoreResult<bool> {
        suppressions::remove(self, namespace, recipient_key).await
    }
}
