//! The outbox worker's loop: up to `CBH_SMTP_CONNECTIONS` sends in flight, each on a connection
//! kept open for many messages, paced by `CBH_SMTP_RATE` and paused while the relay is
//! unavailable.
//!
//! The loop claims only as many messages as can start sending at once (free connections, tokens
//! of the rate, one while the relay is on probation), and starts them all: a claimed message
//! never waits in memory for a connection or a token, so its lease (`CBH_OUTBOX_LEASE`) only has
//! to cover one exchange bounded by `CBH_SMTP_TIMEOUT`, and nothing claimed is held back during a
//! pause. As sends finish, the loop gathers those that finish together (`LINGER`), records them
//! in one statement and claims again for the connections they freed: under a backlog, one claim
//! and one mark per round rather than per message.
//!
//! The creators' notices (`mail::notices`) are sent by a task of their own beside the loop,
//! started after each idle spell and at most every `NOTICES_EVERY` while busy: a hung relay
//! never holds up the invitations' emails behind a notice, nor a notice behind a backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::outbox::{Outbox, Outcome};
use super::pacing::{Admission, SendRate};
use crate::domain::Timestamp;

/// How long the worker lets messages or finished sends gather before it claims or records
/// again: a claim and its mark-sent are a commit each (on SQLite, turns at the one writer), so
/// each should serve a batch rather than one email (BENCHMARKS.md). A new message after an idle
/// spell is claimed at once.
const LINGER: Duration = Duration::from_millis(20);

/// While the loop is busy, how often it looks for due notices (one indexed read).
const NOTICES_EVERY: Duration = Duration::from_millis(250);

/// The sends in flight, each a task that ends with its outcome.
type Flight = JoinSet<Outcome>;

impl Outbox {
    /// Runs until `stop` turns true, then lets the sends in flight finish and records them
    /// (`serve` bounds that wait by `shutdown_grace`).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // Other nodes' new messages wake this worker too (PostgreSQL LISTEN/NOTIFY); the poll
        // interval stays as the fallback.
        let watcher = {
            let store = self.store.clone();
            let wakeup = self.wakeup.clone();
            tokio::spawn(async move { store.watch_outbox(wakeup).await })
        };
        let mut rate = self
            .settings
            .smtp_rate
            .map(|limit| SendRate::new(limit, Instant::now()));
        let mut flight = Flight::new();
        let mut finished = Vec::new();
        // The last claim found fewer messages than it could take: wait for a new one.
        let mut idle = false;
        let mut notices = Notices::default();
        // Just started, or back from an idle wait: look for due notices at once.
        let mut woke = true;
        loop {
            while let Some(done) = flight.try_join_next() {
                finished.extend(outcome(done));
            }
            self.record_all(&mut finished).await;
            if *stop.borrow() {
                break;
            }
            notices.start_if_due(&self, std::mem::take(&mut woke));
            if idle {
                let nap = self.idle_time().await;
                tokio::select! {
                    () = self.wakeup.notified() => idle = false,
                    () = tokio::time::sleep(nap) => idle = false,
                    Some(done) = flight.join_next(), if !flight.is_empty() => {
                        finished.extend(outcome(done));
                        gather(&mut flight, &mut finished).await;
                    }
                    _ = stop.changed() => {}
                }
                woke = true;
                continue;
            }
            let room = match self.transport.admission() {
                Admission::Open => self.settings.smtp_connections.saturating_sub(flight.len()),
                // One message tries the relay; the others wait for its answer.
                Admission::Probe => usize::from(flight.is_empty()),
                Admission::Paused(left) => {
                    self.pause(left, &mut flight, &mut finished, &mut stop)
                        .await;
                    continue;
                }
            };
            if room == 0 {
                tokio::select! {
                    Some(done) = flight.join_next(), if !flight.is_empty() => {
                        finished.extend(outcome(done));
                        gather(&mut flight, &mut finished).await;
                    }
                    _ = stop.changed() => {}
                }
                continue;
            }
            let granted = match &mut rate {
                Some(rate) => rate.take(room, Instant::now()),
                None => room,
            };
            if granted == 0 {
                // Tokens for a few messages at once, rather than one claim per token.
                let wait = rate
                    .as_mut()
                    .map_or(LINGER, |rate| rate.next_token_in(Instant::now()))
                    .max(LINGER);
                self.pause(wait, &mut flight, &mut finished, &mut stop)
                    .await;
                continue;
            }
            let claimed = self.claim(granted).await;
            let claimed_count = claimed.as_ref().map_or(0, |(batch, _)| batch.len());
            if let Some(rate) = &mut rate {
                rate.give_back(granted - claimed_count);
            }
            let (batch, invitations) = match claimed {
                Ok((batch, invitations)) if !batch.is_empty() => (batch, invitations),
                Ok(_) => {
                    idle = true;
                    if let Err(error) = self.purge_if_owed().await {
                        tracing::error!(error = format!("{error:#}"), "outbox delivery failed");
                    }
                    continue;
                }
                Err(error) => {
                    // The database is away: try again after the idle wait.
                    tracing::error!(error = format!("{error:#}"), "outbox delivery failed");
                    idle = true;
                    continue;
                }
            };
            let full = batch.len() == granted;
            for message in batch {
                let outbox = self.clone();
                let invitations = invitations.clone();
                flight.spawn(async move { outbox.deliver_one(message, &invitations).await });
            }
            if !full {
                // Messages are arriving one by one: let the next ones gather for a moment.
                self.pause(LINGER, &mut flight, &mut finished, &mut stop)
                    .await;
            }
        }
        // Stopping: no new claim; the sends in flight finish (each bounded by the SMTP timeout)
        // and are recorded.
        while let Some(done) = flight.join_next().await {
            finished.extend(outcome(done));
        }
        self.record_all(&mut finished).await;
        notices.finish().await;
        watcher.abort();
    }

    /// Waits `wait` (or until stopped), recording the sends that finish meanwhile.
    async fn pause(
        &self,
        wait: Duration,
        flight: &mut Flight,
        finished: &mut Vec<Outcome>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let until = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                _ = stop.changed() => return,
                Some(done) = flight.join_next(), if !flight.is_empty() => {
                    finished.extend(outcome(done));
                    gather(flight, finished).await;
                    self.record_all(finished).await;
                }
            }
        }
    }

    async fn record_all(&self, finished: &mut Vec<Outcome>) {
        if finished.is_empty() {
            return;
        }
        if let Err(error) = self.record(std::mem::take(finished)).await {
            // Unrecorded, the messages stay leased: they are sent again when the lease ends.
            tracing::error!(error = format!("{error:#}"), "recording deliveries failed");
        }
    }

    async fn idle_time(&self) -> Duration {
        let poll = self.settings.poll_interval;
        match self.store.next_due().await {
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

/// The task that sends the due notices, one run at a time.
#[derive(Default)]
struct Notices {
    running: Option<tokio::task::JoinHandle<()>>,
    last: Option<Instant>,
}

impl Notices {
    /// Starts a run unless one is running; while busy (`!woken`), at most every `NOTICES_EVERY`.
    fn start_if_due(&mut self, outbox: &Arc<Outbox>, woken: bool) {
        if self.running.as_ref().is_some_and(|run| !run.is_finished()) {
            return;
        }
        if !woken && self.last.is_some_and(|last| last.elapsed() < NOTICES_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let outbox = outbox.clone();
        self.running = Some(tokio::spawn(async move {
            if let Err(error) = outbox.deliver_notices().await {
                tracing::error!(error = format!("{error:#}"), "notice delivery failed");
            }
        }));
    }

    /// Stopping: the run in flight finishes (each send bounded by the SMTP timeout).
    async fn finish(self) {
        if let Some(run) = self.running {
            let _ = run.await;
        }
    }
}

/// After one send finished: the others that finish within `LINGER`, so they are recorded
/// together (returns at once when none is left in flight).
async fn gather(flight: &mut Flight, finished: &mut Vec<Outcome>) {
    let until = tokio::time::Instant::now() + LINGER;
    while !flight.is_empty() {
        match tokio::time::timeout_at(until, flight.join_next()).await {
            Ok(Some(done)) => finished.extend(outcome(done)),
            Ok(None) | Err(_) => return,
        }
    }
}

/// A send's outcome; a send task that panicked leaves its message leased, to be retried when
/// the lease ends.
fn outcome(joined: Result<Outcome, tokio::task::JoinError>) -> Option<Outcome> {
    match joined {
        Ok(outcome) => Some(outcome),
        Err(error) => {
            tracing::error!(%error, "an email send failed unexpectedly");
            None
        }
    }
}
