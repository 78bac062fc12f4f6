//! The embedded SQLite store.
//!
//! One connection writes and a small pool reads: SQLite allows one writer at a time anyway, and
//! funnelling writes through one connection turns lock contention (SQLITE_BUSY and its retries)
//! into a queue. WAL lets the readers work while the writer commits; `synchronous=NORMAL` in WAL
//! mode keeps every committed transaction through a crash of the process (`CBH_SQLITE_SYNC=full`
//! also through a power loss, at the price of a sync per commit). The queries are
//! shared with PostgreSQL (`store/sql/`); this module holds what is SQLite's own.
//!
//! Invitations are created by a group commit (`store::group_commit`) with one committer: with
//! one writer, throughput is set by how long each invitation holds it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::{Notify, Semaphore, SemaphorePermit, mpsc};

use super::group_commit::{GroupCommit, InvitationJob, MAX_BATCH};
use super::{CreateOutcome, NewInvitation, StoreError, StoreResult};
use crate::config::SqliteSync;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: Readers,
    /// The hot reads of every request, answered on the calling thread (`read_direct`).
    direct: DirectReaders,
    /// To the group commit (`commit_invitations`).
    invitations: GroupCommit,
    /// The runtime of the writer's thread.
    writer_runtime: tokio::runtime::Handle,
}

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
        // A connection to a local file does not drop like one over a network: testing it
        // before each use would cost a round trip to its thread for nothing.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        MIGRATOR
            .run(&writer)
            .await
            .context("applying SQLite migrations")?;
        let reader = Readers::open(&options, READERS).await?;
        let direct = DirectReaders::new(path);
        let (invitations, queue) = GroupCommit::new();
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
            direct,
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
            .map_err(|error| {
                StoreError::Other(anyhow::anyhow!("the SQLite writer's task: {error}"))
            })?
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// A reader connection, for the time of the guard.
    async fn read(&self) -> StoreResult<ReaderGuard<'_>> {
        self.reader.get().await
    }
}

/// Answers a read on the calling thread with a connection of its own (rusqlite, on the same
/// SQLite library as sqlx), or `None` when it cannot: the caller then reads through `read`.
///
/// Each request makes two reads (its API key, the caller's roles on the projects it names).
/// Through sqlx, each is a hand-off to the connection's thread and back: two wake-ups of a
/// thread for an indexed lookup (BENCHMARKS.md, "Where the time goes": skipping one of the two
/// reads raised throughput by about 30%). Here a read is a few microseconds of the calling
/// thread, with its statement prepared once per connection. A WAL reader does
/// not wait for the writer; should it find the database busy (a checkpoint restarting the WAL),
/// it gives up after `DIRECT_BUSY_TIMEOUT` and the read goes the usual way, which waits.
fn read_direct<T>(
    store: &SqliteStore,
    context: &'static str,
    work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
) -> Option<StoreResult<T>> {
    store.direct.read(context, work)
}

/// Reader connections.
const READERS: usize = 4;
/// Idle direct readers kept: about one per thread that reads at a time.
const DIRECT_READERS: usize = 4;
/// How long a direct read waits for a busy database before handing the read over.
const DIRECT_BUSY_TIMEOUT: Duration = Duration::from_millis(20);

/// The connections of `read_direct`, opened when first needed.
struct DirectReaders {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl DirectReaders {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: std::sync::Mutex::new(Vec::with_capacity(DIRECT_READERS)),
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        // Read-only, and used by one thread at a time (`idle` hands it out).
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(DIRECT_BUSY_TIMEOUT)?;
        Ok(conn)
    }

    fn read<T>(
        &self,
        context: &'static str,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<StoreResult<T>> {
        let idle = self.idle.lock().ok()?.pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().ok()?,
        };
        let result = work(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < DIRECT_READERS
        {
            idle.push(conn);
        }
        match result {
            Ok(value) => Some(Ok(value)),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if matches!(
                    error.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                None
            }
            Err(error) => Some(Err(StoreError::Other(
                anyhow::Error::new(error).context(context),
            ))),
        }
    }
}

/// The readers, handed out without sqlx's pool: it sends each connection that comes back a
/// ping, a round trip to the connection's thread that doubled the cost of every read (each
/// request makes two). Statements reach a connection's thread one after the other, so one given
/// back while its statement still runs (its request went away) only delays the next; a
/// transaction left open is rolled back by sqlx when its guard is dropped.
struct Readers {
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    /// One permit per idle connection.
    available: Semaphore,
}

impl Readers {
    async fn open(options: &SqliteConnectOptions, count: usize) -> anyhow::Result<Self> {
        let mut idle = Vec::with_capacity(count);
        for _ in 0..count {
            idle.push(options.connect().await.context("opening a SQLite reader")?);
        }
        Ok(Self {
            idle: std::sync::Mutex::new(idle),
            available: Semaphore::new(count),
        })
    }

    async fn get(&self) -> StoreResult<ReaderGuard<'_>> {
        let unavailable =
            || StoreError::Unavailable(anyhow::anyhow!("the SQLite readers are closed"));
        let permit = self.available.acquire().await.map_err(|_| unavailable())?;
        let conn = self
            .idle
            .lock()
            .map_err(|_| unavailable())?
            .pop()
            .ok_or_else(unavailable)?;
        Ok(ReaderGuard {
            conn: Some(conn),
            readers: self,
            _permit: permit,
        })
    }
}

struct ReaderGuard<'a> {
    /// Taken back by `drop`.
    conn: Option<SqliteConnection>,
    readers: &'a Readers,
    _permit: SemaphorePermit<'a>,
}

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.readers.idle.lock()) {
            idle.push(conn);
        }
    }
}

impl std::ops::Deref for ReaderGuard<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Some from `get` until `drop`.
        self.conn
            .as_ref()
            .expect("a reader guard holds its connection")
    }
}

impl std::ops::DerefMut for ReaderGuard<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a reader guard holds its connection")
    }
}

/// The single writer connection already serialises every transaction.
const FOR_UPDATE: &str = "";

/// Nothing to lock: the single writer connection already serialises every sending-limit
/// decision (`sql::limits::lock_sender`).
async fn lock_sender(_conn: &mut Conn, _sender: i64) -> StoreResult<()> {
    Ok(())
}

/// Nothing to lock, as for `lock_sender`.
async fn lock_mailboxes(_conn: &mut Conn, _keys: Vec<i32>) -> StoreResult<()> {
    Ok(())
}

/// Several statements go to the connection's thread in one call (`sql::invitation_batch`).
const ONE_CALL: bool = true;
/// Write transactions take the write lock when they begin. A deferred transaction that read
/// first could not write once another process (a command beside `serve`, another node in the
/// tests) had committed since its read began: SQLite answers "database is locked" at once,
/// without waiting out the busy timeout. Taken at BEGIN, the lock is waited for like any other.
const BEGIN: &str = "BEGIN IMMEDIATE";

/// No lock needed: the single writer connection already serialises every transaction.
const LOCK_KEY: Option<&str> = None;

/// One process writes: nothing else prunes meanwhile.
const PRUNE_LOCK: Option<&str> = None;
/// The single writer already serialises claims.
const SKIP_LOCKED: &str = "";

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
        .map_err(sql::db_error("checkpointing the WAL"))?;
    Ok(())
}

/// Nothing to watch: only this process writes to the outbox.
async fn watch_outbox(_store: &SqliteStore, _wakeup: Arc<Notify>) {}

async fn create_invitation(store: &SqliteStore, new: NewInvitation) -> StoreResult<CreateOutcome> {
    store.invitations.submit(new).await
}

/// Nothing to announce: only this process writes to the outbox.
fn email_queued(_store: &SqliteStore) {}

/// The one committer: takes whatever invitations are waiting and creates them in one
/// transaction.
async fn commit_invitations(writer: SqlitePool, mut queue: mpsc::Receiver<InvitationJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        sql::commit_batch(&writer, std::mem::take(&mut batch)).await;
    }
}

/// The shared queries (`store/sql/`), compiled for this backend, which they name `backend`: its
/// store is `Backend`, its database `Db`, its connection `Conn`.
// postgres.rs includes the same files: deliberately, so that each backend gets its own copy
// with concrete types (no generic bounds, no dynamic dispatch), as a macro expanded per backend
// would.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

type Backend = SqliteStore;
type Db = sqlx::Sqlite;
type Conn = sqlx::sqlite::SqliteConnection;
