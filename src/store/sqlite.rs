//! The embedded SQLite store.
//!
//! One connection writes and a small pool reads: SQLite allows one writer at a time anyway, and
//! funnelling writes through one connection turns lock contention (SQLITE_BUSY and its retries)
//! into a queue. WAL lets the readers work while the writer commits; `synchronous=NORMAL` in WAL
//! mode keeps every committed transaction through a crash of the process (`CBH_SQLITE_SYNC=full`
//! also through a power loss, at the price of a sync per commit). The queries are
//! shared with PostgreSQL (`store::sql`); this module holds what is SQLite's own.
//!
//! Invitations are created by a group commit: those that arrive while the writer is busy are
//! created together, in one transaction, when it is free. With one writer, throughput is set by
//! how long each invitation holds it; a batch spends one BEGIN and one COMMIT (and one append of
//! each page it touched to the WAL) for all of its invitations. Every request still gets its
//! answer only after the commit that holds its invitation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{Notify, mpsc, oneshot};

use super::sql::impl_sql_store;
use super::{CreateOutcome, NewInvitation, StoreError, StoreResult};
use crate::config::SqliteSync;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// To the group commit (`commit_invitations`).
    invitations: mpsc::Sender<InvitationJob>,
    /// The runtime of the writer's thread.
    writer_runtime: tokio::runtime::Handle,
}

/// An invitation to create, and where its outcome goes.
type InvitationJob = (NewInvitation, oneshot::Sender<StoreResult<CreateOutcome>>);

/// At most this many invitations share a commit: a bigger batch holds the writer longer.
const MAX_BATCH: usize = 64;
/// Invitations waiting for the writer; past this, requests wait to queue.
const QUEUE_LENGTH: usize = 1024;

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path, sync: SqliteSync) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the folder {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Normal => SqliteSynchronous::Normal,
                SqliteSync::Full => SqliteSynchronous::Full,
            })
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
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("opening SQLite readers")?;
        let (invitations, queue) = mpsc::channel(QUEUE_LENGTH);
        let committer = writer.clone();
        // The writer is used only from a thread and runtime of its own (`on_writer`), so that
        // its work goes on as soon as the writer's thread answers a statement, instead of
        // waiting its turn behind the requests on the shared runtime: with one writer, every
        // such wait (and a connection given back late is one) is paid by every write.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the SQLite writer's runtime")?;
        let writer_runtime = runtime.handle().clone();
        // Ends when the store is dropped (the queue's sender with it).
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || runtime.block_on(commit_invitations(committer, queue)))
            .context("starting the SQLite writer's thread")?;
        Ok(Self {
            writer,
            reader,
            invitations,
            writer_runtime,
        })
    }

    /// Runs a write on the writer's thread (see `open`); the outbox worker's claims and marks
    /// go this way, beside the group commit.
    async fn on_writer<T, F>(&self, work: impl FnOnce(SqlitePool) -> F) -> StoreResult<T>
    where
        F: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.writer_runtime
            .spawn(work(self.writer.clone()))
            .await
            .map_err(|error| StoreError::Other(anyhow::anyhow!("the SQLite writer's task: {error}")))?
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

/// Several statements go to the connection's thread in one call (see `store::sql`).
const ONE_CALL: bool = true;

const CLAIM_OUTBOX: &str = "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $2 \
       AND (lease_until IS NULL OR lease_until <= $2) \
       ORDER BY next_attempt_at, id LIMIT $3) \
     RETURNING id, namespace, invitation_id, kind, recipient, message_id, accept_token, attempts";

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

async fn create_invitation(store: &SqliteStore, new: NewInvitation) -> StoreResult<CreateOutcome> {
    let stopped = || StoreError::Other(anyhow::anyhow!("the SQLite group commit has stopped"));
    let (reply, outcome) = oneshot::channel();
    // Once queued, the invitation is created even if the request goes away meanwhile, as a
    // request that had already reached its commit would be.
    store
        .invitations
        .send((new, reply))
        .await
        .map_err(|_| stopped())?;
    outcome.await.map_err(|_| stopped())?
}

/// The group commit: takes whatever invitations are waiting (at most `MAX_BATCH`) and creates
/// them in one transaction.
async fn commit_invitations(writer: SqlitePool, mut queue: mpsc::Receiver<InvitationJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&writer, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(writer: &SqlitePool, jobs: Vec<InvitationJob>) {
    match create_together(writer, &jobs).await {
        Ok(outcomes) => {
            for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        // The writer itself failed: so would each invitation alone.
        Err(Together::Writer(error)) => {
            for (_, reply) in jobs {
                let _ = reply.send(Err(same_error(&error)));
            }
        }
        // Alone in its batch, the invitation's own error is its answer.
        Err(Together::Invitation(error)) if jobs.len() == 1 => {
            if let Some((_, reply)) = jobs.into_iter().next() {
                let _ = reply.send(Err(error));
            }
        }
        // One invitation failed and the transaction was rolled back: each is created again on
        // its own, so that one cannot fail the others.
        Err(Together::Invitation(error)) => {
            tracing::warn!(
                error = format!("{:#}", anyhow::Error::new(error)),
                "an invitation failed a batch; creating the batch's invitations one by one"
            );
            for (new, reply) in jobs {
                let _ = reply.send(shared_sql::create_invitation_once(writer, &new).await);
            }
        }
    }
}

/// The error again, for each request of a batch (the cause chain becomes text).
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Conflict(what) => StoreError::Conflict(what.clone()),
        StoreError::Unavailable(cause) => StoreError::Unavailable(anyhow::anyhow!("{cause:#}")),
        StoreError::Other(cause) => StoreError::Other(anyhow::anyhow!("{cause:#}")),
    }
}

enum Together {
    /// Starting or committing the transaction failed.
    Writer(StoreError),
    Invitation(StoreError),
}

async fn create_together(
    writer: &SqlitePool,
    jobs: &[InvitationJob],
) -> Result<Vec<CreateOutcome>, Together> {
    let mut tx = writer
        .begin()
        .await
        .map_err(|e| Together::Writer(shared_sql::db_error("starting invitations")(e)))?;
    let batch: Vec<&NewInvitation> = jobs.iter().map(|(new, _)| new).collect();
    let outcomes = shared_sql::create_invitations_in(&mut tx, &batch)
        .await
        .map_err(Together::Invitation)?;
    tx.commit()
        .await
        .map_err(|e| Together::Writer(shared_sql::db_error("committing invitations")(e)))?;
    Ok(outcomes)
}

impl_sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteConnection);
