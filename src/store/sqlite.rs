//! The embedded SQLite store.
//!
//! One connection writes and a small pool reads: SQLite allows one writer at a time anyway, and
//! funnelling writes through one connection turns lock contention (SQLITE_BUSY and its retries)
//! into a queue. WAL lets the readers work while the writer commits; `synchronous=NORMAL` in WAL
//! mode keeps every committed transaction through a crash of the process. The queries are
//! shared with PostgreSQL (`store::sql`); this module holds what is SQLite's own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::Notify;

use super::StoreResult;
use super::sql::impl_sql_store;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the folder {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Scrubbed tokens are overwritten with zeros, not left in free pages.
            .pragma("secure_delete", "ON");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        MIGRATOR
            .run(&writer)
            .await
            .context("applying SQLite migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("opening SQLite readers")?;
        Ok(Self { writer, reader })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}

/// The single writer connection already serialises every transaction.
const FOR_UPDATE: &str = "";

const CLAIM_OUTBOX: &str = "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $2 \
       AND (lease_until IS NULL OR lease_until <= $2) \
       ORDER BY next_attempt_at, id LIMIT $3) \
     RETURNING id, namespace, invitation_id, kind, recipient, message_id, accept_token, attempts";

/// One process delivers; the HTTP handler wakes its worker directly.
async fn outbox_changed(_conn: &mut SqliteConnection) -> StoreResult<()> {
    Ok(())
}

/// With secure_delete the main file no longer holds scrubbed tokens once checkpointed;
/// TRUNCATE also empties the WAL, which still holds the frames written before the scrub.
async fn purge_scrubbed(store: &SqliteStore) -> StoreResult<()> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.writer())
        .await
        .map_err(shared_sql::db_error("checkpointing the WAL"))?;
    Ok(())
}

/// Nothing to watch: only this process writes to the outbox.
async fn watch_outbox(_store: &SqliteStore, _wakeup: Arc<Notify>) {}

impl_sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteConnection);
