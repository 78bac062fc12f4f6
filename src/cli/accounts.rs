//! Commands that manage accounts: users, projects, grants and API keys.

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::DatabaseUrl;
use crate::domain::project::parse_project_name;
use crate::domain::{EmailAddress, PersonName, Role, Timestamp, Token, User, password};
use crate::store::{self, AuditEvent, ChangedBy, NewUser, Store};

use super::{NamespaceArg, UsageError, admin, find_user, open_store};

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
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// List the users, by email: id, email, name, status (active, pending or deactivated).
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// Deactivate a user: its sessions end, its API keys and accept links stop working, and
    /// it cannot log in until activated again.
    Deactivate {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// Activate a deactivated user again.
    Activate {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Add a project and print its id.
    Add {
        #[arg(long)]
        name: String,
        /// Make this user (an existing one) the project's owner.
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// List the projects: id, name and members (email:role).
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[arg(long)]
    email: String,
    #[arg(long)]
    project: i64,
    /// `none` removes the user's role; a project's last owner cannot lose it.
    #[arg(long, value_parser = ["viewer", "editor", "owner", "none"])]
    role: String,
    #[command(flatten)]
    namespace: NamespaceArg,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for a user and print it (it is shown only once).
    Create {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// Revoke every API key of a user.
    Revoke {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
}

pub async fn user(database: &DatabaseUrl, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            email,
            first_name,
            last_name,
            superuser,
            password_stdin,
            namespace,
        } => {
            let new = UserArgs {
                email,
                first_name,
                last_name,
                superuser,
                password_stdin,
            };
            add_user(database, new, &namespace.resolve()?).await
        }
        UserCommand::List { json, namespace } => {
            admin::list_users(database, &namespace.resolve()?, json).await
        }
        UserCommand::Deactivate { email, namespace } => {
            admin::set_deactivated(database, &namespace.resolve()?, &email, true).await
        }
        UserCommand::Activate { email, namespace } => {
            admin::set_deactivated(database, &namespace.resolve()?, &email, false).await
        }
    }
}

/// The flags of `user add`.
struct UserArgs {
    email: String,
    first_name: String,
    last_name: String,
    superuser: bool,
    password_stdin: bool,
}

async fn add_user(database: &DatabaseUrl, args: UserArgs, namespace: &str) -> anyhow::Result<()> {
    let UserArgs {
        email,
        first_name,
        last_name,
        superuser,
        password_stdin,
    } = args;
    let email = EmailAddress::parse(&email).map_err(|e| UsageError(format!("--email: {e}")))?;
    let first_name =
        PersonName::parse(&first_name, "--first-name").map_err(|e| UsageError(e.to_string()))?;
    let last_name =
        PersonName::parse(&last_name, "--last-name").map_err(|e| UsageError(e.to_string()))?;
    let password_hash = if password_stdin {
        let password = read_password()?;
        password::validate_new(&password).map_err(|e| UsageError(e.to_string()))?;
        Some(tokio::task::spawn_blocking(move || password::hash(&password)).await??)
    } else {
        None
    };
    let store = open_store(database).await?;
    let user = store
        .add_account(
            namespace,
            NewUser {
                email,
                first_name,
                last_name,
                password_hash,
                is_superuser: superuser,
            },
            ChangedBy::default(),
            Timestamp::now(),
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(what) => UsageError(what).into(),
            other => anyhow::Error::from(other),
        })?;
    println!("{}", user.id.0);
    Ok(())
}

pub async fn project(database: &DatabaseUrl, command: ProjectCommand) -> anyhow::Result<()> {
    let (name, owner, namespace) = match command {
        ProjectCommand::Add {
            name,
            owner,
            namespace,
        } => (name, owner, namespace),
        ProjectCommand::List { json, namespace } => {
            return admin::list_projects(database, &namespace.resolve()?, json).await;
        }
    };
    let namespace = namespace.resolve()?;
    let name = parse_project_name(&name).map_err(|e| UsageError(format!("--{e}")))?;
    let store = open_store(database).await?;
    let owner = match owner {
        Some(email) => Some(find_user(store.as_ref(), &namespace, &email).await?.id),
        None => None,
    };
    let project = store
        .create_owned_project(
            &namespace,
            &name,
            owner,
            ChangedBy::default(),
            Timestamp::now(),
        )
        .await?;
    println!("{}", project.id.0);
    Ok(())
}

pub async fn grant(database: &DatabaseUrl, args: GrantArgs) -> anyhow::Result<()> {
    let GrantArgs {
        email,
        project,
        role,
        namespace,
    } = args;
    let namespace = namespace.resolve()?;
    let role: Option<Role> = match role.as_str() {
        "none" => None,
        other => Some(other.parse().map_err(UsageError)?),
    };
    admin::set_role(database, &namespace, &email, project, role).await
}

pub async fn apikey(database: &DatabaseUrl, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create { email, namespace } => {
            let namespace = namespace.resolve()?;
            let store = open_store(database).await?;
            let user = find_user(store.as_ref(), &namespace, &email).await?;
            let key = Token::generate();
            store
                .create_api_key(user.id, &key.hash(), Timestamp::now())
                .await?;
            audit_cli(store.as_ref(), &namespace, "apikey_created", &user).await?;
            println!("{}", key.expose());
            Ok(())
        }
        ApiKeyCommand::Revoke { email, namespace } => {
            let namespace = namespace.resolve()?;
            let store = open_store(database).await?;
            let user = find_user(store.as_ref(), &namespace, &email).await?;
            let revoked = store.revoke_api_keys(user.id).await?;
            audit_cli(store.as_ref(), &namespace, "apikey_revoked", &user).await?;
            eprintln!("revoked {revoked} API key(s) of {}", user.email);
            Ok(())
        }
    }
}

async fn audit_cli(
    store: &dyn Store,
    namespace: &str,
    event: &'static str,
    user: &User,
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

fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    Ok(input.lines().next().unwrap_or("").to_owned())
}
