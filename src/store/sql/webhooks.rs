//! Webhook endpoints, and the deliveries the outbox workers claim, send and mark.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{FromRow, QueryBuilder};

use super::backend::{self, Backend, Db};
use super::rows::db_error;
use crate::domain::Timestamp;
use crate::domain::webhook::{EventFilter, WebhookSecret};
use crate::store::{
    NewWebhook, StoreResult, WebhookDeliveryRow, WebhookEndpoint, WebhookMessage, WebhookStore,
};

#[derive(FromRow)]
struct EndpointRow {
    id: i64,
    namespace: String,
    url: String,
    events: String,
    created: i64,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(row: EndpointRow) -> Self {
        WebhookEndpoint {
            id: row.id,
            namespace: row.namespace,
            url: row.url,
            events: EventFilter::from_stored(&row.events),
            created: Timestamp(row.created),
        }
    }
}

#[derive(FromRow)]
struct DeliveryListRow {
    id: i64,
    namespace: String,
    endpoint_id: i64,
    url: String,
    event: String,
    webhook_id: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created: i64,
}

#[async_trait]
impl WebhookStore for Backend {
    async fn add_webhook(&self, webhook: NewWebhook) -> StoreResult<WebhookEndpoint> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_endpoints (namespace, url, secret, events, created) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&webhook.namespace)
        .bind(&webhook.url)
        .bind(webhook.secret.expose())
        .bind(webhook.events.stored())
        .bind(webhook.now.millis())
        .fetch_one(self.writer())
        .await
        .map_err(db_error("adding a webhook endpoint"))?;
        Ok(WebhookEndpoint {
            id,
            namespace: webhook.namespace,
            url: webhook.url,
            events: webhook.events,
            created: webhook.now,
        })
    }

    async fn webhooks(&self, namespace: &str) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows: Vec<EndpointRow> = sqlx::query_as(
            "SELECT id, namespace, url, events, created FROM webhook_endpoints \
             WHERE namespace = $1 ORDER BY id",
        )
        .bind(namespace)
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(db_error("listing webhook endpoints"))?;
        Ok(rows.into_iter().map(WebhookEndpoint::from).collect())
    }

    async fn remove_webhook(&self, namespace: &str, id: i64) -> StoreResult<bool> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting webhook removal"))?;
        // Its deliveries first (the foreign key cascades too; this keeps SQLite files that
        // were opened without foreign keys consistent as well).
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE endpoint_id IN \
             (SELECT id FROM webhook_endpoints WHERE namespace = $1 AND id = $2)",
        )
        .bind(namespace)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error("removing webhook deliveries"))?;
        let removed = sqlx::query("DELETE FROM webhook_endpoints WHERE namespace = $1 AND id = $2")
            .bind(namespace)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error("removing a webhook endpoint"))?;
        tx.commit()
            .await
            .map_err(db_error("committing webhook removal"))?;
        Ok(removed.rows_affected() > 0)
    }

    async fn claim_webhooks(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<WebhookMessage>> {
        #[derive(FromRow)]
        struct Claimed {
            id: i64,
            endpoint_id: i64,
            event: String,
            webhook_id: String,
            body: String,
            attempts: i64,
        }
        self.on_writer(move |pool| async move {
            let mut tx = pool
                .begin_with(super::backend::BEGIN)
                .await
                .map_err(db_error("starting webhook claim"))?;
            let claimed: Vec<Claimed> = sqlx::query_as(&format!(
                "UPDATE webhook_deliveries SET lease_until = $1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'queued' \
                   AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
                   ORDER BY next_attempt_at, id LIMIT $3{}) \
                 RETURNING id, endpoint_id, event, webhook_id, body, attempts",
                backend::SKIP_LOCKED
            ))
            .bind(now.plus(lease).millis())
            .bind(now.millis())
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error("claiming webhook deliveries"))?;
            if claimed.is_empty() {
                return Ok(Vec::new());
            }
            let mut query = QueryBuilder::<Db>::new(
                "SELECT id, url, secret FROM webhook_endpoints WHERE id IN (",
            );
            let mut list = query.separated(", ");
            for row in &claimed {
                list.push_bind(row.endpoint_id);
            }
            query.push(")");
            let endpoints: HashMap<i64, (String, String)> = query
                .build_query_as::<(i64, String, String)>()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error("reading webhook endpoints"))?
                .into_iter()
                .map(|(id, url, secret)| (id, (url, secret)))
                .collect();
            tx.commit()
                .await
                .map_err(db_error("committing webhook claim"))?;
            Ok(claimed
                .into_iter()
                .filter_map(|row| {
                    let (url, secret) = endpoints.get(&row.endpoint_id)?.clone();
                    Some(WebhookMessage {
                        id: row.id,
                        endpoint_id: row.endpoint_id,
                        url,
                        secret: WebhookSecret::from_trusted(secret),
                        event: row.event,
                        webhook_id: row.webhook_id,
                        body: row.body,
                        attempts: row.attempts,
                    })
                })
                .collect())
        })
        .await
    }

    async fn mark_webhook_sent(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        self.on_writer(move |pool| async move {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'sent', lease_until = NULL, \
                 last_error = NULL, sent_at = $1 WHERE id = $2",
            )
            .bind(now.millis())
            .bind(id)
            .execute(&pool)
            .await
            .map_err(db_error("marking a webhook delivered"))?;
            Ok(())
        })
        .await
    }

    async fn mark_webhook_retry(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        let error = error.to_owned();
        self.on_writer(move |pool| async move {
            sqlx::query(
                "UPDATE webhook_deliveries SET lease_until = NULL, next_attempt_at = $1, \
                 last_error = $2 WHERE id = $3 AND status = 'queued'",
            )
            .bind(next_attempt_at.millis())
            .bind(error)
            .bind(id)
            .execute(&pool)
            .await
            .map_err(db_error("scheduling a webhook retry"))?;
            Ok(())
        })
        .await
    }

    async fn mark_webhook_failed(&self, id: i64, error: &str) -> StoreResult<()> {
        let error = error.to_owned();
        self.on_writer(move |pool| async move {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'failed', lease_until = NULL, \
                 last_error = $1 WHERE id = $2 AND status = 'queued'",
            )
            .bind(error)
            .bind(id)
            .execute(&pool)
            .await
            .map_err(db_error("marking a webhook failed"))?;
            Ok(())
        })
        .await
    }

    async fn next_webhook_due(&self) -> StoreResult<Option<Timestamp>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until \
             ELSE next_attempt_at END) FROM webhook_deliveries WHERE status = 'queued'",
        )
        .fetch_one(&mut *self.read().await?)
        .await
        .map_err(db_error("reading webhook deliveries"))?;
        Ok(due.map(Timestamp))
    }

    async fn webhook_deliveries(
        &self,
        namespace: &str,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDeliveryRow>> {
        let mut query = QueryBuilder::<Db>::new(
            "SELECT d.id, d.namespace, d.endpoint_id, e.url, d.event, d.webhook_id, d.status, \
             d.attempts, d.next_attempt_at, d.last_error, d.created FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.namespace = ",
        );
        query.push_bind(namespace);
        if let Some(status) = status {
            query.push(" AND d.status = ").push_bind(status);
        }
        query.push(" ORDER BY d.id DESC LIMIT ").push_bind(limit);
        let rows: Vec<DeliveryListRow> = query
            .build_query_as()
            .fetch_all(&mut *self.read().await?)
            .await
            .map_err(db_error("listing webhook deliveries"))?;
        Ok(rows
            .into_iter()
            .map(|r| WebhookDeliveryRow {
                id: r.id,
                namespace: r.namespace,
                endpoint_id: r.endpoint_id,
                url: r.url,
                event: r.event,
                webhook_id: r.webhook_id,
                status: r.status,
                attempts: r.attempts,
                next_attempt_at: Timestamp(r.next_attempt_at),
                last_error: r.last_error,
                created: Timestamp(r.created),
            })
            .collect())
    }

    async fn retry_webhooks(
        &self,
        namespace: &str,
        id: Option<i64>,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let mut query = QueryBuilder::<Db>::new(
            "UPDATE webhook_deliveries SET status = 'queued', attempts = 0, lease_until = NULL, \
             next_attempt_at = ",
        );
        query
            .push_bind(now.millis())
            .push(" WHERE status = 'failed' AND namespace = ")
            .push_bind(namespace);
        if let Some(id) = id {
            query.push(" AND id = ").push_bind(id);
        }
        let done = query
            .build()
            .execute(self.writer())
            .await
            .map_err(db_error("queueing failed webhook deliveries again"))?;
        Ok(done.rows_affected())
    }
}
