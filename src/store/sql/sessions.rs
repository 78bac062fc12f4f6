//! Sessions, and the failed logins that throttle new ones.

use async_trait::async_trait;
use sqlx::FromRow;

use super::backend::Backend;
use super::rows::{USER_COLUMNS, UserRow, db_error};
use crate::domain::Timestamp;
use crate::domain::token::TokenHash;
use crate::store::{LoginFailures, NewSession, SessionRecord, SessionStore, StoreResult};

#[async_trait]
impl SessionStore for Backend {
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
}
