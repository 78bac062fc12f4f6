//! The PostgreSQL store, for several nodes on one database.
//!
//! Any number of nodes share the tables: sessions, keys, tokens and the outbox all live here, so
//! a request may land on any node. Workers claim outbox rows with `FOR UPDATE SKIP LOCKED` and a
//! lease, so no two deliver the same message, and a queued message wakes idle workers on every
//! node through `LISTEN/NOTIFY` (polling stays as the fallback). The NOTIFY is sent after the
//! commit that queued the email, by `announce_queued_email`. The queries are shared with
//! SQLite (`store/sql/`); this module holds what is PostgreSQL's own.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use tokio::sync::{Mutex, Notify, mpsc};

use super::group_commit::{GroupCommit, InvitationJob, MAX_BATCH};
use super::{CreateOutcome, NewInvitation, StoreResult};
use crate::config::PoolSettings;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel on which a queued email is announced.
const OUTBOX_CHANNEL: &str = "cbh_outbox";

/// A pooled connection idle longer than this is tested before use.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Batches committed at once (`store::group_commit`), each on a pooled connection: while one
/// waits for its round trips or its WAL flush, the others work, and PostgreSQL flushes the WAL
/// once for commits that come together.
const COMMITTERS: usize = 4;

pub struct PgStore {
    pool: PgPool,
    /// To the committers (`commit_invitations`), which stop with it.
    invitations: GroupCommit,
    /// Tells `announce_queued_email` that a committed transaction queued an email.
    queued: Arc<Notify>,
    announcer: tokio::task::AbortHandle,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.announcer.abort();
    }
}

impl PgStore {
    /// Connects (retrying for `connect_retry`, so nodes may start before the database) and
    /// applies pending migrations. sqlx's migrator holds a PostgreSQL advisory lock while it
    /// runs, so nodes starting together migrate one at a time.
    pub async fn open(url: &str, settings: &PoolSettings) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("CBH_DATABASE_URL is not a valid PostgreSQL URL")?;
        // Named in a start-up error: which server, never the password.
        let server = format!(
            "PostgreSQL at {}:{} (database {})",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        );
        let options = options.application_name("cbh-invite").options([(
            "statement_timeout",
            settings.statement_timeout.as_millis().to_string(),
        )]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // A connection broken by a database restart is noticed before a request gets it:
            // sqlx tests each one as it comes back to the pool, and this tests one that has
            // been idle since (the restart may have come meanwhile). Testing every connection
            // before every use would add a round trip to each.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(
                    async move { Ok(meta.idle_for < PING_AFTER_IDLE || conn.ping().await.is_ok()) },
                )
            })
            .connect_lazy_with(options);
        let deadline = tokio::time::Instant::now() + settings.connect_retry;
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(error) if tokio::time::Instant::now() < deadline && is_unreachable(&error) => {
                    tracing::warn!(error = %error, "PostgreSQL is not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(sqlx::migrate::MigrateError::Execute(error)) if is_connect_error(&error) => {
                    // One line: the variable, the server, and sqlx's own reason (for TLS, the
                    // certificate check that failed).
                    return Err(anyhow::anyhow!(
                        "CBH_DATABASE_URL: cannot connect to {server}: {error}"
                    ));
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error).context("applying PostgreSQL migrations"));
                }
            }
        }
        let queued = Arc::new(Notify::new());
        let announcer = tokio::spawn(announce_queued_email(pool.clone(), queued.clone()));
        let (invitations, queue) = GroupCommit::new();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..COMMITTERS {
            tokio::spawn(commit_invitations(pool.clone(), queue.clone()));
        }
        Ok(Self {
            pool,
            invitations,
            queued,
            announcer: announcer.abort_handle(),
        })
    }

    /// Writes run where they are called: each takes a connection of its own from the pool.
    async fn on_writer<T, F>(&self, work: impl FnOnce(PgPool) -> F) -> StoreResult<T>
    where
        F: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        work(self.pool.clone()).await
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// A pooled connection, for the time of the guard.
    async fn read(&self) -> StoreResult<PoolConnection<Postgres>> {
        self.pool
            .acquire()
            .await
            .map_err(sql::db_error("connecting to the database"))
    }
}

/// No read is answered on the calling thread (SQLite's `read_direct`): each is a round trip to
/// the server anyway.
fn read_direct<T>(
    _store: &PgStore,
    _context: &'static str,
    _work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
) -> Option<StoreResult<T>> {
    None
}

/// Worth waiting for: the server is down or starting. A TLS failure is not (a certificate that
/// does not verify, a server without TLS under `sslmode=require`): start-up stops at once.
fn is_unreachable(error: &sqlx::migrate::MigrateError) -> bool {
    match error {
        sqlx::migrate::MigrateError::Execute(e) => {
            let io_unreachable = matches!(e, sqlx::Error::Io(io) if !is_tls_failure(io));
            io_unreachable
                || matches!(e, sqlx::Error::PoolTimedOut)
                || e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
        }
        _ => false,
    }
}

/// sqlx hands a failed TLS handshake (a certificate that does not verify) back as an I/O error
/// of kind `InvalidData`, which a server that is down or starting never causes.
fn is_tls_failure(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::InvalidData
}

/// An error of connecting rather than of a migration.
fn is_connect_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Tls(_)
            | sqlx::Error::Configuration(_)
            | sqlx::Error::Protocol(_)
    ) || error
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code.starts_with("28") || code.starts_with("3D"))
}

/// The extended protocol takes one statement with arguments at a time (`sql::invitation_batch`).
/// Write transactions: PostgreSQL's row locks and advisory locks order them.
const BEGIN: &str = "BEGIN";
const ONE_CALL: bool = false;

/// Row locks keep two transactions from deciding on the same invitee or link at once.
const FOR_UPDATE: &str = " FOR UPDATE";

/// Serialises the transactions that decide on one key (a login's account, its client address),
/// on every node, until their commit or rollback.
const LOCK_KEY: Option<&str> = Some("SELECT pg_advisory_xact_lock(hashtext($1))");

/// Serialises the sending-limit decisions of one sender (`sql::limits::lock_sender`) across
/// nodes and committers, until the transaction ends. An advisory lock rather than a row lock
/// on the sender's user row: that row is also locked when the sender is invited, and the two
/// would then be taken in either order.
async fn lock_sender(conn: &mut Conn, sender: i64) -> StoreResult<()> {
    // The two-key form has a key space of its own (sqlx's migrator uses the one-key form);
    // the first key names this use, the second is the user's id (ids past 2^31 share a lock,
    // which only serialises more than needed).
    sqlx::query("SELECT pg_advisory_xact_lock(1667393641, CAST($1 % 2147483647 AS INTEGER))")
        .bind(sender)
        .execute(&mut *conn)
        .await
        .map_err(sql::db_error("locking the sender's limit"))?;
    Ok(())
}

/// Serialises the recipient-limit decisions for these mailboxes (`sql::limits::lock_mailboxes`;
/// `keys` sorted, so every transaction takes them in one order), in one round trip.
async fn lock_mailboxes(conn: &mut Conn, keys: Vec<i32>) -> StoreResult<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(1667393642, k) FROM unnest(CAST($1 AS INTEGER[])) AS k",
    )
    .bind(keys)
    .execute(&mut *conn)
    .await
    .map_err(sql::db_error("locking the recipients' limits"))?;
    Ok(())
}

/// One node at a time prunes (`sql::retention`): the others find the lock taken and skip their
/// run. A transaction-level lock, so that a run cut short (shutdown, lost connection) can never
/// leave it held on a pooled connection.
const PRUNE_LOCK: Option<&str> = Some("SELECT pg_try_advisory_xact_lock(1667393643, 0)");
/// Workers on every node claim webhook deliveries side by side, none waiting for another's rows.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

const CLAIM_OUTBOX: &str = "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $2 \
       AND (lease_until IS NULL OR lease_until <= $2) \
       ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, namespace, invitation_id, kind, recipient, message_id, accept_token, attempts";

/// Wakes the workers of every node (this one's was woken directly) once email was queued.
///
/// A NOTIFY inside the transaction that queues the email would be simpler, but PostgreSQL
/// serialises the commits of notifying transactions behind one lock, each with its own WAL
/// flush: invitations committed one at a time (BENCHMARKS.md). Sent after the commit, one
/// NOTIFY stands for every email queued while the previous one was on its way.
async fn announce_queued_email(pool: PgPool, queued: Arc<Notify>) {
    loop {
        queued.notified().await;
        if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(OUTBOX_CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::debug!(%error, "queued email not announced; other nodes' workers will poll");
        }
    }
}

/// PostgreSQL keeps old row versions until VACUUM; autovacuum reclaims the scrubbed ones. A
/// VACUUM after every batch would cost more than it protects, so nothing is forced here.
async fn purge_scrubbed(_store: &PgStore) -> StoreResult<()> {
    Ok(())
}

async fn watch_outbox(store: &PgStore, wakeup: Arc<Notify>) {
    loop {
        match listen(store, &wakeup).await {
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "outbox listener lost; polling until it is back"
                )
            }
        }
        // Whatever was announced while the listener was down is picked up now.
        wakeup.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(store: &PgStore, wakeup: &Notify) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(&store.pool)
        .await
        .context("connecting the outbox listener")?;
    listener
        .listen(OUTBOX_CHANNEL)
        .await
        .context("listening for queued email")?;
    loop {
        listener.recv().await.context("waiting for queued email")?;
        wakeup.notify_one();
    }
}

async fn create_invitation(store: &PgStore, new: NewInvitation) -> StoreResult<CreateOutcome> {
    let outcome = store.invitations.submit(new).await;
    if let Ok(CreateOutcome::Created(_)) = &outcome {
        store.queued.notify_one();
    }
    outcome
}

/// Wakes the other nodes' workers (`announce_queued_email`) after a commit that queued email.
fn email_queued(store: &PgStore) {
    store.queued.notify_one();
}

/// A committer: takes whatever invitations are waiting (while the others commit theirs) and
/// creates them in one transaction.
async fn commit_invitations(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<InvitationJob>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        sql::commit_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

/// The shared queries (`store/sql/`), compiled for this backend, which they name `backend`: its
/// store is `Backend`, its database `Db`, its connection `Conn`.
// sqlite.rs includes the same files: deliberately, so that each backend gets its own copy
// with concrete types (no generic bounds, no dynamic dispatch), as a macro expanded per backend
// would.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

type Backend = PgStore;
type Db = sqlx::Postgres;
type Conn = sqlx::postgres::PgConnection;
