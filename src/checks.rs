//! The checks an operator runs before trusting a deployment (`cbh-invite check`), which
//! `serve` also runs and logs at start-up: the templates load and render, the database answers
//! (and whether migrations are pending), and the relay talks (connect, EHLO, STARTTLS, AUTH; no
//! message is sent). The settings themselves are checked by parsing them (`config`).

use std::fmt;

use crate::config::Settings;
use crate::mail::Transport;
use crate::store::{self, SchemaState};

/// The result of one check, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// What was found, in words.
    pub detail: String,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: true,
            detail: detail.into(),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: false,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "ok  " } else { "FAIL" };
        write!(f, "{verdict} {}: {}", self.name, self.detail)
    }
}

/// Every check after the settings', in order.
pub async fn run_all(settings: &Settings) -> Vec<Check> {
    vec![
        templates(settings),
        dkim(settings),
        bounces(settings),
        database(settings).await,
        relay(settings).await,
    ]
}

pub fn templates(settings: &Settings) -> Check {
    let source = match &settings.template_dir {
        Some(dir) => format!("built-in and overrides from {}", dir.display()),
        None => "built-in".to_owned(),
    };
    let catalogs = match crate::startup::load_catalogs(settings) {
        Ok(catalogs) => catalogs,
        Err(error) => return Check::fail("templates", format!("{source}: {error:#}")),
    };
    match crate::startup::load_templates(settings, &catalogs) {
        Ok(_) => Check::pass(
            "templates",
            format!(
                "{source}: every template renders in {}",
                catalogs.languages().join(", ")
            ),
        ),
        Err(error) => Check::fail("templates", format!("{source}: {error:#}")),
    }
}

/// Whether messages are signed, and as what (the key itself was read with the settings).
pub fn dkim(settings: &Settings) -> Check {
    match &settings.dkim {
        Some(dkim) => match crate::mail::Signer::new(dkim) {
            Ok(_) => Check::pass("dkim", format!("signing as {}", dkim.describe())),
            Err(error) => Check::fail("dkim", format!("{error:#}")),
        },
        None => Check::pass("dkim", "not configured: messages are not signed"),
    }
}

/// `CBH_BOUNCE_ADDRESS`: where reports of bounced messages come back, for `cbh-invite bounce`.
pub fn bounces(settings: &Settings) -> Check {
    match &settings.delivery.bounce_address {
        Some(address) => Check::pass(
            "bounces",
            format!(
                "envelope sender {}+{{id}}@{} (pipe that address to `cbh-invite bounce`)",
                address.user(),
                address.domain()
            ),
        ),
        None => Check::pass(
            "bounces",
            "not configured: bounces go to the From address and are not read",
        ),
    }
}

pub async fn database(settings: &Settings) -> Check {
    let name = describe_database(settings);
    match store::inspect_schema(&settings.database).await {
        Ok(SchemaState::Missing) => Check::pass(
            "database",
            format!("{name} does not exist yet: serve or migrate creates it"),
        ),
        Ok(SchemaState::Reachable { pending }) if pending.is_empty() => {
            Check::pass("database", format!("{name} answers; no migration pending"))
        }
        Ok(SchemaState::Reachable { pending }) => Check::pass(
            "database",
            format!(
                "{name} answers; {} migration(s) pending, applied by serve or migrate: {}",
                pending.len(),
                pending.join(", ")
            ),
        ),
        Ok(SchemaState::Newer { unknown }) => Check::fail(
            "database",
            format!(
                "{name} has migrations this version does not know ({unknown:?}): a newer cbh-invite upgraded it"
            ),
        ),
        Err(error) => Check::fail("database", format!("{name} cannot be used: {error:#}")),
    }
}

/// The database, named without its password.
fn describe_database(settings: &Settings) -> String {
    match &settings.database {
        crate::config::DatabaseUrl::Sqlite(path) => format!("SQLite {}", path.display()),
        crate::config::DatabaseUrl::Postgres(raw) => match url::Url::parse(raw) {
            Ok(url) => format!(
                "PostgreSQL {}:{}{}",
                url.host_str().unwrap_or("localhost"),
                url.port().unwrap_or(5432),
                url.path()
            ),
            Err(_) => "PostgreSQL".to_owned(),
        },
    }
}

pub async fn relay(settings: &Settings) -> Check {
    let transport = match Transport::from_settings(settings) {
        Ok(transport) => transport,
        Err(error) => return Check::fail("mail", format!("{error:#}")),
    };
    let what = transport.describe();
    match transport.probe().await {
        Ok(found) => Check::pass("mail", found),
        Err(error) => Check::fail("mail", format!("{what}: {error}")),
    }
}
