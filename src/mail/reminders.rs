//! The reminder scan (`CBH_REMINDERS`): every second, on the nodes that deliver mail, queue the
//! automatic reminders that are due and wake the outbox worker. Each reminder is claimed in its
//! own transaction (`store::ReminderStore`), so nodes scanning side by side, or a node restarted
//! mid-scan, send each one once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::config::Limit;
use crate::domain::Timestamp;
use crate::store::{ReminderReport, ReminderScan, SendLimits, Store, StoreResult};

/// How often the scan looks: short enough for reminders seconds apart (the tests' `2s,4s`),
/// and one indexed read per slot when nothing is due.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// The most reminders of one slot queued in one pass; the next pass takes the rest.
const BATCH: i64 = 200;

pub struct Reminders {
    store: Arc<dyn Store>,
    schedule: Vec<Duration>,
    per_recipient: Option<Limit>,
    mail_domain: String,
    /// The outbox worker's wake-up: a queued reminder goes out at once.
    outbox_wakeup: Arc<Notify>,
}

impl Reminders {
    pub fn new(
        store: Arc<dyn Store>,
        schedule: Vec<Duration>,
        per_recipient: Option<Limit>,
        mail_domain: String,
        outbox_wakeup: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            schedule,
            per_recipient,
            mail_domain,
            outbox_wakeup,
        }
    }

    /// Whether any reminder is configured (`CBH_REMINDERS` is not `off`).
    pub fn enabled(&self) -> bool {
        !self.schedule.is_empty()
    }

    /// One pass at `now`.
    pub async fn remind_due(&self, now: Timestamp) -> StoreResult<ReminderReport> {
        if !self.enabled() {
            return Ok(ReminderReport::default());
        }
        let report = self
            .store
            .send_due_reminders(&ReminderScan {
                schedule: self.schedule.clone(),
                limits: SendLimits {
                    per_inviter: None,
                    per_recipient: self.per_recipient,
                },
                mail_domain: self.mail_domain.clone(),
                now,
                batch: BATCH,
            })
            .await?;
        if report.sent > 0 {
            self.outbox_wakeup.notify_one();
        }
        Ok(report)
    }

    /// Scans until `stop` turns true. A failed pass is logged and tried again at the next.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.remind_due(Timestamp::now()).await {
                Ok(report) if report.sent + report.skipped > 0 => tracing::info!(
                    sent = report.sent,
                    skipped = report.skipped,
                    "automatic reminders queued"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "reminder scan failed")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(SCAN_INTERVAL) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
