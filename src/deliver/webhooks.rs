//! The webhook worker: claims due deliveries, signs and posts them, and records the result.
//!
//! As the email outbox (`mail::outbox`): a claim is a lease, so a delivery whose worker died
//! is sent again when the lease ends, by any node; answers other than 2xx, timeouts and refused
//! connections are retried with the same backoff and attempts, and the last attempt leaves the
//! delivery `failed` with its error. The `webhook-id` is the event's, so a receiver drops the
//! rare duplicate. A connection to a refused address fails at once: retrying cannot help.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::client::{build_client, error_chain, refusal, refused_before_connecting};
use crate::config::{DeliverySettings, WebhookSettings};
use crate::domain::Timestamp;
use crate::domain::webhook::parse_url;
use crate::mail::outbox::{backoff, random_unit};
use crate::mail::{DeliveryReport, SendError};
use crate::store::{Store, WebhookMessage};

/// Deliveries claimed at once; also how many are sent side by side.
const BATCH_SIZE: i64 = 16;
const SENDS_IN_FLIGHT: usize = 8;
/// Kept of a receiver's error answer in `last_error`.
const ANSWER_EXCERPT: usize = 200;

enum Outcome {
    Sent,
    Retry(String, Timestamp),
    Failed(String),
}

/// What this node's webhook worker did.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

pub struct WebhookWorker {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    delivery: DeliverySettings,
    allow_private: bool,
    counters: Arc<WebhookCounters>,
}

impl WebhookWorker {
    pub fn new(
        store: Arc<dyn Store>,
        delivery: DeliverySettings,
        settings: &WebhookSettings,
    ) -> anyhow::Result<Self> {
        if settings.timeout >= delivery.lease {
            // Not refused: tests and small set-ups shorten the lease on purpose.
            tracing::warn!(
                timeout = ?settings.timeout,
                lease = ?delivery.lease,
                "CBH_WEBHOOK_TIMEOUT is not shorter than CBH_OUTBOX_LEASE: a slow receiver may \
                 get an event twice (same webhook-id)"
            );
        }
        Ok(Self {
            store,
            client: build_client(settings.timeout, settings.allow_private)?,
            delivery,
            allow_private: settings.allow_private,
            counters: Arc::default(),
        })
    }

    pub fn counters(&self) -> Arc<WebhookCounters> {
        self.counters.clone()
    }

    /// Delivers one batch of due deliveries. Tests call this to drive delivery without waiting.
    pub async fn deliver_due(&self) -> anyhow::Result<DeliveryReport> {
        let batch = self
            .store
            .claim_webhooks(Timestamp::now(), self.delivery.lease, BATCH_SIZE)
            .await
            .context("claiming webhook deliveries")?;
        let mut report = DeliveryReport {
            claimed: batch.len(),
            ..DeliveryReport::default()
        };
        let outcomes: Vec<(i64, Outcome)> = futures_util::stream::iter(batch)
            .map(|message| async move { (message.id, self.deliver_one(&message).await) })
            .buffer_unordered(SENDS_IN_FLIGHT)
            .collect()
            .await;
        for (id, outcome) in outcomes {
            match outcome {
                Outcome::Sent => {
                    report.sent += 1;
                    self.store.mark_webhook_sent(id, Timestamp::now()).await?;
                }
                Outcome::Retry(error, at) => {
                    report.retried += 1;
                    self.store.mark_webhook_retry(id, at, &error).await?;
                }
                Outcome::Failed(error) => {
                    report.failed += 1;
                    self.store.mark_webhook_failed(id, &error).await?;
                }
            }
        }
        let count = |counter: &AtomicU64, n: usize| counter.fetch_add(n as u64, Ordering::Relaxed);
        count(&self.counters.sent, report.sent);
        count(&self.counters.failed, report.failed);
        count(&self.counters.retried, report.retried);
        Ok(report)
    }

    async fn deliver_one(&self, message: &WebhookMessage) -> Outcome {
        match self.send(message).await {
            Ok(()) => {
                tracing::debug!(delivery = message.id, event = %message.event, "webhook delivered");
                Outcome::Sent
            }
            Err(SendError::Temporary(error)) => {
                let attempts = u32::try_from(message.attempts).unwrap_or(u32::MAX);
                if attempts >= self.delivery.max_attempts {
                    tracing::warn!(delivery = message.id, %error, attempts, "webhook failed, no attempts left");
                    Outcome::Failed(error)
                } else {
                    let delay = backoff(&self.delivery, attempts, random_unit());
                    tracing::info!(delivery = message.id, %error, attempts, retry_in = ?delay, "webhook will be retried");
                    Outcome::Retry(error, Timestamp::now().plus(delay))
                }
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(delivery = message.id, %error, "webhook refused for good");
                Outcome::Failed(error)
            }
        }
    }

    async fn send(&self, message: &WebhookMessage) -> Result<(), SendError> {
        let url = parse_url(&message.url).map_err(SendError::Permanent)?;
        if let Some(why) = refused_before_connecting(&url, self.allow_private) {
            return Err(SendError::Permanent(why));
        }
        let timestamp = Timestamp::now().millis() / 1000;
        let signature = message
            .secret
            .sign(&message.webhook_id, timestamp, &message.body)
            .ok_or_else(|| SendError::Permanent("the endpoint's secret is not valid".into()))?;
        let answer = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &message.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.clone())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(mut response) => {
                let status = response.status();
                // Only the first chunk: a receiver's error page may be large, or endless.
                let first = response.chunk().await.ok().flatten().unwrap_or_default();
                let text: String = String::from_utf8_lossy(&first)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(ANSWER_EXCERPT)
                    .collect();
                Err(SendError::Temporary(format!(
                    "the endpoint answered {status}{}",
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    }
                )))
            }
            Err(error) => match refusal(&error) {
                Some(refused) => Err(SendError::Permanent(refused)),
                None if error.is_timeout() => Err(SendError::Temporary(format!(
                    "no answer within the timeout ({})",
                    error_chain(&error)
                ))),
                None => Err(SendError::Temporary(error_chain(&error))),
            },
        }
    }

    /// Runs until `stop` turns true: delivers whatever is due, then sleeps until the next
    /// retry is due or for the poll interval (events queued on any node are found by it).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let claimed = match self.deliver_due().await {
                Ok(report) => report.claimed,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "webhook delivery failed");
                    0
                }
            };
            if claimed == BATCH_SIZE as usize {
                continue;
            }
            let nap = self.idle_time().await;
            tokio::select! {
                () = tokio::time::sleep(nap) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn idle_time(&self) -> Duration {
        let poll = self.delivery.poll_interval;
        match self.store.next_webhook_due().await {
            Ok(Some(due)) => {
                let wait = due
                    .millis()
                    .saturating_sub(Timestamp::now().millis())
                    .max(0);
                poll.min(Duration::from_millis(wait.unsigned_abs()))
            }
            _ => poll,
        }
    }
}
