//! The command line: parse, call the library, print. Results go to standard output (only the
//! id or key where scripts read them), diagnostics to standard error. Each group of commands
//! has a file of its own; this one holds the tree of commands and what they share.

mod accounts;
mod admin;
mod bounce;
mod dkim;
mod docs;
mod invite;
mod mail;
mod maintenance;
mod records;
mod secrets;
mod serve;
mod suppression;
mod webhooks;

use std::sync::Arc;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

pub use bounce::{EX_TEMPFAIL, TempFail};

use crate::config::{
    self, DEFAULT_DATABASE_URL, DEFAULT_NAMESPACE, DatabaseUrl, PoolSettings, ServeArgs,
};
use crate::domain::{EmailAddress, User};
use crate::store::{self, Store};

/// `--version`: the crate's version and the git commit it was built from (build.rs; "unknown"
/// when built outside a git checkout, e.g. from a source tarball).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CBH_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "cbh-invite",
    version = VERSION,
    about = "Invite colleagues to a research data platform by email."
)]
pub struct Cli {
    /// Database: sqlite://PATH (created if missing) or postgres://…[?sslmode=verify-full&sslrootcert=CA.pem]; or
    /// read from the file named by CBH_DATABASE_URL_FILE
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
    /// A `*_FILE` variable that could not be used: `check` reports it as its failed settings
    /// check (exit 1); every other command refuses to start (exit 2).
    #[arg(skip)]
    pub secret_error: Option<String>,
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
    User(accounts::UserCommand),
    /// Manage projects.
    #[command(subcommand)]
    Project(accounts::ProjectCommand),
    /// Give a user a role on a project, change it, or remove it (`--role none`).
    Grant(accounts::GrantArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(accounts::ApiKeyCommand),
    /// Show security events (logins, invitations, keys) from the audit log.
    Audit(records::AuditArgs),
    /// Inspect and retry outgoing email.
    #[command(subcommand)]
    Outbox(records::OutboxCommand),
    /// Check the settings, templates, database and mail relay; one line each, exit 1 on a failure.
    Check(Box<ServeArgs>),
    /// Mark expired invitations and delete what is kept no longer (what serve's janitor does),
    /// and print how much.
    Prune(maintenance::PruneArgs),
    /// Copy the SQLite database to a new file while serve runs, and check the copy.
    Backup(maintenance::BackupArgs),
    /// Send a test email.
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Read one bounce (a delivery status notification) on standard input, as a mail server's
    /// pipe transport hands it over, and mark its invitation's email bounced.
    Bounce(bounce::BounceArgs),
    /// DKIM signing keys (`dkim keygen`).
    #[command(subcommand)]
    Dkim(dkim::DkimCommand),
    /// Invite everyone on a roster (a CSV file) as one inviter; the running service sends the emails.
    Invite(Box<invite::InviteArgs>),
    /// Manage webhook endpoints and their deliveries.
    #[command(subcommand)]
    Webhook(webhooks::WebhookCommand),
    /// The addresses that asked not to be invited again: list them, or take one off.
    #[command(subcommand)]
    Suppression(suppression::SuppressionCommand),
    /// Print a shell completion script (bash, zsh, fish, …) for this command.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

/// Errors that are the user's to fix: printed as one line, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // These two touch no database: a bad CBH_DATABASE_URL must not stop them.
        Command::Completions(args) => docs::completions(args),
        Command::Man => docs::man(),
        Command::Dkim(command) => dkim::dkim(command),
        // Before the database URL is parsed: a bad one is `check`'s failed settings line.
        Command::Check(args) => {
            maintenance::check(&cli.database_url, &args, cli.secret_error).await
        }
        command => run_on_database(&cli.database_url, command).await,
    }
}

async fn run_on_database(database_url: &str, command: Command) -> anyhow::Result<()> {
    let database = DatabaseUrl::parse(database_url).map_err(UsageError)?;
    match command {
        Command::Serve(args) => serve::serve(database_url, &args).await,
        Command::Migrate => {
            open_store(&database).await?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::User(command) => accounts::user(&database, command).await,
        Command::Project(command) => accounts::project(&database, command).await,
        Command::Grant(args) => accounts::grant(&database, args).await,
        Command::Apikey(command) => accounts::apikey(&database, command).await,
        Command::Audit(args) => records::audit(&database, args).await,
        Command::Outbox(command) => records::outbox(&database, command).await,
        Command::Check(args) => maintenance::check(database_url, &args, None).await,
        Command::Prune(args) => maintenance::prune(database_url, args).await,
        Command::Backup(args) => maintenance::backup(&database, args).await,
        Command::Mail(command) => mail::mail(database_url, command).await,
        Command::Bounce(args) => bounce::bounce(database_url, args).await,
        Command::Webhook(command) => webhooks::webhook(&database, command).await,
        Command::Suppression(command) => suppression::suppression(&database, command).await,
        Command::Invite(args) => invite::invite(&database, database_url, *args).await,
        Command::Completions(args) => docs::completions(args),
        Command::Man => docs::man(),
        Command::Dkim(command) => dkim::dkim(command),
    }
}

/// `--namespace`, shared by every command that works in one namespace.
#[derive(Debug, Args)]
pub struct NamespaceArg {
    /// The namespace to work in [default: the first of CBH_NAMESPACES]
    #[arg(long = "namespace", env = "CBH_NAMESPACE")]
    namespace: Option<String>,
}

impl NamespaceArg {
    /// The namespace named, or the first one served. One that `CBH_NAMESPACES` does not list is
    /// refused: a user or project made there would belong to a namespace nobody serves.
    pub fn resolve(&self) -> Result<String, UsageError> {
        let served = match std::env::var("CBH_NAMESPACES") {
            Ok(raw) => config::parse_namespaces(&raw).map_err(UsageError)?,
            Err(_) => vec![DEFAULT_NAMESPACE.to_owned()],
        };
        let Some(namespace) = self.namespace.clone() else {
            return Ok(served[0].clone());
        };
        config::validate_namespace(&namespace)
            .map_err(|e| UsageError(format!("--namespace: {e}")))?;
        if !served.contains(&namespace) {
            return Err(UsageError(format!(
                "--namespace: '{namespace}' is not served here: CBH_NAMESPACES is '{}'",
                served.join(",")
            )));
        }
        Ok(namespace)
    }
}

/// The configured database, migrated.
async fn open_store(database: &DatabaseUrl) -> anyhow::Result<Arc<dyn Store>> {
    store::connect(database, &PoolSettings::default()).await
}

async fn find_user(store: &dyn Store, namespace: &str, email: &str) -> anyhow::Result<User> {
    let email = EmailAddress::parse(email).map_err(|e| UsageError(format!("--email: {e}")))?;
    let found = store.user_by_email(namespace, &email).await?;
    match found {
        Some(creds) => Ok(creds.user),
        None => bail!(UsageError(format!(
            "there is no user {email} in namespace {namespace}"
        ))),
    }
}
