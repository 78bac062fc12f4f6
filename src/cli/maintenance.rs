//! Keeping a deployment healthy: `check` (can it run?), `prune` (mark expired invitations, delete
//! what is kept no longer) and `backup` (a consistent copy of a SQLite database while `serve`
//! runs).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::UsageError;
use crate::checks::{self, Check};
use crate::config::{DatabaseUrl, ServeArgs, Settings};
use crate::domain::Timestamp;
use crate::maintenance::{self, Retention};
use crate::store::{self, PruneRun};

/// `check`'s failures were printed on standard output already: exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{0} check(s) failed")]
pub struct ChecksFailed(usize);

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Count what would be deleted, and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// The same settings as `serve` (retention, login limits).
    #[command(flatten)]
    serve: Box<ServeArgs>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy; it must not exist yet.
    file: PathBuf,
}

/// Prints one line per check; exit status 1 when any fails. `secret_error`: a `*_FILE`
/// variable that could not be used, a failure of the settings like any other.
pub async fn check(
    database_url: &str,
    args: &ServeArgs,
    secret_error: Option<String>,
) -> anyhow::Result<()> {
    let settings = match secret_error.map_or_else(|| Settings::from_args(database_url, args), Err) {
        Ok(settings) => settings,
        Err(error) => {
            // Nothing else can be checked without valid settings.
            println!("{}", Check::fail("settings", error));
            bail!(ChecksFailed(1));
        }
    };
    println!("{}", Check::pass("settings", "every setting is valid"));
    let mut failed = 0;
    for result in checks::run_all(&settings).await {
        println!("{result}");
        failed += usize::from(!result.passed);
    }
    if failed > 0 {
        bail!(ChecksFailed(failed));
    }
    Ok(())
}

pub async fn prune(database_url: &str, args: PruneArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(database_url, &args.serve).map_err(UsageError)?;
    let store = store::connect(&settings.database, &settings.pool).await?;
    let retention = Retention::new(settings.retention, &settings.limits);
    // The expiry sweep first, as the janitor runs it; a dry run counts what it would mark.
    let now = Timestamp::now();
    if args.dry_run {
        let due = store.count_expiry_due(now).await?;
        println!("would mark {due} invitations expired");
    } else {
        let marked = maintenance::sweep_expired(store.as_ref(), now).await?;
        println!("marked {marked} invitations expired");
    }
    let report = match retention.prune(store.as_ref(), args.dry_run).await? {
        PruneRun::Done(report) => report,
        PruneRun::Skipped => bail!("another node is pruning right now; try again in a moment"),
    };
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for (what, count) in report.lines() {
        println!("{verb} {count} {what}");
    }
    Ok(())
}

pub async fn backup(database: &DatabaseUrl, args: BackupArgs) -> anyhow::Result<()> {
    match database {
        DatabaseUrl::Sqlite(path) => {
            store::backup::backup_sqlite(path, &args.file).await?;
            eprintln!(
                "backed up {} to {} (integrity check: ok)",
                path.display(),
                args.file.display()
            );
            Ok(())
        }
        DatabaseUrl::Postgres(_) => bail!(UsageError(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (e.g. pg_dump --format=custom), \
             which takes a consistent copy while the service runs"
                .into()
        )),
    }
}
