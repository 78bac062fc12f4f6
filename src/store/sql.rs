//! The SQL shared by the SQLite and PostgreSQL stores.
//!
//! Both backends run the same queries (both accept `$1` placeholders, `RETURNING`, `ON CONFLICT`
//! and partial indexes), so they are written once here. `sqlx` has no dynamically-typed
//! connection that keeps each driver's types and speed, so the shared code is a macro expanded
//! once per backend with its concrete types, as vaultwarden's `db_run!` does for its three
//! databases. What differs lives in the backend module, which the expansion reaches through
//! `super::`:
//!
//! - `fn writer(&self)`: the pool for writes; `async fn read(&self)`: a connection for reads;
//! - `FOR_UPDATE`: the row-locking clause (`FOR UPDATE` on PostgreSQL, empty on SQLite, whose
//!   single writer already serialises transactions);
//! - `CLAIM_OUTBOX`: the claim query (`FOR UPDATE SKIP LOCKED` on PostgreSQL);
//! - `async fn purge_scrubbed(store)` and `async fn watch_outbox(store, wakeup)`;
//! - `async fn create_invitation(store, new)`: a transaction per invitation on PostgreSQL,
//!   batches sharing one commit on SQLite.

macro_rules! impl_sql_store {
    ($store:ident, $db:ty, $conn:ty) => {
    mod shared_sql {
        use std::collections::{BTreeMap, BTreeSet, HashMap};
        use std::str::FromStr;
        use std::sync::Arc;
        use std::time::Duration;

        use anyhow::Context;
        use async_trait::async_trait;
        use sqlx::{FromRow, QueryBuilder};
        use tokio::sync::Notify;

        use crate::domain::invitation::{ExistingInvitee, plan_invitation};
        use crate::domain::token::TokenHash;
        use crate::domain::{
            EmailAddress, InvitationId, InvitationStatus, InviteKind, PersonName, Project,
            ProjectId, Role, Timestamp, User, UserId,
        };
        use crate::store::group_commit::{InvitationJob, Together, same_error};
        use crate::store::{
            AcceptLink, AcceptOutcome, AuditEvent, AuditRecord, CreateOutcome, DeliveryRecord,
            InvitationFilter, InvitationPage, InvitationRecord, Limit, LimitKind, LoginFailures,
            Membership, NewInvitation, NewSession, NewUser, OperationsStore, OutboxMessage,
            OutboxRow, ResendInvitation, ResendOutcome, RevokeOutcome, SessionRecord,
            SetupOutcome, Store, StoreError, StoreResult, UserCredentials,
        };

        /// Sorts a database error into what the layers above act on.
        pub(super) fn db_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
            move |error| match &error {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    StoreError::Unavailable(anyhow::Error::new(error).context(context))
                }
                // PostgreSQL shutting down or restarting (57P*), a lost connection (08*), a
                // statement timeout (57014); SQLite busy or locked (5, 6).
                sqlx::Error::Database(db)
                    if db.code().is_some_and(|code| {
                        code.starts_with("57") || code.starts_with("08") || code == "5" || code == "6"
                    }) =>
                {
                    StoreError::Unavailable(anyhow::Error::new(error).context(context))
                }
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::Conflict(format!("{context}: already exists"))
                }
                _ => StoreError::Other(anyhow::Error::new(error).context(context)),
            }
        }

        #[derive(FromRow)]
        struct UserRow {
            id: i64,
            email: String,
            first_name: String,
            last_name: String,
            is_superuser: bool,
            is_active: bool,
        }

        impl From<UserRow> for User {
            fn from(row: UserRow) -> Self {
                User {
                    id: UserId(row.id),
                    email: EmailAddress::from_trusted(row.email),
                    first_name: PersonName::from_trusted(row.first_name),
                    last_name: PersonName::from_trusted(row.last_name),
                    is_superuser: row.is_superuser,
                    is_active: row.is_active,
                }
            }
        }

        const USER_COLUMNS: &str = "u.id, u.email, u.first_name, u.last_name, u.is_superuser, u.is_active";

        #[derive(FromRow)]
        struct InvitationRow {
            id: i64,
            email: String,
            first_name: String,
            last_name: String,
            kind: String,
            message: String,
            status: String,
            expires: Option<i64>,
            created: i64,
            modified: i64,
            creator_id: i64,
            creator_email: String,
            creator_first_name: String,
            creator_last_name: String,
            creator_is_superuser: bool,
            creator_is_active: bool,
            delivery_status: Option<String>,
            delivery_attempts: Option<i64>,
            delivery_last_error: Option<String>,
        }

        const INVITATION_SELECT: &str = "SELECT i.id, i.email, i.first_name, i.last_name, i.kind, \
             i.message, i.status, i.expires, i.created, i.modified, \
             u.id AS creator_id, u.email AS creator_email, u.first_name AS creator_first_name, \
             u.last_name AS creator_last_name, u.is_superuser AS creator_is_superuser, \
             u.is_active AS creator_is_active, \
             o.status AS delivery_status, o.attempts AS delivery_attempts, \
             o.last_error AS delivery_last_error \
             FROM invitations i JOIN users u ON u.id = i.created_by \
             LEFT JOIN outbox o ON o.invitation_id = i.id";

        impl InvitationRow {
            fn into_record(self, projects: Vec<Project>) -> InvitationRecord {
                let created_by = UserRow {
                    id: self.creator_id,
                    email: self.creator_email,
                    first_name: self.creator_first_name,
                    last_name: self.creator_last_name,
                    is_superuser: self.creator_is_superuser,
                    is_active: self.creator_is_active,
                }
                .into();
                InvitationRecord {
                    id: InvitationId(self.id),
                    email: self.email,
                    first_name: self.first_name,
                    last_name: self.last_name,
                    created_by,
                    projects,
                    kind: InviteKind::parse(&self.kind).unwrap_or(InviteKind::NewUser),
                    message: self.message,
                    stored_status: self.status,
                    expires: self.expires.map(Timestamp),
                    created: Timestamp(self.created),
                    modified: Timestamp(self.modified),
                    delivery: self.delivery_status.map(|status| DeliveryRecord {
                        status,
                        attempts: self.delivery_attempts.unwrap_or(0),
                        last_error: self.delivery_last_error,
                    }),
                }
            }
        }

        /// Attaches the selected projects to invitation rows, with one query for all of them.
        async fn with_projects(
            conn: &mut $conn,
            rows: Vec<InvitationRow>,
        ) -> StoreResult<Vec<InvitationRecord>> {
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let mut query = QueryBuilder::<$db>::new(
                "SELECT ip.invitation_id, p.id, p.name FROM invitation_projects ip \
                 JOIN projects p ON p.id = ip.project_id WHERE ip.invitation_id IN (",
            );
            let mut ids = query.separated(", ");
            for row in &rows {
                ids.push_bind(row.id);
            }
            query.push(") ORDER BY p.id");
            let pairs: Vec<(i64, i64, String)> = query
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error("loading invitation projects"))?;
            let mut by_invitation: HashMap<i64, Vec<Project>> = HashMap::new();
            for (invitation, id, name) in pairs {
                by_invitation.entry(invitation).or_default().push(Project {
                    id: ProjectId(id),
                    name,
                });
            }
            Ok(rows
                .into_iter()
                .map(|row| {
                    let projects = by_invitation.remove(&row.id).unwrap_or_default();
                    row.into_record(projects)
                })
                .collect())
        }

        async fn load_invitation(
            conn: &mut $conn,
            namespace: &str,
            id: InvitationId,
        ) -> StoreResult<Option<InvitationRecord>> {
            let row: Option<InvitationRow> = sqlx::query_as(&format!(
                "{INVITATION_SELECT} WHERE i.namespace = $1 AND i.id = $2"
            ))
            .bind(namespace)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("loading invitation"))?;
            Ok(with_projects(conn, row.into_iter().collect()).await?.pop())
        }

        async fn find_user_by_email_key(
            conn: &mut $conn,
            namespace: &str,
            email_key: &str,
        ) -> StoreResult<Option<User>> {
            // Locked: two invitations to one person are decided one after the other.
            let row: Option<UserRow> = sqlx::query_as(&format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.namespace = $1 AND u.email_key = $2{}",
                super::FOR_UPDATE
            ))
            .bind(namespace)
            .bind(email_key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("finding invitee"))?;
            Ok(row.map(User::from))
        }

        async fn granted_project_ids(
            conn: &mut $conn,
            user: UserId,
        ) -> StoreResult<BTreeSet<ProjectId>> {
            let ids: Vec<i64> = sqlx::query_scalar("SELECT project_id FROM grants WHERE user_id = $1")
                .bind(user.0)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error("loading grants"))?;
            Ok(ids.into_iter().map(ProjectId).collect())
        }

        async fn insert_pending_user(
            conn: &mut $conn,
            invitation: &NewInvitation,
        ) -> StoreResult<UserId> {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (namespace, email, email_key, first_name, last_name, created) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&invitation.namespace)
            .bind(invitation.email.as_str())
            .bind(invitation.email.key())
            .bind(invitation.first_name.as_str())
            .bind(invitation.last_name.as_str())
            .bind(invitation.now.millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("creating pending user"))?;
            Ok(UserId(id))
        }

        async fn grant_viewer(
            conn: &mut $conn,
            user: UserId,
            project: ProjectId,
        ) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO grants (user_id, project_id, role) VALUES ($1, $2, 'viewer') \
                 ON CONFLICT (user_id, project_id) DO NOTHING",
            )
            .bind(user.0)
            .bind(project.0)
            .execute(&mut *conn)
            .await
            .map_err(db_error("granting viewer"))?;
            Ok(())
        }

        struct InvitationInsert<'a> {
            invitation: &'a NewInvitation,
            invitee: &'a User,
            kind: InviteKind,
            status: &'a str,
            expires: Option<Timestamp>,
        }

        /// Stores the invitation and returns it as a reader would find it, so that the response
        /// needs no second look.
        async fn insert_invitation(
            conn: &mut $conn,
            row: InvitationInsert<'_>,
        ) -> StoreResult<InvitationRecord> {
            let new = row.invitation;
            // The invitation names the user as stored; names fall back to the user's own.
            let (first, last) = if new.first_name.as_str().is_empty() && new.last_name.as_str().is_empty() {
                (
                    row.invitee.first_name.as_str(),
                    row.invitee.last_name.as_str(),
                )
            } else {
                (new.first_name.as_str(), new.last_name.as_str())
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO invitations (namespace, invitee_id, email, email_key, first_name, last_name, \
                 created_by, kind, message, status, expires, created, modified) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
            )
            .bind(&new.namespace)
            .bind(row.invitee.id.0)
            .bind(row.invitee.email.as_str())
            .bind(row.invitee.email.key())
            .bind(first)
            .bind(last)
            .bind(new.inviter.id.0)
            .bind(row.kind.as_str())
            .bind(row.kind.message(&row.invitee.email))
            .bind(row.status)
            .bind(row.expires.map(Timestamp::millis))
            .bind(new.now.millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("storing invitation"))?;
            for project in &new.projects {
                sqlx::query("INSERT INTO invitation_projects (invitation_id, project_id) VALUES ($1, $2)")
                    .bind(id)
                    .bind(project.id.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error("storing invitation projects"))?;
            }
            Ok(inserted_record(id, &row, first, last))
        }

        /// An invitation just stored, as a reader would find it.
        fn inserted_record(id: i64, row: &InvitationInsert<'_>, first: &str, last: &str) -> InvitationRecord {
            let new = row.invitation;
            InvitationRecord {
                id: InvitationId(id),
                email: row.invitee.email.as_str().to_owned(),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                created_by: new.inviter.clone(),
                projects: new.projects.clone(),
                kind: row.kind,
                message: row.kind.message(&row.invitee.email),
                stored_status: row.status.to_owned(),
                expires: row.expires,
                created: new.now,
                modified: new.now,
                // Every new invitation queues its email (`enqueue_email`, same transaction).
                delivery: Some(DeliveryRecord {
                    status: "queued".to_owned(),
                    attempts: 0,
                    last_error: None,
                }),
            }
        }

        /// A new link voids the user's older ones: only the latest email's link works. A user
        /// created in this transaction has none.
        async fn replace_accept_token(
            conn: &mut $conn,
            token: &crate::domain::Token,
            invitation_id: InvitationId,
            invitee: UserId,
            new_user: bool,
            expires: Timestamp,
        ) -> StoreResult<()> {
            if !new_user {
                sqlx::query("UPDATE invite_tokens SET state = 'void' WHERE user_id = $1 AND state = 'live'")
                    .bind(invitee.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error("voiding older links"))?;
            }
            sqlx::query(
                "INSERT INTO invite_tokens (token_hash, invitation_id, user_id, state, expires) \
                 VALUES ($1, $2, $3, 'live', $4)",
            )
            .bind(token.hash().0)
            .bind(invitation_id.0)
            .bind(invitee.0)
            .bind(expires.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_error("storing accept link"))?;
            Ok(())
        }

        async fn enqueue_email(
            conn: &mut $conn,
            invitation: &NewInvitation,
            invitation_id: InvitationId,
            kind: InviteKind,
            recipient: &EmailAddress,
            accept_token: Option<&str>,
        ) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO outbox (namespace, invitation_id, kind, recipient, message_id, accept_token, \
                 status, next_attempt_at, created) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)",
            )
            .bind(&invitation.namespace)
            .bind(invitation_id.0)
            .bind(kind.as_str())
            .bind(recipient.as_str())
            .bind(&invitation.message_id)
            .bind(accept_token)
            .bind(invitation.now.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_error("queueing email"))?;
            Ok(())
        }

        /// What an earlier request with the same idempotency key did, if it is still remembered.
        async fn find_idempotent_request(
            conn: &mut $conn,
            invitation: &NewInvitation,
        ) -> StoreResult<Option<(Vec<u8>, InvitationId)>> {
            let Some(claim) = &invitation.idempotency else {
                return Ok(None);
            };
            sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created < $3")
                .bind(invitation.inviter.id.0)
                .bind(&claim.key)
                .bind(invitation.now.minus(claim.kept_for).millis())
                .execute(&mut *conn)
                .await
                .map_err(db_error("expiring idempotency key"))?;
            let found: Option<(Vec<u8>, i64)> = sqlx::query_as(
                "SELECT request_hash, invitation_id FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            )
            .bind(invitation.inviter.id.0)
            .bind(&claim.key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("reading idempotency key"))?;
            Ok(found.map(|(hash, id)| (hash, InvitationId(id))))
        }

        async fn remember_idempotent_request(
            conn: &mut $conn,
            invitation: &NewInvitation,
            invitation_id: InvitationId,
        ) -> StoreResult<()> {
            let Some(claim) = &invitation.idempotency else {
                return Ok(());
            };
            sqlx::query(
                "INSERT INTO idempotency_keys (user_id, key, request_hash, invitation_id, created) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(invitation.inviter.id.0)
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(invitation_id.0)
            .bind(invitation.now.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_error("storing idempotency key"))?;
            Ok(())
        }

        /// One attempt at `Store::create_invitation`, in a transaction of its own.
        async fn create_invitation_once(
            pool: &sqlx::Pool<$db>,
            new: &NewInvitation,
        ) -> StoreResult<CreateOutcome> {
            let mut tx = pool
                .begin()
                .await
                .map_err(db_error("starting invitation"))?;
            let outcome = create_invitation_in(&mut tx, new).await?;
            // Only a new invitation has anything worth keeping.
            if matches!(outcome, CreateOutcome::Created(_)) {
                tx.commit()
                    .await
                    .map_err(db_error("committing invitation"))?;
            }
            Ok(outcome)
        }

        /// The work of `Store::create_invitation` inside the caller's transaction (which may
        /// hold several: SQLite commits a batch at once). Outcomes other than `Created` have
        /// written nothing that matters (at most an expired idempotency key is forgotten).
        pub(super) async fn create_invitation_in(
            tx: &mut $conn,
            new: &NewInvitation,
        ) -> StoreResult<CreateOutcome> {
            if let Some((request_hash, earlier)) = find_idempotent_request(&mut *tx, new).await? {
                let same_body = new
                    .idempotency
                    .as_ref()
                    .is_some_and(|claim| claim.request_hash == request_hash);
                if !same_body {
                    return Ok(CreateOutcome::KeyReused);
                }
                let record = load_invitation(&mut *tx, &new.namespace, earlier)
                    .await?
                    .context("an idempotency key names a missing invitation")?;
                return Ok(CreateOutcome::Replayed(record));
            }

            let existing =
                match find_user_by_email_key(&mut *tx, &new.namespace, &new.email.key()).await? {
                    Some(user) => Some(ExistingInvitee {
                        project_ids: granted_project_ids(&mut *tx, user.id).await?,
                        user,
                    }),
                    None => None,
                };
            let selected: Vec<ProjectId> = new.projects.iter().map(|p| p.id).collect();
            let plan = match plan_invitation(existing.as_ref(), &selected, new.remind) {
                Ok(plan) => plan,
                Err(rejection) => return Ok(CreateOutcome::Rejected(rejection)),
            };
            if let Some(limited) = sending_limit_reached(&mut *tx, new).await? {
                return Ok(limited);
            }
            let new_user = existing.is_none();
            let invitee = match existing {
                Some(existing) => existing.user,
                None => User {
                    id: insert_pending_user(&mut *tx, new).await?,
                    email: new.email.clone(),
                    first_name: new.first_name.clone(),
                    last_name: new.last_name.clone(),
                    is_superuser: false,
                    is_active: false,
                },
            };
            for project in &plan.new_grants {
                grant_viewer(&mut *tx, invitee.id, *project).await?;
            }
            let expires = plan.issues_token.then(|| new.now.plus(new.ttl));
            let record = insert_invitation(
                &mut *tx,
                InvitationInsert {
                    invitation: new,
                    invitee: &invitee,
                    kind: plan.kind,
                    // Without a link there is nothing left to accept: the grants are in place.
                    status: if plan.issues_token {
                        "pending"
                    } else {
                        "accepted"
                    },
                    expires,
                },
            )
            .await?;
            if let Some(expires) = expires {
                replace_accept_token(&mut *tx, &new.token, record.id, invitee.id, new_user, expires)
                    .await?;
            }
            let accept_token = plan.issues_token.then(|| new.token.expose());
            enqueue_email(
                &mut *tx,
                new,
                record.id,
                plan.kind,
                &invitee.email,
                accept_token,
            )
            .await?;
            remember_idempotent_request(&mut *tx, new, record.id).await?;
            audit_created(&mut *tx, &[(record.id.0, new)]).await?;
            Ok(CreateOutcome::Created(record))
        }

        /// Creates a batch of queued invitations (`store::group_commit`) and answers each.
        pub(super) async fn commit_batch(pool: &sqlx::Pool<$db>, jobs: Vec<InvitationJob>) {
            match create_together(pool, &jobs).await {
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

        async fn create_together(
            pool: &sqlx::Pool<$db>,
            jobs: &[InvitationJob],
        ) -> Result<Vec<CreateOutcome>, Together> {
            let mut tx = pool
                .begin()
                .await
                .map_err(|e| Together::Transaction(db_error("starting invitations")(e)))?;
            let batch: Vec<&NewInvitation> = jobs.iter().map(|(new, _)| new).collect();
            let outcomes = create_invitations_in(&mut tx, &batch)
                .await
                .map_err(Together::Invitation)?;
            tx.commit()
                .await
                .map_err(|e| Together::Transaction(db_error("committing invitations")(e)))?;
            Ok(outcomes)
        }

        /// An invitation in a transaction of its own. On PostgreSQL, two transactions (of two
        /// nodes, say) may race to create one user or to store one idempotency key; the loser
        /// hits a unique index and tries again, and then sees the winner's row.
        async fn create_invitation_alone(
            pool: &sqlx::Pool<$db>,
            new: &NewInvitation,
        ) -> StoreResult<CreateOutcome> {
            let mut retries = 0;
            loop {
                match create_invitation_once(pool, new).await {
                    Err(StoreError::Conflict(_)) if retries < 3 => retries += 1,
                    outcome => return outcome,
                }
            }
        }

        /// `create_invitation_in` for several invitations in one transaction (a group commit's
        /// batch), with outcomes in the order of `batch`. Every statement is a round trip to
        /// the database's thread or server, so invitations to people the namespace does not
        /// know yet (most of them) are created together, with one statement per table for all.
        /// The others (a known invitee, an `Idempotency-Key`, an inviter near their limit, a
        /// second invitation to one new address) then go one by one and see what the first
        /// step wrote, as if they had come after it.
        pub(super) async fn create_invitations_in(
            tx: &mut $conn,
            batch: &[&NewInvitation],
        ) -> StoreResult<Vec<CreateOutcome>> {
            let mut outcomes: Vec<Option<CreateOutcome>> = batch.iter().map(|_| None).collect();
            let candidates = batch_candidates(&mut *tx, batch).await?;
            let new_invitees = insert_new_invitees(&mut *tx, batch, &candidates).await?;
            for (index, record) in invite_new_invitees(&mut *tx, batch, &new_invitees).await? {
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
        /// idempotency key to look up, the first to their address, and an inviter who stays
        /// within their limit even if all of their invitations in the batch are created.
        async fn batch_candidates(
            conn: &mut $conn,
            batch: &[&NewInvitation],
        ) -> StoreResult<Vec<usize>> {
            // Per limited inviter: invitations in the batch, the tightest limit, and the start
            // of the widest window (counting more than needed only sends more one by one).
            let mut limited: HashMap<i64, (i64, u32, Timestamp)> = HashMap::new();
            for new in batch {
                if let Some(limit) = new.limits.per_inviter {
                    let since = new.now.minus(limit.window);
                    let entry = limited.entry(new.inviter.id.0).or_insert((0, limit.max, since));
                    entry.0 += 1;
                    entry.1 = entry.1.min(limit.max);
                    entry.2 = entry.2.min(since);
                }
            }
            let mut within_limit = BTreeSet::new();
            for (inviter, (in_batch, max, since)) in limited {
                let sent: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM invitations WHERE created_by = $1 AND created > $2",
                )
                .bind(inviter)
                .bind(since.millis())
                .fetch_one(&mut *conn)
                .await
                .map_err(db_error("counting the inviter's invitations"))?;
                if sent + in_batch <= i64::from(max) {
                    within_limit.insert(inviter);
                }
            }
            // In address order: two PostgreSQL transactions creating the same two users then
            // wait for each other in one order, never in a cycle.
            let mut first_to_address = BTreeMap::new();
            for (index, new) in batch.iter().enumerate() {
                let candidate = new.idempotency.is_none()
                    && new.limits.per_recipient.is_none_or(|limit| limit.max > 0)
                    && (new.limits.per_inviter.is_none()
                        || within_limit.contains(&new.inviter.id.0));
                if candidate {
                    first_to_address
                        .entry((new.namespace.as_str(), new.email.key()))
                        .or_insert(index);
                }
            }
            Ok(first_to_address.into_values().collect())
        }

        /// Creates the pending users of the candidates whose address the namespace does not know;
        /// a known address is left as it is (`DO NOTHING`). Returns them with their batch index.
        async fn insert_new_invitees(
            conn: &mut $conn,
            batch: &[&NewInvitation],
            candidates: &[usize],
        ) -> StoreResult<Vec<(usize, User)>> {
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            let mut query = QueryBuilder::<$db>::new(
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
            query.push(
                " ON CONFLICT (namespace, email_key) DO NOTHING RETURNING id, namespace, email_key",
            );
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
            conn: &mut $conn,
            batch: &[&NewInvitation],
            invitees: &[(usize, User)],
        ) -> StoreResult<Vec<(usize, InvitationRecord)>> {
            if invitees.is_empty() {
                return Ok(Vec::new());
            }
            let mut rows = Vec::with_capacity(invitees.len());
            let mut grants = Vec::new();
            for (index, invitee) in invitees {
                let new = batch[*index];
                let selected: Vec<ProjectId> = new.projects.iter().map(|p| p.id).collect();
                let plan = plan_invitation(None, &selected, new.remind)
                    .context("planning an invitation to a new invitee")?;
                grants.extend(plan.new_grants.iter().map(|project| (invitee.id.0, project.0)));
                rows.push(InvitationInsert {
                    invitation: new,
                    invitee,
                    kind: plan.kind,
                    status: "pending",
                    expires: Some(new.now.plus(new.ttl)),
                });
            }
            let projects: Vec<(i64, i64)> = rows
                .iter()
                .flat_map(|row| {
                    let invitee = row.invitee.id.0;
                    row.invitation.projects.iter().map(move |p| (invitee, p.id.0))
                })
                .collect();

            let mut statements = Statements::default();
            if !grants.is_empty() {
                let query = statements.next("INSERT INTO grants (user_id, project_id, role) ");
                query.push_values(&grants, |mut row, &(user, project)| {
                    row.push_bind(user).push_bind(project).push_bind("viewer");
                });
                query.push(" ON CONFLICT (user_id, project_id) DO NOTHING");
            }
            let query = statements.next_returning(
                "INSERT INTO invitations (namespace, invitee_id, email, email_key, first_name, \
                 last_name, created_by, kind, message, status, expires, created, modified) ",
            );
            query.push_values(&rows, |mut values, row| {
                let new = row.invitation;
                values
                    .push_bind(new.namespace.as_str())
                    .push_bind(row.invitee.id.0)
                    .push_bind(row.invitee.email.as_str())
                    .push_bind(row.invitee.email.key())
                    .push_bind(row.invitee.first_name.as_str())
                    .push_bind(row.invitee.last_name.as_str())
                    .push_bind(new.inviter.id.0)
                    .push_bind(row.kind.as_str())
                    .push_bind(row.kind.message(&row.invitee.email))
                    .push_bind(row.status)
                    .push_bind(row.expires.map(Timestamp::millis))
                    .push_bind(new.now.millis())
                    .push_bind(new.now.millis());
            });
            // The only rows the statements return; in no promised order.
            query.push(" RETURNING id, invitee_id");
            // What follows reads the invitations just stored.
            statements.new_call();
            if !projects.is_empty() {
                let query = statements.next(
                    "INSERT INTO invitation_projects (invitation_id, project_id) \
                     SELECT i.id, v.column2 FROM (",
                );
                query.push_values(&projects, |mut row, &(invitee, project)| {
                    row.push_bind(invitee).push_bind(project);
                });
                query.push(") AS v JOIN invitations i ON i.invitee_id = v.column1");
            }
            // A new invitee has no older link to void.
            let query = statements.next(
                "INSERT INTO invite_tokens (token_hash, invitation_id, user_id, state, expires) \
                 SELECT v.column2, i.id, i.invitee_id, 'live', i.expires FROM (",
            );
            query.push_values(&rows, |mut values, row| {
                values
                    .push_bind(row.invitee.id.0)
                    .push_bind(row.invitation.token.hash().0);
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

        /// Statements sent to the database in as few calls as it allows, each call a round
        /// trip to the connection's thread or server. SQLite takes several statements in one
        /// call (`super::ONE_CALL`; its `?` placeholders number on across them). PostgreSQL
        /// takes one with arguments, so a call's statements become one, a `WITH` of
        /// data-modifying parts; those do not see each other's rows, so a statement that reads
        /// another's rows goes in a later call (`new_call`). Only one statement may return rows,
        /// (id, id) pairs.
        #[derive(Default)]
        struct Statements<'args> {
            calls: Vec<Call<'args>>,
        }

        struct Call<'args> {
            query: QueryBuilder<'args, $db>,
            parts: usize,
            /// The part whose rows the call returns (`WITH` on PostgreSQL).
            returning: Option<usize>,
        }

        impl<'args> Statements<'args> {
            /// The builder of a new statement, which starts with `sql`.
            fn next(&mut self, sql: &str) -> &mut QueryBuilder<'args, $db> {
                if self.calls.is_empty() {
                    self.new_call();
                }
                let last = self.calls.len() - 1;
                let call = &mut self.calls[last];
                call.parts += 1;
                if super::ONE_CALL {
                    if call.parts > 1 {
                        call.query.push("; ");
                    }
                } else {
                    let opening = if call.parts == 1 { "WITH " } else { "), " };
                    call.query.push(format_args!("{opening}part{} AS (", call.parts));
                }
                call.query.push(sql);
                &mut call.query
            }

            /// `next`, for the statement whose rows are returned.
            fn next_returning(&mut self, sql: &str) -> &mut QueryBuilder<'args, $db> {
                self.next(sql);
                // `next` has made the call that holds it.
                let last = self.calls.len() - 1;
                let call = &mut self.calls[last];
                call.returning = Some(call.parts);
                &mut call.query
            }

            /// Statements from here on go in a call of their own (on PostgreSQL).
            fn new_call(&mut self) {
                if super::ONE_CALL && !self.calls.is_empty() {
                    return;
                }
                self.calls.push(Call {
                    query: QueryBuilder::new(""),
                    parts: 0,
                    returning: None,
                });
            }

            /// Runs the calls in order; returns the rows returned.
            async fn run(
                self,
                conn: &mut $conn,
                context: &'static str,
            ) -> StoreResult<Vec<(i64, i64)>> {
                let mut rows = Vec::new();
                for mut call in self.calls.into_iter().filter(|call| call.parts > 0) {
                    if !super::ONE_CALL {
                        match call.returning {
                            Some(part) => call
                                .query
                                .push(format_args!(") SELECT * FROM part{part}")),
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

        /// The `invitation_created` audit records of invitations (by id), in their transaction.
        async fn audit_created(
            conn: &mut $conn,
            created: &[(i64, &NewInvitation)],
        ) -> StoreResult<()> {
            let mut query = QueryBuilder::<$db>::new(
                "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip) ",
            );
            query.push_values(created, |mut row, (id, new)| {
                row.push_bind(new.namespace.as_str())
                    .push_bind(new.now.millis())
                    .push_bind("invitation_created")
                    .push_bind(new.inviter.id.0)
                    .push_bind(id.to_string())
                    .push_bind(new.client_ip.as_deref());
            });
            query
                .build()
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(db_error("writing the audit log"))?;
            Ok(())
        }

        // Query helpers of resend, revoke, the accept page and first-run setup.

        /// What resend and revoke need to know of an invitation before changing it.
        #[derive(FromRow)]
        struct InvitationState {
            status: String,
            expires: Option<i64>,
            invitee_id: i64,
            kind: String,
            email: String,
        }

        impl InvitationState {
            fn effective_status(&self, now: Timestamp) -> InvitationStatus {
                InvitationStatus::effective(&self.status, self.expires.map(Timestamp), now)
            }
        }

        async fn invitation_state(
            conn: &mut $conn,
            namespace: &str,
            id: InvitationId,
        ) -> StoreResult<Option<InvitationState>> {
            // Locked: a resend and a revoke of one invitation happen one after the other.
            sqlx::query_as(&format!(
                "SELECT status, expires, invitee_id, kind, email FROM invitations \
                 WHERE namespace = $1 AND id = $2{}",
                super::FOR_UPDATE
            ))
            .bind(namespace)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("reading invitation"))
        }

        /// The outbox keeps one row per invitation (`invitation_id UNIQUE`), so a resend re-queues that
        /// row as a new message (new Message-ID and token, no attempts, due now) rather than adding a
        /// second one: an email still waiting for a retry is replaced, never sent alongside the new one.
        /// A worker may be sending the old message right now; its `mark_sent`/`mark_retry` name the
        /// Message-ID it sent, so they cannot land on the new message. The old email may still arrive,
        /// with a link that no longer works. Overwriting the old token wipes it (`secure_delete`).
        async fn requeue_email(
            conn: &mut $conn,
            resend: &ResendInvitation,
            current: &InvitationState,
        ) -> StoreResult<()> {
            let requeued = sqlx::query(
                "UPDATE outbox SET kind = $1, recipient = $2, \
                 message_id = $3, accept_token = $4, status = 'queued', attempts = 0, \
                 next_attempt_at = $5, lease_until = NULL, last_error = NULL, created = $5, \
                 sent_at = NULL WHERE invitation_id = $6",
            )
            .bind(&current.kind)
            .bind(&current.email)
            .bind(&resend.message_id)
            .bind(resend.token.expose())
            .bind(resend.now.millis())
            .bind(resend.id.0)
            .execute(&mut *conn)
            .await
            .map_err(db_error("queueing the email again"))?;
            if requeued.rows_affected() == 0 {
                sqlx::query(
                    "INSERT INTO outbox (namespace, invitation_id, kind, recipient, message_id, \
                     accept_token, status, next_attempt_at, created) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)",
                )
                .bind(&resend.namespace)
                .bind(resend.id.0)
                .bind(&current.kind)
                .bind(&current.email)
                .bind(&resend.message_id)
                .bind(resend.token.expose())
                .bind(resend.now.millis())
                .execute(&mut *conn)
                .await
                .map_err(db_error("queueing the email"))?;
            }
            Ok(())
        }

        /// Which grants "came from" an invitation is derived, not recorded: a viewer grant on one of its
        /// projects, unless another invitation to the same person that is not revoked selects that
        /// project too. Editor and owner roles never come from an invitation (an administrator gave
        /// them), so they stay. Only a pending invitee is touched: an active one accepted its grants.
        async fn remove_grants_only_this_invitation_gave(
            conn: &mut $conn,
            id: InvitationId,
            invitee_id: i64,
        ) -> StoreResult<()> {
            sqlx::query(
                "DELETE FROM grants WHERE user_id = $1 AND role = 'viewer' \
                 AND EXISTS (SELECT 1 FROM users WHERE id = $1 AND NOT is_active) \
                 AND project_id IN (SELECT project_id FROM invitation_projects WHERE invitation_id = $2) \
                 AND project_id NOT IN (SELECT ip.project_id FROM invitation_projects ip \
                   JOIN invitations other ON other.id = ip.invitation_id \
                   WHERE other.invitee_id = $1 AND other.id <> $2 AND other.status <> 'revoked')",
            )
            .bind(invitee_id)
            .bind(id.0)
            .execute(&mut *conn)
            .await
            .map_err(db_error("removing the revoked invitation's grants"))?;
            Ok(())
        }

        /// An email still queued (or waiting for a retry) is not sent any more. One being sent right
        /// now may still go out: the worker then marks it sent, which is the truth, and it cannot be
        /// retried because the row is no longer queued.
        async fn cancel_queued_email(conn: &mut $conn, id: InvitationId) -> StoreResult<()> {
            sqlx::query(
                "UPDATE outbox SET status = 'failed', accept_token = NULL, \
                 last_error = 'not sent: the invitation was revoked' \
                 WHERE invitation_id = $1 AND status = 'queued'",
            )
            .bind(id.0)
            .execute(&mut *conn)
            .await
            .map_err(db_error("cancelling the revoked invitation's email"))?;
            Ok(())
        }

        async fn namespace_has_users(conn: &mut $conn, namespace: &str) -> StoreResult<bool> {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE namespace = $1)")
                .bind(namespace)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_error("counting users"))
        }

        /// A setup token works only while its namespace has no user: after the first one, none does.
        async fn live_setup_token(
            conn: &mut $conn,
            namespace: &str,
            token_hash: &TokenHash,
            now: Timestamp,
        ) -> StoreResult<bool> {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND namespace = $2 \
                   AND expires > $3) \
                 AND NOT EXISTS (SELECT 1 FROM users WHERE namespace = $2)",
            )
            .bind(&token_hash.0)
            .bind(namespace)
            .bind(now.millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("checking setup token"))
        }

        /// A user who is active when it has a password.
        async fn insert_user(
            conn: &mut $conn,
            namespace: &str,
            user: &NewUser,
            now: Timestamp,
        ) -> StoreResult<UserId> {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (namespace, email, email_key, first_name, last_name, password_hash, \
                 is_superuser, is_active, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING id",
            )
            .bind(namespace)
            .bind(user.email.as_str())
            .bind(user.email.key())
            .bind(user.first_name.as_str())
            .bind(user.last_name.as_str())
            .bind(&user.password_hash)
            .bind(user.is_superuser)
            .bind(user.password_hash.is_some())
            .bind(now.millis())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("creating user"))?;
            Ok(UserId(id))
        }

        /// The first sending limit that this invitation would exceed, if any.
        async fn sending_limit_reached(
            conn: &mut $conn,
            new: &NewInvitation,
        ) -> StoreResult<Option<CreateOutcome>> {
            if let Some(limit) = new.limits.per_inviter {
                let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(created) FROM invitations \
                     WHERE created_by = $1 AND created > $2",
                )
                .bind(new.inviter.id.0)
                .bind(new.now.minus(limit.window).millis())
                .fetch_one(&mut *conn)
                .await
                .map_err(db_error("counting the inviter's invitations"))?;
                if count >= i64::from(limit.max) {
                    return Ok(Some(limited(LimitKind::PerInviter, limit, oldest, new.now)));
                }
            }
            if let Some(limit) = new.limits.per_recipient {
                let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(created) FROM invitations \
                     WHERE namespace = $1 AND email_key = $2 AND created > $3",
                )
                .bind(&new.namespace)
                .bind(new.email.key())
                .bind(new.now.minus(limit.window).millis())
                .fetch_one(&mut *conn)
                .await
                .map_err(db_error("counting the recipient's emails"))?;
                if count >= i64::from(limit.max) {
                    return Ok(Some(limited(LimitKind::PerRecipient, limit, oldest, new.now)));
                }
            }
            Ok(None)
        }

        fn limited(kind: LimitKind, limit: Limit, oldest: Option<i64>, now: Timestamp) -> CreateOutcome {
            let frees_at = oldest.map_or(now, Timestamp).plus(limit.window);
            let wait_ms = frees_at.millis().saturating_sub(now.millis()).max(1_000);
            CreateOutcome::Limited {
                limit: kind,
                retry_after: Duration::from_millis(wait_ms.unsigned_abs()),
            }
        }

        #[derive(FromRow)]
        struct AuditRow {
            id: i64,
            namespace: String,
            at: i64,
            event: String,
            actor_email: Option<String>,
            subject: Option<String>,
            client_ip: Option<String>,
            detail: Option<String>,
        }

        #[derive(FromRow)]
        struct OutboxListRow {
            id: i64,
            namespace: String,
            invitation_id: i64,
            kind: String,
            recipient: String,
            status: String,
            attempts: i64,
            next_attempt_at: i64,
            last_error: Option<String>,
            created: i64,
        }

        #[async_trait]
        impl OperationsStore for super::$store {
            async fn record_audit(&self, event: AuditEvent) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&event.namespace)
                .bind(event.at.millis())
                .bind(event.event)
                .bind(event.actor.map(|u| u.0))
                .bind(&event.subject)
                .bind(&event.client_ip)
                .bind(&event.detail)
                .execute(self.writer())
                .await
                .map_err(db_error("writing the audit log"))?;
                Ok(())
            }

            async fn audit_since(&self, since: Timestamp, limit: i64) -> StoreResult<Vec<AuditRecord>> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT a.id, a.namespace, a.at, a.event, u.email AS actor_email, a.subject, \
                     a.client_ip, a.detail FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id \
                     WHERE a.at >= $1 ORDER BY a.at, a.id LIMIT $2",
                )
                .bind(since.millis())
                .bind(limit)
                .fetch_all(&mut *self.read().await?)
                .await
                .map_err(db_error("reading the audit log"))?;
                Ok(rows
                    .into_iter()
                    .map(|r| AuditRecord {
                        id: r.id,
                        namespace: r.namespace,
                        at: Timestamp(r.at),
                        event: r.event,
                        actor_email: r.actor_email,
                        subject: r.subject,
                        client_ip: r.client_ip,
                        detail: r.detail,
                    })
                    .collect())
            }

            async fn login_failures(
                &self,
                namespace: &str,
                email_key: &str,
                client_ip: Option<&str>,
                since: Timestamp,
            ) -> StoreResult<LoginFailures> {
                let (for_account, oldest_for_account): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(at) FROM audit_log WHERE event = 'login_failed' \
                     AND namespace = $1 AND subject = $2 AND at > $3",
                )
                .bind(namespace)
                .bind(email_key)
                .bind(since.millis())
                .fetch_one(&mut *self.read().await?)
                .await
                .map_err(db_error("counting failed logins"))?;
                let (from_client, oldest_from_client): (i64, Option<i64>) = match client_ip {
                    Some(ip) => sqlx::query_as(
                        "SELECT COUNT(*), MIN(at) FROM audit_log WHERE event = 'login_failed' \
                         AND client_ip = $1 AND at > $2",
                    )
                    .bind(ip)
                    .bind(since.millis())
                    .fetch_one(&mut *self.read().await?)
                    .await
                    .map_err(db_error("counting failed logins"))?,
                    None => (0, None),
                };
                Ok(LoginFailures {
                    for_account,
                    oldest_for_account: oldest_for_account.map(Timestamp),
                    from_client,
                    oldest_from_client: oldest_from_client.map(Timestamp),
                })
            }

            async fn change_password(
                &self,
                user: UserId,
                password_hash: &str,
                keep_session: Option<&TokenHash>,
            ) -> StoreResult<()> {
                let mut tx = self
                    .writer()
                    .begin()
                    .await
                    .map_err(db_error("starting password change"))?;
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("setting the password"))?;
                let keep = keep_session.map(|h| h.0.clone()).unwrap_or_default();
                sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
                    .bind(user.0)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("ending other sessions"))?;
                sqlx::query(
                    "UPDATE invite_tokens SET state = 'void' WHERE user_id = $1 AND state = 'live'",
                )
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db_error("voiding accept links"))?;
                tx.commit()
                    .await
                    .map_err(db_error("committing password change"))?;
                Ok(())
            }

            async fn revoke_api_keys(&self, user: UserId) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM api_keys WHERE user_id = $1")
                    .bind(user.0)
                    .execute(self.writer())
                    .await
                    .map_err(db_error("revoking API keys"))?;
                Ok(done.rows_affected())
            }

            async fn list_outbox(&self, status: Option<&str>, limit: i64) -> StoreResult<Vec<OutboxRow>> {
                let mut query = QueryBuilder::<$db>::new(
                    "SELECT id, namespace, invitation_id, kind, recipient, status, attempts, \
                     next_attempt_at, last_error, created FROM outbox",
                );
                if let Some(status) = status {
                    query.push(" WHERE status = ").push_bind(status);
                }
                query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                let rows: Vec<OutboxListRow> = query
                    .build_query_as()
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(db_error("listing the outbox"))?;
                Ok(rows
                    .into_iter()
                    .map(|r| OutboxRow {
                        id: r.id,
                        namespace: r.namespace,
                        invitation_id: r.invitation_id,
                        kind: r.kind,
                        recipient: r.recipient,
                        status: r.status,
                        attempts: r.attempts,
                        next_attempt_at: Timestamp(r.next_attempt_at),
                        last_error: r.last_error,
                        created: Timestamp(r.created),
                    })
                    .collect())
            }

            async fn retry_outbox(&self, id: Option<i64>, now: Timestamp) -> StoreResult<u64> {
                let mut query = QueryBuilder::<$db>::new(
                    "UPDATE outbox SET status = 'queued', attempts = 0, lease_until = NULL, \
                     next_attempt_at = ",
                );
                query.push_bind(now.millis()).push(
                    " WHERE status = 'failed' AND invitation_id NOT IN \
                     (SELECT id FROM invitations WHERE status = 'revoked')",
                );
                if let Some(id) = id {
                    query.push(" AND id = ").push_bind(id);
                }
                let done = query
                    .build()
                    .execute(self.writer())
                    .await
                    .map_err(db_error("queueing failed messages again"))?;
                Ok(done.rows_affected())
            }

            async fn outbox_depth(&self) -> StoreResult<(i64, Option<Timestamp>)> {
                let (depth, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(created) FROM outbox WHERE status = 'queued'",
                )
                .fetch_one(&mut *self.read().await?)
                .await
                .map_err(db_error("measuring the outbox"))?;
                Ok((depth, oldest.map(Timestamp)))
            }
        }

        #[async_trait]
        impl Store for super::$store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(&mut *self.read().await?)
                    .await
                    .map_err(db_error("pinging the database"))?;
                Ok(())
            }

            async fn create_user(&self, namespace: &str, user: NewUser) -> StoreResult<User> {
                let mut conn = self
                    .writer()
                    .acquire()
                    .await
                    .map_err(db_error("creating user"))?;
                let id = insert_user(&mut conn, namespace, &user, Timestamp::now())
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(_) => StoreError::Conflict(format!(
                            "a user with email {} already exists",
                            user.email
                        )),
                        other => other,
                    })?;
                Ok(User {
                    id,
                    is_active: user.password_hash.is_some(),
                    email: user.email,
                    first_name: user.first_name,
                    last_name: user.last_name,
                    is_superuser: user.is_superuser,
                })
            }

            async fn user_by_email(
                &self,
                namespace: &str,
                email: &EmailAddress,
            ) -> StoreResult<Option<UserCredentials>> {
                let row: Option<(i64, Option<String>)> = sqlx::query_as(
                    "SELECT id, password_hash FROM users WHERE namespace = $1 AND email_key = $2",
                )
                .bind(namespace)
                .bind(email.key())
                .fetch_optional(&mut *self.read().await?)
                .await
                .map_err(db_error("finding user"))?;
                let Some((id, password_hash)) = row else {
                    return Ok(None);
                };
                let user = self.user_by_id(namespace, UserId(id)).await?;
                Ok(user.map(|user| UserCredentials {
                    user,
                    password_hash,
                }))
            }

            async fn user_by_id(&self, namespace: &str, id: UserId) -> StoreResult<Option<User>> {
                let row: Option<UserRow> = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users u WHERE u.namespace = $1 AND u.id = $2"
                ))
                .bind(namespace)
                .bind(id.0)
                .fetch_optional(&mut *self.read().await?)
                .await
                .map_err(db_error("finding user"))?;
                Ok(row.map(User::from))
            }

            async fn create_project(
                &self,
                namespace: &str,
                name: &str,
                now: Timestamp,
            ) -> StoreResult<Project> {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO projects (namespace, name, created) VALUES ($1, $2, $3) RETURNING id",
                )
                .bind(namespace)
                .bind(name)
                .bind(now.millis())
                .fetch_one(self.writer())
                .await
                .map_err(db_error("creating project"))?;
                Ok(Project {
                    id: ProjectId(id),
                    name: name.to_owned(),
                })
            }

            async fn projects(&self, namespace: &str) -> StoreResult<Vec<Project>> {
                let rows: Vec<(i64, String)> =
                    sqlx::query_as("SELECT id, name FROM projects WHERE namespace = $1 ORDER BY id")
                        .bind(namespace)
                        .fetch_all(&mut *self.read().await?)
                        .await
                        .map_err(db_error("listing projects"))?;
                Ok(rows
                    .into_iter()
                    .map(|(id, name)| Project {
                        id: ProjectId(id),
                        name,
                    })
                    .collect())
            }

            async fn projects_by_ids(
                &self,
                namespace: &str,
                ids: &[ProjectId],
            ) -> StoreResult<Vec<Project>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query =
                    QueryBuilder::<$db>::new("SELECT id, name FROM projects WHERE namespace = ");
                query.push_bind(namespace).push(" AND id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                query.push(") ORDER BY id");
                let rows: Vec<(i64, String)> = query
                    .build_query_as()
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(db_error("finding projects"))?;
                Ok(rows
                    .into_iter()
                    .map(|(id, name)| Project {
                        id: ProjectId(id),
                        name,
                    })
                    .collect())
            }

            async fn projects_with_role(
                &self,
                namespace: &str,
                user: UserId,
                ids: &[ProjectId],
            ) -> StoreResult<Vec<(Project, Option<Role>)>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = QueryBuilder::<$db>::new(
                    "SELECT p.id, p.name, g.role FROM projects p \
                     LEFT JOIN grants g ON g.project_id = p.id AND g.user_id = ",
                );
                query
                    .push_bind(user.0)
                    .push(" WHERE p.namespace = ")
                    .push_bind(namespace)
                    .push(" AND p.id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                query.push(") ORDER BY p.id");
                let rows: Vec<(i64, String, Option<String>)> = query
                    .build_query_as()
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(db_error("finding projects and roles"))?;
                rows.into_iter()
                    .map(|(id, name, role)| {
                        let role = role
                            .map(|role| Role::from_str(&role).map_err(|e| anyhow::anyhow!(e)))
                            .transpose()?;
                        Ok((
                            Project {
                                id: ProjectId(id),
                                name,
                            },
                            role,
                        ))
                    })
                    .collect()
            }

            async fn grant(&self, user: UserId, project: ProjectId, role: Role) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO grants (user_id, project_id, role) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
                )
                .bind(user.0)
                .bind(project.0)
                .bind(role.as_str())
                .execute(self.writer())
                .await
                .map_err(db_error("granting role"))?;
                Ok(())
            }

            async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
                let rows: Vec<(i64, String, String)> = sqlx::query_as(
                    "SELECT p.id, p.name, g.role FROM grants g JOIN projects p ON p.id = g.project_id \
                     WHERE g.user_id = $1 ORDER BY p.id",
                )
                .bind(user.0)
                .fetch_all(&mut *self.read().await?)
                .await
                .map_err(db_error("loading memberships"))?;
                rows.into_iter()
                    .map(|(id, name, role)| {
                        let role = Role::from_str(&role).map_err(|e| anyhow::anyhow!(e))?;
                        Ok(Membership {
                            project: Project {
                                id: ProjectId(id),
                                name,
                            },
                            role,
                        })
                    })
                    .collect()
            }

            async fn create_session(&self, session: NewSession) -> StoreResult<()> {
                let mut tx = self
                    .writer()
                    .begin()
                    .await
                    .map_err(db_error("starting login"))?;
                sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires <= $2")
                    .bind(session.user_id.0)
                    .bind(session.now.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("removing expired sessions"))?;
                sqlx::query(
                    "INSERT INTO sessions (id_hash, user_id, csrf_hash, created, expires) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&session.id_hash.0)
                .bind(session.user_id.0)
                .bind(&session.csrf_hash.0)
                .bind(session.now.millis())
                .bind(session.expires.millis())
                .execute(&mut *tx)
                .await
                .map_err(db_error("storing session"))?;
                tx.commit().await.map_err(db_error("committing login"))?;
                Ok(())
            }

            async fn session(
                &self,
                namespace: &str,
                id_hash: &TokenHash,
                now: Timestamp,
            ) -> StoreResult<Option<SessionRecord>> {
                #[derive(FromRow)]
                struct Row {
                    #[sqlx(flatten)]
                    user: UserRow,
                    csrf_hash: Vec<u8>,
                }
                let row: Option<Row> = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS}, s.csrf_hash FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.id_hash = $1 AND s.expires > $2 AND u.namespace = $3 AND u.is_active"
                ))
                .bind(&id_hash.0)
                .bind(now.millis())
                .bind(namespace)
                .fetch_optional(&mut *self.read().await?)
                .await
                .map_err(db_error("finding session"))?;
                Ok(row.map(|row| SessionRecord {
                    user: row.user.into(),
                    csrf_hash: TokenHash(row.csrf_hash),
                }))
            }

            async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<()> {
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(&id_hash.0)
                    .execute(self.writer())
                    .await
                    .map_err(db_error("deleting session"))?;
                Ok(())
            }

            async fn create_api_key(
                &self,
                user: UserId,
                key_hash: &TokenHash,
                now: Timestamp,
            ) -> StoreResult<()> {
                sqlx::query("INSERT INTO api_keys (user_id, key_hash, created) VALUES ($1, $2, $3)")
                    .bind(user.0)
                    .bind(&key_hash.0)
                    .bind(now.millis())
                    .execute(self.writer())
                    .await
                    .map_err(db_error("storing API key"))?;
                Ok(())
            }

            async fn user_by_api_key(
                &self,
                namespace: &str,
                email: &EmailAddress,
                key_hash: &TokenHash,
            ) -> StoreResult<Option<User>> {
                let row: Option<UserRow> = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id \
                     WHERE k.key_hash = $1 AND u.namespace = $2 AND u.email_key = $3 AND u.is_active"
                ))
                .bind(&key_hash.0)
                .bind(namespace)
                .bind(email.key())
                .fetch_optional(&mut *self.read().await?)
                .await
                .map_err(db_error("checking API key"))?;
                Ok(row.map(User::from))
            }

            async fn create_invitation(&self, new: NewInvitation) -> StoreResult<CreateOutcome> {
                super::create_invitation(self, new).await
            }

            async fn invitation(
                &self,
                namespace: &str,
                id: InvitationId,
            ) -> StoreResult<Option<InvitationRecord>> {
                let mut conn = self.read().await?;
                load_invitation(&mut conn, namespace, id).await
            }

            async fn invitations_by_ids(
                &self,
                namespace: &str,
                ids: &[InvitationId],
            ) -> StoreResult<Vec<InvitationRecord>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut conn = self.read().await?;
                let mut query = QueryBuilder::<$db>::new(INVITATION_SELECT);
                query.push(" WHERE i.namespace = ").push_bind(namespace).push(" AND i.id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(id.0);
                }
                query.push(")");
                let rows: Vec<InvitationRow> = query
                    .build_query_as()
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_error("reading invitations"))?;
                with_projects(&mut conn, rows).await
            }

            async fn list_invitations(
                &self,
                namespace: &str,
                filter: &InvitationFilter,
                now: Timestamp,
            ) -> StoreResult<InvitationPage> {
                fn push_conditions<'a>(
                    query: &mut QueryBuilder<'a, $db>,
                    namespace: &'a str,
                    filter: &'a InvitationFilter,
                    now: Timestamp,
                ) {
                    query.push(" WHERE i.namespace = ").push_bind(namespace);
                    if let Some(creator) = filter.created_by {
                        query.push(" AND i.created_by = ").push_bind(creator.0);
                    }
                    if let Some(email) = &filter.email {
                        query.push(" AND i.email = ").push_bind(email);
                    }
                    if let Some(email) = &filter.email_iexact {
                        query
                            .push(" AND i.email_key = ")
                            .push_bind(email.to_lowercase());
                    }
                    match filter.status {
                        None => {}
                        Some(InvitationStatus::Pending) => {
                            query
                                .push(" AND i.status = 'pending' AND (i.expires IS NULL OR i.expires > ")
                                .push_bind(now.millis())
                                .push(")");
                        }
                        Some(InvitationStatus::Expired) => {
                            query
                                .push(" AND i.status = 'pending' AND i.expires <= ")
                                .push_bind(now.millis());
                        }
                        Some(status) => {
                            query.push(" AND i.status = ").push_bind(status.as_str());
                        }
                    }
                }

                let mut conn = self.read().await?;
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM invitations i");
                push_conditions(&mut count, namespace, filter, now);
                let total_count: i64 = count
                    .build_query_scalar()
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db_error("counting invitations"))?;

                let mut page = QueryBuilder::<$db>::new(INVITATION_SELECT);
                push_conditions(&mut page, namespace, filter, now);
                page.push(" ORDER BY i.id DESC LIMIT ")
                    .push_bind(filter.limit)
                    .push(" OFFSET ")
                    .push_bind(filter.offset);
                let rows: Vec<InvitationRow> = page
                    .build_query_as()
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_error("listing invitations"))?;
                Ok(InvitationPage {
                    total_count,
                    objects: with_projects(&mut conn, rows).await?,
                })
            }

            async fn token_is_live(
                &self,
                namespace: &str,
                token_hash: &TokenHash,
                now: Timestamp,
            ) -> StoreResult<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT t.user_id FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
                     WHERE t.token_hash = $1 AND t.state = 'live' AND t.expires > $2 \
                     AND i.status <> 'revoked' AND i.namespace = $3",
                )
                .bind(&token_hash.0)
                .bind(now.millis())
                .bind(namespace)
                .fetch_optional(&mut *self.read().await?)
                .await
                .map_err(db_error("checking accept link"))?;
                Ok(found.is_some())
            }

            async fn accept_invitation(
                &self,
                namespace: &str,
                token_hash: &TokenHash,
                password_hash: &str,
                now: Timestamp,
            ) -> StoreResult<AcceptOutcome> {
                let mut tx = self
                    .writer()
                    .begin()
                    .await
                    .map_err(db_error("starting accept"))?;
                // Locked: of two accepts racing on one link, the second finds it used.
                let user_id: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT t.user_id FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
                     WHERE t.token_hash = $1 AND t.state = 'live' AND t.expires > $2 \
                     AND i.status <> 'revoked' AND i.namespace = $3{}",
                    super::FOR_UPDATE
                ))
                .bind(&token_hash.0)
                .bind(now.millis())
                .bind(namespace)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error("checking accept link"))?;
                let Some(user_id) = user_id else {
                    return Ok(AcceptOutcome::Gone);
                };
                sqlx::query("UPDATE users SET password_hash = $1, is_active = TRUE WHERE id = $2")
                    .bind(password_hash)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("activating user"))?;
                sqlx::query(
                    "UPDATE invite_tokens SET state = CASE WHEN token_hash = $1 THEN 'used' ELSE 'void' END \
                     WHERE user_id = $2 AND state = 'live'",
                )
                .bind(&token_hash.0)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error("using accept link"))?;
                sqlx::query(
                    "UPDATE invitations SET status = 'accepted', modified = $1 \
                     WHERE invitee_id = $2 AND status = 'pending'",
                )
                .bind(now.millis())
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error("marking invitations accepted"))?;
                let user: UserRow = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
                ))
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error("reading accepted user"))?;
                tx.commit().await.map_err(db_error("committing accept"))?;
                Ok(AcceptOutcome::Accepted(user.into()))
            }

            async fn claim_outbox(
                &self,
                now: Timestamp,
                lease: Duration,
                limit: i64,
            ) -> StoreResult<Vec<OutboxMessage>> {
                #[derive(FromRow)]
                struct Row {
                    id: i64,
                    namespace: String,
                    invitation_id: i64,
                    kind: String,
                    recipient: String,
                    message_id: String,
                    accept_token: Option<String>,
                    attempts: i64,
                }
                let rows: Vec<Row> = self
                    .on_writer(move |pool| async move {
                        sqlx::query_as(super::CLAIM_OUTBOX)
                            .bind(now.plus(lease).millis())
                            .bind(now.millis())
                            .bind(limit)
                            .fetch_all(&pool)
                            .await
                            .map_err(db_error("claiming outbox messages"))
                    })
                    .await?;
                rows.into_iter()
                    .map(|row| {
                        let kind = InviteKind::parse(&row.kind)
                            .with_context(|| format!("outbox message {} has kind {}", row.id, row.kind))?;
                        Ok(OutboxMessage {
                            id: row.id,
                            namespace: row.namespace,
                            invitation_id: InvitationId(row.invitation_id),
                            kind,
                            recipient: row.recipient,
                            message_id: row.message_id,
                            accept_token: row.accept_token,
                            attempts: row.attempts,
                        })
                    })
                    .collect()
            }

            async fn mark_sent(&self, message_ids: &[String], now: Timestamp) -> StoreResult<()> {
                if message_ids.is_empty() {
                    return Ok(());
                }
                let message_ids = message_ids.to_vec();
                self.on_writer(move |pool| async move {
                    let mut query = QueryBuilder::<$db>::new(
                        "UPDATE outbox SET status = 'sent', accept_token = NULL, lease_until = NULL, sent_at = ",
                    );
                    query.push_bind(now.millis()).push(" WHERE message_id IN (");
                    let mut list = query.separated(", ");
                    for message_id in message_ids {
                        list.push_bind(message_id);
                    }
                    query.push(")");
                    query
                        .build()
                        .persistent(false)
                        .execute(&pool)
                        .await
                        .map_err(db_error("marking messages sent"))?;
                    Ok(())
                })
                .await
            }

            async fn mark_retry(
                &self,
                message_id: &str,
                next_attempt_at: Timestamp,
                error: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE outbox SET lease_until = NULL, next_attempt_at = $1, last_error = $2 \
                     WHERE message_id = $3",
                )
                .bind(next_attempt_at.millis())
                .bind(error)
                .bind(message_id)
                .execute(self.writer())
                .await
                .map_err(db_error("scheduling retry"))?;
                Ok(())
            }

            async fn mark_failed(&self, message_id: &str, error: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE outbox SET status = 'failed', lease_until = NULL, \
                     last_error = $1 WHERE message_id = $2",
                )
                .bind(error)
                .bind(message_id)
                .execute(self.writer())
                .await
                .map_err(db_error("marking message failed"))?;
                Ok(())
            }

            async fn purge_scrubbed(&self) -> StoreResult<()> {
                super::purge_scrubbed(self).await
            }

            async fn watch_outbox(&self, wakeup: Arc<Notify>) {
                super::watch_outbox(self, wakeup).await
            }

            async fn next_due(&self) -> StoreResult<Option<Timestamp>> {
                let due: Option<i64> = sqlx::query_scalar(
                    "SELECT MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until \
                     ELSE next_attempt_at END) FROM outbox WHERE status = 'queued'",
                )
                .fetch_one(&mut *self.read().await?)
                .await
                .map_err(db_error("reading the outbox"))?;
                Ok(due.map(Timestamp))
            }

            async fn resend_invitation(&self, resend: ResendInvitation) -> StoreResult<ResendOutcome> {
                let mut tx = self
                    .writer()
                    .begin()
                    .await
                    .map_err(db_error("starting resend"))?;
                let Some(current) = invitation_state(&mut tx, &resend.namespace, resend.id).await? else {
                    return Ok(ResendOutcome::NotFound);
                };
                if current.status != "pending" {
                    return Ok(ResendOutcome::NotPending(
                        current.effective_status(resend.now),
                    ));
                }
                let expires = resend.now.plus(resend.ttl);
                replace_accept_token(
                    &mut tx,
                    &resend.token,
                    resend.id,
                    UserId(current.invitee_id),
                    false,
                    expires,
                )
                .await?;
                sqlx::query("UPDATE invitations SET expires = $1, modified = $2 WHERE id = $3")
                    .bind(expires.millis())
                    .bind(resend.now.millis())
                    .bind(resend.id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("renewing invitation expiry"))?;
                requeue_email(&mut tx, &resend, &current).await?;
                let record = load_invitation(&mut tx, &resend.namespace, resend.id)
                    .await?
                    .context("the resent invitation is missing")?;
                tx.commit().await.map_err(db_error("committing resend"))?;
                Ok(ResendOutcome::Resent(Box::new(record)))
            }

            async fn revoke_invitation(
                &self,
                namespace: &str,
                id: InvitationId,
                now: Timestamp,
            ) -> StoreResult<RevokeOutcome> {
                let mut tx = self
                    .writer()
                    .begin()
                    .await
                    .map_err(db_error("starting revoke"))?;
                let Some(current) = invitation_state(&mut tx, namespace, id).await? else {
                    return Ok(RevokeOutcome::NotFound);
                };
                if current.status != "pending" {
                    return Ok(RevokeOutcome::NotPending(current.effective_status(now)));
                }
                sqlx::query("UPDATE invitations SET status = 'revoked', modified = $1 WHERE id = $2")
                    .bind(now.millis())
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("revoking invitation"))?;
                sqlx::query(
                    "UPDATE invite_tokens SET state = 'void' WHERE invitation_id = $1 AND state = 'live'",
                )
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db_error("voiding the revoked link"))?;
                remove_grants_only_this_invitation_gave(&mut tx, id, current.invitee_id).await?;
                cancel_queued_email(&mut tx, id).await?;
                let record = load_invitation(&mut tx, namespace, id)
                    .await?
                    .context("the revoked invitation is missing")?;
                tx.commit().await.map_err(db_error("committing revoke"))?;
                Ok(RevokeOutcome::Revoked(Box::new(record)))
            }

            async fn accept_link(
                &self,
                namespace: &str,
                token_hash: &TokenHash,
                now: Timestamp,
            ) -> StoreResult<Option<AcceptLink>> {
                let mut conn = self.read().await?;
                // `live` repeats the condition of `accept_invitation` and `token_is_live`.
                let found: Option<(i64, bool)> = sqlx::query_as(
                    "SELECT t.invitation_id, \
                       (t.state = 'live' AND t.expires > $1 AND i.status <> 'revoked') AS live \
                     FROM invite_tokens t JOIN invitations i ON i.id = t.invitation_id \
                     WHERE t.token_hash = $2 AND i.namespace = $3",
                )
                .bind(now.millis())
                .bind(&token_hash.0)
                .bind(namespace)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error("reading accept link"))?;
                let Some((invitation_id, live)) = found else {
                    return Ok(None);
                };
                let invitation = load_invitation(&mut conn, namespace, InvitationId(invitation_id)).await?;
                Ok(invitation.map(|invitation| AcceptLink { invitation, live }))
            }

            async fn issue_setup_token(
                &self,
                namespace: &str,
                token_hash: &TokenHash,
                now: Timestamp,
                expires: Timestamp,
            ) -> StoreResult<bool> {
                let mut tx = self
                    .writer()
                    .begin()
                    .await
                    .map_err(db_error("starting setup token"))?;
                if namespace_has_users(&mut tx, namespace).await? {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM setup_tokens WHERE namespace = $1 AND expires <= $2")
                    .bind(namespace)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("forgetting expired setup tokens"))?;
                sqlx::query(
                    "INSERT INTO setup_tokens (token_hash, namespace, created, expires) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&token_hash.0)
                .bind(namespace)
                .bind(now.millis())
                .bind(expires.millis())
                .execute(&mut *tx)
                .await
                .map_err(db_error("storing setup token"))?;
                tx.commit()
                    .await
                    .map_err(db_error("committing setup token"))?;
                Ok(true)
            }

            async fn setup_token_is_live(
                &self,
                namespace: &str,
                token_hash: &TokenHash,
                now: Timestamp,
            ) -> StoreResult<bool> {
                let mut conn = self.read().await?;
                live_setup_token(&mut conn, namespace, token_hash, now).await
            }

            async fn complete_setup(
                &self,
                namespace: &str,
                token_hash: &TokenHash,
                user: NewUser,
                now: Timestamp,
            ) -> StoreResult<SetupOutcome> {
                let mut tx = self
                    .writer()
                    .begin()
                    .await
                    .map_err(db_error("starting setup"))?;
                if !live_setup_token(&mut tx, namespace, token_hash, now).await? {
                    return Ok(SetupOutcome::Gone);
                }
                let id = insert_user(&mut tx, namespace, &user, now).await?;
                sqlx::query("DELETE FROM setup_tokens WHERE namespace = $1")
                    .bind(namespace)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("using setup token"))?;
                tx.commit().await.map_err(db_error("committing setup"))?;
                Ok(SetupOutcome::Created(User {
                    id,
                    is_active: user.password_hash.is_some(),
                    email: user.email,
                    first_name: user.first_name,
                    last_name: user.last_name,
                    is_superuser: user.is_superuser,
                }))
            }
        }
    }
    };
}

pub(crate) use impl_sql_store;
