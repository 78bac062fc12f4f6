//! The logs of the application started in-process (`spawn_app`): with `TEST_LOG=1` they go
//! to the test's output (shown for a failing test, or for all with `--nocapture`), at the level
//! of `RUST_LOG` (default as `serve`'s); otherwise to a sink, so that formatting them still runs
//! but prints nothing. As zero-to-production's `tests/api/helpers.rs`, once per process.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

static INIT: Once = Once::new();

pub fn init() {
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lettre=warn"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        // Tests set one global subscriber; nothing else in this process sets one.
        let set = if std::env::var_os("TEST_LOG").is_some_and(|v| !v.is_empty() && v != "0") {
            builder.with_test_writer().try_init()
        } else {
            builder.with_writer(std::io::sink).try_init()
        };
        if let Err(error) = set {
            panic!("the tests' log subscriber could not be set: {error}");
        }
    });
}
