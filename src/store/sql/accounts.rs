//! Users' accounts for superusers: listing, deactivating and activating again. What the
//! administration files share (an account's row, an audit record and a user's event data
//! written in the caller's transaction) lives here too.

use async_trait::async_trait;
use sqlx::{FromRow, QueryBuilder};

use super::backend::{self, Backend, Conn, Db};
use super::events;
use super::invitation_create::VOID_USER_LINKS;
use super::rows::{UserRow, db_error};
use super::users::insert_user;
use crate::domain::{EventType, Timestamp, User, UserId};
use crate::store::{
    Account, AccountOutcome, AccountStore, ChangedBy, NewUser, StoreError, StoreResult, UserFilter,
    UserPage,
};

/// The columns of `AccountRow`, of `users u`: `rows::USER_COLUMNS` and two more.
pub(super) const ACCOUNT_COLUMNS: &str = "u.id, u.email, u.first_name, u.last_name, \
     u.is_superuser, u.is_active, u.deactivated, u.created";

#[derive(FromRow)]
pub(super) struct AccountRow {
    #[sqlx(flatten)]
    user: UserRow,
    deactivated: bool,
    created: i64,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Account {
            user: row.user.into(),
            deactivated: row.deactivated,
            created: Timestamp(row.created),
        }
    }
}

pub(super) async fn load_account(
    conn: &mut Conn,
    namespace: &str,
    user: UserId,
    lock: bool,
) -> StoreResult<Option<Account>> {
    let row: Option<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.namespace = $1 AND u.id = $2{}",
        if lock { backend::FOR_UPDATE } else { "" }
    ))
    .bind(namespace)
    .bind(user.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("finding user"))?;
    Ok(row.map(Account::from))
}

/// The user as events show it: `is_active` means "can log in" (accepted, not deactivated).
pub(super) fn event_user(account: &Account) -> User {
    let mut user = account.user.clone();
    user.is_active = account.can_log_in();
    user
}

/// One audit record, in the caller's transaction: the change and its record commit together.
pub(super) async fn audit_in(
    conn: &mut Conn,
    namespace: &str,
    now: Timestamp,
    event: &str,
    by: &ChangedBy,
    subject: String,
    detail: Option<String>,
) -> StoreResult<()> {
    // The command line has no user: its records say so.
    let detail = match (&by.user, detail) {
        (None, Some(detail)) => Some(format!("{detail} (by the command line)")),
        (None, None) => Some("by the command line".to_owned()),
        (Some(_), detail) => detail,
    };
    sqlx::query(
        "INSERT INTO audit_log (namespace, at, event, actor_id, subject, client_ip, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(namespace)
    .bind(now.millis())
    .bind(event)
    .bind(by.user.map(|u| u.0))
    .bind(subject)
    .bind(&by.client_ip)
    .bind(detail)
    .execute(&mut *conn)
    .await
    .map_err(db_error("writing the audit log"))?;
    Ok(())
}

fn push_conditions(query: &mut QueryBuilder<'_, Db>, namespace: &str, filter: &UserFilter) {
    query
        .push(" FROM users u WHERE u.namespace = ")
        .push_bind(namespace.to_owned());
    if let Some(email) = &filter.email {
        query
            .push(" AND u.email_key = ")
            .push_bind(email.trim().to_lowercase());
    }
    match filter.can_log_in {
        Some(true) => {
            query.push(" AND u.is_active AND NOT u.deactivated");
        }
        Some(false) => {
            query.push(" AND (NOT u.is_active OR u.deactivated)");
        }
        None => {}
    }
}

#[async_trait]
impl AccountStore for Backend {
    async fn account(&self, namespace: &str, user: UserId) -> StoreResult<Option<Account>> {
        load_account(&mut *self.read().await?, namespace, user, false).await
    }

    async fn list_accounts(&self, namespace: &str, filter: &UserFilter) -> StoreResult<UserPage> {
        let mut conn = self.read().await?;
        let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*)");
        push_conditions(&mut count, namespace, filter);
        let total_count: i64 = count
            .build_query_scalar()
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error("counting users"))?;
        let mut page = QueryBuilder::<Db>::new(format!("SELECT {ACCOUNT_COLUMNS}"));
        push_conditions(&mut page, namespace, filter);
        page.push(" ORDER BY u.email_key, u.id LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<AccountRow> = page
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("listing users"))?;
        Ok(UserPage {
            total_count,
            objects: rows.into_iter().map(Account::from).collect(),
        })
    }

    async fn add_account(
        &self,
        namespace: &str,
        user: NewUser,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<User> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting to create a user"))?;
        let id = insert_user(&mut tx, namespace, &user, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("a user with email {} already exists", user.email))
                }
                other => other,
            })?;
        let user = User {
            id,
            is_active: user.password_hash.is_some(),
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            is_superuser: user.is_superuser,
        };
        let detail = user.is_superuser.then(|| "superuser".to_owned());
        audit_in(
            &mut tx,
            namespace,
            now,
            "user_created",
            &by,
            user.email.key(),
            detail,
        )
        .await?;
        if user.is_active {
            let data = events::user_data(&user);
            events::emit(&mut tx, namespace, EventType::UserActivated, &data, now).await?;
        }
        tx.commit()
            .await
            .map_err(db_error("committing the new user"))?;
        Ok(user)
    }

    async fn set_deactivated(
        &self,
        namespace: &str,
        user: UserId,
        deactivated: bool,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<AccountOutcome> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting a change of account"))?;
        let Some(mut account) = load_account(&mut tx, namespace, user, true).await? else {
            return Ok(AccountOutcome::NotFound);
        };
        if account.deactivated == deactivated {
            return Ok(AccountOutcome::Done {
                account,
                changed: false,
            });
        }
        sqlx::query("UPDATE users SET deactivated = $1 WHERE id = $2")
            .bind(deactivated)
            .bind(user.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error("changing the account"))?;
        if deactivated {
            // The lookups refuse a deactivated user anyway; deleting its sessions and voiding
            // its links means activating it again does not bring them back. API keys stay
            // (refused while deactivated): they are the operator's to revoke.
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db_error("ending the user's sessions"))?;
            sqlx::query(VOID_USER_LINKS)
                .bind(user.0)
                .execute(&mut *tx)
                .await
                .map_err(db_error("voiding the user's accept links"))?;
        }
        account.deactivated = deactivated;
        let (event, kind) = if deactivated {
            ("user_deactivated", EventType::UserDeactivated)
        } else {
            ("user_activated", EventType::UserActivated)
        };
        audit_in(
            &mut tx,
            namespace,
            now,
            event,
            &by,
            account.user.email.key(),
            None,
        )
        .await?;
        let data = events::user_data(&event_user(&account));
        events::emit(&mut tx, namespace, kind, &data, now).await?;
        tx.commit()
            .await
            .map_err(db_error("committing the change of account"))?;
        Ok(AccountOutcome::Done {
            account,
            changed: true,
        })
    }
}
