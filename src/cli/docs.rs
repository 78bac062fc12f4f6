//! Documents generated from the command tree itself, so they never drift from `--help`: shell
//! completions and the man page. The Debian package installs both (scripts/package).

use std::io::Write;

use anyhow::Context;
use clap::{Args, CommandFactory};

use super::Cli;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `cbh-invite completions SHELL`: the completion script, on standard output.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "cbh-invite", &mut out);
    write_stdout(&out)
}

/// `cbh-invite man`: the man page (section 1, roff), on standard output.
pub fn man() -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("rendering the man page")?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .context("writing to standard output")?;
    stdout.flush().context("writing to standard output")
}
