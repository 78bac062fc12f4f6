use std::process::ExitCode;

use clap::Parser;

use cbh_invite::cli::{self, Cli, UsageError};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cbh_invite::telemetry::init();
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(usage) = error.downcast_ref::<UsageError>() {
                eprintln!("error: {usage}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }
}
