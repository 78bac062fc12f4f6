//! Events for webhooks, queued in the transaction of the change they announce: nothing is
//! lost, and nothing is announced that did not commit.

use serde_json::{Value, json};

use super::backend::Conn;
use super::rows::db_error;
use crate::domain::grant::GrantChange;
use crate::domain::token::random_hex;
use crate::domain::{EventType, Project, Role, Timestamp, User};
use crate::store::resource::InvitationResource;
use crate::store::{InvitationRecord, NewInvitation, StoreResult};

/// Whether the namespace has any webhook endpoint: changes that would build costly event data
/// (a batch of invitations) ask first, so that without endpoints an event costs this one
/// indexed read.
pub(super) async fn has_endpoints(conn: &mut Conn, namespace: &str) -> StoreResult<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM webhook_endpoints WHERE namespace = $1 LIMIT 1")
            .bind(namespace)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("looking for webhook endpoints"))?;
    Ok(found.is_some())
}

/// Queue one delivery of `event` to each endpoint of `namespace` that subscribes to it, inside
/// the caller's transaction. `data` is the event's `data` object. One statement, which inserts
/// nothing where no endpoint subscribes.
pub(super) async fn emit(
    conn: &mut Conn,
    namespace: &str,
    event: EventType,
    data: &Value,
    now: Timestamp,
) -> StoreResult<()> {
    let body = json!({
        "type": event.as_str(),
        "timestamp": now.to_iso8601(),
        "data": data,
    })
    .to_string();
    // One id per event, shared by its endpoints and kept across retries: receivers drop
    // duplicates by it.
    let webhook_id = format!("msg_{}", random_hex(16));
    sqlx::query(
        "INSERT INTO webhook_deliveries (namespace, endpoint_id, event, webhook_id, body, \
         status, attempts, next_attempt_at, created) \
         SELECT namespace, id, $2, $3, $4, 'queued', 0, $5, $5 FROM webhook_endpoints \
         WHERE namespace = $1 AND (events = '*' OR events LIKE $6)",
    )
    .bind(namespace)
    .bind(event.as_str())
    .bind(&webhook_id)
    .bind(&body)
    .bind(now.millis())
    .bind(format!("%,{},%", event.as_str()))
    .execute(&mut *conn)
    .await
    .map_err(db_error("queueing webhook deliveries"))?;
    Ok(())
}

/// `emit` for an invitation event, whose `data` is the invitation (`invitation_data`).
pub(super) async fn emit_invitation(
    conn: &mut Conn,
    namespace: &str,
    event: EventType,
    record: &InvitationRecord,
    now: Timestamp,
) -> StoreResult<()> {
    let data = invitation_data(namespace, record, now);
    emit(conn, namespace, event, &data, now).await
}

/// The `data` of every invitation event: the invitation exactly as the API shows it, so a
/// receiver reads `data.id` and `data.status` as it would read `GET …/invitations/{id}/`.
pub(super) fn invitation_data(namespace: &str, record: &InvitationRecord, now: Timestamp) -> Value {
    json!(InvitationResource::new(namespace, record, now))
}

/// The `data` of an email event (`email.failed`, `email.bounced`): the invitation's fields, as
/// `invitation_data`, plus `mail`, the message concerned. A superset of the invitation, so one
/// receiver reads every invitation event alike; `mail` rather than `email`, which is already
/// the invitee's address.
pub(super) fn invitation_mail_data(
    namespace: &str,
    record: &InvitationRecord,
    now: Timestamp,
    mail: Value,
) -> Value {
    let mut data = invitation_data(namespace, record, now);
    data["mail"] = mail;
    data
}

/// A user, as user events and `membership.changed` show them.
pub(super) fn user_json(user: &User) -> Value {
    json!({
        "id": user.id.0,
        "email": user.email.as_str(),
        "first_name": user.first_name.as_str(),
        "last_name": user.last_name.as_str(),
        "is_active": user.is_active,
    })
}

/// The data of `user.activated` and `user.deactivated`.
pub(super) fn user_data(user: &User) -> Value {
    json!({ "user": user_json(user) })
}

/// The data of `membership.changed`; a role of `None` is no role (given, or removed).
pub(super) fn membership_data(
    project: &Project,
    user: &User,
    old_role: Option<Role>,
    new_role: Option<Role>,
) -> Value {
    json!({
        "project": { "id": project.id.0, "name": project.name },
        "user": user_json(user),
        "old_role": old_role.map(Role::as_str),
        "new_role": new_role.map(Role::as_str),
    })
}

/// The events of a new invitation, if the namespace has endpoints: `invitation.created`, and a
/// `membership.changed` per grant it added or raised (old role to new).
pub(super) async fn announce_created(
    conn: &mut Conn,
    new: &NewInvitation,
    record: &InvitationRecord,
    invitee: &User,
    granted: &[GrantChange],
) -> StoreResult<()> {
    emit_invitation(
        conn,
        &new.namespace,
        EventType::InvitationCreated,
        record,
        new.now,
    )
    .await?;
    for change in granted {
        let Some(project) = new.projects.iter().find(|p| p.id == change.project) else {
            continue;
        };
        let data = membership_data(project, invitee, change.previous, Some(change.role));
        emit(
            conn,
            &new.namespace,
            EventType::MembershipChanged,
            &data,
            new.now,
        )
        .await?;
    }
    Ok(())
}
