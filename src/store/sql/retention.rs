//! Retention: deleting what is kept no longer, in one transaction per run.
//!
//! The statements run in this order: failed logins before the other audit records (so each
//! row is counted under one heading), and an outbox row's delivery is copied to its invitation
//! in the transaction that deletes the row, so the invitation shows the same `delivery`.

use async_trait::async_trait;

use super::backend::{self, Backend, Conn};
use super::rows::db_error;
use crate::store::{PrunePolicy, PruneReport, PruneRun, RetentionStore, StoreResult};

/// Which rows of a table go, with the time they are compared with (`$1`).
struct Rule {
    table: &'static str,
    condition: &'static str,
    context: &'static str,
}

const IDEMPOTENCY_KEYS: Rule = Rule {
    table: "idempotency_keys",
    condition: "created < $1",
    context: "pruning idempotency keys",
};
const SESSIONS: Rule = Rule {
    table: "sessions",
    condition: "expires < $1",
    context: "pruning expired sessions",
};
const LOGIN_FAILURES: Rule = Rule {
    table: "audit_log",
    condition: "event = 'login_failed' AND at < $1",
    context: "pruning failed-login records",
};
const AUDIT: Rule = Rule {
    table: "audit_log",
    condition: "at < $1",
    context: "pruning audit records",
};
const OUTBOX_SENT: Rule = Rule {
    table: "outbox",
    condition: "status = 'sent' AND sent_at < $1",
    context: "pruning sent outbox messages",
};

/// Copies what the outbox rows about to be pruned say about the delivery to their invitations.
const KEEP_DELIVERY: &str = "UPDATE invitations SET \
     delivery_status = (SELECT o.status FROM outbox o WHERE o.invitation_id = invitations.id), \
     delivery_attempts = (SELECT o.attempts FROM outbox o WHERE o.invitation_id = invitations.id), \
     delivery_last_error = (SELECT o.last_error FROM outbox o WHERE o.invitation_id = invitations.id), \
     delivery_sent_at = (SELECT o.sent_at FROM outbox o WHERE o.invitation_id = invitations.id) \
     WHERE id IN (SELECT invitation_id FROM outbox WHERE status = 'sent' AND sent_at < $1)";

async fn apply(conn: &mut Conn, rule: &Rule, before: i64, dry_run: bool) -> StoreResult<u64> {
    if dry_run {
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            rule.table, rule.condition
        ))
        .bind(before)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error(rule.context))?;
        return Ok(count.max(0).unsigned_abs());
    }
    let done = sqlx::query(&format!(
        "DELETE FROM {} WHERE {}",
        rule.table, rule.condition
    ))
    .bind(before)
    .execute(&mut *conn)
    .await
    .map_err(db_error(rule.context))?;
    Ok(done.rows_affected())
}

async fn prune_in(
    conn: &mut Conn,
    policy: &PrunePolicy,
    dry_run: bool,
) -> StoreResult<PruneReport> {
    let mut report = PruneReport {
        idempotency_keys: apply(
            conn,
            &IDEMPOTENCY_KEYS,
            policy.idempotency_keys_before.millis(),
            dry_run,
        )
        .await?,
        sessions: apply(
            conn,
            &SESSIONS,
            policy.sessions_expired_before.millis(),
            dry_run,
        )
        .await?,
        ..PruneReport::default()
    };
    if let Some(before) = policy.login_failures_before {
        report.login_failures = apply(conn, &LOGIN_FAILURES, before.millis(), dry_run).await?;
    }
    if let Some(before) = policy.audit_before {
        report.audit_records = apply(conn, &AUDIT, before.millis(), dry_run).await?;
        if dry_run {
            // The failed logins were counted above; a real run deleted them first.
            if let Some(logins) = policy.login_failures_before {
                let both = logins.min(before);
                report.audit_records = report
                    .audit_records
                    .saturating_sub(apply(conn, &LOGIN_FAILURES, both.millis(), true).await?);
            }
        }
    }
    if let Some(before) = policy.outbox_sent_before {
        if !dry_run {
            sqlx::query(KEEP_DELIVERY)
                .bind(before.millis())
                .execute(&mut *conn)
                .await
                .map_err(db_error("keeping the delivery of pruned messages"))?;
        }
        report.outbox_messages = apply(conn, &OUTBOX_SENT, before.millis(), dry_run).await?;
    }
    Ok(report)
}

#[async_trait]
impl RetentionStore for Backend {
    async fn prune(&self, policy: &PrunePolicy, dry_run: bool) -> StoreResult<PruneRun> {
        let policy = *policy;
        self.on_writer(move |pool| async move {
            let mut tx = pool.begin().await.map_err(db_error("starting to prune"))?;
            if let Some(lock) = backend::PRUNE_LOCK {
                let locked: bool = sqlx::query_scalar(lock)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error("taking the janitor's lock"))?;
                if !locked {
                    return Ok(PruneRun::Skipped);
                }
            }
            let report = prune_in(&mut tx, &policy, dry_run).await?;
            if dry_run {
                tx.rollback().await.map_err(db_error("ending a dry run"))?;
            } else {
                tx.commit()
                    .await
                    .map_err(db_error("committing the pruning"))?;
            }
            Ok(PruneRun::Done(report))
        })
        .await
    }
}
