//! Group commit: invitations that arrive while the database is busy are created together, in
//! one transaction, when a committer is free.
//!
//! A batch costs one BEGIN, one COMMIT (one WAL flush on PostgreSQL, one append of each touched
//! page on SQLite) and about one statement per table for all of its invitations to new people
//! (`create_invitations_in` in `store/sql/invitation_batch.rs`), where one at a time each
//! invitation would pay all of that alone. Every request still gets its answer only after the
//! commit that holds its invitation. SQLite has one committer, on the writer's thread;
//! PostgreSQL several, so that batches overlap their round trips and their commits.

use tokio::sync::{mpsc, oneshot};

use super::{CreateOutcome, NewInvitation, StoreError, StoreResult};

/// At most this many invitations share a transaction: a bigger batch holds its locks longer.
pub const MAX_BATCH: usize = 64;
/// Invitations waiting for a committer; past this, requests wait to queue.
const QUEUE_LENGTH: usize = 1024;

/// An invitation to create, and where its outcome goes.
pub type InvitationJob = (NewInvitation, oneshot::Sender<StoreResult<CreateOutcome>>);

/// Where requests hand their invitations to the committers.
pub struct GroupCommit {
    jobs: mpsc::Sender<InvitationJob>,
}

impl GroupCommit {
    /// The queue, and its receiving end for the committers. They stop when the `GroupCommit`
    /// is dropped (with its store) and the queue is empty.
    pub fn new() -> (Self, mpsc::Receiver<InvitationJob>) {
        let (jobs, queue) = mpsc::channel(QUEUE_LENGTH);
        (Self { jobs }, queue)
    }

    /// Creates the invitation in the next batch. Once queued, it is created even if the request
    /// goes away meanwhile, as a request that had already reached its commit would be.
    pub async fn submit(&self, new: NewInvitation) -> StoreResult<CreateOutcome> {
        let stopped = || StoreError::Other(anyhow::anyhow!("the group commit has stopped"));
        let (reply, outcome) = oneshot::channel();
        self.jobs.send((new, reply)).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// Why a batch's transaction did not commit.
pub enum Together {
    /// Starting or committing the transaction failed: so would each invitation alone.
    Transaction(StoreError),
    /// One invitation failed; the transaction was rolled back.
    Invitation(StoreError),
}

/// The error again, for each request of a batch (the cause chain becomes text).
pub fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Conflict(what) => StoreError::Conflict(what.clone()),
        StoreError::Unavailable(cause) => StoreError::Unavailable(anyhow::anyhow!("{cause:#}")),
        StoreError::Other(cause) => StoreError::Other(anyhow::anyhow!("{cause:#}")),
    }
}
