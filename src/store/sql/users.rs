//! Users and their credentials: passwords and API keys.

use async_trait::async_trait;

use super::backend::{self, Backend, Conn};
use super::invitation_create::VOID_USER_LINKS;
use super::rows::{USER_COLUMNS, UserRow, db_error};
use crate::domain::token::TokenHash;
use crate::domain::{EmailAddress, Timestamp, User, UserId};
use crate::store::{NewUser, StoreError, StoreResult, UserCredentials, UserStore};

/// A user who is active when it has a password.
pub(super) async fn insert_user(
    conn: &mut Conn,
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

#[async_trait]
impl UserStore for Backend {
    async fn create_user(&self, namespace: &str, user: NewUser) -> StoreResult<User> {
        let mut conn = self
            .writer()
            .acquire()
            .await
            .map_err(db_error("creating user"))?;
        let id = insert_user(&mut conn, namespace, &user, Timestamp::now())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("a user with email {} already exists", user.email))
                }
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
        let row: Option<(i64, Option<String>, bool)> = sqlx::query_as(
            "SELECT id, password_hash, deactivated FROM users \
             WHERE namespace = $1 AND email_key = $2",
        )
        .bind(namespace)
        .bind(email.key())
        .fetch_optional(&mut *self.read().await?)
        .await
        .map_err(db_error("finding user"))?;
        let Some((id, password_hash, deactivated)) = row else {
            return Ok(None);
        };
        let user = self.user_by_id(namespace, UserId(id)).await?;
        Ok(user.map(|user| UserCredentials {
            user,
            password_hash,
            deactivated,
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
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1 AND u.namespace = $2 AND u.email_key = $3 AND u.is_active \
             AND NOT u.deactivated"
        );
        // Every API request's first read.
        let direct = backend::read_direct(self, "checking API key", |conn| {
            use rusqlite::OptionalExtension;
            conn.prepare_cached(&sql)?
                .query_row((&key_hash.0, namespace, email.key()), UserRow::from_direct)
                .optional()
        });
        if let Some(found) = direct {
            return Ok(found?.map(User::from));
        }
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(&key_hash.0)
            .bind(namespace)
            .bind(email.key())
            .fetch_optional(&mut *self.read().await?)
            .await
            .map_err(db_error("checking API key"))?;
        Ok(row.map(User::from))
    }

    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep_session: Option<&TokenHash>,
    ) -> StoreResult<()> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
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
        sqlx::query(VOID_USER_LINKS)
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
}
