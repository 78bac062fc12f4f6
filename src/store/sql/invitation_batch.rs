//! Creating a group commit's batch of invitations (`store::group_commit`) in one transaction,
//! with one statement per table for the invitations to people the namespace does not know yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use sqlx::QueryBuilder;

use super::backend::{self, Conn, Db};
use super::events;
use super::invitation_create::{
    InvitationInsert, create_invitation_alone, create_invitation_in, inserted_record, ttl_seconds,
};
use super::limits::{SENT_BY, lock_mailboxes};
use super::rows::db_error;
use super::suppressions;
use crate::domain::grant::GrantChange;
use crate::domain::invitation::plan_invitation;
use crate::domain::{ProjectId, Timestamp, User, UserId};
use crate::store::group_commit::{InvitationJob, Together, same_error};
use crate::store::{CreateOutcome, InvitationRecord, NewInvitation, StoreResult};

/// Creates a batch of queued invitations (`store::group_commit`) and answers each.
pub(crate) async fn commit_batch(pool: &sqlx::Pool<Db>, jobs: Vec<InvitationJob>) {
    let batch: Vec<&NewInvitation> = jobs.iter().map(|(new, _)| new).collect();
    match create_together(pool, &batch).await {
        Ok(outcomes) => {
            for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(Together::Transaction(error)) => {
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
        // Each is created again on its own, so that one cannot fail the others.
        Err(Together::Invitation(error)) => {
            tracing::warn!(
                error = format!("{:#}", anyhow::Error::new(error)),
                "an invitation failed a batch; creating the batch's invitations one by one"
            );
            for (new, reply) in jobs {
                let _ = reply.send(create_invitation_alone(pool, &new).await);
            }
        }
    }
}

/// The batch in one transaction, outcomes in the order of `batch`.
pub(super) async fn create_together(
    pool: &sqlx::Pool<Db>,
    batch: &[&NewInvitation],
) -> Result<Vec<CreateOutcome>, Together> {
    let mut tx = pool
        .begin_with(super::backend::BEGIN)
        .await
        .map_err(|e| Together::Transaction(db_error("starting invitations")(e)))?;
    let outcomes = create_invitations_in(&mut tx, batch)
        .await
        .map_err(Together::Invitation)?;
    tx.commit()
        .await
        .map_err(|e| Together::Transaction(db_error("committing invitations")(e)))?;
    Ok(outcomes)
}

/// `create_invitation_in` for several invitations in one transaction (a group commit's
/// batch), with outcomes in the order of `batch`. Every statement is a round trip to
/// the database's thread or server, so invitations to people the namespace does not
/// know yet (most of them) are created together, with one statement per table for all.
/// The others (a known invitee, an `Idempotency-Key`, an inviter near their limit, a
/// second invitation to one new address) then go one by one and see what the first
/// step wrote, as if they had come after it. That is the order of `batch` whenever it
/// matters (`batch_candidates`), which a bulk request relies on.
pub(super) async fn create_invitations_in(
    tx: &mut Conn,
    batch: &[&NewInvitation],
) -> StoreResult<Vec<CreateOutcome>> {
    let mut outcomes: Vec<Option<CreateOutcome>> = batch.iter().map(|_| None).collect();
    let candidates = batch_candidates(&mut *tx, batch).await?;
    let new_invitees = insert_new_invitees(&mut *tx, batch, &candidates).await?;
    let created = invite_new_invitees(&mut *tx, batch, &new_invitees).await?;
    announce_new_invitees(&mut *tx, batch, &new_invitees, &created).await?;
    for (index, record) in created {
        outcomes[index] = Some(CreateOutcome::Created(record));
    }
    for (outcome, new) in outcomes.iter_mut().zip(batch) {
        if outcome.is_none() {
            *outcome = Some(create_invitation_in(&mut *tx, new).await?);
        }
    }
    Ok(outcomes
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .context("an invitation of the batch has no outcome")?)
}

/// The invitations of a batch that may be created together if their invitee is new: no
/// idempotency key to look up, the first to their mailbox, a mailbox that received nothing
/// within the recipient limit's window (in any namespace), and an inviter who stays within
/// their limit even if all of their invitations in the batch are created.
async fn batch_candidates(conn: &mut Conn, batch: &[&NewInvitation]) -> StoreResult<Vec<usize>> {
    // Per limited inviter: invitations in the batch, the tightest limit, and the start
    // of the widest window (counting more than needed only sends more one by one).
    let mut limited: BTreeMap<i64, (i64, u32, Timestamp)> = BTreeMap::new();
    for new in batch {
        if let Some(limit) = new.limits.per_inviter {
            let since = new.now.minus(limit.window);
            let entry = limited
                .entry(new.inviter.id.0)
                .or_insert((0, limit.max, since));
            entry.0 += 1;
            entry.1 = entry.1.min(limit.max);
            entry.2 = entry.2.min(since);
        }
    }
    // Every inviter's lock first, in id order, before any row lock: two batches then wait
    // for each other in one order, never in a cycle.
    for inviter in limited.keys() {
        backend::lock_sender(&mut *conn, *inviter).await?;
    }
    // Then every mailbox's, in one call (also what serialises the suppression list's
    // decisions with a decline: `suppressions`).
    let mailboxes: Vec<String> = batch.iter().map(|new| new.email.recipient_key()).collect();
    lock_mailboxes(&mut *conn, mailboxes.iter().map(String::as_str)).await?;
    // A suppressed address goes one by one, where `create_invitation_in` refuses it.
    let pairs = batch
        .iter()
        .map(|new| (new.namespace.clone(), new.email.recipient_key()))
        .collect();
    let suppressed = suppressions::suppressed_among(&mut *conn, &pairs).await?;
    let mut within_limit = BTreeSet::new();
    for (inviter, (in_batch, max, since)) in limited {
        let (sent, _): (i64, Option<i64>) = sqlx::query_as(SENT_BY)
            .bind(inviter)
            .bind(since.millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("counting the inviter's emails"))?;
        if sent + in_batch <= i64::from(max) {
            within_limit.insert(inviter);
        }
    }
    // In mailbox order: two PostgreSQL transactions creating the same two users then
    // wait for each other in one order, never in a cycle.
    let mut first_to_mailbox = BTreeMap::new();
    for (index, new) in batch.iter().enumerate() {
        first_to_mailbox
            .entry(new.email.recipient_key())
            .or_insert(index);
    }
    // Only the first invitation of the batch to a mailbox may go ahead of the others: one to the
    // same mailbox that is not a candidate (it has an idempotency key, say) and came first must
    // also be decided first, as the rows of a bulk request are, in order.
    first_to_mailbox.retain(|_, index| {
        let new = batch[*index];
        // Created together means emailed, with no audit record but `invitation_created`.
        new.idempotency.is_none()
            && !suppressed.contains(&(new.namespace.clone(), new.email.recipient_key()))
            && new.send_email
            && !new.return_link
            && new.limits.per_recipient.is_none_or(|limit| limit.max > 0)
            && (new.limits.per_inviter.is_none() || within_limit.contains(&new.inviter.id.0))
    });
    let recently_mailed = recently_mailed(&mut *conn, batch, &first_to_mailbox).await?;
    Ok(first_to_mailbox
        .into_iter()
        .filter(|(mailbox, _)| !recently_mailed.contains(mailbox))
        .map(|(_, index)| index)
        .collect())
}

/// Which of the mailboxes were sent an email within their recipient limit's window: an
/// invitation to them goes one by one, where the limit is counted. A new invitee of one
/// namespace may have been invited in another, or under another `+tag`.
async fn recently_mailed(
    conn: &mut Conn,
    batch: &[&NewInvitation],
    mailboxes: &BTreeMap<String, usize>,
) -> StoreResult<BTreeSet<String>> {
    let Some(since) = batch
        .iter()
        .filter_map(|new| new.limits.per_recipient.map(|l| new.now.minus(l.window)))
        .min()
    else {
        return Ok(BTreeSet::new());
    };
    if mailboxes.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut query =
        QueryBuilder::<Db>::new("SELECT recipient_key FROM invitations WHERE created > ");
    query
        .push_bind(since.millis())
        .push(" AND recipient_key IN (");
    let mut list = query.separated(", ");
    for mailbox in mailboxes.keys() {
        list.push_bind(mailbox.as_str());
    }
    query
        .push(") UNION SELECT recipient_key FROM extra_emails WHERE created > ")
        .push_bind(since.millis())
        .push(" AND recipient_key IN (");
    let mut list = query.separated(", ");
    for mailbox in mailboxes.keys() {
        list.push_bind(mailbox.as_str());
    }
    query.push(")");
    // Not kept prepared: the text changes with the batch's size.
    let found: Vec<String> = query
        .build_query_scalar()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("finding recently mailed recipients"))?;
    Ok(found.into_iter().collect())
}

/// Creates the pending users of the candidates whose address the namespace does not know;
/// a known address is left as it is (`DO NOTHING`). Returns them with their batch index.
async fn insert_new_invitees(
    conn: &mut Conn,
    batch: &[&NewInvitation],
    candidates: &[usize],
) -> StoreResult<Vec<(usize, User)>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Db>::new(
        "INSERT INTO users (namespace, email, email_key, first_name, last_name, created) ",
    );
    query.push_values(candidates, |mut row, &index| {
        let new = batch[index];
        row.push_bind(new.namespace.as_str())
            .push_bind(new.email.as_str())
            .push_bind(new.email.key())
            .push_bind(new.first_name.as_str())
            .push_bind(new.last_name.as_str())
            .push_bind(new.now.millis());
    });
    query.push(" ON CONFLICT (namespace, email_key) DO NOTHING RETURNING id, namespace, email_key");
    // Not kept prepared: the text changes with the batch's size.
    let created: Vec<(i64, String, String)> = query
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("creating pending users"))?;
    let ids: HashMap<(String, String), i64> = created
        .into_iter()
        .map(|(id, namespace, key)| ((namespace, key), id))
        .collect();
    Ok(candidates
        .iter()
        .filter_map(|&index| {
            let new = batch[index];
            let id = ids.get(&(new.namespace.clone(), new.email.key()))?;
            Some((
                index,
                User {
                    id: UserId(*id),
                    email: new.email.clone(),
                    first_name: new.first_name.clone(),
                    last_name: new.last_name.clone(),
                    is_superuser: false,
                    is_active: false,
                },
            ))
        })
        .collect())
}

/// What `create_invitation_in` writes after creating a new invitee (grants, invitation,
/// its projects, accept link, email, audit record), for all new invitees of a batch at
/// once. What follows the invitations finds each one by its invitee (new, so invited
/// once), so that no statement needs what another returned.
async fn invite_new_invitees(
    conn: &mut Conn,
    batch: &[&NewInvitation],
    invitees: &[(usize, User)],
) -> StoreResult<Vec<(usize, InvitationRecord)>> {
    if invitees.is_empty() {
        return Ok(Vec::new());
    }
    let plans = invitees
        .iter()
        .map(|(index, _)| {
            let new = batch[*index];
            let selected: Vec<ProjectId> = new.projects.iter().map(|p| p.id).collect();
            plan_invitation(None, &selected, &new.roles, new.remind)
                .context("planning an invitation to a new invitee")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(invitees.len());
    let mut grants = Vec::new();
    for ((index, invitee), plan) in invitees.iter().zip(&plans) {
        let new = batch[*index];
        grants.extend(
            plan.new_grants
                .iter()
                .map(|change| (invitee.id.0, change.project.0, change.role.as_str())),
        );
        rows.push(InvitationInsert {
            invitation: new,
            invitee,
            kind: plan.kind,
            status: "pending",
            expires: Some(new.now.plus(new.ttl)),
            grants: &plan.new_grants,
        });
    }
    // A new invitee had no grant: each project is added (`gave`, no `previous_role`, the
    // columns' defaults).
    let projects: Vec<(i64, i64, &str)> = rows
        .iter()
        .flat_map(|row| {
            let invitee = row.invitee.id.0;
            let roles = &row.invitation.roles;
            row.invitation
                .projects
                .iter()
                .map(move |p| (invitee, p.id.0, roles.role(p.id).as_str()))
        })
        .collect();

    let mut statements = Statements::default();
    if !grants.is_empty() {
        let query = statements.next("INSERT INTO grants (user_id, project_id, role) ");
        query.push_values(&grants, |mut row, &(user, project, role)| {
            row.push_bind(user).push_bind(project).push_bind(role);
        });
        query.push(" ON CONFLICT (user_id, project_id) DO NOTHING");
    }
    let query = statements.next_returning(
        "INSERT INTO invitations (namespace, invitee_id, email, email_key, recipient_key, \
         first_name, last_name, created_by, kind, message, status, expires, created, modified, \
         ttl_seconds, language) ",
    );
    query.push_values(&rows, |mut values, row| {
        let new = row.invitation;
        values
            .push_bind(new.namespace.as_str())
            .push_bind(row.invitee.id.0)
            .push_bind(row.invitee.email.as_str())
            .push_bind(row.invitee.email.key())
            .push_bind(row.invitee.email.recipient_key())
            .push_bind(row.invitee.first_name.as_str())
            .push_bind(row.invitee.last_name.as_str())
            .push_bind(new.inviter.id.0)
            .push_bind(row.kind.as_str())
            .push_bind(row.kind.message(&row.invitee.email))
            .push_bind(row.status)
            .push_bind(row.expires.map(Timestamp::millis))
            .push_bind(new.now.millis())
            .push_bind(new.now.millis())
            .push_bind(ttl_seconds(new))
            .push_bind(new.language.as_str());
    });
    // The only rows the statements return; in no promised order.
    query.push(" RETURNING id, invitee_id");
    // What follows reads the invitations just stored.
    statements.new_call();
    if !projects.is_empty() {
        let query = statements.next(
            "INSERT INTO invitation_projects (invitation_id, project_id, role) \
             SELECT i.id, v.column2, v.column3 FROM (",
        );
        query.push_values(&projects, |mut row, &(invitee, project, role)| {
            row.push_bind(invitee).push_bind(project).push_bind(role);
        });
        query.push(") AS v JOIN invitations i ON i.invitee_id = v.column1");
    }
    // A new invitee has no older link to void.
    let query = statements.next(
        "INSERT INTO invite_tokens (token_hash, invitation_id, user_id, state, expires, \
         unsubscribe_hash) \
         SELECT v.column2, i.id, i.invitee_id, 'live', i.expires, v.column3 FROM (",
    );
    query.push_values(&rows, |mut values, row| {
        values
            .push_bind(row.invitee.id.0)
            .push_bind(row.invitation.token.hash().0)
            .push_bind(row.invitation.token.unsubscribe_token().hash().0);
    });
    query.push(") AS v JOIN invitations i ON i.invitee_id = v.column1");
    let query = statements.next(
        "INSERT INTO outbox (namespace, invitation_id, kind, recipient, message_id, \
         accept_token, status, next_attempt_at, created) \
         SELECT i.namespace, i.id, i.kind, i.email, v.column2, v.column3, 'queued', \
         i.created, i.created FROM (",
    );
    query.push_values(&rows, |mut values, row| {
        values
            .push_bind(row.invitee.id.0)
            .push_bind(row.invitation.message_id.as_str())
            .push_bind(row.invitation.token.expose());
    });
    query.push(") AS v JOIN invitations i ON i.invitee_id = v.column1");
    let query = statements.next(
        "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip) \
         SELECT i.namespace, i.created, 'invitation_created', i.created_by, \
         CAST(i.id AS TEXT), v.column2 FROM (",
    );
    query.push_values(&rows, |mut values, row| {
        values
            .push_bind(row.invitee.id.0)
            .push_bind(row.invitation.client_ip.as_deref());
    });
    query.push(") AS v JOIN invitations i ON i.invitee_id = v.column1");

    let ids: HashMap<i64, i64> = statements
        .run(&mut *conn, "storing invitations")
        .await?
        .into_iter()
        .map(|(id, invitee)| (invitee, id))
        .collect();
    rows.iter()
        .zip(invitees)
        .map(|(row, (index, invitee))| {
            let id = *ids
                .get(&row.invitee.id.0)
                .context("a stored invitation came back without its id")?;
            let record = inserted_record(
                id,
                row,
                invitee.first_name.as_str(),
                invitee.last_name.as_str(),
            );
            Ok((*index, record))
        })
        .collect()
}

/// The webhook events of the invitations created together (`events::announce_created`): first
/// one read per namespace for whether it has endpoints, so that a batch in a namespace without
/// any costs no more.
async fn announce_new_invitees(
    conn: &mut Conn,
    batch: &[&NewInvitation],
    invitees: &[(usize, User)],
    created: &[(usize, InvitationRecord)],
) -> StoreResult<()> {
    let mut announced: BTreeMap<&str, bool> = BTreeMap::new();
    for ((index, record), (_, invitee)) in created.iter().zip(invitees) {
        let new = batch[*index];
        let namespace = new.namespace.as_str();
        let has_endpoints = match announced.get(namespace) {
            Some(known) => *known,
            None => {
                let found = events::has_endpoints(&mut *conn, namespace).await?;
                announced.insert(namespace, found);
                found
            }
        };
        if has_endpoints {
            // A new invitee had none of the projects: each one is added.
            let granted: Vec<GrantChange> = new
                .projects
                .iter()
                .map(|p| GrantChange {
                    project: p.id,
                    role: new.roles.role(p.id),
                    previous: None,
                })
                .collect();
            events::announce_created(&mut *conn, new, record, invitee, &granted).await?;
        }
    }
    Ok(())
}

/// Statements sent to the database in as few calls as it allows, each call a round
/// trip to the connection's thread or server. SQLite takes several statements in one
/// call (`backend::ONE_CALL`; its `?` placeholders number on across them). PostgreSQL
/// takes one with arguments, so a call's statements become one, a `WITH` of
/// data-modifying parts; those do not see each other's rows, so a statement that reads
/// another's rows goes in a later call (`new_call`). Only one statement may return rows,
/// (id, id) pairs.
#[derive(Default)]
struct Statements<'args> {
    calls: Vec<Call<'args>>,
}

struct Call<'args> {
    query: QueryBuilder<'args, Db>,
    parts: usize,
    /// The part whose rows the call returns (`WITH` on PostgreSQL).
    returning: Option<usize>,
}

impl<'args> Statements<'args> {
    /// The builder of a new statement, which starts with `sql`.
    fn next(&mut self, sql: &str) -> &mut QueryBuilder<'args, Db> {
        if self.calls.is_empty() {
            self.new_call();
        }
        let last = self.calls.len() - 1;
        let call = &mut self.calls[last];
        call.parts += 1;
        if backend::ONE_CALL {
            if call.parts > 1 {
                call.query.push("; ");
            }
        } else {
            let opening = if call.parts == 1 { "WITH " } else { "), " };
            call.query
                .push(format_args!("{opening}part{} AS (", call.parts));
        }
        call.query.push(sql);
        &mut call.query
    }

    /// `next`, for the statement whose rows are returned.
    fn next_returning(&mut self, sql: &str) -> &mut QueryBuilder<'args, Db> {
        self.next(sql);
        // `next` has made the call that holds it.
        let last = self.calls.len() - 1;
        let call = &mut self.calls[last];
        call.returning = Some(call.parts);
        &mut call.query
    }

    /// Statements from here on go in a call of their own (on PostgreSQL).
    fn new_call(&mut self) {
        if backend::ONE_CALL && !self.calls.is_empty() {
            return;
        }
        self.calls.push(Call {
            query: QueryBuilder::new(""),
            parts: 0,
            returning: None,
        });
    }

    /// Runs the calls in order; returns the rows returned.
    async fn run(self, conn: &mut Conn, context: &'static str) -> StoreResult<Vec<(i64, i64)>> {
        let mut rows = Vec::new();
        for mut call in self.calls.into_iter().filter(|call| call.parts > 0) {
            if !backend::ONE_CALL {
                match call.returning {
                    Some(part) => call.query.push(format_args!(") SELECT * FROM part{part}")),
                    None => call.query.push(") SELECT 0::int8, 0::int8 WHERE false"),
                };
            }
            // Not kept prepared: the text changes with the batch's size.
            rows.extend(
                call.query
                    .build_query_as::<(i64, i64)>()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_error(context))?,
            );
        }
        Ok(rows)
    }
}
