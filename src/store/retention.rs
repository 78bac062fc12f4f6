//! What the janitor deletes, and what it reports.

use crate::domain::Timestamp;

/// Rows older than these times go; `None` keeps that kind of row forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Idempotency keys created before this (they answer replays for 24 hours).
    pub idempotency_keys_before: Timestamp,
    /// Sessions that expired before this.
    pub sessions_expired_before: Timestamp,
    /// Audit records (every event) before this (`CBH_AUDIT_RETENTION`).
    pub audit_before: Option<Timestamp>,
    /// Failed logins before this: past the longest login-limit window nothing counts them.
    pub login_failures_before: Option<Timestamp>,
    /// Outbox rows of messages sent before this (`CBH_OUTBOX_RETENTION`); their invitation
    /// keeps the delivery's status and time.
    pub outbox_sent_before: Option<Timestamp>,
}

/// How many rows of each kind were deleted (or would be, on a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub idempotency_keys: u64,
    /// The answers kept for the `Idempotency-Key`s of bulk requests, kept as long.
    pub bulk_answers: u64,
    pub sessions: u64,
    pub audit_records: u64,
    pub login_failures: u64,
    pub outbox_messages: u64,
    /// The creators' notices sent (`CBH_OUTBOX_RETENTION`, as the outbox).
    pub notices: u64,
}

impl PruneReport {
    pub fn total(&self) -> u64 {
        self.idempotency_keys
            + self.bulk_answers
            + self.sessions
            + self.audit_records
            + self.login_failures
            + self.outbox_messages
            + self.notices
    }

    /// `(what, how many)`, in the order `prune` prints them.
    pub fn lines(&self) -> [(&'static str, u64); 7] {
        [
            ("idempotency keys", self.idempotency_keys),
            ("bulk answers", self.bulk_answers),
            ("expired sessions", self.sessions),
            ("audit records", self.audit_records),
            ("failed-login records", self.login_failures),
            ("outbox messages sent", self.outbox_messages),
            ("notices sent", self.notices),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneRun {
    Done(PruneReport),
    /// Another node is pruning (PostgreSQL's advisory lock is held): nothing was done.
    Skipped,
}
