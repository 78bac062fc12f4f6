//! The SQL shared by the SQLite and PostgreSQL stores.
//!
//! Both backends run the same queries (both accept `$1` placeholders, `RETURNING`, `ON CONFLICT`
//! and partial indexes), so they are written once here. `sqlx` has no dynamically-typed
//! connection that keeps each driver's types and speed, so the shared code is a macro expanded
//! once per backend with its concrete types, as vaultwarden's `db_run!` does for its three
//! databases. What differs lives in the backend module, which the expansion reaches through
//! `super::`:
//!
//! - `fn writer(&self)` / `fn reader(&self)`: the pools for writes and reads;
//! - `FOR_UPDATE`: the row-locking clause (`FOR UPDATE` on PostgreSQL, empty on SQLite, whose
//!   single writer already serialises transactions);
//! - `CLAIM_OUTBOX`: the claim query (`FOR UPDATE SKIP LOCKED` on PostgreSQL);
//! - `async fn outbox_changed(conn)`: called in the transaction that queues an email;
//! - `async fn purge_scrubbed(store)` and `async fn watch_outbox(store, wakeup)`.

macro_rules! impl_sql_store {
    ($store:ident, $db:ty, $conn:ty) => {
    mod shared_sql {
        use std::collections::{BTreeSet, HashMap};
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
        use crate::store::{
            AcceptOutcome, CreateOutcome, DeliveryRecord, InvitationFilter, InvitationPage,
            InvitationRecord, Membership, NewInvitation, NewSession, NewUser, OutboxMessage,
            SessionRecord, Store, StoreError, StoreResult, UserCredentials,
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

        async fn insert_invitation(
            conn: &mut $conn,
            row: InvitationInsert<'_>,
        ) -> StoreResult<InvitationId> {
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
            .bind(new.inviter.0)
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
                    .bind(project.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error("storing invitation projects"))?;
            }
            Ok(InvitationId(id))
        }

        /// A new link voids the user's older ones: only the latest email's link works.
        async fn replace_accept_token(
            conn: &mut $conn,
            invitation: &NewInvitation,
            invitation_id: InvitationId,
            invitee: UserId,
            expires: Timestamp,
        ) -> StoreResult<()> {
            sqlx::query("UPDATE invite_tokens SET state = 'void' WHERE user_id = $1 AND state = 'live'")
                .bind(invitee.0)
                .execute(&mut *conn)
                .await
                .map_err(db_error("voiding older links"))?;
            sqlx::query(
                "INSERT INTO invite_tokens (token_hash, invitation_id, user_id, state, expires) \
                 VALUES ($1, $2, $3, 'live', $4)",
            )
            .bind(invitation.token.hash().0)
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
            super::outbox_changed(conn).await

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
                .bind(invitation.inviter.0)
                .bind(&claim.key)
                .bind(invitation.now.minus(claim.kept_for).millis())
                .execute(&mut *conn)
                .await
                .map_err(db_error("expiring idempotency key"))?;
            let found: Option<(Vec<u8>, i64)> = sqlx::query_as(
                "SELECT request_hash, invitation_id FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            )
            .bind(invitation.inviter.0)
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
            .bind(invitation.inviter.0)
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(invitation_id.0)
            .bind(invitation.now.millis())
            .execute(&mut *conn)
            .await
            .map_err(db_error("storing idempotency key"))?;
            Ok(())
        }

        /// One attempt at `Store::create_invitation`.
        async fn create_invitation_once(
            pool: &sqlx::Pool<$db>,
            new: &NewInvitation,
        ) -> StoreResult<CreateOutcome> {
            let mut tx = pool
                .begin()
                .await
                .map_err(db_error("starting invitation"))?;
            if let Some((request_hash, earlier)) = find_idempotent_request(&mut tx, new).await? {
                let same_body = new
                    .idempotency
                    .as_ref()
                    .is_some_and(|claim| claim.request_hash == request_hash);
                if !same_body {
                    return Ok(CreateOutcome::KeyReused);
                }
                let record = load_invitation(&mut tx, &new.namespace, earlier)
                    .await?
                    .context("an idempotency key names a missing invitation")?;
                return Ok(CreateOutcome::Replayed(record));
            }

            let existing =
                match find_user_by_email_key(&mut tx, &new.namespace, &new.email.key()).await? {
                    Some(user) => Some(ExistingInvitee {
                        project_ids: granted_project_ids(&mut tx, user.id).await?,
                        user,
                    }),
                    None => None,
                };
            let plan = match plan_invitation(existing.as_ref(), &new.projects, new.remind) {
                Ok(plan) => plan,
                Err(rejection) => return Ok(CreateOutcome::Rejected(rejection)),
            };
            let invitee = match existing {
                Some(existing) => existing.user,
                None => User {
                    id: insert_pending_user(&mut tx, new).await?,
                    email: new.email.clone(),
                    first_name: new.first_name.clone(),
                    last_name: new.last_name.clone(),
                    is_superuser: false,
                    is_active: false,
                },
            };
            for project in &plan.new_grants {
                grant_viewer(&mut tx, invitee.id, *project).await?;
            }
            let expires = plan.issues_token.then(|| new.now.plus(new.ttl));
            let invitation_id = insert_invitation(
                &mut tx,
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
                replace_accept_token(&mut tx, new, invitation_id, invitee.id, expires).await?;
            }
            let accept_token = plan.issues_token.then(|| new.token.expose());
            enqueue_email(
                &mut tx,
                new,
                invitation_id,
                plan.kind,
                &invitee.email,
                accept_token,
            )
            .await?;
            remember_idempotent_request(&mut tx, new, invitation_id).await?;
            let record = load_invitation(&mut tx, &new.namespace, invitation_id)
                .await?
                .context("the new invitation is missing")?;
            tx.commit()
                .await
                .map_err(db_error("committing invitation"))?;
            Ok(CreateOutcome::Created(record))
        }


        #[async_trait]
        impl Store for super::$store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1")
                    .execute(self.reader())
                    .await
                    .map_err(db_error("pinging the database"))?;
                Ok(())
            }

            async fn create_user(&self, namespace: &str, user: NewUser) -> StoreResult<User> {
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
                .bind(Timestamp::now().millis())
                .fetch_one(self.writer())
                .await
                .map_err(|e| match db_error("creating user")(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("a user with email {} already exists", user.email))
                    }
                    other => other,
                })?;
                Ok(User {
                    id: UserId(id),
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
                .fetch_optional(self.reader())
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
                .fetch_optional(self.reader())
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
                        .fetch_all(self.reader())
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
                    .fetch_all(self.reader())
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
                .fetch_all(self.reader())
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
                .fetch_optional(self.reader())
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
                .fetch_optional(self.reader())
                .await
                .map_err(db_error("checking API key"))?;
                Ok(row.map(User::from))
            }

            async fn create_invitation(&self, new: NewInvitation) -> StoreResult<CreateOutcome> {
                // On PostgreSQL two transactions may race to create one user or to store one
                // idempotency key; the loser hits a unique index and tries again, and then
                // sees the winner's row. (SQLite's single writer never races.)
                let mut retries = 0;
                loop {
                    match create_invitation_once(self.writer(), &new).await {
                        Err(StoreError::Conflict(_)) if retries < 3 => retries += 1,
                        outcome => return outcome,
                    }
                }
            }

            async fn invitation(
                &self,
                namespace: &str,
                id: InvitationId,
            ) -> StoreResult<Option<InvitationRecord>> {
                let mut conn = self
                    .reader()
                    .acquire()
                    .await
                    .map_err(db_error("reading invitation"))?;
                load_invitation(&mut conn, namespace, id).await
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

                let mut conn = self
                    .reader()
                    .acquire()
                    .await
                    .map_err(db_error("listing invitations"))?;
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
                .fetch_optional(self.reader())
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
                let rows: Vec<Row> = sqlx::query_as(super::CLAIM_OUTBOX)
                    .bind(now.plus(lease).millis())
                .bind(now.millis())
                .bind(limit)
                .fetch_all(self.writer())
                .await
                .map_err(db_error("claiming outbox messages"))?;
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

            async fn mark_sent(&self, ids: &[i64], now: Timestamp) -> StoreResult<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut query = QueryBuilder::<$db>::new(
                    "UPDATE outbox SET status = 'sent', accept_token = NULL, lease_until = NULL, sent_at = ",
                );
                query.push_bind(now.millis()).push(" WHERE id IN (");
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                query
                    .build()
                    .execute(self.writer())
                    .await
                    .map_err(db_error("marking messages sent"))?;
                Ok(())
            }

            async fn mark_retry(
                &self,
                id: i64,
                next_attempt_at: Timestamp,
                error: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE outbox SET lease_until = NULL, next_attempt_at = $1, last_error = $2 \
                     WHERE id = $3",
                )
                .bind(next_attempt_at.millis())
                .bind(error)
                .bind(id)
                .execute(self.writer())
                .await
                .map_err(db_error("scheduling retry"))?;
                Ok(())
            }

            async fn mark_failed(&self, id: i64, error: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE outbox SET status = 'failed', accept_token = NULL, lease_until = NULL, \
                     last_error = $1 WHERE id = $2",
                )
                .bind(error)
                .bind(id)
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
                .fetch_one(self.reader())
                .await
                .map_err(db_error("reading the outbox"))?;
                Ok(due.map(Timestamp))
            }
        }
    }
    };
}

pub(crate) use impl_sql_store;
