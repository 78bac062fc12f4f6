//! `BulkStore`: invitations created in order, a group-commit batch at a time, and the answers
//! kept for bulk requests' `Idempotency-Key`.

use std::time::Duration;

use async_trait::async_trait;

use super::backend::{self, Backend, Conn, Db};
use super::invitation_batch::{create_invitations_in, create_together};
use super::invitation_create::create_invitation_alone;
use super::rows::db_error;
use crate::domain::{Timestamp, UserId};
use crate::store::group_commit::{MAX_BATCH, Together, same_error};
use crate::store::{BulkClaim, BulkStore, CreateOutcome, NewInvitation, StoreResult};

#[async_trait]
impl BulkStore for Backend {
    async fn create_invitations(
        &self,
        batch: Vec<NewInvitation>,
        dry_run: bool,
    ) -> StoreResult<Vec<StoreResult<CreateOutcome>>> {
        let outcomes = self
            .on_writer(move |pool| async move {
                if dry_run {
                    predict(&pool, &batch).await
                } else {
                    Ok(create_in_order(&pool, &batch).await)
                }
            })
            .await?;
        if !dry_run
            && outcomes
                .iter()
                .any(|outcome| matches!(outcome, Ok(CreateOutcome::Created(_))))
        {
            backend::email_queued(self);
        }
        Ok(outcomes)
    }

    async fn claim_bulk_key(
        &self,
        user: UserId,
        key: &str,
        request_hash: &[u8],
        now: Timestamp,
        kept_for: Duration,
        abandoned_after: Duration,
    ) -> StoreResult<BulkClaim> {
        let (key, request_hash) = (key.to_owned(), request_hash.to_vec());
        self.on_writer(move |pool| async move {
            let mut tx = pool
                .begin_with(backend::BEGIN)
                .await
                .map_err(db_error("starting to claim an idempotency key"))?;
            let claim = claim_in(
                &mut tx,
                user,
                &key,
                &request_hash,
                now,
                kept_for,
                abandoned_after,
            )
            .await?;
            tx.commit()
                .await
                .map_err(db_error("committing an idempotency key's claim"))?;
            Ok(claim)
        })
        .await
    }

    async fn release_bulk_key(&self, user: UserId, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.on_writer(move |pool| async move {
            sqlx::query(
                "DELETE FROM bulk_requests WHERE user_id = $1 AND key = $2 AND answer IS NULL",
            )
            .bind(user.0)
            .bind(&key)
            .execute(&pool)
            .await
            .map_err(db_error("releasing an idempotency key"))?;
            Ok(())
        })
        .await
    }

    async fn remember_bulk_answer(&self, user: UserId, key: &str, answer: &str) -> StoreResult<()> {
        let (key, answer) = (key.to_owned(), answer.to_owned());
        self.on_writer(move |pool| async move {
            sqlx::query("UPDATE bulk_requests SET answer = $3 WHERE user_id = $1 AND key = $2")
                .bind(user.0)
                .bind(&key)
                .bind(&answer)
                .execute(&pool)
                .await
                .map_err(db_error("keeping a bulk answer"))?;
            Ok(())
        })
        .await
    }
}

/// `claim_bulk_key` in its transaction. The row is locked (PostgreSQL) or the writer held
/// (SQLite) from the read to the claim, so two requests with one key cannot both claim it; the
/// sender's lock orders the claim with a keyed single POST (`create_invitation_in`), whose key
/// is in another table.
async fn claim_in(
    conn: &mut Conn,
    user: UserId,
    key: &str,
    request_hash: &[u8],
    now: Timestamp,
    kept_for: Duration,
    abandoned_after: Duration,
) -> StoreResult<BulkClaim> {
    backend::lock_sender(&mut *conn, user.0).await?;
    // Answers are large (up to a thousand invitations): none is kept past its time.
    sqlx::query("DELETE FROM bulk_requests WHERE created < $1")
        .bind(now.minus(kept_for).millis())
        .execute(&mut *conn)
        .await
        .map_err(db_error("forgetting old bulk answers"))?;
    let since = now.minus(kept_for).millis();
    let single: Option<i64> = sqlx::query_scalar(
        "SELECT created FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created >= $3",
    )
    .bind(user.0)
    .bind(key)
    .bind(since)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("reading an idempotency key"))?;
    // One key, one request: a key that created a single invitation is not a bulk one's.
    if single.is_some() {
        return Ok(BulkClaim::KeyReused);
    }
    // A conflicting claim waits here for the other's transaction, then finds its row.
    let claimed = sqlx::query(
        "INSERT INTO bulk_requests (user_id, key, request_hash, answer, created) \
         VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(user.0)
    .bind(key)
    .bind(request_hash)
    .bind(now.millis())
    .execute(&mut *conn)
    .await
    .map_err(db_error("claiming an idempotency key"))?
    .rows_affected();
    if claimed == 1 {
        return Ok(BulkClaim::Claimed);
    }
    let (hash, answer, created): (Vec<u8>, Option<String>, i64) = sqlx::query_as(&format!(
        "SELECT request_hash, answer, created FROM bulk_requests \
         WHERE user_id = $1 AND key = $2{}",
        backend::FOR_UPDATE
    ))
    .bind(user.0)
    .bind(key)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error("reading an idempotency key's claim"))?;
    if hash != request_hash {
        return Ok(BulkClaim::KeyReused);
    }
    match answer {
        Some(answer) => Ok(BulkClaim::Answered(answer)),
        None if created < now.minus(abandoned_after).millis() => {
            sqlx::query("UPDATE bulk_requests SET created = $3 WHERE user_id = $1 AND key = $2")
                .bind(user.0)
                .bind(key)
                .bind(now.millis())
                .execute(&mut *conn)
                .await
                .map_err(db_error("taking over an abandoned claim"))?;
            Ok(BulkClaim::Claimed)
        }
        None => Ok(BulkClaim::InProgress),
    }
}

/// The invitations in order, `MAX_BATCH` to a transaction, one transaction after the other:
/// each group sees what the groups before it committed, and within a group
/// `create_invitations_in` keeps the order wherever it matters. Other writers wait for at most
/// one group (on SQLite the writer connection is handed out fairly, so a waiting group commit
/// gets it between two of ours).
async fn create_in_order(
    pool: &sqlx::Pool<Db>,
    batch: &[NewInvitation],
) -> Vec<StoreResult<CreateOutcome>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for group in batch.chunks(MAX_BATCH) {
        let group: Vec<&NewInvitation> = group.iter().collect();
        match create_together(pool, &group).await {
            Ok(created) => outcomes.extend(created.into_iter().map(Ok)),
            Err(Together::Transaction(error)) => {
                outcomes.extend(group.iter().map(|_| Err(same_error(&error))));
            }
            // As a group commit does: each on its own, so that one cannot fail the others.
            Err(Together::Invitation(error)) => {
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::new(error)),
                    "an invitation failed a bulk group; creating the group's invitations one by one"
                );
                for new in group {
                    outcomes.push(create_invitation_alone(pool, new).await);
                }
            }
        }
    }
    outcomes
}

/// What `create_in_order` would do, in one transaction rolled back at the end: the same code
/// on the same data, so the prediction is exact but for what other requests change
/// meanwhile. The price is the write lock: on SQLite, other writers wait for the whole dry
/// run (about what the real run takes, tens of milliseconds for a thousand new addresses; see
/// BENCHMARKS.md) instead of one group; on PostgreSQL only requests about the same inviter or
/// addresses wait. Groups of `MAX_BATCH` still, so that no statement outgrows the database's
/// limit on parameters.
async fn predict(
    pool: &sqlx::Pool<Db>,
    batch: &[NewInvitation],
) -> StoreResult<Vec<StoreResult<CreateOutcome>>> {
    let mut tx = pool
        .begin_with(backend::BEGIN)
        .await
        .map_err(db_error("starting a dry run"))?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for group in batch.chunks(MAX_BATCH) {
        let group: Vec<&NewInvitation> = group.iter().collect();
        outcomes.extend(
            create_invitations_in(&mut tx, &group)
                .await?
                .into_iter()
                .map(Ok),
        );
    }
    tx.rollback()
        .await
        .map_err(db_error("rolling back a dry run"))?;
    Ok(outcomes)
}
