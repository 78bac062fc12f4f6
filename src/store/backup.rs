//! `cbh-invite backup`: an online, consistent copy of the SQLite database.
//!
//! `VACUUM INTO` reads the database in one read transaction: in WAL mode it sees every
//! transaction committed before it began and none after, and it does not hold up the running
//! service's writer. The copy is written beside its destination under a temporary name,
//! checked with `PRAGMA integrity_check`, synced, and only then renamed: a file at the
//! destination is always a whole, checked copy.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// Copies the SQLite database `source` to `dest`, which must not exist yet.
pub async fn backup_sqlite(source: &Path, dest: &Path) -> anyhow::Result<()> {
    if dest.exists() {
        bail!(
            "{} exists already: backup never overwrites a file",
            dest.display()
        );
    }
    if !source.exists() {
        bail!("the database {} does not exist", source.display());
    }
    let partial = partial_name(dest);
    let _ = std::fs::remove_file(&partial);
    let copied = copy_and_check(source, &partial).await;
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    // `rename` would replace a file created meanwhile; a hard link fails instead.
    std::fs::hard_link(&partial, dest)
        .with_context(|| format!("moving the copy to {}", dest.display()))?;
    std::fs::remove_file(&partial).with_context(|| format!("removing {}", partial.display()))?;
    if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The new name is on disk too.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn partial_name(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    dest.with_file_name(name)
}

async fn copy_and_check(source: &Path, partial: &Path) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::new()
        .filename(source)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", source.display()))?;
    let target = partial
        .to_str()
        .context("the backup's path is not valid UTF-8")?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut conn)
        .await
        .with_context(|| format!("copying the database to {}", partial.display()))?;
    conn.close().await.ok();

    let mut copy = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(partial))
        .await
        .context("opening the copy")?;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut copy)
        .await
        .context("checking the copy")?;
    copy.close().await.ok();
    if verdict != ["ok"] {
        bail!(
            "the copy failed PRAGMA integrity_check: {}",
            verdict.join("; ")
        );
    }
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .context("syncing the copy to disk")?;
    Ok(())
}
