//! The database's schema as `cbh-invite check` sees it: connecting without migrating, and
//! comparing the migrations applied with those this binary embeds.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::config::DatabaseUrl;

/// How long `check` waits for the database to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `check` reports about the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// A SQLite file that does not exist yet: `serve` or `migrate` creates it.
    Missing,
    /// Connected; the embedded migrations not applied yet, by description.
    Reachable { pending: Vec<String> },
    /// The database has migrations this binary does not know: a newer version upgraded it.
    Newer { unknown: Vec<i64> },
}

/// Connects to the database (never creating it, never migrating) and compares its migrations
/// with the embedded ones. An error says why the database cannot be used.
pub async fn inspect_schema(url: &DatabaseUrl) -> anyhow::Result<SchemaState> {
    let (applied, migrator) = match url {
        DatabaseUrl::Sqlite(path) => {
            if !path.exists() {
                return Ok(SchemaState::Missing);
            }
            let options = SqliteConnectOptions::new().filename(path).read_only(true);
            let mut conn =
                tokio::time::timeout(CONNECT_TIMEOUT, SqliteConnection::connect_with(&options))
                    .await
                    .context("the database did not answer in time")?
                    .with_context(|| format!("opening {}", path.display()))?;
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations')",
            )
            .fetch_one(&mut conn)
            .await
            .context("reading the schema")?;
            let applied = applied_versions(&mut conn, exists).await?;
            (applied, &super::sqlite::MIGRATOR)
        }
        DatabaseUrl::Postgres(raw) => {
            let options = PgConnectOptions::from_str(raw).context("not a valid PostgreSQL URL")?;
            let mut conn =
                tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
                    .await
                    .context("the database did not answer in time")?
                    .context("connecting")?;
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(&mut conn)
                    .await
                    .context("reading the schema")?;
            let applied = applied_versions_pg(&mut conn, exists).await?;
            (applied, &super::postgres::MIGRATOR)
        }
    };
    Ok(compare(&applied, migrator))
}

const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

async fn applied_versions(
    conn: &mut SqliteConnection,
    exists: bool,
) -> anyhow::Result<BTreeSet<i64>> {
    if !exists {
        return Ok(BTreeSet::new());
    }
    let versions: Vec<i64> = sqlx::query_scalar(APPLIED)
        .fetch_all(conn)
        .await
        .context("reading the applied migrations")?;
    Ok(versions.into_iter().collect())
}

async fn applied_versions_pg(
    conn: &mut PgConnection,
    exists: bool,
) -> anyhow::Result<BTreeSet<i64>> {
    if !exists {
        return Ok(BTreeSet::new());
    }
    let versions: Vec<i64> = sqlx::query_scalar(APPLIED)
        .fetch_all(conn)
        .await
        .context("reading the applied migrations")?;
    Ok(versions.into_iter().collect())
}

fn compare(applied: &BTreeSet<i64>, migrator: &Migrator) -> SchemaState {
    let embedded: BTreeSet<i64> = migrator.iter().map(|m| m.version).collect();
    let unknown: Vec<i64> = applied.difference(&embedded).copied().collect();
    if !unknown.is_empty() {
        return SchemaState::Newer { unknown };
    }
    let pending = migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect();
    SchemaState::Reachable { pending }
}
