//! Commands that read what the service recorded: the audit log and the outbox.

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::config::{self, DatabaseUrl};
use crate::domain::Timestamp;
use crate::domain::printable::escape_controls;
use crate::store::{AuditRecord, OutboxRow};

use super::{UsageError, open_store};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// A duration back from now (`24h`, `7d`) or a UTC time (`2026-11-27T00:00:00Z`).
    #[arg(long, default_value = "24h")]
    since: String,
    #[arg(long, default_value = "1000")]
    limit: i64,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
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
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
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

pub async fn audit(database: &DatabaseUrl, args: AuditArgs) -> anyhow::Result<()> {
    let AuditArgs { since, limit, json } = args;
    let since = parse_since(&since)?;
    let store = open_store(database).await?;
    for event in store.audit_since(since, limit.clamp(1, 100_000)).await? {
        println!("{}", audit_line(&event, json));
    }
    Ok(())
}

pub async fn outbox(database: &DatabaseUrl, command: OutboxCommand) -> anyhow::Result<()> {
    match command {
        OutboxCommand::List {
            status,
            limit,
            json,
        } => {
            let store = open_store(database).await?;
            let rows = store
                .list_outbox(status.as_deref(), limit.clamp(1, 100_000))
                .await?;
            if !json {
                println!(
                    "id\tstatus\tattempts\tkind\trecipient\tinvitation\tcreated\tnext attempt\tlast error"
                );
            }
            for row in rows {
                println!("{}", outbox_line(&row, json));
            }
            Ok(())
        }
        OutboxCommand::Retry { id, failed } => {
            if id.is_none() && !failed {
                bail!(UsageError(
                    "name a message id, or --failed for all failed messages".into()
                ));
            }
            let store = open_store(database).await?;
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

/// One outbox message as a line of the table or of JSON. The last error is the relay's reply,
/// text a stranger's server chose: escaped like the audit log's fields.
fn outbox_line(row: &OutboxRow, json: bool) -> String {
    let last_error = row.last_error.as_deref().map(escape_controls);
    if json {
        return serde_json::json!({
            "id": row.id,
            "status": row.status,
            "attempts": row.attempts,
            "kind": row.kind,
            "recipient": row.recipient,
            "namespace": row.namespace,
            "invitation_id": row.invitation_id,
            "created": row.created.to_iso8601(),
            "next_attempt_at": row.next_attempt_at.to_iso8601(),
            "last_error": last_error,
        })
        .to_string();
    }
    format!(
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
        last_error.unwrap_or_default(),
    )
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
