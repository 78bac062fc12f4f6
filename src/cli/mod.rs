//! The command line: parse, call the library, print. Results go to standard output (only the
//! id or key where scripts read them), diagnostics to standard error.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{
    self, DEFAULT_DATABASE_URL, DEFAULT_NAMESPACE, DatabaseUrl, PoolSettings, ServeArgs, Settings,
};
use crate::domain::printable::escape_controls;
use crate::domain::{EmailAddress, PersonName, ProjectId, Role, Timestamp, Token, password};
use crate::startup::Application;
use crate::store::{self, AuditEvent, AuditRecord, NewUser, Store};

#[derive(Debug, Parser)]
#[command(
    name = "cbh-invite",
    version,
    about = "Invite colleagues to a research data platform by email."
)]
pub struct Cli {
    /// Database: sqlite://PATH (created if missing) or postgres://…
    // Its value is never shown in --help: it may carry a password.
    #[arg(
        long,
        env = "CBH_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the email outbox worker.
    // Boxed: the flags make this variant much larger than the others.
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Give a user a role on a project.
    Grant {
        #[arg(long)]
        email: String,
        #[arg(long)]
        project: i64,
        #[arg(long, value_parser = ["viewer", "editor", "owner"])]
        role: String,
        #[arg(long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Show security events (logins, invitations, keys) from the audit log.
    Audit {
        /// A duration back from now (`24h`, `7d`) or a UTC time (`2026-11-27T00:00:00Z`).
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long, default_value = "1000")]
        limit: i64,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and retry outgoing email.
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List messages, newest first.
    List {
        /// queued, sent or failed.
        #[arg(long, value_parser = ["queued", "sent", "failed"])]
        status: Option<String>,
        #[arg(long, default_value = "50")]
        limit: i64,
    },
    /// Queue failed messages again (attempts reset): one by id, or all with --failed. A message
    /// whose link has expired meanwhile is better resent (API or invite page): that issues a
    /// fresh link.
    Retry {
        /// The outbox id (from `outbox list`).
        id: Option<i64>,
        /// Every failed message.
        #[arg(long, conflicts_with = "id")]
        failed: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; with --password-stdin it is active at once, without it stays pending.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
        #[arg(long)]
        superuser: bool,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Add a project and print its id.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for a user and print it (it is shown only once).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Revoke every API key of a user.
    Revoke {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

/// Errors that are the user's to fix: printed as one line, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let database = DatabaseUrl::parse(&cli.database_url).map_err(UsageError)?;
    match cli.command {
        Command::Serve(args) => serve(&cli.database_url, &args).await,
        Command::Migrate => {
            store::connect(&database, &PoolSettings::default()).await?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::User(UserCommand::Add {
            email,
            first_name,
            last_name,
            superuser,
            password_stdin,
            namespace,
        }) => {
            let namespace = checked_namespace(namespace)?;
            let email =
                EmailAddress::parse(&email).map_err(|e| UsageError(format!("--email: {e}")))?;
            let first_name = PersonName::parse(&first_name, "--first-name")
                .map_err(|e| UsageError(e.to_string()))?;
            let last_name = PersonName::parse(&last_name, "--last-name")
                .map_err(|e| UsageError(e.to_string()))?;
            let password_hash = if password_stdin {
                let password = read_password()?;
                password::validate_new(&password).map_err(|e| UsageError(e.to_string()))?;
                Some(tokio::task::spawn_blocking(move || password::hash(&password)).await??)
            } else {
                None
            };
            let store = store::connect(&database, &PoolSettings::default()).await?;
            let user = store
                .create_user(
                    &namespace,
                    NewUser {
                        email,
                        first_name,
                        last_name,
                        password_hash,
                        is_superuser: superuser,
                    },
                )
                .await
                .map_err(|e| match e {
                    store::StoreError::Conflict(what) => UsageError(what).into(),
                    other => anyhow::Error::from(other),
                })?;
            println!("{}", user.id.0);
            Ok(())
        }
        Command::Project(ProjectCommand::Add { name, namespace }) => {
            let namespace = checked_namespace(namespace)?;
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
                bail!(UsageError(
                    "--name must be 1 to 200 characters, without control characters".into()
                ));
            }
            let store = store::connect(&database, &PoolSettings::default()).await?;
            let project = store
                .create_project(&namespace, name, Timestamp::now())
                .await?;
            println!("{}", project.id.0);
            Ok(())
        }
        Command::Grant {
            email,
            project,
            role,
            namespace,
        } => {
            let namespace = checked_namespace(namespace)?;
            let role: Role = role.parse().map_err(UsageError)?;
            let store = store::connect(&database, &PoolSettings::default()).await?;
            let user = find_user(store.as_ref(), &namespace, &email).await?;
            let found = store
                .projects_by_ids(&namespace, &[ProjectId(project)])
                .await?;
            if found.is_empty() {
                bail!(UsageError(format!(
                    "there is no project {project} in namespace {namespace}"
                )));
            }
            store.grant(user.id, ProjectId(project), role).await?;
            eprintln!("{} is now {role} of project {project}", user.email);
            Ok(())
        }
        Command::Apikey(ApiKeyCommand::Create { email, namespace }) => {
            let namespace = checked_namespace(namespace)?;
            let store = store::connect(&database, &PoolSettings::default()).await?;
            let user = find_user(store.as_ref(), &namespace, &email).await?;
            let key = Token::generate();
            store
                .create_api_key(user.id, &key.hash(), Timestamp::now())
                .await?;
            audit_cli(store.as_ref(), &namespace, "apikey_created", &user).await?;
            println!("{}", key.expose());
            Ok(())
        }
        Command::Apikey(ApiKeyCommand::Revoke { email, namespace }) => {
            let namespace = checked_namespace(namespace)?;
            let store = store::connect(&database, &PoolSettings::default()).await?;
            let user = find_user(store.as_ref(), &namespace, &email).await?;
            let revoked = store.revoke_api_keys(user.id).await?;
            audit_cli(store.as_ref(), &namespace, "apikey_revoked", &user).await?;
            eprintln!("revoked {revoked} API key(s) of {}", user.email);
            Ok(())
        }
        Command::Audit { since, limit, json } => {
            let since = parse_since(&since)?;
            let store = store::connect(&database, &PoolSettings::default()).await?;
            for event in store.audit_since(since, limit.clamp(1, 100_000)).await? {
                println!("{}", audit_line(&event, json));
            }
            Ok(())
        }
        Command::Outbox(OutboxCommand::List { status, limit }) => {
            let store = store::connect(&database, &PoolSettings::default()).await?;
            let rows = store
                .list_outbox(status.as_deref(), limit.clamp(1, 100_000))
                .await?;
            println!(
                "id\tstatus\tattempts\tkind\trecipient\tinvitation\tcreated\tnext attempt\tlast error"
            );
            for row in rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}/{}\t{}\t{}\t{}",
                    row.id,
                    row.status,
                    row.attempts,
                    row.kind,
                    row.recipient,
                    row.namespace,
                    row.invitation_id,
                    row.created.to_iso8601(),
                    row.next_attempt_at.to_iso8601(),
                    row.last_error
                        .unwrap_or_default()
                        .replace(['\t', '\n'], " "),
                );
            }
            Ok(())
        }
        Command::Outbox(OutboxCommand::Retry { id, failed }) => {
            if id.is_none() && !failed {
                bail!(UsageError(
                    "name a message id, or --failed for all failed messages".into()
                ));
            }
            let store = store::connect(&database, &PoolSettings::default()).await?;
            let queued = store.retry_outbox(id, Timestamp::now()).await?;
            if id.is_some() && queued == 0 {
                bail!(UsageError(
                    "no such failed message (or its invitation was revoked)".into()
                ));
            }
            eprintln!("queued {queued} message(s) again; a running worker sends them shortly");
            Ok(())
        }
    }
}

async fn audit_cli(
    store: &dyn Store,
    namespace: &str,
    event: &'static str,
    user: &crate::domain::User,
) -> anyhow::Result<()> {
    store
        .record_audit(AuditEvent {
            namespace: namespace.to_owned(),
            at: Timestamp::now(),
            event,
            actor: None,
            subject: Some(user.email.key()),
            client_ip: None,
            detail: Some("by the command line".into()),
        })
        .await?;
    Ok(())
}

/// One audit record as a line of text or of JSON. Every field may hold text an attacker chose
/// (a login's username, a client address from a proxy header), so control characters are
/// escaped in both forms: no record can forge another line or drive the terminal.
fn audit_line(event: &AuditRecord, json: bool) -> String {
    let clean = |v: &Option<String>| v.as_deref().map(escape_controls);
    if json {
        return serde_json::json!({
            "at": event.at.to_iso8601(),
            "namespace": escape_controls(&event.namespace),
            "event": escape_controls(&event.event),
            "actor": clean(&event.actor_email),
            "subject": clean(&event.subject),
            "client_ip": clean(&event.client_ip),
            "detail": clean(&event.detail),
        })
        .to_string();
    }
    let field = |v: &Option<String>| clean(v).unwrap_or_else(|| "-".into());
    format!(
        "{} {} {} actor={} subject={} client={}{}",
        event.at.to_iso8601(),
        escape_controls(&event.namespace),
        escape_controls(&event.event),
        field(&event.actor_email),
        field(&event.subject),
        field(&event.client_ip),
        clean(&event.detail)
            .map(|d| format!(" {d}"))
            .unwrap_or_default(),
    )
}

/// `24h` (back from now) or `2026-11-27T00:00:00Z`.
fn parse_since(raw: &str) -> anyhow::Result<Timestamp> {
    if let Ok(back) = config::parse_duration(raw) {
        return Ok(Timestamp::now().minus(back));
    }
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            UsageError(format!(
                "--since: '{raw}' is neither a duration (24h) nor a time (2026-11-27T00:00:00Z)"
            ))
        })?;
    Ok(Timestamp((at.unix_timestamp_nanos() / 1_000_000) as i64))
}

async fn serve(database_url: &str, args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(database_url, args).map_err(UsageError)?;
    let started = std::time::Instant::now();
    let app = Application::build(settings.clone()).await?;
    tracing::info!(
        address = %app.address(),
        public_url = app.public_url(),
        namespaces = settings.namespaces.join(","),
        ready_in = ?started.elapsed(),
        "cbh-invite is ready"
    );
    tracing::info!("mail: {}", app.mail_description());
    for link in app.setup_links() {
        // Printed once, on purpose: whoever can read the service's log may create the first
        // superuser, as with `user add`. The link stops working once any user exists.
        tracing::warn!(
            namespace = link.namespace,
            "first run: namespace {} has no user yet; create its first superuser at {} (works once, for 24 hours)",
            link.namespace,
            link.url
        );
    }
    app.run_until_stopped(shutdown_signal()).await
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

fn checked_namespace(namespace: String) -> anyhow::Result<String> {
    config::validate_namespace(&namespace).map_err(|e| UsageError(format!("--namespace: {e}")))?;
    Ok(namespace)
}

async fn find_user(
    store: &dyn Store,
    namespace: &str,
    email: &str,
) -> anyhow::Result<crate::domain::User> {
    let email = EmailAddress::parse(email).map_err(|e| UsageError(format!("--email: {e}")))?;
    let found = store.user_by_email(namespace, &email).await?;
    match found {
        Some(creds) => Ok(creds.user),
        None => bail!(UsageError(format!(
            "there is no user {email} in namespace {namespace}"
        ))),
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    Ok(input.lines().next().unwrap_or("").to_owned())
}
