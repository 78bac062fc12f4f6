//! Delivery after the load: the benchmark waits until every accepted invitation's email has
//! arrived at the SMTP server (the outbox is empty), within a bound, and reports how long that
//! took and the rate: measured, with a slow relay as without one.

use std::time::{Duration, Instant};

use smtp_sink::SmtpServer;

use crate::Delivery;

/// The wait for the outbox to empty is at least this long, and longer for a big backlog…
const MIN_WAIT: Duration = Duration::from_secs(60);
/// …as long as this many emails a second would need: slower than that, the run reports what
/// is left rather than wait (with 8 connections and a 200 ms relay, 40/s, it would take ten
/// minutes).
const SLOWEST_RATE: u64 = 100;

/// `CBH_SMTP_CONNECTIONS` of the configurations with an SMTP delay, unless `--smtp-connections`
/// says otherwise: a relay that takes 200 ms per message gives 5 messages a second per
/// connection, so 500 emails/s needs at least 100.
pub const DELAYED_CONNECTIONS: usize = 128;

/// The wait for a backlog of `backlog` emails.
pub fn bound(backlog: usize) -> Duration {
    MIN_WAIT.max(Duration::from_millis(
        (backlog as u64).saturating_mul(1000) / SLOWEST_RATE,
    ))
}

/// Waits until every accepted email arrived, or the bound for the backlog left when the load
/// stopped.
pub async fn wait(smtp: &SmtpServer, accepted: usize) -> Delivery {
    let at_load_end = smtp.received_count();
    let backlog = accepted.saturating_sub(at_load_end);
    let waiting = Instant::now();
    let delivered = smtp.wait_for_count(accepted, bound(backlog)).await;
    let elapsed = waiting.elapsed();
    let drained_in = (delivered >= accepted).then_some(elapsed);
    let rate = delivered.saturating_sub(at_load_end) as f64 / elapsed.as_secs_f64().max(1e-3);
    Delivery {
        delivered,
        backlog,
        drained_in,
        rate,
    }
}

/// The method paragraph's sentence on delivery.
pub fn method(delayed_connections: usize) -> String {
    format!(
        "Then the benchmark waits until every accepted invitation's email has arrived and checks \
         each arrived once: \"outbox empty after load\" is that wait, measured, and \"emails/s \
         after load\" the emails that arrived during it per second (the worker alone on the \
         machine). The wait is bounded by {} s or the backlog at {SLOWEST_RATE} emails/s, \
         whichever is longer; a run that hits the bound reports what was left. The \
         configurations with an SMTP delay run with CBH_SMTP_CONNECTIONS={delayed_connections} \
         (a 200 ms relay takes 5 messages a second per connection); the others with the \
         default (32).",
        MIN_WAIT.as_secs()
    )
}
