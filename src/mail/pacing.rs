//! How fast the outbox worker may send: `CBH_SMTP_RATE` as a token bucket, and the pause a node
//! takes when its relay is unavailable (refuses connections, answers 421). Both take `now` as a
//! parameter, so their rules are tested without waiting.

use std::time::{Duration, Instant};

use crate::config::{DeliverySettings, Limit};

/// The bucket holds what the rate earns in this long (at least one message): enough for the
/// worker, which claims every `LINGER` (20 ms) or so, to claim several messages at once at high
/// rates, and little enough that `14/1s` stays one message every 71 ms rather than bursts of 14.
const BURST_SPAN: Duration = Duration::from_millis(50);

/// `CBH_SMTP_RATE`: a token bucket filled at `max` per `window`, holding at most `burst` tokens,
/// full at start. Any window of the rate's length therefore starts at most `burst + max`
/// messages (`max` alone on average).
///
/// Written by hand rather than with `governor`: the worker takes tokens for a claim before it
/// knows how many messages are due, and gives back what the claim did not use, which governor's
/// limiters cannot; and it is the one limiter of one task, so no lock-free state is needed.
#[derive(Debug, Clone)]
pub struct SendRate {
    per_second: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl SendRate {
    pub fn new(limit: Limit, now: Instant) -> Self {
        let per_second = f64::from(limit.max) / limit.window.as_secs_f64();
        let burst = Self::burst_of(limit) as f64;
        Self {
            per_second,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    /// How many messages the bucket holds when full.
    pub fn burst_of(limit: Limit) -> u32 {
        let earned = f64::from(limit.max) * BURST_SPAN.as_secs_f64() / limit.window.as_secs_f64();
        // `as` saturates; the floor keeps the bucket within what the span earns.
        (earned.floor() as u32).max(1)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
    }

    /// Takes up to `wanted` whole tokens; returns how many were taken.
    pub fn take(&mut self, wanted: usize, now: Instant) -> usize {
        self.refill(now);
        let taken = (self.tokens.floor() as usize).min(wanted);
        self.tokens -= taken as f64;
        taken
    }

    /// Returns tokens taken for messages that were not there to send.
    pub fn give_back(&mut self, unused: usize) {
        self.tokens = (self.tokens + unused as f64).min(self.burst);
    }

    /// How long until the next whole token.
    pub fn next_token_in(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.per_second)
    }
}

/// Whether the worker may start sends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The relay answers: as many as there are connections.
    Open,
    /// The relay failed and its pause is over: one message tries it before the others follow.
    Probe,
    /// The relay failed: no send until this much time has passed.
    Paused(Duration),
}

/// The node's pause after its relay was unavailable: `CBH_SMTP_RETRY_BASE`, doubling with each
/// failure in a row up to `CBH_SMTP_RETRY_MAX`, with jitter (the outbox's own `backoff`), so that
/// the nodes of a cluster do not come back at the same moment.
#[derive(Debug, Clone)]
pub struct RelayBackoff {
    settings: DeliverySettings,
    /// Failures in a row; a pause counts once however many sends it caught in flight.
    failures: u32,
    paused_until: Option<Instant>,
}

impl RelayBackoff {
    pub fn new(settings: &DeliverySettings) -> Self {
        Self {
            settings: settings.clone(),
            failures: 0,
            paused_until: None,
        }
    }

    pub fn admission(&self, now: Instant) -> Admission {
        match self.paused_until {
            Some(until) if until > now => Admission::Paused(until - now),
            _ if self.failures > 0 => Admission::Probe,
            _ => Admission::Open,
        }
    }

    /// The relay was unavailable; returns the new pause, or `None` when one was already running
    /// (the other sends in flight when the relay went away fail too, and count once).
    pub fn failed(&mut self, now: Instant, unit_random: f64) -> Option<Duration> {
        if self.paused_until.is_some_and(|until| until > now) {
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        let pause = super::outbox::backoff(&self.settings, self.failures, unit_random);
        self.paused_until = Some(now + pause);
        Some(pause)
    }

    /// The relay answered (accepted or refused a message itself); returns whether it had been
    /// failing.
    pub fn answered(&mut self) -> bool {
        let was_failing = self.failures > 0;
        self.failures = 0;
        self.paused_until = None;
        was_failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: u32, secs: u64) -> Limit {
        Limit {
            max,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_bucket_holds_what_fifty_milliseconds_earn_and_at_least_one() {
        assert_eq!(SendRate::burst_of(limit(5, 1)), 1);
        assert_eq!(SendRate::burst_of(limit(14, 1)), 1);
        assert_eq!(SendRate::burst_of(limit(1000, 1)), 50);
        assert_eq!(SendRate::burst_of(limit(1000, 3_600)), 1);
        assert_eq!(SendRate::burst_of(limit(u32::MAX, 1)), 214_748_364);
    }

    #[test]
    fn five_a_second_is_one_every_200_ms_and_never_more_than_six_in_a_second() {
        let start = Instant::now();
        let mut rate = SendRate::new(limit(5, 1), start);
        let mut sent = Vec::new();
        // Ask for a message every millisecond for ten seconds.
        for ms in 0..10_000u64 {
            let now = start + Duration::from_millis(ms);
            if rate.take(1, now) == 1 {
                sent.push(ms);
            }
        }
        assert!((50..=51).contains(&sent.len()), "{}", sent.len());
        for (i, &at) in sent.iter().enumerate() {
            let in_a_second = sent[i..].iter().take_while(|&&t| t <= at + 1_000).count();
            assert!(in_a_second <= 6, "{in_a_second} from {at} ms");
        }
    }

    #[test]
    fn unused_tokens_go_back_and_the_wait_says_when_the_next_comes() {
        let start = Instant::now();
        let mut rate = SendRate::new(limit(100, 1), start);
        assert_eq!(rate.take(32, start), 5, "the burst: 50 ms at 100/s");
        assert_eq!(rate.take(1, start), 0);
        assert_eq!(rate.next_token_in(start), Duration::from_millis(10));
        rate.give_back(3);
        assert_eq!(rate.take(32, start), 3);
        rate.give_back(100);
        assert_eq!(rate.take(32, start), 5, "never above the burst");
        let later = start + Duration::from_millis(25);
        assert_eq!(rate.take(32, later), 2);
    }

    #[test]
    fn the_pause_grows_counts_once_per_outage_and_ends_with_one_probe() {
        let settings = DeliverySettings {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(8),
            ..DeliverySettings::default()
        };
        let start = Instant::now();
        let mut relay = RelayBackoff::new(&settings);
        assert_eq!(relay.admission(start), Admission::Open);

        assert_eq!(relay.failed(start, 1.0), Some(Duration::from_secs(1)));
        assert_eq!(relay.failed(start, 1.0), None, "the other sends in flight");
        assert_eq!(
            relay.admission(start),
            Admission::Paused(Duration::from_secs(1))
        );
        let mut now = start + Duration::from_secs(1);
        assert_eq!(relay.admission(now), Admission::Probe);
        let mut pauses = Vec::new();
        for _ in 0..5 {
            let pause = relay.failed(now, 1.0).expect("a new pause");
            pauses.push(pause.as_secs());
            now += pause;
        }
        assert_eq!(pauses, [2, 4, 8, 8, 8]);
        assert!(relay.answered());
        assert_eq!(relay.admission(now), Admission::Open);
        assert!(!relay.answered());
        assert_eq!(relay.failed(now, 0.0), Some(Duration::from_millis(500)));
    }
}
