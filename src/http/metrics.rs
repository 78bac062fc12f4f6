//! `GET /metrics` in Prometheus text format: what this node did (invitations, emails, HTTP
//! requests by route and status with a latency histogram) and the shared outbox's depth.
//! Counters are per node; Prometheus adds them up across nodes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::domain::Timestamp;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    pub invitations_created: AtomicU64,
    pub invitations_accepted: AtomicU64,
    pub invitations_revoked: AtomicU64,
    http: Mutex<BTreeMap<(String, String, u16), Latencies>>,
}

#[derive(Default)]
struct Latencies {
    /// Requests at or under each bucket's bound (cumulative, as Prometheus wants them).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, route: String, method: String, status: u16, seconds: f64) {
        let Ok(mut http) = self.http.lock() else {
            return;
        };
        let entry = http.entry((route, method, status)).or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }
}

/// Times every routed request (the route template is the label, never the raw path).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Metrics.
///
/// Prometheus text format: invitations, emails, outbox depth and age, HTTP requests by route
/// and status with a latency histogram. While the database does not answer, still 200 with
/// `cbh_database_up 0` and without the outbox gauges.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses(
        (status = 200, description = "The metrics", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
    ),
    security(()),
)]
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let m = &state.metrics;
    let d = &state.delivery;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    // Counters first, then the outbox: a send is counted only once recorded, so this order
    // never shows an email counted as sent and still queued.
    for (name, help, value) in [
        (
            "cbh_invitations_created_total",
            "Invitations created by this node.",
            load(&m.invitations_created),
        ),
        (
            "cbh_invitations_accepted_total",
            "Invitations accepted on this node.",
            load(&m.invitations_accepted),
        ),
        (
            "cbh_invitations_revoked_total",
            "Invitations revoked on this node.",
            load(&m.invitations_revoked),
        ),
        (
            "cbh_emails_sent_total",
            "Emails this node's worker delivered.",
            load(&d.sent),
        ),
        (
            "cbh_emails_failed_total",
            "Emails this node's worker gave up on.",
            load(&d.failed),
        ),
        (
            "cbh_emails_retried_total",
            "Temporary delivery failures scheduled for a retry.",
            load(&d.retried),
        ),
        (
            "cbh_webhooks_sent_total",
            "Webhook deliveries this node's worker made (answered 2xx).",
            load(&state.webhook_delivery.sent),
        ),
        (
            "cbh_webhooks_failed_total",
            "Webhook deliveries this node's worker gave up on.",
            load(&state.webhook_delivery.failed),
        ),
        (
            "cbh_webhooks_retried_total",
            "Webhook delivery attempts that failed and were scheduled again.",
            load(&state.webhook_delivery.retried),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    // The database's gauges are left out while it does not answer: this node's own counters
    // are still worth scraping, most of all during an outage.
    let database = state.store.outbox_depth().await;
    let _ = writeln!(
        out,
        "# HELP cbh_database_up Whether the database answered this scrape.\n\
         # TYPE cbh_database_up gauge\ncbh_database_up {}",
        u8::from(database.is_ok())
    );
    match database {
        Ok((depth, oldest)) => {
            let oldest_age = oldest.map_or(0.0, |t| {
                (Timestamp::now().millis() - t.millis()).max(0) as f64 / 1000.0
            });
            let _ = writeln!(
                out,
                "# HELP cbh_outbox_depth Emails queued and not yet delivered (all nodes).\n\
                 # TYPE cbh_outbox_depth gauge\ncbh_outbox_depth {depth}\n\
                 # HELP cbh_outbox_oldest_age_seconds Age of the oldest queued email (0 when empty).\n\
                 # TYPE cbh_outbox_oldest_age_seconds gauge\ncbh_outbox_oldest_age_seconds {oldest_age:.3}"
            );
        }
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "metrics: the database does not answer"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP cbh_http_requests_total HTTP requests by route, method and status.\n\
         # TYPE cbh_http_requests_total counter"
    );
    let http = m
        .http
        .lock()
        .map_err(|_| anyhow::anyhow!("metrics lock poisoned"))?;
    for ((route, method, status), latencies) in http.iter() {
        let labels = format!(
            "route=\"{}\",method=\"{method}\",status=\"{status}\"",
            escape(route)
        );
        let _ = writeln!(
            out,
            "cbh_http_requests_total{{{labels}}} {}",
            latencies.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP cbh_http_request_duration_seconds HTTP request latency.\n\
         # TYPE cbh_http_request_duration_seconds histogram"
    );
    for ((route, method, status), latencies) in http.iter() {
        let labels = format!(
            "route=\"{}\",method=\"{method}\",status=\"{status}\"",
            escape(route)
        );
        for (bound, count) in BUCKETS.iter().zip(latencies.buckets) {
            let _ = writeln!(
                out,
                "cbh_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "cbh_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
             cbh_http_request_duration_seconds_sum{{{labels}}} {:.6}\n\
             cbh_http_request_duration_seconds_count{{{labels}}} {}",
            latencies.count, latencies.sum_seconds, latencies.count
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_into_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe("/r".into(), "GET".into(), 200, 0.003);
        metrics.observe("/r".into(), "GET".into(), 200, 0.2);
        let http = metrics.http.lock().expect("lock");
        let latencies = &http[&("/r".to_owned(), "GET".to_owned(), 200)];
        assert_eq!(latencies.count, 2);
        // 0.003 s is under 0.005 and above; 0.2 s only from 0.25 up.
        assert_eq!(latencies.buckets[..4], [0, 0, 1, 1]);
        assert_eq!(latencies.buckets[7], 2);
    }
}
