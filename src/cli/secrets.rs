//! `CBH_DATABASE_URL_FILE` and `CBH_SMTP_URL_FILE`: after clap has parsed the command line, a
//! `*_FILE` variable supplies its twin's value, unless the flag was given (a flag beats its
//! variables, as everywhere).

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::mail::MailCommand;
use super::{Cli, Command, UsageError};
use crate::config::secret_from_file;

impl Cli {
    /// `Cli::parse`, then the `*_FILE` variables. Exits as clap does on a command-line error.
    pub fn parse_with_secret_files() -> Result<Self, UsageError> {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if let Err(error) = cli.read_secret_files(&matches, |var| std::env::var_os(var)) {
            // `check` says what is wrong among its other lines, and exits 1 as for any failure.
            if !matches!(cli.command, Command::Check(_)) {
                return Err(error);
            }
            cli.secret_error = Some(error.0);
        }
        Ok(cli)
    }

    /// Fills `--database-url` and the `--smtp-url` of `serve`, `check` and `mail test` from their `_FILE` variables (read
    /// with `lookup`) where the command line did not give them.
    pub fn read_secret_files(
        &mut self,
        matches: &ArgMatches,
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<(), UsageError> {
        // The commands that take serve's flags: `serve`, `check` and `mail test`.
        let serve = matches
            .subcommand_matches("serve")
            .or_else(|| matches.subcommand_matches("check"))
            .or_else(|| {
                matches
                    .subcommand_matches("mail")
                    .and_then(|m| m.subcommand_matches("test"))
            });
        let given = |id: &str| {
            [Some(matches), serve].into_iter().flatten().any(|m| {
                m.try_get_raw(id).is_ok() && m.value_source(id) == Some(ValueSource::CommandLine)
            })
        };
        if let Some(url) = secret_from_file("CBH_DATABASE_URL", &lookup).map_err(UsageError)?
            && !given("database_url")
        {
            self.database_url = url;
        }
        let serve_args = match &mut self.command {
            Command::Serve(args) | Command::Check(args) => Some(args),
            Command::Mail(MailCommand::Test { serve, .. }) => Some(serve),
            _ => None,
        };
        if let Some(args) = serve_args
            && let Some(url) = secret_from_file("CBH_SMTP_URL", &lookup).map_err(UsageError)?
            && !given("smtp_url")
        {
            args.smtp_url = Some(url);
        }
        Ok(())
    }
}
