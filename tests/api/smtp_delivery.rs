//! Delivery as fast as the relay allows: `CBH_SMTP_CONNECTIONS` sessions side by side, each
//! reused; `CBH_SMTP_RATE` across them; a relay that answers 421 makes the node back off.
//!
//! Each test queues its messages on an API-only node and then starts the worker (a restart as
//! `all`), so the whole backlog is due when the worker starts: what the worker does with it
//! does not depend on how fast the test posted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cbh_invite::config::{DeliverySettings, Limit, ServeRole};
use cbh_invite::mail::pacing::SendRate;
use serde_json::json;

use crate::support::smtp::ReceivedMail;
use crate::support::{Backend, TestApp, json_with_status, spawn_app_with, wait};

/// Generous: a busy machine only makes these tests slower.
const WAIT: Duration = Duration::from_secs(120);

/// Queues `count` invitations on the API-only `app`, then starts its worker.
async fn queue_then_start_the_worker(app: &mut TestApp, count: usize) {
    assert_eq!(
        app.settings.role,
        ServeRole::Api,
        "no worker while queueing"
    );
    let (editor, _) = app.editor_with_project().await;
    for i in 0..count {
        json_with_status(
            editor
                .invite(json!({"email": format!("p{i}@example.org")}))
                .await,
            201,
        )
        .await;
    }
    assert_eq!(app.smtp.connections(), 0, "nothing was sent yet");
    app.settings.role = ServeRole::All;
    app.restart().await;
}

/// Waits until every queued message is recorded as sent, then checks that each address got its
/// email exactly once, and nothing else arrived.
async fn each_arrived_once(app: &TestApp, count: usize) -> Vec<ReceivedMail> {
    app.smtp.wait_for(count, WAIT).await;
    wait::until("every message recorded as sent", WAIT, || async {
        app.store
            .list_outbox(Some("sent"), 1_000)
            .await
            .is_ok_and(|sent| sent.len() == count)
    })
    .await;
    let mails = app.smtp.received();
    assert_eq!(mails.len(), count, "no email arrived twice");
    let recipients: HashSet<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    let expected: HashSet<String> = (0..count).map(|i| format!("p{i}@example.org")).collect();
    assert_eq!(recipients, expected);
    mails
}

async fn sixteen_connections_send_side_by_side_each_reused(backend: Backend) {
    let mut app = spawn_app_with(backend, |s| {
        s.role = ServeRole::Api;
        s.delivery.smtp_connections = 16;
    })
    .await;
    // A relay that takes 200 ms per message, as real providers do.
    app.smtp.set_delay(Duration::from_millis(200));
    queue_then_start_the_worker(&mut app, 64).await;

    each_arrived_once(&app, 64).await;
    let side_by_side = app.smtp.most_in_data();
    assert!(
        side_by_side > 8,
        "more than the former 8 connections answered at once: {side_by_side}"
    );
    assert!(
        side_by_side <= 16,
        "never more than CBH_SMTP_CONNECTIONS at once: {side_by_side}"
    );
    let open = app.smtp.most_open_connections();
    assert!(open <= 16, "at most 16 connections open at once: {open}");
    let connections = app.smtp.connections();
    assert!(
        connections <= 16,
        "64 messages over at most 16 connections, each reused: {connections}"
    );
}

async fn the_rate_holds_across_connections(backend: Backend) {
    let rate = Limit {
        max: 5,
        window: Duration::from_secs(1),
    };
    // The bucket holds one message (what 50 ms earn, at least one): any second starts at most
    // 5 + 1 messages.
    let burst = SendRate::burst_of(rate);
    assert_eq!(burst, 1);
    let mut app = spawn_app_with(backend, |s| {
        s.role = ServeRole::Api;
        s.delivery.smtp_rate = Some(rate);
    })
    .await;
    queue_then_start_the_worker(&mut app, 15).await;

    let mails = each_arrived_once(&app, 15).await;
    // When each message's MAIL command reached the server: with 32 connections free and the
    // whole backlog due, only the rate spaces them.
    let mut started: Vec<Instant> = mails.iter().map(|m| m.started).collect();
    started.sort();
    for (i, &from) in started.iter().enumerate() {
        let in_a_second = started[i..]
            .iter()
            .take_while(|&&at| at <= from + rate.window)
            .count();
        assert!(
            in_a_second <= (rate.max + burst) as usize,
            "{in_a_second} messages started within one second of message {i}"
        );
    }
}

/// The most connection attempts a node may make in `elapsed` while its relay refuses every
/// one: one per connection for the sends already on their way when the relay went away, then
/// one probe after each pause, each pause at least half its nominal length (the jitter).
fn most_attempts(settings: &DeliverySettings, elapsed: Duration) -> u64 {
    let mut probes = 0;
    let mut paused = Duration::ZERO;
    loop {
        let nominal = settings
            .retry_base
            .saturating_mul(1 << probes.min(20))
            .min(settings.retry_max);
        paused += nominal / 2;
        if paused > elapsed {
            break;
        }
        probes += 1;
    }
    settings.smtp_connections as u64 + probes
}

async fn a_relay_answering_421_is_not_hammered_and_gets_everything_after(backend: Backend) {
    let mut app = spawn_app_with(backend, |s| {
        s.role = ServeRole::Api;
        s.delivery.smtp_connections = 4;
        s.delivery.retry_base = Duration::from_millis(500);
        s.delivery.retry_max = Duration::from_secs(2);
    })
    .await;
    app.smtp.set_refusing(true);
    let outage = Instant::now();
    queue_then_start_the_worker(&mut app, 20).await;

    // The node comes back several times, each after a longer pause.
    wait::until("the node trying the relay again", WAIT, || async {
        app.smtp.refused_connections() >= 7
    })
    .await;
    let elapsed = outage.elapsed();
    let refused = app.smtp.refused_connections();
    let bound = most_attempts(&app.settings.delivery, elapsed);
    assert!(
        refused <= bound,
        "{refused} connections in {elapsed:?} of refusals: more than the backoff allows ({bound})"
    );
    assert!(
        refused < 20,
        "fewer attempts than messages: the node did not try each one"
    );
    let tried = app
        .store
        .list_outbox(Some("queued"), 100)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|row| row.attempts > 0)
        .count();
    assert!(tried < 20, "messages were held back, not tried: {tried}");

    app.smtp.set_refusing(false);
    each_arrived_once(&app, 20).await;
}

backend_tests!(
    sixteen_connections_send_side_by_side_each_reused,
    the_rate_holds_across_connections,
    a_relay_answering_421_is_not_hammered_and_gets_everything_after,
);
