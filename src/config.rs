//! Settings of `serve`, read from flags and `CBH_*` environment variables (a flag beats its
//! variable), and validated once at start-up into `Settings`. Every error names the variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
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

/// At most `max` events within `window` (a sliding window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    /// `N/DURATION` such as `200/1h`, or `off`.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        if raw.trim() == "off" {
            return Ok(None);
        }
        let err = || format!("'{raw}' is not a limit such as 200/1h or 5/24h (or off)");
        let (max, window) = raw.trim().split_once('/').ok_or_else(err)?;
        let max: u32 = max.parse().ok().filter(|n| *n > 0).ok_or_else(err)?;
        let window = parse_duration(window).map_err(|_| err())?;
        Ok(Some(Self { max, window }))
    }
}

/// Limits that keep the service from being used to flood inboxes or guess passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub invitations_per_inviter: Option<Limit>,
    pub emails_per_recipient: Option<Limit>,
    pub login_failures_per_account: Option<Limit>,
    pub login_failures_per_client: Option<Limit>,
}

impl Default for Limits {
    fn default() -> Self {
        let limit = |max, secs| {
            Some(Limit {
                max,
                window: Duration::from_secs(secs),
            })
        };
        Self {
            invitations_per_inviter: limit(200, 3_600),
            emails_per_recipient: limit(5, 86_400),
            login_failures_per_account: limit(5, 900),
            login_failures_per_client: limit(20, 900),
        }
    }
}

/// How the HTTP server protects itself from slow and numerous clients (slowloris).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpServerSettings {
    /// A client that has not sent a whole request head this long after its first byte is
    /// disconnected.
    pub header_timeout: Duration,
    /// A request body not received this long after its head is answered 408.
    pub body_timeout: Duration,
    /// A connection with no request in progress and no traffic this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests handled at once; further ones are answered 503 at once.
    pub max_in_flight: usize,
}

impl Default for HttpServerSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_in_flight: 1024,
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
            return Ok(Self::Postgres(raw.to_owned()));
        }
        Err("CBH_DATABASE_URL (--database-url): expected sqlite://PATH or postgres://…".into())
    }
}

/// What a node runs: API-only and worker-only nodes scale apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeRole {
    /// The HTTP API and the outbox worker.
    All,
    /// Only the HTTP API; queued mail waits for a worker node.
    Api,
    /// Only the outbox worker (and the health probes).
    Worker,
}

impl ServeRole {
    pub fn serves_api(self) -> bool {
        matches!(self, ServeRole::All | ServeRole::Api)
    }

    pub fn delivers_mail(self) -> bool {
        matches!(self, ServeRole::All | ServeRole::Worker)
    }
}

/// How the outbox worker retries.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    /// How long a claimed message is reserved for the worker that claimed it.
    pub lease: Duration,
    /// How long SIGTERM waits for sends in flight.
    pub shutdown_grace: Duration,
    /// Bounds connecting to the relay and each SMTP command.
    pub smtp_timeout: Duration,
    /// How long the worker sleeps when nothing wakes it (new messages wake it at once).
    pub poll_interval: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_attempts: 10,
            lease: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            smtp_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// An SMTP relay. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP, for a relay on the same machine or network.
    None,
    /// STARTTLS, required (never silently downgraded).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl SmtpSettings {
    /// `smtp://[user:pass@]host:port[?tls=starttls]` or `smtps://[user:pass@]host:port`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // The URL may carry a password: never echo it back.
        let bad = |why: &str| format!("CBH_SMTP_URL (--smtp-url): {why}");
        let url = Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls_query = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls = match (url.scheme(), tls_query.as_deref()) {
            ("smtps", None | Some("implicit")) => SmtpTls::Implicit,
            ("smtp", None | Some("none")) => SmtpTls::None,
            ("smtp", Some("starttls")) => SmtpTls::StartTls,
            ("smtp" | "smtps", Some(other)) => {
                return Err(bad(&format!(
                    "tls={other} is not one of none, starttls (smtp://) or implicit (smtps://)"
                )));
            }
            (scheme, _) => {
                return Err(bad(&format!(
                    "scheme '{scheme}' is not smtp:// or smtps://"
                )));
            }
        };
        let port = url.port().unwrap_or(match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
        });
        let credentials = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s)
                    .ok_or_else(|| bad("user or password is not valid percent-encoding"))
            };
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or_default())?,
            ))
        };
        Ok(Self {
            host,
            port,
            tls,
            credentials,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A duration of one number and one unit: `90s`, `30m`, `12h`, `7d`, from 1 s to 365 d.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let err = || format!("'{raw}' is not a duration such as 90s, 30m, 12h or 7d (1s to 365d)");
    let raw_trimmed = raw.trim();
    let unit_at = raw_trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(err)?;
    let (number, unit) = raw_trimmed.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| err())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    let secs = number.checked_mul(unit_secs).ok_or_else(err)?;
    if !(1..=365 * 86_400).contains(&secs) {
        return Err(err());
    }
    Ok(Duration::from_secs(secs))
}

/// The flags of `serve`, each backed by an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "CBH_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Comma-separated namespaces served (the first part of every URL).
    #[arg(long, env = "CBH_NAMESPACES", default_value = DEFAULT_NAMESPACE)]
    pub namespaces: String,
    /// Base URL of the links in emails (default: http:// and the listen address). Links never
    /// take their host from a request header.
    #[arg(long, env = "CBH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Where a person goes after accepting an invitation (the platform's own web app); without
    /// it, to this service's welcome page listing their projects.
    #[arg(long, env = "CBH_APP_URL")]
    pub app_url: Option<String>,
    /// SMTP relay: smtp://[user:pass@]host:port[?tls=starttls] or smtps://…; without it, mail
    /// is written to .eml files in the mail directory.
    #[arg(long, env = "CBH_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of the emails, e.g. "ChemBio Hub <noreply@example.org>".
    #[arg(long, env = "CBH_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Folder for .eml files when no SMTP relay is set.
    #[arg(long, env = "CBH_MAIL_DIR", default_value = "./mail")]
    pub mail_dir: PathBuf,
    /// How long an accept link works.
    #[arg(long, env = "CBH_INVITE_TTL", default_value = "7d")]
    pub invite_ttl: String,
    /// Folder of email templates that override the built-in ones.
    #[arg(long, env = "CBH_TEMPLATE_DIR")]
    pub template_dir: Option<PathBuf>,
    /// PostgreSQL: connections in the pool.
    #[arg(long, env = "CBH_DB_POOL_SIZE", default_value = "10")]
    pub db_pool_size: String,
    /// SQLite: normal (a commit survives a crash of the process) or full (also a power loss).
    #[arg(long, env = "CBH_SQLITE_SYNC", value_enum, default_value = "normal")]
    pub sqlite_sync: SqliteSync,
    /// PostgreSQL: longest time one SQL statement may run.
    #[arg(long, env = "CBH_DB_STATEMENT_TIMEOUT", default_value = "5s")]
    pub db_statement_timeout: String,
    /// How long a request waits for a database connection before answering 503.
    #[arg(long, env = "CBH_DB_ACQUIRE_TIMEOUT", default_value = "2s")]
    pub db_acquire_timeout: String,
    /// How long start-up keeps trying to reach the database.
    #[arg(long, env = "CBH_DB_CONNECT_RETRY", default_value = "30s")]
    pub db_connect_retry: String,
    /// Emails one user may cause, invitations and resends (N/DURATION or off).
    #[arg(long, env = "CBH_INVITE_RATE", default_value = "200/1h")]
    pub invite_rate: String,
    /// Emails one mailbox may receive, across namespaces and +tags (N/DURATION or off).
    #[arg(long, env = "CBH_RECIPIENT_RATE", default_value = "5/24h")]
    pub recipient_rate: String,
    /// Failed logins per account before logins to it are refused for a while (N/DURATION or off).
    #[arg(long, env = "CBH_LOGIN_ACCOUNT_RATE", default_value = "5/15m")]
    pub login_account_rate: String,
    /// Failed logins per client address before its logins are refused for a while.
    #[arg(long, env = "CBH_LOGIN_CLIENT_RATE", default_value = "20/15m")]
    pub login_client_rate: String,
    /// A client that has not sent its whole request head this long after starting it is
    /// disconnected.
    #[arg(long, env = "CBH_HTTP_HEADER_TIMEOUT", default_value = "10s")]
    pub http_header_timeout: String,
    /// A request body not received this long after its head is answered 408.
    #[arg(long, env = "CBH_HTTP_BODY_TIMEOUT", default_value = "30s")]
    pub http_body_timeout: String,
    /// A keep-alive connection with no traffic this long between requests is closed.
    #[arg(long, env = "CBH_HTTP_IDLE_TIMEOUT", default_value = "60s")]
    pub http_idle_timeout: String,
    /// Connections served at once; further ones wait in the listen backlog.
    #[arg(long, env = "CBH_HTTP_MAX_CONNECTIONS", default_value = "4096")]
    pub http_max_connections: String,
    /// Requests handled at once; further ones are answered 503 at once instead of queueing.
    #[arg(long, env = "CBH_HTTP_MAX_IN_FLIGHT", default_value = "1024")]
    pub http_max_in_flight: String,
    /// Serve `/metrics` on this address (e.g. 127.0.0.1:9100) instead of the public one.
    #[arg(long, env = "CBH_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// What this node runs: all, api or worker.
    #[arg(long, env = "CBH_ROLE", value_enum, default_value = "all")]
    pub role: ServeRole,
    /// Add a traceback to 500 responses (development only).
    #[arg(long, env = "CBH_DEBUG", default_value = "0")]
    pub debug: String,
    /// Delay before the first retry of a temporary SMTP failure (doubling, with jitter).
    #[arg(long, env = "CBH_SMTP_RETRY_BASE", default_value = "1s")]
    pub smtp_retry_base: String,
    /// Longest delay between two retries.
    #[arg(long, env = "CBH_SMTP_RETRY_MAX", default_value = "5m")]
    pub smtp_retry_max: String,
    /// How long a worker holds a claimed message before another may retry it.
    #[arg(long, env = "CBH_OUTBOX_LEASE", default_value = "60s")]
    pub outbox_lease: String,
    /// Bounds connecting to the SMTP relay and each command (a stalled relay is a temporary
    /// failure, retried later).
    #[arg(long, env = "CBH_SMTP_TIMEOUT", default_value = "30s")]
    pub smtp_timeout: String,
    /// Attempts before a message is marked failed.
    #[arg(long, env = "CBH_SMTP_MAX_ATTEMPTS", default_value = "10")]
    pub smtp_max_attempts: String,
}

/// Validated settings of a running service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseUrl,
    pub pool: PoolSettings,
    pub limits: Limits,
    pub http: HttpServerSettings,
    pub role: ServeRole,
    pub listen: SocketAddr,
    /// `/metrics` on an address of its own, and then not on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub namespaces: Vec<String>,
    /// Without trailing slash. `None`: derived from the bound address at start-up.
    pub public_url: Option<String>,
    /// Where the accept page sends a person once their account is active. `None`: the welcome
    /// page of this service.
    pub app_url: Option<String>,
    pub smtp: Option<SmtpSettings>,
    pub mail_from: Option<Mailbox>,
    pub mail_dir: PathBuf,
    pub invite_ttl: Duration,
    pub template_dir: Option<PathBuf>,
    pub debug: bool,
    pub delivery: DeliverySettings,
}

impl Settings {
    pub fn from_args(database_url: &str, args: &ServeArgs) -> Result<Self, String> {
        let listen = args.listen.parse().map_err(|_| {
            format!(
                "CBH_LISTEN (--listen): '{}' is not an address such as 127.0.0.1:8000",
                args.listen
            )
        })?;
        let metrics_listen = args
            .metrics_listen
            .as_deref()
            .map(|raw| {
                raw.parse().map_err(|_| {
                    format!(
                        "CBH_METRICS_LISTEN (--metrics-listen): '{raw}' is not an address such as 127.0.0.1:9100"
                    )
                })
            })
            .transpose()?;
        let namespaces = parse_namespaces(&args.namespaces)?;
        let public_url = args
            .public_url
            .as_deref()
            .map(parse_public_url)
            .transpose()?;
        let app_url = args.app_url.as_deref().map(parse_app_url).transpose()?;
        let smtp = args
            .smtp_url
            .as_deref()
            .map(SmtpSettings::parse)
            .transpose()?;
        let mail_from = args
            .mail_from
            .as_deref()
            .map(|raw| {
                raw.parse::<Mailbox>().map_err(|e| {
                    format!("CBH_MAIL_FROM (--mail-from): '{raw}' is not a mailbox ({e})")
                })
            })
            .transpose()?;
        let duration = |var: &str, flag: &str, raw: &str| {
            parse_duration(raw).map_err(|e| format!("{var} ({flag}): {e}"))
        };
        let max_attempts = args
            .smtp_max_attempts
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                format!(
                    "CBH_SMTP_MAX_ATTEMPTS (--smtp-max-attempts): '{}' is not a number from 1 to 100",
                    args.smtp_max_attempts
                )
            })?;
        let count = |var: &str, flag: &str, raw: &str| {
            raw.parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| format!("{var} ({flag}): '{raw}' is not a number from 1 to 1000000"))
        };
        let http = HttpServerSettings {
            header_timeout: duration(
                "CBH_HTTP_HEADER_TIMEOUT",
                "--http-header-timeout",
                &args.http_header_timeout,
            )?,
            body_timeout: duration(
                "CBH_HTTP_BODY_TIMEOUT",
                "--http-body-timeout",
                &args.http_body_timeout,
            )?,
            idle_timeout: duration(
                "CBH_HTTP_IDLE_TIMEOUT",
                "--http-idle-timeout",
                &args.http_idle_timeout,
            )?,
            max_connections: count(
                "CBH_HTTP_MAX_CONNECTIONS",
                "--http-max-connections",
                &args.http_max_connections,
            )?,
            max_in_flight: count(
                "CBH_HTTP_MAX_IN_FLIGHT",
                "--http-max-in-flight",
                &args.http_max_in_flight,
            )?,
        };
        let debug = match args.debug.as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" | "" => false,
            other => return Err(format!("CBH_DEBUG (--debug): '{other}' is not 0 or 1")),
        };
        Ok(Self {
            database: DatabaseUrl::parse(database_url)?,
            pool: PoolSettings {
                max_connections: args
                    .db_pool_size
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "CBH_DB_POOL_SIZE (--db-pool-size): '{}' is not a number from 1 to 1000",
                            args.db_pool_size
                        )
                    })?,
                sqlite_sync: args.sqlite_sync,
                statement_timeout: duration(
                    "CBH_DB_STATEMENT_TIMEOUT",
                    "--db-statement-timeout",
                    &args.db_statement_timeout,
                )?,
                acquire_timeout: duration(
                    "CBH_DB_ACQUIRE_TIMEOUT",
                    "--db-acquire-timeout",
                    &args.db_acquire_timeout,
                )?,
                connect_retry: duration(
                    "CBH_DB_CONNECT_RETRY",
                    "--db-connect-retry",
                    &args.db_connect_retry,
                )?,
            },
            limits: {
                let limit = |var: &str, flag: &str, raw: &str| {
                    Limit::parse(raw).map_err(|e| format!("{var} ({flag}): {e}"))
                };
                Limits {
                    invitations_per_inviter: limit("CBH_INVITE_RATE", "--invite-rate", &args.invite_rate)?,
                    emails_per_recipient: limit("CBH_RECIPIENT_RATE", "--recipient-rate", &args.recipient_rate)?,
                    login_failures_per_account: limit(
                        "CBH_LOGIN_ACCOUNT_RATE",
                        "--login-account-rate",
                        &args.login_account_rate,
                    )?,
                    login_failures_per_client: limit(
                        "CBH_LOGIN_CLIENT_RATE",
                        "--login-client-rate",
                        &args.login_client_rate,
                    )?,
                }
            },
            http,
            role: args.role,
            listen,
            metrics_listen,
            namespaces,
            public_url,
            app_url,
            smtp,
            mail_from,
            mail_dir: args.mail_dir.clone(),
            invite_ttl: duration("CBH_INVITE_TTL", "--invite-ttl", &args.invite_ttl)?,
            template_dir: args.template_dir.clone(),
            debug,
            delivery: DeliverySettings {
                retry_base: duration(
                    "CBH_SMTP_RETRY_BASE",
                    "--smtp-retry-base",
                    &args.smtp_retry_base,
                )?,
                retry_max: duration(
                    "CBH_SMTP_RETRY_MAX",
                    "--smtp-retry-max",
                    &args.smtp_retry_max,
                )?,
                max_attempts,
                lease: duration("CBH_OUTBOX_LEASE", "--outbox-lease", &args.outbox_lease)?,
                smtp_timeout: duration("CBH_SMTP_TIMEOUT", "--smtp-timeout", &args.smtp_timeout)?,
                ..DeliverySettings::default()
            },
        })
    }
}

pub fn parse_namespaces(raw: &str) -> Result<Vec<String>, String> {
    let namespaces: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if namespaces.is_empty() {
        return Err("CBH_NAMESPACES (--namespaces): no namespace given".into());
    }
    for ns in &namespaces {
        validate_namespace(ns).map_err(|e| format!("CBH_NAMESPACES (--namespaces): {e}"))?;
    }
    Ok(namespaces)
}

pub fn validate_namespace(ns: &str) -> Result<(), String> {
    let ok = !ns.is_empty()
        && ns.len() <= 64
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{ns}' is not a namespace (lower-case letters, digits, '-' and '_', at most 64)"
        ))
    }
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    let bad = |why: &str| format!("CBH_PUBLIC_URL (--public-url): '{raw}' {why}");
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An absolute http(s) URL, kept as given: the accept page redirects there, so it must never be
/// something a browser would run (`javascript:`) or resolve against this service.
fn parse_app_url(raw: &str) -> Result<String, String> {
    let bad = |why: &str| format!("CBH_APP_URL (--app-url): '{raw}' {why}");
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_number_and_one_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(
            parse_duration("365d"),
            Ok(Duration::from_secs(365 * 86_400))
        );
        for bad in [
            "",
            "7",
            "d",
            "0s",
            "366d",
            "1.5h",
            "1h30m",
            "-1s",
            "7 d",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_take_a_count_and_a_window() {
        assert_eq!(
            Limit::parse("200/1h"),
            Ok(Some(Limit {
                max: 200,
                window: Duration::from_secs(3_600)
            }))
        );
        assert_eq!(Limit::parse("off"), Ok(None));
        for bad in ["", "200", "0/1h", "x/1h", "5/1x", "5/"] {
            assert!(Limit::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sqlite_urls_name_relative_and_absolute_files() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("data/x.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/x.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("/var/lib/x.db")))
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        let pg = DatabaseUrl::parse("postgres://cbh:s3cret@db.example:5432/cbh").expect("valid");
        assert!(matches!(pg, DatabaseUrl::Postgres(_)));
        assert!(!format!("{pg:?}").contains("s3cret"));
        let error = DatabaseUrl::parse("postgres://cbh:s3cret@/x")
            .err()
            .unwrap_or_default();
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn smtp_urls() {
        let plain = SmtpSettings::parse("smtp://127.0.0.1:2525").expect("valid");
        assert_eq!((plain.port, plain.tls), (2525, SmtpTls::None));
        let auth = SmtpSettings::parse("smtp://me:p%40ss@mail.x.org?tls=starttls").expect("valid");
        assert_eq!(auth.tls, SmtpTls::StartTls);
        assert_eq!(auth.port, 587);
        assert_eq!(auth.credentials, Some(("me".into(), "p@ss".into())));
        assert!(!format!("{auth:?}").contains("p@ss"));
        assert_eq!(
            SmtpSettings::parse("smtps://mail.x.org")
                .expect("valid")
                .tls,
            SmtpTls::Implicit
        );
        assert!(SmtpSettings::parse("http://x").is_err());
        assert!(SmtpSettings::parse("smtp://x?tls=maybe").is_err());
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        assert_eq!(
            parse_public_url("https://hub.example.org/"),
            Ok("https://hub.example.org".into())
        );
        assert!(parse_public_url("ftp://x").is_err());
    }

    #[test]
    fn app_url_must_be_an_absolute_http_url() {
        assert_eq!(
            parse_app_url("https://hub.example.org/app/#/projects"),
            Ok("https://hub.example.org/app/#/projects".into())
        );
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "ftp://x.org",
            "https://",
        ] {
            let error = parse_app_url(bad).expect_err(bad);
            assert!(error.starts_with("CBH_APP_URL (--app-url)"), "{error}");
        }
    }
}

/// Properties of `parse_duration` over every input.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const MAX_SECS: u64 = 365 * 86_400;

    fn unit_secs(unit: &str) -> u64 {
        match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            _ => 86_400,
        }
    }

    proptest! {
        #[test]
        fn any_string_is_a_duration_in_range_or_an_error(raw in any::<String>()) {
            match parse_duration(&raw) {
                Ok(duration) => {
                    prop_assert!((1..=MAX_SECS).contains(&duration.as_secs()));
                    // Written back in seconds, it reads the same.
                    let again = parse_duration(&format!("{}s", duration.as_secs()));
                    prop_assert_eq!(again, Ok(duration));
                }
                Err(message) => prop_assert!(message.contains("is not a duration")),
            }
        }

        #[test]
        fn a_number_and_a_unit_is_their_product_when_in_range(
            number in prop_oneof![0u64..1_000, any::<u64>()],
            unit in prop::sample::select(vec!["s", "m", "h", "d"]),
            pad in "[ \t]{0,2}",
        ) {
            let parsed = parse_duration(&format!("{pad}{number}{unit}{pad}"));
            let secs = number.checked_mul(unit_secs(unit)).filter(|s| (1..=MAX_SECS).contains(s));
            prop_assert_eq!(parsed.ok(), secs.map(Duration::from_secs));
        }

        #[test]
        fn anything_but_digits_then_one_unit_is_refused(
            raw in "[-+ .0-9smhdSMHDµ٣]{0,8}",
        ) {
            let trimmed = raw.trim();
            let shaped = trimmed.len() >= 2
                && trimmed.as_bytes()[..trimmed.len() - 1].iter().all(u8::is_ascii_digit)
                && matches!(trimmed.as_bytes()[trimmed.len() - 1], b's' | b'm' | b'h' | b'd');
            if !shaped {
                prop_assert!(parse_duration(&raw).is_err(), "{raw:?}");
            }
        }
    }
}
