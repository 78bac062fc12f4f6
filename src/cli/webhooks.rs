//! `webhook …`: the endpoints of a namespace and their deliveries.

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use crate::config::{DatabaseUrl, allow_private_from_env};
use crate::deliver::check_endpoint_url;
use crate::domain::Timestamp;
use crate::domain::printable::escape_controls;
use crate::domain::webhook::{EventFilter, WebhookSecret};
use crate::store::{AuditEvent, NewWebhook};

use super::{NamespaceArg, UsageError, open_store};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint; prints its id, then its signing secret (shown only this once).
    Add {
        /// Where events are posted: http(s); loopback, private and link-local addresses are
        /// refused unless CBH_WEBHOOK_ALLOW_PRIVATE=true.
        #[arg(long)]
        url: String,
        /// The events to send, comma-separated (default: every event).
        #[arg(long, default_value = "")]
        events: String,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// List the endpoints of the namespace.
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// Remove an endpoint and its deliveries.
    Remove {
        /// The endpoint id (from `webhook list`).
        id: i64,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// List deliveries, newest first.
    Deliveries {
        #[arg(long, value_parser = ["queued", "sent", "failed"])]
        status: Option<String>,
        #[arg(long, default_value = "50")]
        limit: i64,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
    /// Queue failed deliveries again (attempts reset): one by id, or all with --failed.
    Retry {
        /// The delivery id (from `webhook deliveries`).
        id: Option<i64>,
        /// Every failed delivery of the namespace.
        #[arg(long, conflicts_with = "id")]
        failed: bool,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
}

pub async fn webhook(database: &DatabaseUrl, command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Add {
            url,
            events,
            namespace,
        } => {
            let namespace = namespace.resolve()?;
            let allow_private = allow_private_from_env().map_err(UsageError)?;
            let events =
                EventFilter::parse(&events).map_err(|e| UsageError(format!("--events: {e}")))?;
            let url = check_endpoint_url(&url, allow_private)
                .await
                .map_err(|e| UsageError(format!("--url: {e}")))?;
            let store = open_store(database).await?;
            let secret = WebhookSecret::generate();
            let now = Timestamp::now();
            let endpoint = store
                .add_webhook(NewWebhook {
                    namespace: namespace.clone(),
                    url: url.to_string(),
                    secret: secret.clone(),
                    events,
                    now,
                })
                .await?;
            store
                .record_audit(AuditEvent {
                    namespace: namespace.clone(),
                    at: now,
                    event: "webhook_added",
                    actor: None,
                    subject: Some(endpoint.id.to_string()),
                    client_ip: None,
                    detail: Some(format!("{} (command line)", endpoint.url)),
                })
                .await?;
            println!("{}", endpoint.id);
            println!("{}", secret.expose());
            eprintln!(
                "webhook {} added in namespace {namespace}; keep its secret, it is not shown again",
                endpoint.id
            );
            Ok(())
        }
        WebhookCommand::List { json, namespace } => {
            let namespace = namespace.resolve()?;
            let store = open_store(database).await?;
            let endpoints = store.webhooks(&namespace).await?;
            if !json {
                println!("id\tevents\tcreated\turl");
            }
            for endpoint in endpoints {
                if json {
                    println!(
                        "{}",
                        json!({
                            "id": endpoint.id,
                            "namespace": endpoint.namespace,
                            "url": endpoint.url,
                            "events": endpoint.events.names(),
                            "created": endpoint.created.to_iso8601(),
                        })
                    );
                } else {
                    println!(
                        "{}\t{}\t{}\t{}",
                        endpoint.id,
                        endpoint.events.names().join(","),
                        endpoint.created.to_iso8601(),
                        escape_controls(&endpoint.url),
                    );
                }
            }
            Ok(())
        }
        WebhookCommand::Remove { id, namespace } => {
            let namespace = namespace.resolve()?;
            let store = open_store(database).await?;
            if !store.remove_webhook(&namespace, id).await? {
                bail!(UsageError(format!(
                    "there is no webhook {id} in namespace {namespace}"
                )));
            }
            store
                .record_audit(AuditEvent {
                    namespace: namespace.clone(),
                    at: Timestamp::now(),
                    event: "webhook_removed",
                    actor: None,
                    subject: Some(id.to_string()),
                    client_ip: None,
                    detail: Some("command line".into()),
                })
                .await?;
            eprintln!("webhook {id} removed");
            Ok(())
        }
        WebhookCommand::Deliveries {
            status,
            limit,
            json,
            namespace,
        } => {
            let namespace = namespace.resolve()?;
            let store = open_store(database).await?;
            let rows = store
                .webhook_deliveries(&namespace, status.as_deref(), limit.clamp(1, 100_000))
                .await?;
            if !json {
                println!(
                    "id\tstatus\tattempts\tevent\twebhook-id\tendpoint\tcreated\tnext attempt\tlast error"
                );
            }
            for row in rows {
                let last_error = row.last_error.as_deref().map(escape_controls);
                if json {
                    println!(
                        "{}",
                        json!({
                            "id": row.id,
                            "status": row.status,
                            "attempts": row.attempts,
                            "event": row.event,
                            "webhook_id": row.webhook_id,
                            "endpoint_id": row.endpoint_id,
                            "url": row.url,
                            "created": row.created.to_iso8601(),
                            "next_attempt_at": row.next_attempt_at.to_iso8601(),
                            "last_error": last_error,
                        })
                    );
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        row.id,
                        row.status,
                        row.attempts,
                        row.event,
                        row.webhook_id,
                        row.endpoint_id,
                        row.created.to_iso8601(),
                        row.next_attempt_at.to_iso8601(),
                        last_error.unwrap_or_default().replace('\t', " "),
                    );
                }
            }
            Ok(())
        }
        WebhookCommand::Retry {
            id,
            failed,
            namespace,
        } => {
            let namespace = namespace.resolve()?;
            if id.is_none() && !failed {
                bail!(UsageError(
                    "name a delivery id, or --failed for all failed deliveries".into()
                ));
            }
            let store = open_store(database).await?;
            let queued = store
                .retry_webhooks(&namespace, id, Timestamp::now())
                .await?;
            if id.is_some() && queued == 0 {
                bail!(UsageError("no such failed delivery".into()));
            }
            eprintln!("queued {queued} deliveries again; a running worker sends them shortly");
            Ok(())
        }
    }
}
