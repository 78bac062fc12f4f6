//! The flags of `serve`, as clap reads them: strings, validated by `Settings::from_args`.

use std::path::PathBuf;

use super::{DEFAULT_NAMESPACE, ServeRole, SqliteSync};

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
    /// Name of the session cookie; `{ns}` stands for the namespace.
    #[arg(long, env = "CBH_SESSION_COOKIE", default_value = "{ns}_sessionid")]
    pub session_cookie: String,
    /// Name of the CSRF cookie, which scripts read and send back in X-CSRFToken; `{ns}` stands
    /// for the namespace.
    #[arg(long, env = "CBH_CSRF_COOKIE", default_value = "{ns}csrftoken")]
    pub csrf_cookie: String,
    /// Path of the cookies (`{ns}` allowed); it must cover /{ns}/.
    #[arg(long, env = "CBH_COOKIE_PATH", default_value = "/")]
    pub cookie_path: String,
    /// Domain of the cookies (e.g. platform.example, to share them with its subdomains);
    /// without it, host-only.
    #[arg(long, env = "CBH_COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,
    /// SMTP relay: smtp://[user:pass@]host:port[?tls=starttls] or smtps://…; without it, mail
    /// is written to .eml files in the mail directory. Or read from the file named by
    /// CBH_SMTP_URL_FILE.
    #[arg(long, env = "CBH_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// PEM file of CA certificates to trust for the SMTP relay (besides the built-in roots),
    /// e.g. a private CA's.
    #[arg(long, env = "CBH_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Sender of the emails, e.g. "ChemBio Hub <noreply@example.org>".
    #[arg(long, env = "CBH_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// DKIM: PEM private key (RSA or Ed25519) every message is signed with; `cbh-invite dkim
    /// keygen` makes one.
    #[arg(long, env = "CBH_DKIM_KEY_FILE")]
    pub dkim_key_file: Option<PathBuf>,
    /// DKIM: the selector, published as SELECTOR._domainkey.DOMAIN.
    #[arg(long, env = "CBH_DKIM_SELECTOR")]
    pub dkim_selector: Option<String>,
    /// DKIM: the signing domain (d=) [default: the domain of CBH_MAIL_FROM].
    #[arg(long, env = "CBH_DKIM_DOMAIN")]
    pub dkim_domain: Option<String>,
    /// Envelope sender (Return-Path) for bounces, e.g. bounces@lab.example: each message is sent
    /// from bounces+ID@lab.example, which `cbh-invite bounce` reads back [default: the From address].
    #[arg(long, env = "CBH_BOUNCE_ADDRESS")]
    pub bounce_address: Option<String>,
    /// Folder for .eml files when no SMTP relay is set.
    #[arg(long, env = "CBH_MAIL_DIR", default_value = "./mail")]
    pub mail_dir: PathBuf,
    /// How long an accept link works.
    #[arg(long, env = "CBH_INVITE_TTL", default_value = "7d")]
    pub invite_ttl: String,
    /// The longest lifetime an invitation may have: bounds CBH_INVITE_TTL and a request's
    /// `expires_in`.
    #[arg(long, env = "CBH_INVITE_TTL_MAX", default_value = "30d")]
    pub invite_ttl_max: String,
    /// Automatic reminders of a pending invitation: comma-separated times after it was created
    /// or last resent, in increasing order (`2d,5d`), or `off`.
    #[arg(long, env = "CBH_REMINDERS", default_value = "2d,5d")]
    pub reminders: String,
    /// When set, the only email domains that may be invited: comma-separated `example.org`,
    /// `*.example.org` (and subdomains), optionally `namespace:` first.
    #[arg(long, env = "CBH_ALLOWED_DOMAINS")]
    pub allowed_domains: Option<String>,
    /// Email domains that may not be invited (same syntax; wins over CBH_ALLOWED_DOMAINS).
    #[arg(long, env = "CBH_DENIED_DOMAINS")]
    pub denied_domains: Option<String>,
    /// Who may have an invitation's accept link returned by the API ("return_link") and
    /// create one without its email ("send_email": false): off, superusers or editors.
    #[arg(long, env = "CBH_LINK_SHARING", default_value = "off")]
    pub link_sharing: String,
    /// Folder of email templates that override the built-in ones, and of message catalogs
    /// (locales/{lang}/*.ftl) that override or add languages.
    #[arg(long, env = "CBH_TEMPLATE_DIR")]
    pub template_dir: Option<PathBuf>,
    /// Language of an invitation that names none, and of pages and notices when the reader's
    /// is unknown (a BCP 47 tag with a catalog: en, de, fr, or one CBH_TEMPLATE_DIR adds).
    #[arg(long, env = "CBH_DEFAULT_LANGUAGE", default_value = "en")]
    pub default_language: String,
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
    /// Failed logins per account from one client address before logins to it from there are
    /// refused for a while (N/DURATION or off).
    #[arg(long, env = "CBH_LOGIN_ACCOUNT_RATE", default_value = "5/15m")]
    pub login_account_rate: String,
    /// Failed logins per account from all addresses before every login to it is refused for a
    /// while (N/DURATION or off).
    #[arg(long, env = "CBH_LOGIN_ACCOUNT_CEILING", default_value = "100/15m")]
    pub login_account_ceiling: String,
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
    /// SMTP sessions open to the relay at once, each reused for many messages (1 to 1024).
    #[arg(long, env = "CBH_SMTP_CONNECTIONS", default_value = "32")]
    pub smtp_connections: String,
    /// At most this many messages per period across all of this node's connections, e.g. 14/1s
    /// or 1000/1h (unset: as fast as the relay takes them).
    #[arg(long, env = "CBH_SMTP_RATE")]
    pub smtp_rate: Option<String>,
    /// Attempts before a message is marked failed.
    #[arg(long, env = "CBH_SMTP_MAX_ATTEMPTS", default_value = "10")]
    pub smtp_max_attempts: String,
    /// Audit records older than this are deleted by the janitor (a duration, or off).
    #[arg(long, env = "CBH_AUDIT_RETENTION", default_value = "365d")]
    pub audit_retention: String,
    /// Outbox rows of emails sent longer ago than this are deleted; the invitation keeps the
    /// delivery's status and time (a duration, or off).
    #[arg(long, env = "CBH_OUTBOX_RETENTION", default_value = "30d")]
    pub outbox_retention: String,
    /// How often the janitor deletes what is kept no longer (and once at start).
    #[arg(long, env = "CBH_PRUNE_INTERVAL", default_value = "10m")]
    pub prune_interval: String,
    /// Bounds each webhook delivery (connecting, sending, the answer); a receiver slower than
    /// this gets the event again later.
    #[arg(long, env = "CBH_WEBHOOK_TIMEOUT", default_value = "10s")]
    pub webhook_timeout: String,
    /// Let webhook endpoints be loopback, private or link-local addresses (development and
    /// tests only: otherwise they are refused at creation and again after DNS).
    #[arg(long, env = "CBH_WEBHOOK_ALLOW_PRIVATE", default_value = "false")]
    pub webhook_allow_private: String,
}
