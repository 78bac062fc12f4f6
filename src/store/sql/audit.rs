//! The audit log.

use async_trait::async_trait;
use sqlx::{FromRow, QueryBuilder};

use super::backend::{Backend, Conn, Db};
use super::rows::db_error;
use crate::domain::{InvitationId, Timestamp};
use crate::store::{AuditEvent, AuditRecord, AuditStore, NewInvitation, StoreResult};

/// The `invitation_created` audit records of invitations (by id), in their transaction.
pub(super) async fn audit_created(
    conn: &mut Conn,
    created: &[(i64, &NewInvitation)],
) -> StoreResult<()> {
    let mut query = QueryBuilder::<Db>::new(
        "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip) ",
    );
    query.push_values(created, |mut row, (id, new)| {
        row.push_bind(new.namespace.as_str())
            .push_bind(new.now.millis())
            .push_bind("invitation_created")
            .push_bind(new.inviter.id.0)
            .push_bind(id.to_string())
            .push_bind(new.client_ip.as_deref());
    });
    query
        .build()
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map_err(db_error("writing the audit log"))?;
    Ok(())
}

/// The accept link of a new invitation was handed to its inviter in the API answer
/// (`return_link`), written in the invitation's transaction. The link itself is never recorded.
pub(super) async fn audit_link_returned(
    conn: &mut Conn,
    id: InvitationId,
    new: &NewInvitation,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip) \
         VALUES ($1, $2, 'invitation_link_returned', $3, $4, $5)",
    )
    .bind(new.namespace.as_str())
    .bind(new.now.millis())
    .bind(new.inviter.id.0)
    .bind(id.0.to_string())
    .bind(new.client_ip.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(db_error("writing the audit log"))?;
    Ok(())
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    namespace: String,
    at: i64,
    event: String,
    actor_email: Option<String>,
    subject: Option<String>,
    client_ip: Option<String>,
    detail: Option<String>,
}

#[async_trait]
impl AuditStore for Backend {
    async fn record_audit(&self, event: AuditEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&event.namespace)
        .bind(event.at.millis())
        .bind(event.event)
        .bind(event.actor.map(|u| u.0))
        .bind(&event.subject)
        .bind(&event.client_ip)
        .bind(&event.detail)
        .execute(self.writer())
        .await
        .map_err(db_error("writing the audit log"))?;
        Ok(())
    }

    async fn audit_since(&self, since: Timestamp, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT a.id, a.namespace, a.at, a.event, u.email AS actor_email, a.subject, \
             a.client_ip, a.detail FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id \
             WHERE a.at >= $1 ORDER BY a.at, a.id LIMIT $2",
        )
        .bind(since.millis())
        .bind(limit)
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(db_error("reading the audit log"))?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRecord {
                id: r.id,
                namespace: r.namespace,
                at: Timestamp(r.at),
                event: r.event,
                actor_email: r.actor_email,
                subject: r.subject,
                client_ip: r.client_ip,
                detail: r.detail,
            })
            .collect())
    }
}
