//! `bounce`: reads one report of a message that could not be delivered on standard input, as
//! a mail server's pipe transport hands it over (see the README's "Bounces"), and applies it.
//!
//! Exit status, as a pipe transport reads it: 0 once the report is applied, and for a report
//! that is not understood or names no message of ours (one line logged: retrying would never
//! help); 75 (EX_TEMPFAIL) when the database cannot be reached or the creator's notice cannot be
//! sent yet, so the mail server keeps the report and tries again later.

use std::io::Read;

use clap::Args;

use super::UsageError;
use crate::config::{ServeArgs, Settings};
use crate::domain::Timestamp;
use crate::domain::bounce::StatusCode;
use crate::mail::bounce::{MAX_REPORT, parse_bounce};
use crate::mail::{SendError, Signer, Templates, Transport, bounce_notice};
use crate::store::{self, BounceOutcome, BouncedMessage, NewBounce, Store};

/// EX_TEMPFAIL (sysexits.h): the mail server retries the delivery later.
pub const EX_TEMPFAIL: u8 = 75;

/// A failure worth retrying: `main` exits 75.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TempFail(pub String);

#[derive(Debug, Args)]
pub struct BounceArgs {
    /// The address the report was delivered to (Postfix's pipe: `${recipient}`), whose
    /// `+ID` names the message; may be given more than once. The report's `X-Original-To`,
    /// `Delivered-To` and `To` are read after it.
    #[arg(long)]
    recipient: Vec<String>,
    /// The same settings as `serve` (database, relay, sender) for the creator's notice.
    #[command(flatten)]
    serve: Box<ServeArgs>,
}

pub async fn bounce(database_url: &str, args: BounceArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(database_url, &args.serve).map_err(UsageError)?;
    let mut raw = Vec::new();
    std::io::stdin()
        .take(MAX_REPORT as u64)
        .read_to_end(&mut raw)
        .map_err(|e| TempFail(format!("reading the report: {e}")))?;
    let report = match parse_bounce(&raw, &args.recipient) {
        Ok(report) => report,
        Err(why) => {
            tracing::warn!(recipient = ?args.recipient, "bounce: not a report of ours, ignored: {why}");
            return Ok(());
        }
    };
    // Everything the notice needs is checked before the bounce is recorded: a broken template
    // or relay setting stops here (exit 1 or 2), before the notice is claimed.
    let notifier = Notifier::new(&settings)?;
    let store = store::connect(&settings.database, &settings.pool)
        .await
        .map_err(|e| TempFail(format!("bounce: the database is unavailable: {e:#}")))?;
    let outcome = store
        .record_bounce(NewBounce {
            verp_id: report.verp_id.clone(),
            message_id: report.original_message_id.clone(),
            status: report.status.to_string(),
            permanent: report.status.is_permanent(),
            diagnostic: report.diagnostic.clone(),
            now: Timestamp::now(),
        })
        .await
        .map_err(|e| TempFail(format!("bounce: recording it failed: {e:#}")))?;
    let bounced = match outcome {
        BounceOutcome::Unknown => {
            tracing::warn!(
                status = %report.status,
                "bounce: names no message of ours (never sent here, or resent since), ignored"
            );
            return Ok(());
        }
        BounceOutcome::Delayed {
            namespace,
            invitation_id,
        } => {
            tracing::info!(
                %namespace,
                invitation_id,
                status = %report.status,
                diagnostic = %report.diagnostic,
                "bounce: delivery delayed (temporary); nothing changed"
            );
            return Ok(());
        }
        BounceOutcome::Bounced(bounced) => {
            tracing::info!(
                namespace = %bounced.namespace,
                invitation_id = bounced.invitation.id.0,
                status = %bounced.status,
                "bounce: the invitation's email bounced"
            );
            bounced
        }
        BounceOutcome::AlreadyBounced(bounced) => bounced,
    };
    if bounced.notice_due {
        notifier.notify(store.as_ref(), &bounced).await?;
    }
    Ok(())
}

/// Tells the invitation's creator, once: the store gave this run the notice (claimed with the
/// bounce), so a second copy of the report sends nothing. A relay that is down gives it back and
/// is retried through the mail server's own queue (exit 75: it hands the report over again, which
/// finds the message bounced and the notice due). A crash between the claim and the send loses
/// the notice; the invitation still shows the bounce.
struct Notifier {
    templates: Templates,
    from: lettre::message::Mailbox,
    signer: Option<Signer>,
    public_url: String,
    transport: Transport,
}

impl Notifier {
    fn new(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            templates: crate::startup::load_templates(
                settings,
                &crate::startup::load_catalogs(settings)?,
            )?,
            from: settings.sender().map_err(UsageError)?,
            signer: settings.dkim.as_ref().map(Signer::new).transpose()?,
            public_url: settings
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", settings.listen)),
            transport: Transport::from_settings(settings)?,
        })
    }

    async fn notify(&self, store: &dyn Store, bounced: &BouncedMessage) -> anyhow::Result<()> {
        let composed = bounce_notice::compose(
            &self.templates,
            &self.from,
            &self.public_url,
            self.signer.as_ref(),
            bounced,
        );
        let notice = match composed {
            Ok(notice) => notice,
            Err(error) => {
                give_back(store, bounced).await?;
                return Err(error);
            }
        };
        let stem = format!(
            "bounce-{}",
            crate::mail::bounce::message_id_key(&bounced.message_id).unwrap_or_default()
        );
        match self.transport.send_now(&notice, &stem).await {
            Ok(_) => {}
            Err(SendError::Temporary(error)) => {
                give_back(store, bounced).await?;
                return Err(TempFail(format!(
                    "bounce: the creator's notice was not sent: {error}"
                ))
                .into());
            }
            Err(SendError::Permanent(error)) => {
                // Retrying would be refused the same way; the invitation shows the bounce anyway.
                tracing::warn!(%error, "bounce: the creator's notice was refused");
                return Ok(());
            }
        }
        let reason = StatusCode::parse(&bounced.status).map(|s| s.reason().words());
        tracing::info!(
            creator = %bounced.invitation.created_by.email,
            reason = ?reason,
            "bounce: the invitation's creator was told"
        );
        Ok(())
    }
}

/// The notice could not be sent now: the next copy of the report sends it.
async fn give_back(store: &dyn Store, bounced: &BouncedMessage) -> anyhow::Result<()> {
    store
        .release_bounce_notice(&bounced.message_id)
        .await
        .map_err(|e| TempFail(format!("bounce: giving back the notice failed: {e:#}")).into())
}
