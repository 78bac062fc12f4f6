//! `invite --csv FILE`: invite everyone on a roster as one inviter, in order, each row decided
//! as if it had been posted alone to the API. The emails are queued in the outbox, which the
//! running service's worker sends, as for every other write of the command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, ValueEnum};

use super::{NamespaceArg, UsageError, find_user, open_store};
use crate::config::{DatabaseUrl, ServeArgs, Settings};
use crate::domain::roster::{self, RosterRow, RowResult, Summary};
use crate::domain::{EmailAddress, Language, PersonName, ProjectId, Role};
use crate::invite::{self, BulkRow, InviteSettings, Inviter, ValidInvitation};
use crate::store::Store;

#[derive(Debug, Args)]
#[command(after_help = "\
The roster is one address per line, or `email, first name, last name`, or a CSV file with a \
first row naming its columns (email, first name, last name, language); UTF-8, `,` or `;`, at most 1,000 \
rows. Each row is decided as if posted alone to POST /{ns}/api/invitations/ by the inviter: \
the same checks, rights and sending limits, earlier rows counting against later ones.

The emails are queued in the database's outbox: the running `cbh-invite serve` sends them \
(this command sends nothing itself). The settings of serve are read from its environment \
variables (CBH_INVITE_RATE, CBH_INVITE_TTL, CBH_MAIL_FROM, …).

Exit status: 0 when every row was invited, 1 when some were refused, 2 when the roster or an \
option cannot be used (nothing is invited then).")]
pub struct InviteArgs {
    /// The roster: a CSV or text file
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// The address of the user who invites (their rights and sending limits apply)
    #[arg(long, value_name = "EMAIL")]
    inviter: String,
    /// A project to invite everyone to (repeat for several); none invites to the platform alone
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<i64>,
    /// The role given on the projects: at most the inviter's own on each (else that row is 403)
    /// [default: viewer]
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    /// The language of the emails of rows without a `language` column of their own (a BCP 47
    /// tag such as de or fr) [default: CBH_DEFAULT_LANGUAGE]
    #[arg(long, value_name = "TAG")]
    language: Option<String>,
    /// Check every row and print what would happen; write and send nothing
    #[arg(long)]
    dry_run: bool,
    /// Write the results as CSV (line, email, status, outcome) to this file
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    namespace: NamespaceArg,
}

/// The settings of `serve` from its environment variables (limits, invitation lifetime, domain
/// rules, sender). Its flags are not taken here: `--role` means something else to `serve`.
#[derive(Debug, clap::Parser)]
struct ServeEnvironment {
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Viewer,
    Editor,
    Owner,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Editor => Role::Editor,
            RoleArg::Owner => Role::Owner,
        }
    }
}

/// Some rows were refused: exit status 1 after the summary.
#[derive(Debug, thiserror::Error)]
#[error("{0} of {1} rows were not invited")]
pub struct RowsRefused(usize, usize);

pub async fn invite(
    database: &DatabaseUrl,
    database_url: &str,
    args: InviteArgs,
) -> anyhow::Result<()> {
    let namespace = args.namespace.resolve()?;
    let serve = ServeEnvironment::try_parse_from(["cbh-invite"])
        .map_err(|e| UsageError(format!("the settings of serve: {e}")))?;
    let settings = Settings::from_args(database_url, &serve.serve).map_err(UsageError)?;
    // As serve would refuse to start: CBH_DEFAULT_LANGUAGE needs a catalog.
    crate::startup::load_catalogs(&settings).map_err(|e| UsageError(format!("{e:#}")))?;
    let bytes = std::fs::read(&args.csv)
        .map_err(|e| UsageError(format!("--csv: {}: {e}", args.csv.display())))?;
    let rows = roster::parse_bytes(&bytes)
        .map_err(|e| UsageError(format!("--csv: {}: {e}", args.csv.display())))?;
    if let Some(out) = &args.out {
        // Before any row is invited: a results file that cannot be written must not be found
        // out only afterwards.
        std::fs::write(out, "")
            .map_err(|e| UsageError(format!("--out: {}: {e}", out.display())))?;
    }
    let store = open_store(database).await?;
    let inviter = find_user(store.as_ref(), &namespace, &args.inviter)
        .await
        .map_err(|e| match e.downcast::<UsageError>() {
            Ok(UsageError(message)) => UsageError(message.replace("--email", "--inviter")).into(),
            Err(other) => other,
        })?;
    let offer = Offer {
        projects: args.projects.iter().copied().map(ProjectId).collect(),
        role: args.role.map_or(Role::Viewer, Role::from),
        language: args
            .language
            .as_deref()
            .map(|raw| Language::parse(raw, "--language"))
            .transpose()
            .map_err(|e| UsageError(e.to_string()))?,
    };
    let sender = settings.sender().map_err(UsageError)?;
    let invite_settings = InviteSettings {
        invite_ttl: settings.invite_ttl,
        rules: &settings.invite_rules,
        link_sharing: settings.link_sharing,
        limits: settings.limits,
        mail_domain: sender.email.domain(),
        default_language: &settings.default_language,
    };
    let inviter = Inviter {
        namespace: &namespace,
        user: &inviter,
        client_ip: None,
    };

    let progress = Progress::new(rows.len());
    let results = send(
        store.as_ref(),
        &invite_settings,
        &inviter,
        &rows,
        &offer,
        args.dry_run,
        &progress,
    )
    .await?;
    progress.finish();

    if let Some(out) = &args.out {
        std::fs::write(out, roster::results_csv(&results))
            .with_context(|| format!("writing the results to {}", out.display()))?;
    }
    let summary = Summary::of(&results);
    if args.dry_run {
        println!("dry run, nothing written: {summary}");
    } else {
        println!("{summary}");
    }
    if summary.refused > 0 {
        bail!(RowsRefused(summary.refused, summary.total));
    }
    Ok(())
}

/// A progress bar on a terminal; otherwise one plain line per row on standard output.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize) -> Self {
        // On standard output, beside the summary. A terminal indicatif will not draw on (no
        // `TERM`, say: cron, `env -i`) would swallow the refused rows: plain lines there too.
        let bar = std::io::stdout()
            .is_terminal()
            .then(|| {
                let bar = indicatif::ProgressBar::with_draw_target(
                    Some(total as u64),
                    indicatif::ProgressDrawTarget::stdout(),
                );
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} rows, {elapsed} ({eta} left)",
                ) {
                    bar.set_style(style);
                }
                bar
            })
            .filter(|bar| !bar.is_hidden());
        Self { bar }
    }

    /// One row decided: a line for it (on a terminal, only the refused rows, above the bar).
    fn row(&self, result: &RowResult) {
        let line = format!(
            "line {}: {}: {} {}",
            result.line,
            roster::printable_field(&result.email),
            result.status,
            roster::printable_field(&result.outcome)
        );
        match &self.bar {
            Some(bar) => {
                if !result.invited() {
                    bar.println(line);
                }
                bar.inc(1);
            }
            None => println!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The rows to the core, in chunks so that the bar moves; a dry run in one call, since nothing
/// it predicts is written for a later call to count.
async fn send(
    store: &dyn Store,
    settings: &InviteSettings<'_>,
    inviter: &Inviter<'_>,
    rows: &[RosterRow],
    offer: &Offer,
    dry_run: bool,
    progress: &Progress,
) -> anyhow::Result<Vec<RowResult>> {
    let chunk = if dry_run { rows.len().max(1) } else { CHUNK };
    let mut results = Vec::with_capacity(rows.len());
    for part in rows.chunks(chunk) {
        let requests: Vec<BulkRow> = part.iter().map(|row| request(row, offer)).collect();
        let decided = invite::invite_rows(store, settings, inviter, requests, dry_run)
            .await
            .context("reading the inviter's rights")?;
        for (row, outcome) in part.iter().zip(decided) {
            if let Some(error) = &outcome.error {
                tracing::error!(line = row.line, error = format!("{error:#}"), "row failed");
            }
            let result = RowResult {
                line: row.line,
                email: row.email.clone(),
                status: outcome.code(),
                outcome: outcome.message,
            };
            progress.row(&result);
            results.push(result);
        }
    }
    Ok(results)
}

/// Rows given to the core at once: large enough to use its group commit, small enough for the
/// bar to move.
const CHUNK: usize = 25;

/// What every row is invited to: `--project` (each) with `--role`, in `--language` unless the
/// row names its own.
struct Offer {
    projects: Vec<ProjectId>,
    role: Role,
    language: Option<Language>,
}

/// A roster row as the core takes it: valid, or its 400 message (the parser's).
fn request(row: &RosterRow, offer: &Offer) -> BulkRow {
    if let Some(error) = &row.error {
        return Err(error.clone());
    }
    let email = EmailAddress::parse(&row.email).map_err(|e| e.to_string())?;
    let first = PersonName::parse(&row.first_name, "first_name").map_err(|e| e.to_string())?;
    let last = PersonName::parse(&row.last_name, "last_name").map_err(|e| e.to_string())?;
    let language = Some(row.language.as_str())
        .filter(|l| !l.is_empty())
        .map(|l| Language::parse(l, "language"))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(
        ValidInvitation::new(email, first, last, offer.projects.iter().copied())
            .with_role(offer.role)
            .with_language(language.or_else(|| offer.language.clone())),
    )
}
