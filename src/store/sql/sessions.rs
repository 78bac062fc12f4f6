//! Sessions, and the failed logins that throttle new ones.
//!
//! A login attempt is stored as a failure before its password is checked (`reserve_login`), in
//! a transaction that first counts the failures: concurrent attempts each see the others, so a
//! burst gets no more password checks than the limits allow.

use async_trait::async_trait;
use sqlx::FromRow;

use super::backend::{self, Backend, Conn, Db};
use super::rows::{USER_COLUMNS, UserRow, db_error};
use crate::domain::token::TokenHash;
use crate::domain::{Timestamp, UserId};
use crate::store::{
    Limit, LoginAttempt, LoginAttemptId, LoginReservation, NewSession, SessionRecord, SessionStore,
    StoreResult,
};

#[async_trait]
impl SessionStore for Backend {
    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
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
            language: Option<String>,
        }
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, s.csrf_hash, u.language FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires > $2 AND u.namespace = $3 AND u.is_active \
             AND NOT u.deactivated"
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
            language: row.language,
        }))
    }

    async fn set_user_language(&self, user: UserId, language: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET language = $1 WHERE id = $2")
            .bind(language)
            .bind(user.0)
            .execute(self.writer())
            .await
            .map_err(db_error("storing the user's language"))?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&id_hash.0)
            .execute(self.writer())
            .await
            .map_err(db_error("deleting session"))?;
        Ok(())
    }

    async fn reserve_login(&self, attempt: LoginAttempt) -> StoreResult<LoginReservation> {
        self.on_writer(move |pool| async move {
            let mut tx = pool
                .begin_with(super::backend::BEGIN)
                .await
                .map_err(db_error("starting a login"))?;
            if let Some(lock) = backend::LOCK_KEY {
                // The account's key before the client's, always: two attempts never wait for
                // each other in a cycle.
                let account = format!("login-account:{}:{}", attempt.namespace, attempt.account);
                let client = attempt
                    .client_ip
                    .as_ref()
                    .map(|ip| format!("login-client:{ip}"));
                for key in std::iter::once(account).chain(client) {
                    sqlx::query(lock)
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error("locking the login's account and address"))?;
                }
            }
            if let Some(until) = refused_until(&mut tx, &attempt).await? {
                // Dropping the transaction rolls it back, which releases the locks.
                return Ok(LoginReservation::Refused { until });
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO audit_log (namespace, at, event, subject, client_ip, detail) \
                 VALUES ($1, $2, 'login_failed', $3, $4, $5) RETURNING id",
            )
            .bind(&attempt.namespace)
            .bind(attempt.now.millis())
            .bind(&attempt.account)
            .bind(&attempt.client_ip)
            .bind(attempt.detail)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error("counting the login attempt"))?;
            tx.commit()
                .await
                .map_err(db_error("committing the login attempt"))?;
            Ok(LoginReservation::Reserved(LoginAttemptId(id)))
        })
        .await
    }

    async fn login_succeeded(&self, attempt: LoginAttemptId, user: UserId) -> StoreResult<()> {
        self.on_writer(move |pool| async move {
            sqlx::query(
                "UPDATE audit_log SET event = 'login_succeeded', actor_id = $2 \
                 WHERE id = $1 AND event = 'login_failed'",
            )
            .bind(attempt.0)
            .bind(user.0)
            .execute(&pool)
            .await
            .map_err(db_error("recording the login"))?;
            Ok(())
        })
        .await
    }

    async fn release_login(&self, attempt: LoginAttemptId) -> StoreResult<()> {
        self.on_writer(move |pool| async move {
            sqlx::query("DELETE FROM audit_log WHERE id = $1 AND event = 'login_failed'")
                .bind(attempt.0)
                .execute(&pool)
                .await
                .map_err(db_error("releasing the login attempt"))?;
            Ok(())
        })
        .await
    }
}

/// Whose failures a limit counts.
enum Scope<'a> {
    AccountFromClient(&'a str),
    Account,
    Client(&'a str),
}

/// When the attempt may come, if a limit is reached: the latest time at which one of the
/// reached limits frees a place.
async fn refused_until(conn: &mut Conn, attempt: &LoginAttempt) -> StoreResult<Option<Timestamp>> {
    let limits = attempt.limits;
    let ip = attempt.client_ip.as_deref();
    // Without a client address the pair's limit counts the account from everywhere: stricter,
    // never looser.
    let pair = match ip {
        Some(ip) => Scope::AccountFromClient(ip),
        None => Scope::Account,
    };
    let mut until = None;
    for (limit, scope) in [
        (limits.per_account_and_client, Some(pair)),
        (limits.per_account, Some(Scope::Account)),
        (limits.per_client, ip.map(Scope::Client)),
    ] {
        if let (Some(limit), Some(scope)) = (limit, scope) {
            until = until.max(frees_at(conn, attempt, scope, limit).await?);
        }
    }
    Ok(until)
}

/// When the limit frees a place, if it is reached: the `max`-th newest failure in the window
/// leaves it.
async fn frees_at(
    conn: &mut Conn,
    attempt: &LoginAttempt,
    scope: Scope<'_>,
    limit: Limit,
) -> StoreResult<Option<Timestamp>> {
    let filter = match scope {
        Scope::AccountFromClient(_) => "namespace = $3 AND subject = $4 AND client_ip = $5",
        Scope::Account => "namespace = $3 AND subject = $4",
        Scope::Client(_) => "client_ip = $3",
    };
    let sql = format!(
        "SELECT at FROM audit_log WHERE event = 'login_failed' AND {filter} AND at > $1 \
         ORDER BY at DESC LIMIT 1 OFFSET $2"
    );
    let query = sqlx::query_scalar::<Db, i64>(&sql)
        .bind(attempt.now.minus(limit.window).millis())
        .bind(i64::from(limit.max) - 1);
    let query = match scope {
        Scope::AccountFromClient(ip) => query
            .bind(&attempt.namespace)
            .bind(&attempt.account)
            .bind(ip),
        Scope::Account => query.bind(&attempt.namespace).bind(&attempt.account),
        Scope::Client(ip) => query.bind(ip),
    };
    let at = query
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error("counting failed logins"))?;
    Ok(at.map(|at| Timestamp(at).plus(limit.window)))
}
