//! Retention: deleting what is kept no longer.
//!
//! Failed logins go before the other audit records (so each row is counted under one heading),
//! and an outbox row's delivery is copied to its invitation in the transaction that deletes the
//! row, so the invitation shows the same `delivery`. The big tables are pruned in batches, a
//! transaction each: a first run over a long history holds SQLite's one writer (or PostgreSQL's
//! row locks) a short while at a time, never for the whole run. A dry run counts, in one
//! transaction, with the same conditions.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::backend::{self, Backend, Conn, Db};
use super::rows::db_error;
use crate::domain::Timestamp;
use crate::store::{PrunePolicy, PruneReport, PruneRun, RetentionStore, StoreResult};

/// Rows deleted per transaction.
const BATCH: i64 = 2_000;

/// One kind of row that goes: where, which (compared with the time `$1`), and whether it is
/// deleted in batches (tables with an `id`).
struct Rule {
    table: &'static str,
    condition: &'static str,
    batched: bool,
    context: &'static str,
}

const IDEMPOTENCY_KEYS: Rule = Rule {
    table: "idempotency_keys",
    condition: "created < $1",
    batched: false,
    context: "pruning idempotency keys",
};
/// The answers of bulk requests (up to a thousand invitations each) are kept as long as the
/// keys: a claim never answered is older still, and goes too.
const BULK_ANSWERS: Rule = Rule {
    table: "bulk_requests",
    condition: "created < $1",
    batched: false,
    context: "pruning bulk answers",
};
const SESSIONS: Rule = Rule {
    table: "sessions",
    condition: "expires < $1",
    batched: false,
    context: "pruning expired sessions",
};
const LOGIN_FAILURES: Rule = Rule {
    table: "audit_log",
    condition: "event = 'login_failed' AND at < $1",
    batched: true,
    context: "pruning failed-login records",
};
const AUDIT: Rule = Rule {
    table: "audit_log",
    condition: "at < $1",
    batched: true,
    context: "pruning audit records",
};
const OUTBOX_SENT: Rule = Rule {
    table: "outbox",
    condition: "status = 'sent' AND sent_at < $1",
    batched: true,
    context: "pruning sent outbox messages",
};

const NOTICES_SENT: Rule = Rule {
    table: "notices",
    condition: "status = 'sent' AND sent_at < $1",
    batched: true,
    context: "pruning sent notices",
};

async fn count(conn: &mut Conn, rule: &Rule, before: Timestamp) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {} WHERE {}",
        rule.table, rule.condition
    ))
    .bind(before.millis())
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error(rule.context))?;
    Ok(count.max(0).unsigned_abs())
}

/// Deletes what `rule` says, a batch at most when it is batched.
async fn delete(conn: &mut Conn, rule: &Rule, before: Timestamp) -> StoreResult<u64> {
    if rule.table == OUTBOX_SENT.table {
        return delete_sent_messages(conn, before).await;
    }
    let sql = if rule.batched {
        format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {condition} \
             ORDER BY id LIMIT {BATCH})",
            table = rule.table,
            condition = rule.condition
        )
    } else {
        format!("DELETE FROM {} WHERE {}", rule.table, rule.condition)
    };
    let done = sqlx::query(&sql)
        .bind(before.millis())
        .execute(&mut *conn)
        .await
        .map_err(db_error(rule.context))?;
    Ok(done.rows_affected())
}

/// A batch of sent messages: their delivery is copied to their invitations, then the rows go.
/// The rows are named by id, so that the copy and the delete see the same ones; the delete
/// checks the condition again (a resend may have queued a row meanwhile: it stays).
async fn delete_sent_messages(conn: &mut Conn, before: Timestamp) -> StoreResult<u64> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT id, invitation_id FROM outbox WHERE {} ORDER BY id LIMIT {BATCH}",
        OUTBOX_SENT.condition
    ))
    .bind(before.millis())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error(OUTBOX_SENT.context))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut keep = QueryBuilder::<Db>::new(
        "UPDATE invitations SET \
         delivery_status = (SELECT CASE WHEN o.bounced_at IS NOT NULL THEN 'bounced' ELSE o.status END \
           FROM outbox o WHERE o.invitation_id = invitations.id), \
         delivery_attempts = (SELECT o.attempts FROM outbox o WHERE o.invitation_id = invitations.id), \
         delivery_last_error = (SELECT o.last_error FROM outbox o WHERE o.invitation_id = invitations.id), \
         delivery_sent_at = (SELECT o.sent_at FROM outbox o WHERE o.invitation_id = invitations.id) \
         WHERE id IN (",
    );
    let mut ids = keep.separated(", ");
    for (_, invitation) in &rows {
        ids.push_bind(*invitation);
    }
    keep.push(")");
    keep.build()
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map_err(db_error("keeping the delivery of pruned messages"))?;
    let mut delete =
        QueryBuilder::<Db>::new("DELETE FROM outbox WHERE status = 'sent' AND sent_at < ");
    delete.push_bind(before.millis()).push(" AND id IN (");
    let mut ids = delete.separated(", ");
    for (id, _) in &rows {
        ids.push_bind(*id);
    }
    delete.push(")");
    let done = delete
        .build()
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map_err(db_error(OUTBOX_SENT.context))?;
    Ok(done.rows_affected())
}

/// A rule, the time it compares with, and the count of the report it adds to.
type Step = (&'static Rule, Timestamp, fn(&mut PruneReport) -> &mut u64);

/// The rules in the order they run.
fn steps(policy: &PrunePolicy) -> Vec<Step> {
    let mut steps: Vec<Step> = vec![
        (&IDEMPOTENCY_KEYS, policy.idempotency_keys_before, |r| {
            &mut r.idempotency_keys
        }),
        (&BULK_ANSWERS, policy.idempotency_keys_before, |r| {
            &mut r.bulk_answers
        }),
        (&SESSIONS, policy.sessions_expired_before, |r| {
            &mut r.sessions
        }),
    ];
    if let Some(before) = policy.login_failures_before {
        steps.push((&LOGIN_FAILURES, before, |r| &mut r.login_failures));
    }
    if let Some(before) = policy.audit_before {
        steps.push((&AUDIT, before, |r| &mut r.audit_records));
    }
    if let Some(before) = policy.outbox_sent_before {
        steps.push((&OUTBOX_SENT, before, |r| &mut r.outbox_messages));
        // The creators' notices: nothing an invitation shows reads them once sent.
        steps.push((&NOTICES_SENT, before, |r| &mut r.notices));
    }
    steps
}

/// What a run would delete.
async fn count_all(conn: &mut Conn, policy: &PrunePolicy) -> StoreResult<PruneReport> {
    let mut report = PruneReport::default();
    for (rule, before, field) in steps(policy) {
        *field(&mut report) = count(conn, rule, before).await?;
    }
    // The audit count includes the failed logins deleted before it.
    if let (Some(audit), Some(logins)) = (policy.audit_before, policy.login_failures_before) {
        let counted_twice = count(conn, &LOGIN_FAILURES, audit.min(logins)).await?;
        report.audit_records = report.audit_records.saturating_sub(counted_twice);
    }
    Ok(report)
}

/// Takes the janitor's lock for the transaction, where there is one; `false`: another holds it.
async fn lock(conn: &mut Conn) -> StoreResult<bool> {
    match backend::PRUNE_LOCK {
        Some(lock) => sqlx::query_scalar(lock)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("taking the janitor's lock")),
        None => Ok(true),
    }
}

#[async_trait]
impl RetentionStore for Backend {
    async fn prune(&self, policy: &PrunePolicy, dry_run: bool) -> StoreResult<PruneRun> {
        let policy = *policy;
        self.on_writer(move |pool| async move {
            if dry_run {
                let mut tx = pool
                    .begin_with(super::backend::BEGIN)
                    .await
                    .map_err(db_error("starting a dry run"))?;
                if !lock(&mut tx).await? {
                    return Ok(PruneRun::Skipped);
                }
                let report = count_all(&mut tx, &policy).await?;
                tx.rollback().await.map_err(db_error("ending a dry run"))?;
                return Ok(PruneRun::Done(report));
            }
            let mut report = PruneReport::default();
            let mut first = true;
            for (rule, before, field) in steps(&policy) {
                loop {
                    let mut tx = pool
                        .begin_with(super::backend::BEGIN)
                        .await
                        .map_err(db_error("starting to prune"))?;
                    if !lock(&mut tx).await? {
                        // Another node started meanwhile: it goes on from here.
                        return Ok(if first {
                            PruneRun::Skipped
                        } else {
                            PruneRun::Done(report)
                        });
                    }
                    first = false;
                    let deleted = delete(&mut tx, rule, before).await?;
                    tx.commit()
                        .await
                        .map_err(db_error("committing the pruning"))?;
                    *field(&mut report) += deleted;
                    if !rule.batched || deleted < BATCH.unsigned_abs() {
                        break;
                    }
                }
            }
            Ok(PruneRun::Done(report))
        })
        .await
    }
}
