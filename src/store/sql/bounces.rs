//! Bounces: a report of a message that could not be delivered, applied to its outbox row.

use async_trait::async_trait;
use serde_json::json;
use sqlx::FromRow;

use super::backend::{self, Backend, Conn};
use super::events;
use super::rows::{db_error, load_invitation};
use crate::domain::bounce::StatusCode;
use crate::domain::{EventType, InvitationId, Timestamp};
use crate::store::{BounceOutcome, BounceStore, BouncedMessage, NewBounce, StoreResult};

#[derive(FromRow)]
struct Row {
    namespace: String,
    invitation_id: i64,
    message_id: String,
    kind: String,
    recipient: String,
    bounced_at: Option<i64>,
    bounce_status: Option<String>,
    bounce_notified_at: Option<i64>,
}

const SELECT: &str = "SELECT namespace, invitation_id, message_id, kind, recipient, bounced_at, \
     bounce_status, bounce_notified_at FROM outbox";

/// The outbox row of the message the report names: by its VERP id (the random part of its
/// Message-ID, so `<{id}@` begins the Message-ID whatever domain it had), else by the quoted
/// Message-ID. Locked: two copies of one report are applied one after the other.
async fn find(conn: &mut Conn, bounce: &NewBounce) -> StoreResult<Option<Row>> {
    if let Some(id) = &bounce.verp_id {
        // Hex digits only (`mail::bounce::verp_id`): nothing in it is a LIKE wildcard.
        let found: Option<Row> = sqlx::query_as(&format!(
            "{SELECT} WHERE message_id LIKE $1{}",
            backend::FOR_UPDATE
        ))
        .bind(format!("<{id}@%"))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error("finding the bounced message"))?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some(message_id) = &bounce.message_id else {
        return Ok(None);
    };
    let message_id = format!("<{}>", message_id.trim().trim_matches(['<', '>']));
    sqlx::query_as(&format!(
        "{SELECT} WHERE message_id = $1{}",
        backend::FOR_UPDATE
    ))
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("finding the bounced message"))
}

async fn audit(
    conn: &mut Conn,
    row: &Row,
    event: &str,
    detail: &str,
    now: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (namespace, at, event, subject, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.namespace)
    .bind(now.millis())
    .bind(event)
    .bind(row.invitation_id.to_string())
    .bind(detail)
    .execute(&mut *conn)
    .await
    .map_err(db_error("writing the audit log"))?;
    Ok(())
}

#[async_trait]
impl BounceStore for Backend {
    async fn record_bounce(&self, bounce: NewBounce) -> StoreResult<BounceOutcome> {
        let mut tx = self
            .writer()
            .begin_with(backend::BEGIN)
            .await
            .map_err(db_error("starting to record a bounce"))?;
        let Some(row) = find(&mut tx, &bounce).await? else {
            return Ok(BounceOutcome::Unknown);
        };
        let detail = format!("{} {}", bounce.status, bounce.diagnostic);
        let now = bounce.now;
        if !bounce.permanent {
            audit(&mut tx, &row, "email_delayed", &detail, now).await?;
            tx.commit()
                .await
                .map_err(db_error("committing a delayed message"))?;
            return Ok(BounceOutcome::Delayed {
                namespace: row.namespace,
                invitation_id: row.invitation_id,
            });
        }
        let first = row.bounced_at.is_none();
        if first {
            sqlx::query(
                "UPDATE outbox SET bounced_at = $1, bounce_status = $2, last_error = $3 \
                 WHERE message_id = $4",
            )
            .bind(now.millis())
            .bind(&bounce.status)
            .bind(&bounce.diagnostic)
            .bind(&row.message_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("marking the message bounced"))?;
            audit(&mut tx, &row, "email_bounced", &detail, now).await?;
        }
        let invitation = load_invitation(&mut tx, &row.namespace, InvitationId(row.invitation_id))
            .await?
            .ok_or_else(|| anyhow::anyhow!("the bounced message's invitation is gone"))?;
        let status = if first {
            bounce.status.clone()
        } else {
            row.bounce_status.clone().unwrap_or_default()
        };
        if first {
            let mail = json!({
                "kind": row.kind,
                "recipient": row.recipient,
                "status": status,
                "reason": StatusCode::parse(&status).map(|s| s.reason().words()),
                "diagnostic": bounce.diagnostic,
            });
            let data = events::invitation_mail_data(&row.namespace, &invitation, now, mail);
            events::emit(&mut tx, &row.namespace, EventType::EmailBounced, &data, now).await?;
        }
        // The notice is claimed here, in the transaction that holds the row: of two copies of
        // one report applied at once, only one sends it. When sending fails, the command gives
        // the claim back (`release_bounce_notice`) and the mail server retries.
        let notice_due = row.bounce_notified_at.is_none();
        if notice_due {
            sqlx::query("UPDATE outbox SET bounce_notified_at = $1 WHERE message_id = $2")
                .bind(now.millis())
                .bind(&row.message_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error("claiming the bounce notice"))?;
        }
        tx.commit().await.map_err(db_error("committing a bounce"))?;
        let message = Box::new(BouncedMessage {
            namespace: row.namespace,
            message_id: row.message_id,
            status,
            invitation,
            notice_due,
        });
        Ok(if first {
            BounceOutcome::Bounced(message)
        } else {
            BounceOutcome::AlreadyBounced(message)
        })
    }

    async fn release_bounce_notice(&self, message_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET bounce_notified_at = NULL WHERE message_id = $1")
            .bind(message_id)
            .execute(self.writer())
            .await
            .map_err(db_error("giving back the bounce notice"))?;
        Ok(())
    }
}
