//! `cbh-invite suppression list|remove`: the addresses that asked not to be invited again
//! (by declining with the box ticked, or a one-click unsubscribe).

use anyhow::bail;
use clap::Subcommand;

use crate::config::DatabaseUrl;
use crate::domain::EmailAddress;
use crate::domain::printable::escape_controls;

use super::{NamespaceArg, UsageError, open_store};

#[derive(Debug, Subcommand)]
pub enum SuppressionCommand {
    /// List a namespace's suppressed addresses, oldest first: mailbox, address as invited,
    /// invitation, since when.
    List {
        #[command(flatten)]
        namespace: NamespaceArg,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Take an address off the list, so that it can be invited again. Addresses are compared
    /// as the sending limits compare mailboxes: case and `+tag` do not matter.
    Remove {
        /// The address (any `+tag` or case of it).
        email: String,
        #[command(flatten)]
        namespace: NamespaceArg,
    },
}

pub async fn suppression(
    database: &DatabaseUrl,
    command: SuppressionCommand,
) -> anyhow::Result<()> {
    match command {
        SuppressionCommand::List { namespace, json } => {
            let namespace = namespace.resolve()?;
            let store = open_store(database).await?;
            let rows = store.suppressions(&namespace).await?;
            if !json {
                println!("mailbox\temail\tinvitation\tsince");
            }
            for row in rows {
                // The address was validated when invited; escaped all the same, as every
                // listing of stored text is.
                let email = escape_controls(&row.email);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "namespace": row.namespace,
                            "mailbox": row.recipient_key,
                            "email": email,
                            "invitation_id": row.invitation_id,
                            "created": row.created.to_iso8601(),
                        })
                    );
                } else {
                    println!(
                        "{}\t{}\t{}\t{}",
                        escape_controls(&row.recipient_key),
                        email,
                        row.invitation_id
                            .map(|id| id.to_string())
                            .unwrap_or_default(),
                        row.created.to_iso8601()
                    );
                }
            }
            Ok(())
        }
        SuppressionCommand::Remove { email, namespace } => {
            let namespace = namespace.resolve()?;
            let email =
                EmailAddress::parse(&email).map_err(|e| UsageError(format!("EMAIL: {e}")))?;
            let store = open_store(database).await?;
            if !store
                .remove_suppression(&namespace, &email.recipient_key())
                .await?
            {
                bail!(UsageError(format!(
                    "{email} is not on the suppression list of namespace {namespace}"
                )));
            }
            eprintln!("{email} may be invited again in namespace {namespace}");
            Ok(())
        }
    }
}
