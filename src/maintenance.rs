//! Upkeep of the database while the service runs: the janitor deletes what is kept no longer
//! (idempotency keys, expired sessions, old audit records and failed logins, the outbox rows of
//! long-sent emails), at start and then every `CBH_PRUNE_INTERVAL`. `cbh-invite prune` runs the
//! same thing once. Nothing an invitation shows is lost (see `store::RetentionStore`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Limits, RetentionSettings};
use crate::domain::Timestamp;
use crate::store::{PrunePolicy, PruneRun, Store, StoreResult};

/// How long an `Idempotency-Key` answers replays; the HTTP layer keeps them as long
/// (`http::invitations::handlers`, 24 hours).
const IDEMPOTENCY_KEYS_KEPT_FOR: Duration = Duration::from_secs(24 * 3600);

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

/// Runs the janitor until `stop` turns true: once at once, then every interval. A failed run
/// is logged and tried again at the next.
pub async fn run_janitor(
    store: Arc<dyn Store>,
    retention: Retention,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        match retention.prune(store.as_ref(), false).await {
            Ok(PruneRun::Done(report)) if report.total() > 0 => {
                tracing::info!(
                    idempotency_keys = report.idempotency_keys,
                    sessions = report.sessions,
                    audit_records = report.audit_records,
                    login_failures = report.login_failures,
                    outbox_messages = report.outbox_messages,
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
