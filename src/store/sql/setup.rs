//! First-run setup: a token that creates a namespace's first user.

use async_trait::async_trait;

use super::backend::{Backend, Conn};
use super::rows::db_error;
use super::users::insert_user;
use crate::domain::token::TokenHash;
use crate::domain::{Timestamp, User};
use crate::store::{NewUser, SetupOutcome, SetupStore, StoreResult};

async fn namespace_has_users(conn: &mut Conn, namespace: &str) -> StoreResult<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE namespace = $1)")
        .bind(namespace)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error("counting users"))
}

/// A setup token works only while its namespace has no user: after the first one, none does.
async fn live_setup_token(
    conn: &mut Conn,
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

#[async_trait]
impl SetupStore for Backend {
    async fn issue_setup_token(
        &self,
        namespace: &str,
        token_hash: &TokenHash,
        now: Timestamp,
        expires: Timestamp,
    ) -> StoreResult<bool> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
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
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting setup"))?;
        // The token's consumption is the check: the namespace's tokens are deleted first, and
        // of two transactions racing on them (two posts, or two nodes' links), the second
        // waits for the first's row locks and then finds nothing left to delete.
        let consumed: Vec<bool> = sqlx::query_scalar(
            "DELETE FROM setup_tokens WHERE namespace = $1 \
             RETURNING token_hash = $2 AND expires > $3",
        )
        .bind(namespace)
        .bind(&token_hash.0)
        .bind(now.millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("using setup token"))?;
        // Not committed when refused: the deletion is undone.
        if !consumed.contains(&true) || namespace_has_users(&mut tx, namespace).await? {
            return Ok(SetupOutcome::Gone);
        }
        let id = insert_user(&mut tx, namespace, &user, now).await?;
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
