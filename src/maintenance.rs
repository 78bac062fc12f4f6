//! Upkeep of the database while the service runs: the janitor deletes what is kept no longer
//! (idempotency keys, expired sessions, old audit records and failed logins, the outbox rows of
//! long-sent emails), at start and then every `CBH_PRUNE_INTERVAL`. `cbh-invite prune` runs the
//! same thing once. Nothing an invitation shows is lost (see `store::RetentionStore`).
//!
//! Each run first sweeps expiry: pending invitations past their expiry are marked `expired`
//! (`store::ExpiryStore`). Clients see such an invitation as expired from the moment it
//! expires; the sweep stores it, kills its links for good and announces it
//! (`invitation.expired`), so the interval only delays the announcement.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Limits, RetentionSettings};
use crate::domain::Timestamp;
use crate::store::{PrunePolicy, PruneRun, Store, StoreResult};

/// How long an `Idempotency-Key` answers replays; the HTTP layer keeps them as long
/// (`http::invitations::handlers`, 24 hours).
const IDEMPOTENCY_KEYS_KEPT_FOR: Duration = Duration::from_secs(24 * 3600);

/// The most invitations the sweep marks in one transaction; it goes on until none is left.
const EXPIRY_BATCH: i64 = 500;

/// Marks every pending invitation past its expiry at `now` as `expired`, batch by batch, and
/// returns how many this call marked (another node sweeping at once marks the others).
pub async fn sweep_expired(store: &dyn Store, now: Timestamp) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let marked = store.expire_due(now, EXPIRY_BATCH).await?.len();
        total += marked;
        // A short batch: nothing left, or the rest is held by another sweep (PostgreSQL).
        if i64::try_from(marked).unwrap_or(i64::MAX) < EXPIRY_BATCH {
            return Ok(total);
        }
    }
}

/// What retention allows at `now`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub settings: RetentionSettings,
    /// The longest window of the login limits: older failed logins count against nothing.
    pub login_window: Option<Duration>,
}

impl Retention {
    pub fn new(settings: RetentionSettings, limits: &Limits) -> Self {
        let login_window = [
            limits.login_failures_per_account,
            limits.login_account_ceiling,
            limits.login_failures_per_client,
        ]
        .into_iter()
        .flatten()
        .map(|limit| limit.window)
        .max();
        Self {
            settings,
            login_window,
        }
    }

    pub fn policy(&self, now: Timestamp) -> PrunePolicy {
        PrunePolicy {
            idempotency_keys_before: now.minus(IDEMPOTENCY_KEYS_KEPT_FOR),
            sessions_expired_before: now,
            audit_before: self.settings.audit.map(|kept| now.minus(kept)),
            // With no login limit, failed logins are audit records like any other.
            login_failures_before: self.login_window.map(|window| now.minus(window)),
            outbox_sent_before: self.settings.outbox.map(|kept| now.minus(kept)),
        }
    }

    /// One run, now.
    pub async fn prune(&self, store: &dyn Store, dry_run: bool) -> StoreResult<PruneRun> {
        store.prune(&self.policy(Timestamp::now()), dry_run).await
    }
}

/// Runs the janitor (the expiry sweep, then pruning) until `stop` turns true: once at once,
/// then every interval. A failed run is logged and tried again at the next.
pub async fn run_janitor(
    store: Arc<dyn Store>,
    retention: Retention,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        match sweep_expired(store.as_ref(), Timestamp::now()).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "janitor: invitations marked expired"),
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "janitor: expiry sweep failed")
            }
        }
        match retention.prune(store.as_ref(), false).await {
            Ok(PruneRun::Done(report)) if report.total() > 0 => {
                tracing::info!(
                    idempotency_keys = report.idempotency_keys,
                    bulk_answers = report.bulk_answers,
                    sessions = report.sessions,
                    audit_records = report.audit_records,
                    login_failures = report.login_failures,
                    outbox_messages = report.outbox_messages,
                    notices = report.notices,
                    "janitor: old records deleted"
                );
            }
            Ok(PruneRun::Done(_)) => tracing::debug!("janitor: nothing to delete"),
            Ok(PruneRun::Skipped) => {
                tracing::debug!("janitor: another node is pruning; skipped")
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "janitor: pruning failed")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retention.settings.interval) => {}
            _ = stop.changed() => {}
        }
    }
}
