//! Where the service keeps its state, and how it connects.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Where the service keeps its state. `Debug` hides a PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            DatabaseUrl::Postgres(url) => match Url::parse(url) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    write!(f, "Postgres({url})")
                }
                Err(_) => f.write_str("Postgres(<unparsable>)"),
            },
        }
    }
}

/// Database connection settings (the pool is PostgreSQL's; SQLite has its own fixed layout).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// SQLite: how far a commit is on disk before it is answered.
    pub sqlite_sync: SqliteSync,
    /// Longest time one SQL statement may run.
    pub statement_timeout: Duration,
    /// How long a request waits for a connection before answering 503.
    pub acquire_timeout: Duration,
    /// How long start-up keeps trying to reach the database.
    pub connect_retry: Duration,
}

/// `synchronous` in SQLite's WAL mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSync {
    /// A commit survives a crash of the process (the WAL is synced at each checkpoint).
    #[default]
    Normal,
    /// A commit also survives a power loss or a crash of the machine: the WAL is synced at
    /// every commit.
    Full,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            sqlite_sync: SqliteSync::Normal,
            statement_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(2),
            connect_retry: Duration::from_secs(30),
        }
    }
}

/// `sslmode` and `sslrootcert`, which sqlx reads from the URL itself: checked here so that a
/// typo or a missing CA file is a start-up error naming the setting, not a retried failure.
fn check_postgres_tls(url: &Url) -> Result<(), String> {
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" | "ssl-mode" => {
                const MODES: [&str; 6] = [
                    "disable",
                    "allow",
                    "prefer",
                    "require",
                    "verify-ca",
                    "verify-full",
                ];
                if !MODES.contains(&value.to_ascii_lowercase().as_str()) {
                    return Err(format!(
                        "has sslmode={value}, which is not one of {}",
                        MODES.join(", ")
                    ));
                }
            }
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => {
                if let Err(e) = std::fs::read(value.as_ref()) {
                    return Err(format!(
                        "has sslrootcert={value}, which cannot be read ({e})"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://cbh-invite.db";
pub const DEFAULT_NAMESPACE: &str = "chembiohub";

impl DatabaseUrl {
    /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, or `postgres://…`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // The URL may carry a password: only its scheme is echoed.
        let scheme = raw
            .split("://")
            .next()
            .unwrap_or("")
            .chars()
            .take(20)
            .collect::<String>();
        let bad =
            |why: &str| format!("CBH_DATABASE_URL (--database-url): the {scheme}:// URL {why}");
        if let Some(path) = raw.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(bad("names no file"));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let url = Url::parse(raw).map_err(|_| bad("is not a valid URL"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("names no host"));
            }
            check_postgres_tls(&url).map_err(|why| bad(&why))?;
            return Ok(Self::Postgres(raw.to_owned()));
        }
        Err("CBH_DATABASE_URL (--database-url): expected sqlite://PATH or postgres://…".into())
    }
}
