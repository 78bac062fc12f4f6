//! Persistence behind one trait, so that the HTTP layer, the CLI and the outbox worker do not
//! know which database they talk to. `Store` is made of one trait per concern (users, sessions,
//! projects, invitations, outbox, setup, audit, webhooks; members and accounts in `accounts.rs`),
//! each implemented by `sql/` in a file of its own. Each method is one transaction.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::config::Limit;
use crate::config::{DatabaseUrl, PoolSettings};
use crate::domain::grant::ProjectRoles;
use crate::domain::invitation::AlreadyInvited;
use crate::domain::token::TokenHash;
use crate::domain::{
    EmailAddress, InvitationId, InvitationStatus, InviteKind, PersonName, Project, ProjectId, Role,
    Timestamp, Token, User, UserId,
};

mod accounts;
pub mod backup;
mod bounces;
mod bulk;
mod decline;
mod expiry;
mod group_commit;
mod notices;
mod outbox;
pub mod postgres;
mod reminders;
pub mod resource;
mod retention;
mod schema;
mod sessions;
pub mod sqlite;
mod webhooks;

pub use bounces::{BounceOutcome, BounceStore, BouncedMessage, NewBounce};
pub use bulk::{BulkClaim, BulkStore};
pub use decline::{
    DeclineOutcome, DeclineStore, SUPPRESSED_MESSAGE, Suppression, UnsubscribeOutcome,
};
pub use expiry::ExpiryStore;
pub use notices::{NoticeMessage, NoticeRow, NoticeStore};
pub use outbox::{DeliveryRecord, OutboxMessage, OutboxRow, OutboxStore};
pub use webhooks::{NewWebhook, WebhookDeliveryRow, WebhookEndpoint, WebhookMessage, WebhookStore};

pub use reminders::{
    NewLinkOutcome, NewLinkRequest, ReminderReport, ReminderScan, ReminderStore, SupersededLink,
};
pub use retention::{PrunePolicy, PruneReport, PruneRun};
pub use schema::{SchemaState, inspect_schema};
pub use sessions::{
    LoginAttempt, LoginAttemptId, LoginLimits, LoginReservation, NewSession, SessionRecord,
    SessionStore,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the text says which.
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached in time.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub use accounts::{
    Account, AccountOutcome, AccountStore, ChangedBy, Member, MemberStore, RoleChange, RoleOutcome,
    UserFilter, UserPage,
};

/// Open the configured database, creating and migrating it if needed.
pub async fn connect(url: &DatabaseUrl, pool: &PoolSettings) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(
            sqlite::SqliteStore::open(path, pool.sqlite_sync).await?,
        )),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(postgres::PgStore::open(url, pool).await?)),
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: EmailAddress,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub password_hash: Option<String>,
    pub is_superuser: bool,
}

/// A user with the secret needed to log it in.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
    /// Deactivated by a superuser: no way of logging in works (`AccountStore`).
    pub deactivated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub project: Project,
    pub role: Role,
}

/// Everything needed to create an invitation; the store decides, inside its transaction, what
/// the invitation does (`domain::invitation::plan_invitation`).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub namespace: String,
    /// The caller, as authenticated: the new invitation's `created_by`.
    pub inviter: User,
    pub email: EmailAddress,
    pub first_name: PersonName,
    pub last_name: PersonName,
    /// Known projects of the namespace, deduplicated, in id order (as the caller's rights were
    /// checked on them): the new invitation's `projects`.
    pub projects: Vec<Project>,
    /// The role offered on each of `projects` (checked against the inviter's own).
    pub roles: ProjectRoles,
    pub remind: bool,
    /// Used only if the plan issues an accept link.
    pub token: Token,
    pub message_id: String,
    pub now: Timestamp,
    /// The lifetime of this invitation's link: `expires_in`, or the default.
    pub ttl: Duration,
    /// The `expires_in` of the request, kept with the invitation so that a resend gives the
    /// same lifetime again; `None`: the default at the time of each send.
    pub expires_in: Option<Duration>,
    /// The language of the invitee's emails (a BCP 47 tag, the request's or the default).
    pub language: String,
    pub idempotency: Option<IdempotencyClaim>,
    pub limits: SendLimits,
    /// Where the request came from, for the `invitation_created` audit record (written in the
    /// invitation's transaction).
    pub client_ip: Option<String>,
    /// `false`: no email is queued (`CBH_LINK_SHARING`); the invitation is stored with
    /// `delivery` none and does not count against the sending limits.
    pub send_email: bool,
    /// The accept link is handed to the inviter in the answer: recorded in the audit log
    /// (`invitation_link_returned`) in the invitation's transaction, when a link is issued.
    pub return_link: bool,
}

/// Limits on sending, counted over the emails queued within each window (sliding): new
/// invitations, reminders and resends alike.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendLimits {
    /// Emails one inviter may cause (invitations and resends).
    pub per_inviter: Option<Limit>,
    /// Emails one mailbox may receive, in every namespace and whatever its `+tag`, so
    /// reminders and resends cannot flood an inbox.
    pub per_recipient: Option<Limit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    PerInviter,
    PerRecipient,
}

#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: Vec<u8>,
    /// Keys older than this are forgotten.
    pub kept_for: Duration,
}

#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created(InvitationRecord),
    /// The same `Idempotency-Key` and body were seen before: nothing new was written.
    Replayed(InvitationRecord),
    Rejected(AlreadyInvited),
    /// The same `Idempotency-Key` came with another body.
    KeyReused,
    /// A sending limit was reached; the oldest counted invitation leaves the window then.
    Limited {
        limit: LimitKind,
        retry_after: Duration,
    },
    /// The address is on the namespace's suppression list: nothing was written.
    Suppressed,
    /// The address is a deactivated account's: its link could never be used, so nothing was
    /// written.
    Deactivated,
}

/// The 409 of an invitation to a deactivated account.
pub const DEACTIVATED_MESSAGE: &str =
    "This person's account is deactivated; a superuser can activate it again";

/// A security event for the audit log.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub namespace: String,
    pub at: Timestamp,
    /// `login_succeeded`, `login_failed`, `invitation_created`, … (see the README).
    pub event: &'static str,
    pub actor: Option<UserId>,
    pub subject: Option<String>,
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub namespace: String,
    pub at: Timestamp,
    pub event: String,
    pub actor_email: Option<String>,
    pub subject: Option<String>,
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

/// One outbox row, for the operator.
#[derive(Debug, Clone)]
pub struct InvitationRecord {
    pub id: InvitationId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub created_by: User,
    pub projects: Vec<Project>,
    /// The role the invitation offers on each of `projects`.
    pub roles: ProjectRoles,
    pub kind: InviteKind,
    pub message: String,
    pub stored_status: String,
    pub expires: Option<Timestamp>,
    pub created: Timestamp,
    pub modified: Timestamp,
    /// `None`: no email was ever queued for it (created with `send_email: false` and not
    /// resent since).
    pub delivery: Option<DeliveryRecord>,
    /// Automatic reminders sent (`CBH_REMINDERS`).
    pub reminders_sent: i64,
    /// The language of the invitee's emails, as asked for (a BCP 47 tag); `None` for an
    /// invitation from before languages (its emails use `CBH_DEFAULT_LANGUAGE`).
    pub language: Option<String>,
    /// The creator's language (`users.language`, from their last page visit), for the notices
    /// they receive; `None`: not known.
    pub creator_language: Option<String>,
}

impl InvitationRecord {
    pub fn status(&self, now: Timestamp) -> InvitationStatus {
        InvitationStatus::effective(&self.stored_status, self.expires, now)
    }
}

#[derive(Debug, Clone, Default)]
pub struct InvitationFilter {
    /// Only invitations created by this user (`None`: the whole namespace, for superusers).
    pub created_by: Option<UserId>,
    pub email: Option<String>,
    pub email_iexact: Option<String>,
    pub status: Option<InvitationStatus>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone)]
pub struct InvitationPage {
    pub total_count: i64,
    pub objects: Vec<InvitationRecord>,
}

#[derive(Debug, Clone)]
pub enum AcceptOutcome {
    Accepted(User),
    /// Unknown, expired, used or revoked: the caller cannot tell which, and need not.
    Gone,
}

/// Everything the application stores, one trait per concern; `Arc<dyn Store>` calls them all.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + ProjectStore
    + InvitationStore
    + OutboxStore
    + SetupStore
    + AuditStore
    + MemberStore
    + AccountStore
    + RetentionStore
    + ReminderStore
    + WebhookStore
    + BounceStore
    + BulkStore
    + DeclineStore
    + ExpiryStore
    + NoticeStore
    + Send
    + Sync
    + 'static
{
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;
}

/// Users and their credentials: passwords and API keys.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, namespace: &str, user: NewUser) -> StoreResult<User>;
    async fn user_by_email(
        &self,
        namespace: &str,
        email: &EmailAddress,
    ) -> StoreResult<Option<UserCredentials>>;
    async fn user_by_id(&self, namespace: &str, id: UserId) -> StoreResult<Option<User>>;
    /// Sets a new password, ends every other session of the user and voids its accept links.
    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep_session: Option<&TokenHash>,
    ) -> StoreResult<()>;
    async fn create_api_key(
        &self,
        user: UserId,
        key_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn user_by_api_key(
        &self,
        namespace: &str,
        email: &EmailAddress,
        key_hash: &TokenHash,
    ) -> StoreResult<Option<User>>;
    async fn revoke_api_keys(&self, user: UserId) -> StoreResult<u64>;
}

/// Projects and the roles users hold on them.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn create_project(
        &self,
        namespace: &str,
        name: &str,
        now: Timestamp,
    ) -> StoreResult<Project>;
    /// Every project of the namespace.
    async fn projects(&self, namespace: &str) -> StoreResult<Vec<Project>>;
    /// The projects of the namespace among `ids`.
    async fn projects_by_ids(
        &self,
        namespace: &str,
        ids: &[ProjectId],
    ) -> StoreResult<Vec<Project>>;
    /// Sets the user's role on the project (replacing any earlier one).
    async fn grant(&self, user: UserId, project: ProjectId, role: Role) -> StoreResult<()>;
    async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>>;
    /// The projects of the namespace among `ids`, in id order, each with the user's role on it
    /// if any: what an invitation's rights are checked on, in one query.
    async fn projects_with_role(
        &self,
        namespace: &str,
        user: UserId,
        ids: &[ProjectId],
    ) -> StoreResult<Vec<(Project, Option<Role>)>>;
}

/// Invitations, from creation to acceptance.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Creates the invitation, its grants, its token and its outgoing email in one transaction.
    async fn create_invitation(&self, invitation: NewInvitation) -> StoreResult<CreateOutcome>;
    async fn invitation(
        &self,
        namespace: &str,
        id: InvitationId,
    ) -> StoreResult<Option<InvitationRecord>>;
    /// The invitations of the namespace among `ids` (the outbox worker reads a batch at once).
    async fn invitations_by_ids(
        &self,
        namespace: &str,
        ids: &[InvitationId],
    ) -> StoreResult<Vec<InvitationRecord>>;
    async fn list_invitations(
        &self,
        namespace: &str,
        filter: &InvitationFilter,
        now: Timestamp,
    ) -> StoreResult<InvitationPage>;
    /// Gives a pending (or expired) invitation a fresh link and queues its email again; the
    /// invitee's older links stop working.
    async fn resend_invitation(&self, resend: ResendInvitation) -> StoreResult<ResendOutcome>;
    /// Revokes a pending (or expired) invitation: its link stops working, its queued email is
    /// cancelled, and the invitee (still pending) loses what it gave: a project it added is
    /// removed, a role it raised goes back (`domain::grant::after_revoke`).
    async fn revoke_invitation(
        &self,
        namespace: &str,
        id: InvitationId,
        now: Timestamp,
    ) -> StoreResult<RevokeOutcome>;
    /// The invitation an accept token belongs to, whether or not the link still works (a dead
    /// link's page names the inviter to ask for a new one).
    async fn accept_link(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<AcceptLink>>;
    /// Whether the token would be accepted now (for a cheap check before hashing a password).
    async fn token_is_live(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Uses the accept link: sets the password, activates the user, marks its pending
    /// invitations accepted and voids its other links.
    async fn accept_invitation(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        password_hash: &str,
        now: Timestamp,
    ) -> StoreResult<AcceptOutcome>;
}

/// First-run setup of a namespace.
#[async_trait]
pub trait SetupStore: Send + Sync {
    /// Stores a first-run setup token if the namespace has no user yet; `false` otherwise.
    async fn issue_setup_token(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<bool>;
    /// Whether a setup token would be accepted now.
    async fn setup_token_is_live(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Uses a setup token: creates the namespace's first user (a superuser) and voids every
    /// setup token of the namespace.
    async fn complete_setup(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        user: NewUser,
        now: Timestamp,
    ) -> StoreResult<SetupOutcome>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, event: AuditEvent) -> StoreResult<()>;
    /// Events at or after `since`, oldest first.
    async fn audit_since(&self, since: Timestamp, limit: i64) -> StoreResult<Vec<AuditRecord>>;
}

/// Deleting what is kept no longer (`maintenance::Janitor`, `cbh-invite prune`).
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes (or with `dry_run`, counts) the rows past the policy's limits, in one
    /// transaction. On PostgreSQL one node at a time: `Skipped` when another holds the lock.
    async fn prune(&self, policy: &PrunePolicy, dry_run: bool) -> StoreResult<PruneRun>;
}

// Types of the methods added for the web pages.

#[derive(Debug, Clone)]
pub struct ResendInvitation {
    pub namespace: String,
    pub id: InvitationId,
    /// Who resends: the email counts against their limit.
    pub sender: UserId,
    pub limits: SendLimits,
    pub token: Token,
    pub message_id: String,
    pub now: Timestamp,
    /// The default lifetime: used when the invitation keeps no `expires_in` of its own.
    pub ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum ResendOutcome {
    Resent(Box<InvitationRecord>),
    /// Accepted or revoked: there is no link left to send.
    NotPending(InvitationStatus),
    NotFound,
    /// A sending limit was reached: nothing was queued.
    Limited {
        limit: LimitKind,
        retry_after: Duration,
    },
    /// The address is on the namespace's suppression list: nothing was queued.
    Suppressed,
}

#[derive(Debug, Clone)]
pub enum RevokeOutcome {
    Revoked(Box<InvitationRecord>),
    /// Accepted or already revoked.
    NotPending(InvitationStatus),
    NotFound,
}

#[derive(Debug, Clone)]
pub struct AcceptLink {
    pub invitation: InvitationRecord,
    /// Whether `accept_invitation` would take the token now.
    pub live: bool,
}

#[derive(Debug, Clone)]
pub enum SetupOutcome {
    Created(User),
    /// Unknown, expired or used token, or the namespace has a user already.
    Gone,
}
