//! Sessions and the failed logins that throttle new ones: the trait and its records.

use async_trait::async_trait;

use super::{Limit, StoreResult};
use crate::domain::token::TokenHash;
use crate::domain::{Timestamp, User, UserId};

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: TokenHash,
    pub csrf_hash: TokenHash,
    pub user_id: UserId,
    pub now: Timestamp,
    pub expires: Timestamp,
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: User,
    pub csrf_hash: TokenHash,
    /// `users.language`: the language of the person's last page visit, if any.
    pub language: Option<String>,
}

/// A login attempt, counted before its password is checked (`SessionStore::reserve_login`).
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub namespace: String,
    /// The submitted account: its email key, or the (escaped) input when not an address.
    pub account: String,
    pub client_ip: Option<String>,
    pub now: Timestamp,
    pub limits: LoginLimits,
    /// What the attempt was when not a login (a password change), for the audit log.
    pub detail: Option<&'static str>,
}

/// The limits on failed logins; each counts the `login_failed` rows in its window.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginLimits {
    /// One account from one client address (`CBH_LOGIN_ACCOUNT_RATE`).
    pub per_account_and_client: Option<Limit>,
    /// One account from all addresses (`CBH_LOGIN_ACCOUNT_CEILING`).
    pub per_account: Option<Limit>,
    /// One client address, all accounts of all namespaces (`CBH_LOGIN_CLIENT_RATE`).
    pub per_client: Option<Limit>,
}

/// A reserved attempt: its `login_failed` audit row, until the password proves right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttemptId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginReservation {
    /// Counted as a failure already; `login_succeeded` or `release_login` changes that.
    Reserved(LoginAttemptId),
    /// A limit is reached; the next attempt may come at this time.
    Refused { until: Timestamp },
}

/// Sessions, and the failed logins that throttle new ones.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: NewSession) -> StoreResult<()>;
    async fn session(
        &self,
        namespace: &str,
        id_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<SessionRecord>>;
    async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<()>;
    /// Stores the language of a page the person visited (`users.language`), for the emails
    /// sent to them. The pages call it only when it changed.
    async fn set_user_language(&self, user: UserId, language: &str) -> StoreResult<()>;
    /// In one transaction, serialised per account and per client address (on every node):
    /// refuses the attempt when a limit is reached, and otherwise stores it as a
    /// `login_failed` audit row at once, so that concurrent attempts count it before any of
    /// them checks a password.
    async fn reserve_login(&self, attempt: LoginAttempt) -> StoreResult<LoginReservation>;
    /// The password was right: the reserved row becomes `login_succeeded` by `user`.
    async fn login_succeeded(&self, attempt: LoginAttemptId, user: UserId) -> StoreResult<()>;
    /// The attempt is not a failure after all (no password was checked, or a password change
    /// whose current password was right and records its own event): its row goes.
    async fn release_login(&self, attempt: LoginAttemptId) -> StoreResult<()>;
}
