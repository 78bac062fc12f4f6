//! Sending limits, counted over the stored invitations.

use std::time::Duration;

use super::backend::Conn;
use super::rows::db_error;
use crate::domain::Timestamp;
use crate::store::{CreateOutcome, Limit, LimitKind, NewInvitation, StoreResult};

/// The first sending limit that this invitation would exceed, if any.
pub(super) async fn sending_limit_reached(
    conn: &mut Conn,
    new: &NewInvitation,
) -> StoreResult<Option<CreateOutcome>> {
    if let Some(limit) = new.limits.per_inviter {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created) FROM invitations \
             WHERE created_by = $1 AND created > $2",
        )
        .bind(new.inviter.id.0)
        .bind(new.now.minus(limit.window).millis())
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error("counting the inviter's invitations"))?;
        if count >= i64::from(limit.max) {
            return Ok(Some(limited(LimitKind::PerInviter, limit, oldest, new.now)));
        }
    }
    if let Some(limit) = new.limits.per_recipient {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created) FROM invitations \
             WHERE namespace = $1 AND email_key = $2 AND created > $3",
        )
        .bind(&new.namespace)
        .bind(new.email.key())
        .bind(new.now.minus(limit.window).millis())
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error("counting the recipient's emails"))?;
        if count >= i64::from(limit.max) {
            return Ok(Some(limited(
                LimitKind::PerRecipient,
                limit,
                oldest,
                new.now,
            )));
        }
    }
    Ok(None)
}

fn limited(kind: LimitKind, limit: Limit, oldest: Option<i64>, now: Timestamp) -> CreateOutcome {
    let frees_at = oldest.map_or(now, Timestamp).plus(limit.window);
    let wait_ms = frees_at.millis().saturating_sub(now.millis()).max(1_000);
    CreateOutcome::Limited {
        limit: kind,
        retry_after: Duration::from_millis(wait_ms.unsigned_abs()),
    }
}
