//! The SQL shared by the SQLite and PostgreSQL stores, one file per concern.
//!
//! Both backends run the same queries (both accept `$1` placeholders, `RETURNING`, `ON CONFLICT`
//! and partial indexes), so they are written once here. `sqlx` has no dynamically-typed
//! connection that keeps each driver's types and speed, so these files are compiled once per
//! backend with its concrete types: `sqlite.rs` and `postgres.rs` each include them as their own
//! `sql` module (`#[path = "sql/mod.rs"]`), as a macro expanded per backend would, but as
//! ordinary files that rustfmt formats and rust-analyzer follows. What differs lives in the
//! backend module, reached as `backend::` (it names the same things in both):
//!
//! - `Backend`: the store (`SqliteStore`, `PgStore`); `Db`: its `sqlx::Database`; `Conn`: its
//!   connection;
//! - `Backend::writer(&self)`: the pool for writes; `Backend::read(&self)`: a connection for
//!   reads; `Backend::on_writer(work)`: runs a write where the backend runs its writes;
//! - `FOR_UPDATE`: the row-locking clause (`FOR UPDATE` on PostgreSQL, empty on SQLite, whose
//!   single writer already serialises transactions);
//! - `LOCK_KEY`: the statement that serialises transactions on a text key till they end
//!   (`pg_advisory_xact_lock` on PostgreSQL; none on SQLite, whose single writer does);
//! - `BEGIN`: how a write transaction begins (`BEGIN IMMEDIATE` on SQLite);
//! - `ONE_CALL`: whether several statements go to the database in one call
//!   (`invitation_batch::Statements`);
//! - `PRUNE_LOCK`: the statement that lets one node at a time prune (`pg_try_advisory_xact_lock`
//!   on PostgreSQL; none on SQLite);
//! - `CLAIM_OUTBOX`: the claim query (`FOR UPDATE SKIP LOCKED` on PostgreSQL);
//! - `SKIP_LOCKED`: the same clause alone, for the webhook deliveries' claim;
//! - `async fn lock_sender(conn, user_id)`: serialises one sender's sending-limit decisions,
//!   and the claims of their `Idempotency-Key`s by single and bulk requests
//!   (an advisory lock on PostgreSQL; nothing on SQLite, whose single writer already does);
//! - `async fn lock_mailboxes(conn, keys)`: the same for recipients' limits;
//! - `async fn purge_scrubbed(store)` and `async fn watch_outbox(store, wakeup)`;
//! - `async fn create_invitation(store, new)`: the group commit, and on PostgreSQL the NOTIFY
//!   that follows it;
//! - `fn email_queued(store)`: that NOTIFY alone, after a commit that queued email outside the
//!   group commit (`invitation_bulk`).

mod accounts;
mod audit;
mod bounces;
mod decline;
mod events;
mod expiry;
mod invitation_batch;
mod invitation_bulk;
mod invitation_create;
mod invitation_grants;
mod invitations;
mod limits;
mod members;
mod notices;
mod outbox;
mod projects;
mod reminders;
mod retention;
mod rows;
mod sessions;
mod setup;
mod suppressions;
mod users;
mod webhooks;

use async_trait::async_trait;

/// The backend module that includes these files.
use super as backend;
use crate::store::{Store, StoreResult};
use backend::Backend;
pub(crate) use invitation_batch::commit_batch;
pub(crate) use rows::db_error;

#[async_trait]
impl Store for Backend {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.read().await?)
            .await
            .map_err(db_error("pinging the database"))?;
        Ok(())
    }
}
