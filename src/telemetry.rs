//! Logging through `tracing`: human-readable by default, JSON with `CBH_LOG_FORMAT=json`,
//! level from `RUST_LOG` (default `info`). Logs go to standard error; standard output is kept
//! for what commands print.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lettre=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("CBH_LOG_FORMAT").is_ok_and(|v| v == "json");
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
