//! Settings of `serve`, read from flags and `CBH_*` environment variables (a flag beats its
//! variable), and validated once at start-up into `Settings`. Every error names the variable.
//!
//! One file per kind of setting: `args` (the clap flags), `database`, `limits`, `mail`, `parse`
//! (single values), `retention`, `secrets` (`*_FILE` variables); this file holds `Settings`,
//! which validates the flags into typed values.

mod args;
mod cookies;
mod database;
mod dkim;
mod invite_rules;
mod limits;
mod mail;
mod parse;
mod retention;
mod secrets;
mod sharing;
#[cfg(test)]
mod tests;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;

pub use args::ServeArgs;
pub use cookies::CookieSettings;
pub use database::{
    DEFAULT_DATABASE_URL, DEFAULT_NAMESPACE, DatabaseUrl, PoolSettings, SqliteSync,
};
pub use dkim::{DkimAlgorithm, DkimSettings, parse_key as parse_dkim_key};
pub use invite_rules::{InviteRules, MIN_INVITE_TTL};
pub use limits::{HttpServerSettings, Limit, Limits};
pub use mail::{DeliverySettings, SmtpSettings, SmtpTls};
use parse::{parse_app_url, parse_public_url};
pub use parse::{parse_duration, parse_namespaces, parse_reminders, validate_namespace};
pub use retention::{RetentionSettings, parse_retention};
pub use secrets::secret_from_file;
pub use sharing::LinkSharing;
pub use webhooks::{WebhookSettings, allow_private_from_env};

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
    /// Names and scope of the session, CSRF and form cookies.
    pub cookies: CookieSettings,
    pub smtp: Option<SmtpSettings>,
    pub mail_from: Option<Mailbox>,
    /// `CBH_DKIM_*`: every message is signed with this key.
    pub dkim: Option<DkimSettings>,
    pub mail_dir: PathBuf,
    pub invite_ttl: Duration,
    /// `CBH_REMINDERS`: when a pending invitation is reminded, after it was created or last
    /// resent, in increasing order; empty: never.
    pub reminders: Vec<Duration>,
    /// `CBH_INVITE_TTL_MAX` and the domain rules.
    pub invite_rules: InviteRules,
    /// `CBH_LINK_SHARING`: who may take an accept link from the API.
    pub link_sharing: LinkSharing,
    pub template_dir: Option<PathBuf>,
    /// `CBH_DEFAULT_LANGUAGE`, normalized (`de-at` → `de-AT`); that a catalog exists for it is
    /// checked once the catalogs are loaded (`startup::load_catalogs`).
    pub default_language: String,
    pub debug: bool,
    pub delivery: DeliverySettings,
    pub retention: RetentionSettings,
    pub webhooks: WebhookSettings,
}

impl Settings {
    /// The sender of the emails: `CBH_MAIL_FROM`, or noreply at the host of the public URL.
    pub fn sender(&self) -> Result<Mailbox, String> {
        if let Some(from) = &self.mail_from {
            return Ok(from.clone());
        }
        let domain = self
            .public_url
            .as_deref()
            .and_then(|raw| url::Url::parse(raw).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .filter(|h| h.contains('.') && !h.starts_with('['))
            .unwrap_or_else(|| "cbh-invite.localhost".into());
        format!("ChemBio Hub <noreply@{domain}>")
            .parse()
            .map_err(|e| format!("CBH_MAIL_FROM (--mail-from) is needed: {e}"))
    }

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
        let cookies = CookieSettings::parse(
            &args.session_cookie,
            &args.csrf_cookie,
            &args.cookie_path,
            args.cookie_domain.as_deref(),
            &namespaces,
        )?;
        let mut smtp = args
            .smtp_url
            .as_deref()
            .map(SmtpSettings::parse)
            .transpose()?;
        if let Some(ca_file) = &args.smtp_ca_file {
            mail::attach_ca_file(&mut smtp, ca_file)?;
        }
        let mail_from = args
            .mail_from
            .as_deref()
            .map(|raw| {
                raw.parse::<Mailbox>().map_err(|e| {
                    format!("CBH_MAIL_FROM (--mail-from): '{raw}' is not a mailbox ({e})")
                })
            })
            .transpose()?;
        let dkim = DkimSettings::parse(
            args.dkim_key_file.as_deref(),
            args.dkim_selector.as_deref(),
            args.dkim_domain.as_deref(),
            mail_from.as_ref().map(|from| from.email.domain()),
        )?;
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
        let invite_ttl = duration("CBH_INVITE_TTL", "--invite-ttl", &args.invite_ttl)?;
        let reminders = parse_reminders(&args.reminders)
            .map_err(|e| format!("CBH_REMINDERS (--reminders): {e}"))?;
        let invite_rules = InviteRules::parse(
            invite_ttl,
            &args.invite_ttl_max,
            args.allowed_domains.as_deref(),
            args.denied_domains.as_deref(),
            &namespaces,
        )?;
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
                    login_account_ceiling: limit(
                        "CBH_LOGIN_ACCOUNT_CEILING",
                        "--login-account-ceiling",
                        &args.login_account_ceiling,
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
            cookies,
            smtp,
            mail_from,
            dkim,
            mail_dir: args.mail_dir.clone(),
            invite_ttl,
            reminders,
            invite_rules,
            link_sharing: LinkSharing::parse(&args.link_sharing)?,
            template_dir: args.template_dir.clone(),
            default_language: crate::i18n::normalize_tag(args.default_language.trim())
                .ok_or_else(|| {
                    format!(
                        "CBH_DEFAULT_LANGUAGE (--default-language): '{}' is not a BCP 47 language tag (such as en or de)",
                        args.default_language
                    )
                })?,
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
                smtp_connections: mail::parse_smtp_connections(&args.smtp_connections)?,
                smtp_rate: mail::parse_smtp_rate(args.smtp_rate.as_deref())?,
                bounce_address: args
                    .bounce_address
                    .as_deref()
                    .map(mail::parse_bounce_address)
                    .transpose()?,
                ..DeliverySettings::default()
            },
            retention: RetentionSettings {
                audit: parse_retention(&args.audit_retention)
                    .map_err(|e| format!("CBH_AUDIT_RETENTION (--audit-retention): {e}"))?,
                outbox: parse_retention(&args.outbox_retention)
                    .map_err(|e| format!("CBH_OUTBOX_RETENTION (--outbox-retention): {e}"))?,
                interval: duration("CBH_PRUNE_INTERVAL", "--prune-interval", &args.prune_interval)?,
            },
            webhooks: WebhookSettings {
                timeout: duration(
                    "CBH_WEBHOOK_TIMEOUT",
                    "--webhook-timeout",
                    &args.webhook_timeout,
                )?,
                allow_private: webhooks::parse_flag(
                    "CBH_WEBHOOK_ALLOW_PRIVATE",
                    "--webhook-allow-private",
                    &args.webhook_allow_private,
                )?,
            },
        })
    }
}
