//! Webhook endpoints and the deliveries queued for them (the webhooks' outbox).

use std::time::Duration;

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::Timestamp;
use crate::domain::webhook::{EventFilter, WebhookSecret};

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub namespace: String,
    pub url: String,
    pub secret: WebhookSecret,
    pub events: EventFilter,
    pub now: Timestamp,
}

#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub namespace: String,
    pub url: String,
    pub events: EventFilter,
    pub created: Timestamp,
}

/// A delivery claimed by a worker, with what it needs to sign and send it.
#[derive(Debug, Clone)]
pub struct WebhookMessage {
    pub id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub secret: WebhookSecret,
    pub event: String,
    pub webhook_id: String,
    pub body: String,
    /// Including the attempt this claim starts.
    pub attempts: i64,
}

/// One delivery, for the operator.
#[derive(Debug, Clone)]
pub struct WebhookDeliveryRow {
    pub id: i64,
    pub namespace: String,
    pub endpoint_id: i64,
    pub url: String,
    pub event: String,
    pub webhook_id: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created: Timestamp,
}

/// Webhook endpoints per namespace, and the deliveries the outbox workers send. Events are
/// queued by the changes themselves, in their transactions.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn add_webhook(&self, webhook: NewWebhook) -> StoreResult<WebhookEndpoint>;
    async fn webhooks(&self, namespace: &str) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Removes the endpoint and its deliveries; `false` if the namespace has no such endpoint.
    async fn remove_webhook(&self, namespace: &str, id: i64) -> StoreResult<bool>;
    /// Reserves up to `limit` due deliveries for `lease`, counting an attempt on each.
    async fn claim_webhooks(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<WebhookMessage>>;
    async fn mark_webhook_sent(&self, id: i64, now: Timestamp) -> StoreResult<()>;
    async fn mark_webhook_retry(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<()>;
    async fn mark_webhook_failed(&self, id: i64, error: &str) -> StoreResult<()>;
    /// When the next queued delivery is due (`None`: nothing is queued).
    async fn next_webhook_due(&self) -> StoreResult<Option<Timestamp>>;
    async fn webhook_deliveries(
        &self,
        namespace: &str,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDeliveryRow>>;
    /// Queues failed deliveries of the namespace again (one, or all), attempts reset.
    async fn retry_webhooks(
        &self,
        namespace: &str,
        id: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<u64>;
}
