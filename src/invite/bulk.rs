//! Inviting several people at once (a bulk request, a CSV file): each row decided exactly as if
//! it had been posted alone, one after the other, and a result for every row.

use std::collections::HashMap;
use std::time::Duration;

use super::ValidInvitation;
use super::rules::{
    InviteSettings, Inviter, Refusal, authorize_projects, check_request, limit_message,
    new_invitation,
};
use crate::domain::{Project, ProjectId, Role, Token};
use crate::store::{
    CreateOutcome, DEACTIVATED_MESSAGE, InvitationRecord, SUPPRESSED_MESSAGE, Store, StoreError,
};

/// The most rows one request may hold.
pub const MAX_ROWS: usize = 1000;

/// A row as read: valid, or why not (its 400 message).
pub type BulkRow = Result<ValidInvitation, String>;

/// What became of a row, as the single POST would have answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// 201: invited (or reminded).
    Created,
    /// 400: the row is invalid, names an unknown project, or asks for a lifetime out of bounds.
    Invalid,
    /// 403: the domain rules, link sharing or the inviter's rights refuse it.
    Forbidden,
    /// 409: the invitee already has every selected project.
    AlreadyInvited,
    /// 429: a sending limit (earlier rows count against it).
    Limited,
    /// 500 or 503: the database failed for this row; nothing of it was kept.
    Failed,
}

impl RowStatus {
    /// The HTTP status the single POST answers for this outcome.
    pub fn code(self, error: Option<&StoreError>) -> u16 {
        match self {
            RowStatus::Created => 201,
            RowStatus::Invalid => 400,
            RowStatus::Forbidden => 403,
            RowStatus::AlreadyInvited => 409,
            RowStatus::Limited => 429,
            RowStatus::Failed if matches!(error, Some(StoreError::Unavailable(_))) => 503,
            RowStatus::Failed => 500,
        }
    }
}

/// The inviter's rights on a set of projects: the projects, or the refusal of every row that
/// selects them.
type Rights = Result<Vec<Project>, (RowStatus, String)>;

/// The result of one row.
#[derive(Debug)]
pub struct RowResult {
    pub status: RowStatus,
    /// Created: the invitation's message (`Invite sent successfully to …`); otherwise what is
    /// wrong, worded as the single POST's `error`.
    pub message: String,
    /// The invitation created (`None` in a dry run, and when refused).
    pub invitation: Option<InvitationRecord>,
    /// The accept link's token, when the row asked for `return_link` and a link was issued
    /// (never in a dry run). To be shown once and never kept.
    pub accept_token: Option<Token>,
    /// Limited: when to try again.
    pub retry_after: Option<Duration>,
    /// Failed: the cause, for the log (the row's message stays generic).
    pub error: Option<StoreError>,
}

impl RowResult {
    fn refused(status: RowStatus, message: String) -> Self {
        Self {
            status,
            message,
            invitation: None,
            accept_token: None,
            retry_after: None,
            error: None,
        }
    }

    /// The HTTP status of the row.
    pub fn code(&self) -> u16 {
        self.status.code(self.error.as_ref())
    }
}

/// Invites the rows, in order, as `inviter` in its namespace: each is checked as the single
/// POST checks it (validation, lifetime, domain rules, link sharing, rights), then the store
/// creates the survivors in order (`BulkStore::create_invitations`), so that earlier rows
/// count against the sending limits of later ones and a second row to one address sees the
/// first. One result per row, in order; one row's refusal or failure never stops the others.
///
/// With `dry_run`, every row's outcome is predicted and nothing is written or sent.
///
/// An `Err` only when the database failed before anything was written (reading the inviter's
/// rights). The caller wakes the outbox worker when some row was created.
pub async fn invite_rows(
    store: &dyn Store,
    settings: &InviteSettings<'_>,
    inviter: &Inviter<'_>,
    rows: Vec<BulkRow>,
    dry_run: bool,
) -> Result<Vec<RowResult>, StoreError> {
    let mut results: Vec<Option<RowResult>> = Vec::with_capacity(rows.len());
    // The rows that reach the store, with their index and their token when it is handed out.
    let mut batch = Vec::new();
    let mut to_store: Vec<(usize, Option<Token>)> = Vec::new();
    // Rights do not change from one row to the next: read once per set of projects and the
    // roles offered on them (a role above the inviter's own is refused on its own row).
    let mut rights: HashMap<Vec<(ProjectId, Role)>, Rights> = HashMap::new();
    for (index, row) in rows.into_iter().enumerate() {
        let request = match row {
            Ok(request) => request,
            Err(message) => {
                results.push(Some(RowResult::refused(RowStatus::Invalid, message)));
                continue;
            }
        };
        let ttl = match check_request(settings, inviter, &request) {
            Ok(ttl) => ttl,
            Err(refusal) => {
                results.push(Some(refused(refusal)?));
                continue;
            }
        };
        let offered: Vec<(ProjectId, Role)> = request
            .projects()
            .iter()
            .map(|project| (*project, request.roles().role(*project)))
            .collect();
        let projects = match rights.get(&offered) {
            Some(known) => known.clone(),
            None => {
                let found =
                    match authorize_projects(store, inviter, request.projects(), request.roles())
                        .await
                    {
                        Ok(projects) => Ok(projects),
                        Err(refusal) => {
                            let refusal = refused(refusal)?;
                            Err((refusal.status, refusal.message))
                        }
                    };
                rights.insert(offered, found.clone());
                found
            }
        };
        let projects = match projects {
            Ok(projects) => projects,
            Err((status, message)) => {
                results.push(Some(RowResult::refused(status, message)));
                continue;
            }
        };
        let token = Token::generate();
        let shown = (request.return_link() && !dry_run).then(|| token.clone());
        batch.push(new_invitation(
            settings, inviter, request, ttl, projects, token, None,
        ));
        to_store.push((index, shown));
        results.push(None);
    }
    let outcomes = if batch.is_empty() {
        Vec::new()
    } else {
        store.create_invitations(batch, dry_run).await?
    };
    for ((index, shown), outcome) in to_store.into_iter().zip(outcomes) {
        results[index] = Some(stored(settings, outcome, shown, dry_run));
    }
    Ok(results.into_iter().flatten().collect())
}

/// A refusal before the store as a row's result; a database failure ends the request (nothing
/// has been written yet).
fn refused(refusal: Refusal) -> Result<RowResult, StoreError> {
    match refusal {
        Refusal::Invalid(message) => Ok(RowResult::refused(RowStatus::Invalid, message)),
        Refusal::Forbidden(message) => Ok(RowResult::refused(RowStatus::Forbidden, message)),
        Refusal::Store(error) => Err(error),
    }
}

/// What the store did with a row.
fn stored(
    settings: &InviteSettings<'_>,
    outcome: Result<CreateOutcome, StoreError>,
    shown: Option<Token>,
    dry_run: bool,
) -> RowResult {
    match outcome {
        Ok(CreateOutcome::Created(record) | CreateOutcome::Replayed(record)) => RowResult {
            status: RowStatus::Created,
            message: record.message.clone(),
            // Only a link that was issued (a pending invitee) is handed out.
            accept_token: shown.filter(|_| record.expires.is_some()),
            invitation: (!dry_run).then_some(record),
            retry_after: None,
            error: None,
        },
        Ok(CreateOutcome::Rejected(rejection)) => {
            RowResult::refused(RowStatus::AlreadyInvited, rejection.to_string())
        }
        Ok(CreateOutcome::Suppressed) => {
            RowResult::refused(RowStatus::AlreadyInvited, SUPPRESSED_MESSAGE.to_owned())
        }
        Ok(CreateOutcome::Deactivated) => {
            RowResult::refused(RowStatus::AlreadyInvited, DEACTIVATED_MESSAGE.to_owned())
        }
        Ok(CreateOutcome::Limited { limit, retry_after }) => RowResult {
            retry_after: Some(retry_after),
            ..RowResult::refused(
                RowStatus::Limited,
                limit_message(settings.limits, limit, retry_after),
            )
        },
        // Rows carry no idempotency key of their own.
        Ok(CreateOutcome::KeyReused) => {
            RowResult::refused(RowStatus::Failed, "an internal error occurred".to_owned())
        }
        Err(error) => RowResult {
            error: Some(error),
            ..RowResult::refused(RowStatus::Failed, failed_message())
        },
    }
}

fn failed_message() -> String {
    "this row could not be stored; nothing of it was kept, try it again".to_owned()
}
