//! Creating one invitation in a transaction: read the invitee and its roles, plan, write the
//! user, grants (added or raised), invitation, accept link, outbox row and audit record.

use std::collections::BTreeMap;

use anyhow::Context;

use super::audit::{audit_created, audit_link_returned};
use super::backend::{self, Conn, Db};
use super::events;
use super::limits::{lock_mailboxes, sending_limit_reached};
use super::rows::{NO_EMAIL, USER_COLUMNS, UserRow, db_error, load_invitation, parse_role};
use super::suppressions;
use crate::domain::grant::GrantChange;
use crate::domain::invitation::{ExistingInvitee, plan_invitation};
use crate::domain::{
    EmailAddress, InvitationId, InviteKind, ProjectId, Role, Timestamp, User, UserId,
};
use crate::store::{
    CreateOutcome, DeliveryRecord, InvitationRecord, NewInvitation, StoreError, StoreResult,
};

async fn find_user_by_email_key(
    conn: &mut Conn,
    namespace: &str,
    email_key: &str,
) -> StoreResult<Option<User>> {
    // Locked: two invitations to one person are decided one after the other.
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.namespace = $1 AND u.email_key = $2{}",
        backend::FOR_UPDATE
    ))
    .bind(namespace)
    .bind(email_key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("finding invitee"))?;
    Ok(row.map(User::from))
}

async fn is_deactivated(conn: &mut Conn, user: UserId) -> StoreResult<bool> {
    sqlx::query_scalar("SELECT deactivated FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error("reading the invitee's account"))
}

async fn granted_roles(conn: &mut Conn, user: UserId) -> StoreResult<BTreeMap<ProjectId, Role>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT project_id, role FROM grants WHERE user_id = $1")
            .bind(user.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("loading grants"))?;
    rows.into_iter()
        .map(|(project, role)| Ok((ProjectId(project), parse_role(&role)?)))
        .collect()
}

async fn insert_pending_user(conn: &mut Conn, invitation: &NewInvitation) -> StoreResult<UserId> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (namespace, email, email_key, first_name, last_name, created) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(&invitation.namespace)
    .bind(invitation.email.as_str())
    .bind(invitation.email.key())
    .bind(invitation.first_name.as_str())
    .bind(invitation.last_name.as_str())
    .bind(invitation.now.millis())
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error("creating pending user"))?;
    Ok(UserId(id))
}

/// Adds the grant, or raises it: the plan only holds changes that raise (`grant::change`). The
/// condition keeps that true if the role was raised meanwhile by a path that does not lock the
/// invitee (the members API): an invitation never lowers a role.
async fn grant_role(conn: &mut Conn, user: UserId, change: &GrantChange) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO grants (user_id, project_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role \
         WHERE (CASE grants.role WHEN 'viewer' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END) \
           < (CASE excluded.role WHEN 'viewer' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END)",
    )
    .bind(user.0)
    .bind(change.project.0)
    .bind(change.role.as_str())
    .execute(&mut *conn)
    .await
    .map_err(db_error("granting a role"))?;
    Ok(())
}

/// The `ttl_seconds` column: the request's `expires_in`, if any.
pub(super) fn ttl_seconds(new: &NewInvitation) -> Option<i64> {
    new.expires_in
        .map(|ttl| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
}

pub(super) struct InvitationInsert<'a> {
    pub(super) invitation: &'a NewInvitation,
    pub(super) invitee: &'a User,
    pub(super) kind: InviteKind,
    pub(super) status: &'a str,
    pub(super) expires: Option<Timestamp>,
    /// What the invitation changed, kept with its projects for revoke.
    pub(super) grants: &'a [GrantChange],
}

/// Stores the invitation and returns it as a reader would find it, so that the response
/// needs no second look.
async fn insert_invitation(
    conn: &mut Conn,
    row: InvitationInsert<'_>,
) -> StoreResult<InvitationRecord> {
    let new = row.invitation;
    // The invitation names the user as stored; names fall back to the user's own.
    let (first, last) = if new.first_name.as_str().is_empty() && new.last_name.as_str().is_empty() {
        (
            row.invitee.first_name.as_str(),
            row.invitee.last_name.as_str(),
        )
    } else {
        (new.first_name.as_str(), new.last_name.as_str())
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO invitations (namespace, invitee_id, email, email_key, recipient_key, \
         first_name, last_name, created_by, kind, message, status, expires, created, modified, \
         ttl_seconds, delivery_status, language) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16) \
         RETURNING id",
    )
    .bind(&new.namespace)
    .bind(row.invitee.id.0)
    .bind(row.invitee.email.as_str())
    .bind(row.invitee.email.key())
    .bind(row.invitee.email.recipient_key())
    .bind(first)
    .bind(last)
    .bind(new.inviter.id.0)
    .bind(row.kind.as_str())
    .bind(row.kind.message(&row.invitee.email))
    .bind(row.status)
    .bind(row.expires.map(Timestamp::millis))
    .bind(new.now.millis())
    .bind(ttl_seconds(new))
    .bind((!new.send_email).then_some(NO_EMAIL))
    .bind(&new.language)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error("storing invitation"))?;
    for project in &new.projects {
        let given = row.grants.iter().find(|g| g.project == project.id);
        sqlx::query(
            "INSERT INTO invitation_projects (invitation_id, project_id, role, gave, previous_role) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(project.id.0)
        .bind(new.roles.role(project.id).as_str())
        .bind(given.is_some())
        .bind(given.and_then(|g| g.previous).map(Role::as_str))
        .execute(&mut *conn)
        .await
        .map_err(db_error("storing invitation projects"))?;
    }
    Ok(inserted_record(id, &row, first, last))
}

/// An invitation just stored, as a reader would find it.
pub(super) fn inserted_record(
    id: i64,
    row: &InvitationInsert<'_>,
    first: &str,
    last: &str,
) -> InvitationRecord {
    let new = row.invitation;
    InvitationRecord {
        id: InvitationId(id),
        email: row.invitee.email.as_str().to_owned(),
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        created_by: new.inviter.clone(),
        projects: new.projects.clone(),
        roles: new.roles.clone(),
        kind: row.kind,
        message: row.kind.message(&row.invitee.email),
        stored_status: row.status.to_owned(),
        expires: row.expires,
        created: new.now,
        modified: new.now,
        // A new invitation queues its email (`enqueue_email`, same transaction) unless
        // created without one.
        delivery: new.send_email.then(|| DeliveryRecord {
            status: "queued".to_owned(),
            attempts: 0,
            last_error: None,
            sent_at: None,
        }),
        reminders_sent: 0,
        language: Some(new.language.clone()),
        // Read with the invitation when a notice needs it; not kept with the inviter here.
        creator_language: None,
    }
}

/// Voids every live accept link of a user (`$1`).
pub(super) const VOID_USER_LINKS: &str =
    "UPDATE invite_tokens SET state = 'void' WHERE user_id = $1 AND state = 'live'";

/// Voids every live accept link of a user (`$1`) because a newer email (`$2`, its time) carries
/// a fresh one: the old links then answer the "superseded" page (`superseded_at`).
const SUPERSEDE_USER_LINKS: &str = "UPDATE invite_tokens SET state = 'void', superseded_at = $2 \
     WHERE user_id = $1 AND state = 'live'";

/// A new link voids the user's older ones: only the latest email's link works. A user
/// created in this transaction has none.
pub(super) async fn replace_accept_token(
    conn: &mut Conn,
    token: &crate::domain::Token,
    invitation_id: InvitationId,
    invitee: UserId,
    new_user: bool,
    expires: Timestamp,
    now: Timestamp,
) -> StoreResult<()> {
    if !new_user {
        sqlx::query(SUPERSEDE_USER_LINKS)
            .bind(invitee.0)
            .bind(now.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_error("voiding older links"))?;
    }
    sqlx::query(
        "INSERT INTO invite_tokens (token_hash, invitation_id, user_id, state, expires, \
         unsubscribe_hash) VALUES ($1, $2, $3, 'live', $4, $5)",
    )
    .bind(token.hash().0)
    .bind(invitation_id.0)
    .bind(invitee.0)
    .bind(expires.millis())
    .bind(token.unsubscribe_token().hash().0)
    .execute(&mut *conn)
    .await
    .map_err(db_error("storing accept link"))?;
    Ok(())
}

/// Queues an invitation's email, due at once: namespace, invitation, kind, recipient,
/// Message-ID, accept token, now.
pub(super) const INSERT_OUTBOX: &str = "INSERT INTO outbox (namespace, invitation_id, kind, recipient, message_id, accept_token, \
     status, next_attempt_at, created) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)";

async fn enqueue_email(
    conn: &mut Conn,
    invitation: &NewInvitation,
    invitation_id: InvitationId,
    kind: InviteKind,
    recipient: &EmailAddress,
    accept_token: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(INSERT_OUTBOX)
        .bind(&invitation.namespace)
        .bind(invitation_id.0)
        .bind(kind.as_str())
        .bind(recipient.as_str())
        .bind(&invitation.message_id)
        .bind(accept_token)
        .bind(invitation.now.millis())
        .execute(&mut *conn)
        .await
        .map_err(db_error("queueing email"))?;
    Ok(())
}

/// What an earlier request with the same idempotency key did, if it is still remembered.
enum EarlierRequest {
    /// A single POST with this body hash, which created this invitation.
    Single(Vec<u8>, InvitationId),
    /// A bulk request: one key serves one request, so this one is refused.
    Bulk,
}

/// The earlier request of the new invitation's idempotency key, if any; an expired one is
/// forgotten on the way.
async fn find_idempotent_request(
    conn: &mut Conn,
    invitation: &NewInvitation,
) -> StoreResult<Option<EarlierRequest>> {
    let Some(claim) = &invitation.idempotency else {
        return Ok(None);
    };
    let since = invitation.now.minus(claim.kept_for).millis();
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created < $3")
        .bind(invitation.inviter.id.0)
        .bind(&claim.key)
        .bind(since)
        .execute(&mut *conn)
        .await
        .map_err(db_error("expiring idempotency key"))?;
    let found: Option<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT request_hash, invitation_id FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(invitation.inviter.id.0)
    .bind(&claim.key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("reading idempotency key"))?;
    if let Some((hash, id)) = found {
        return Ok(Some(EarlierRequest::Single(hash, InvitationId(id))));
    }
    let bulk: Option<i64> = sqlx::query_scalar(
        "SELECT created FROM bulk_requests WHERE user_id = $1 AND key = $2 AND created >= $3",
    )
    .bind(invitation.inviter.id.0)
    .bind(&claim.key)
    .bind(since)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("reading a bulk request's idempotency key"))?;
    Ok(bulk.map(|_| EarlierRequest::Bulk))
}

async fn remember_idempotent_request(
    conn: &mut Conn,
    invitation: &NewInvitation,
    invitation_id: InvitationId,
) -> StoreResult<()> {
    let Some(claim) = &invitation.idempotency else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, invitation_id, created) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(invitation.inviter.id.0)
    .bind(&claim.key)
    .bind(&claim.request_hash)
    .bind(invitation_id.0)
    .bind(invitation.now.millis())
    .execute(&mut *conn)
    .await
    .map_err(db_error("storing idempotency key"))?;
    Ok(())
}

/// One attempt at `Store::create_invitation`, in a transaction of its own.
async fn create_invitation_once(
    pool: &sqlx::Pool<Db>,
    new: &NewInvitation,
) -> StoreResult<CreateOutcome> {
    let mut tx = pool
        .begin_with(super::backend::BEGIN)
        .await
        .map_err(db_error("starting invitation"))?;
    let outcome = create_invitation_in(&mut tx, new).await?;
    // Only a new invitation has anything worth keeping.
    if matches!(outcome, CreateOutcome::Created(_)) {
        tx.commit()
            .await
            .map_err(db_error("committing invitation"))?;
    }
    Ok(outcome)
}

/// The work of `Store::create_invitation` inside the caller's transaction (which may
/// hold several: SQLite commits a batch at once). Outcomes other than `Created` have
/// written nothing that matters (at most an expired idempotency key is forgotten).
pub(super) async fn create_invitation_in(
    tx: &mut Conn,
    new: &NewInvitation,
) -> StoreResult<CreateOutcome> {
    // The sender's lock: for the sending limit, and for a keyed request. A bulk request's claim
    // of a key takes it too (`invitation_bulk::claim_in`), so a keyed POST and a bulk request
    // with one key are decided one after the other, each seeing what the other committed.
    if new.limits.per_inviter.is_some() || new.idempotency.is_some() {
        backend::lock_sender(&mut *tx, new.inviter.id.0).await?;
    }
    // Always: the mailbox's lock also serialises this decision with a decline that adds the
    // address to the suppression list (`suppressions`).
    let recipient_key = new.email.recipient_key();
    lock_mailboxes(&mut *tx, [recipient_key.as_str()]).await?;
    match find_idempotent_request(&mut *tx, new).await? {
        None => {}
        Some(EarlierRequest::Bulk) => return Ok(CreateOutcome::KeyReused),
        Some(EarlierRequest::Single(request_hash, earlier)) => {
            let same_body = new
                .idempotency
                .as_ref()
                .is_some_and(|claim| claim.request_hash == request_hash);
            if !same_body {
                return Ok(CreateOutcome::KeyReused);
            }
            let record = load_invitation(&mut *tx, &new.namespace, earlier)
                .await?
                .context("an idempotency key names a missing invitation")?;
            return Ok(CreateOutcome::Replayed(record));
        }
    }

    if suppressions::is_suppressed(&mut *tx, &new.namespace, &recipient_key).await? {
        return Ok(CreateOutcome::Suppressed);
    }
    let existing = match find_user_by_email_key(&mut *tx, &new.namespace, &new.email.key()).await? {
        Some(user) if is_deactivated(&mut *tx, user.id).await? => {
            return Ok(CreateOutcome::Deactivated);
        }
        Some(user) => Some(ExistingInvitee {
            roles: granted_roles(&mut *tx, user.id).await?,
            user,
        }),
        None => None,
    };
    let selected: Vec<ProjectId> = new.projects.iter().map(|p| p.id).collect();
    let plan = match plan_invitation(existing.as_ref(), &selected, &new.roles, new.remind) {
        Ok(plan) => plan,
        Err(rejection) => return Ok(CreateOutcome::Rejected(rejection)),
    };
    // Without an email there is nothing to limit (a later resend is counted).
    if new.send_email
        && let Some(limited) = sending_limit_reached(&mut *tx, new).await?
    {
        return Ok(limited);
    }
    let new_user = existing.is_none();
    let invitee = match existing {
        Some(existing) => existing.user,
        None => User {
            id: insert_pending_user(&mut *tx, new).await?,
            email: new.email.clone(),
            first_name: new.first_name.clone(),
            last_name: new.last_name.clone(),
            is_superuser: false,
            is_active: false,
        },
    };
    for change in &plan.new_grants {
        grant_role(&mut *tx, invitee.id, change).await?;
    }
    let expires = plan.issues_token.then(|| new.now.plus(new.ttl));
    let record = insert_invitation(
        &mut *tx,
        InvitationInsert {
            invitation: new,
            invitee: &invitee,
            kind: plan.kind,
            // Without a link there is nothing left to accept: the grants are in place.
            status: if plan.issues_token {
                "pending"
            } else {
                "accepted"
            },
            expires,
            grants: &plan.new_grants,
        },
    )
    .await?;
    if let Some(expires) = expires {
        replace_accept_token(
            &mut *tx, &new.token, record.id, invitee.id, new_user, expires, new.now,
        )
        .await?;
    }
    let accept_token = plan.issues_token.then(|| new.token.expose());
    if new.send_email {
        enqueue_email(
            &mut *tx,
            new,
            record.id,
            plan.kind,
            &invitee.email,
            accept_token,
        )
        .await?;
    }
    remember_idempotent_request(&mut *tx, new, record.id).await?;
    audit_created(&mut *tx, &[(record.id.0, new)]).await?;
    if new.return_link && plan.issues_token {
        audit_link_returned(&mut *tx, record.id, new).await?;
    }
    if events::has_endpoints(&mut *tx, &new.namespace).await? {
        events::announce_created(&mut *tx, new, &record, &invitee, &plan.new_grants).await?;
    }
    Ok(CreateOutcome::Created(record))
}

/// An invitation in a transaction of its own. On PostgreSQL, two transactions (of two
/// nodes, say) may race to create one user or to store one idempotency key; the loser
/// hits a unique index and tries again, and then sees the winner's row.
pub(super) async fn create_invitation_alone(
    pool: &sqlx::Pool<Db>,
    new: &NewInvitation,
) -> StoreResult<CreateOutcome> {
    let mut retries = 0;
    loop {
        match create_invitation_once(pool, new).await {
            Err(StoreError::Conflict(_)) if retries < 3 => retries += 1,
            outcome => return outcome,
        }
    }
}
