//! The suppression list: the mailboxes that asked a namespace for no more invitations. Every
//! place that decides to email someone asks it inside its transaction, after taking the
//! mailbox's lock (`limits::lock_mailboxes`), which a decline takes too before it adds one: so
//! an invitation racing a decline either commits first or sees the suppression.

use std::collections::BTreeSet;

use sqlx::{FromRow, QueryBuilder};

use super::backend::{Backend, Conn, Db};
use super::rows::db_error;
use crate::domain::{EmailAddress, Timestamp};
use crate::store::{StoreResult, Suppression};

pub(super) async fn is_suppressed(
    conn: &mut Conn,
    namespace: &str,
    recipient_key: &str,
) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE namespace = $1 AND recipient_key = $2)",
    )
    .bind(namespace)
    .bind(recipient_key)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error("reading the suppression list"))
}

/// Which of these (namespace, recipient key) pairs are on the list, in one query.
pub(super) async fn suppressed_among(
    conn: &mut Conn,
    pairs: &BTreeSet<(String, String)>,
) -> StoreResult<BTreeSet<(String, String)>> {
    if pairs.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut query = QueryBuilder::<Db>::new(
        "SELECT namespace, recipient_key FROM suppressions WHERE recipient_key IN (",
    );
    let mut list = query.separated(", ");
    for (_, key) in pairs {
        list.push_bind(key.as_str());
    }
    query.push(")");
    let found: Vec<(String, String)> = query
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("reading the suppression list"))?;
    Ok(found
        .into_iter()
        .filter(|pair| pairs.contains(pair))
        .collect())
}

/// Adds the address's mailbox to the namespace's list (kept as it was if already there).
pub(super) async fn suppress(
    conn: &mut Conn,
    namespace: &str,
    email: &str,
    invitation_id: i64,
    now: Timestamp,
) -> StoreResult<()> {
    let key = EmailAddress::from_trusted(email.to_owned()).recipient_key();
    sqlx::query(
        "INSERT INTO suppressions (namespace, recipient_key, email, invitation_id, created) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (namespace, recipient_key) DO NOTHING",
    )
    .bind(namespace)
    .bind(key)
    .bind(email)
    .bind(invitation_id)
    .bind(now.millis())
    .execute(&mut *conn)
    .await
    .map_err(db_error("adding to the suppression list"))?;
    Ok(())
}

#[derive(FromRow)]
struct SuppressionRow {
    namespace: String,
    recipient_key: String,
    email: String,
    invitation_id: Option<i64>,
    created: i64,
}

pub(super) async fn list(backend: &Backend, namespace: &str) -> StoreResult<Vec<Suppression>> {
    let rows: Vec<SuppressionRow> = sqlx::query_as(
        "SELECT namespace, recipient_key, email, invitation_id, created FROM suppressions \
         WHERE namespace = $1 ORDER BY created, recipient_key",
    )
    .bind(namespace)
    .fetch_all(&mut *backend.read().await?)
    .await
    .map_err(db_error("listing the suppression list"))?;
    Ok(rows
        .into_iter()
        .map(|row| Suppression {
            namespace: row.namespace,
            recipient_key: row.recipient_key,
            email: row.email,
            invitation_id: row.invitation_id,
            created: Timestamp(row.created),
        })
        .collect())
}

pub(super) async fn remove(
    backend: &Backend,
    namespace: &str,
    recipient_key: &str,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM suppressions WHERE namespace = $1 AND recipient_key = $2")
        .bind(namespace)
        .bind(recipient_key)
        .execute(backend.writer())
        .await
        .map_err(db_error("removing from the suppression list"))?;
    Ok(done.rows_affected() > 0)
}
