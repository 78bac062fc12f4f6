//! `serve`: run the service until SIGTERM or Ctrl-C.

use crate::config::{ServeArgs, Settings};
use crate::startup::Application;

use super::UsageError;

pub async fn serve(database_url: &str, args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(database_url, args).map_err(UsageError)?;
    let started = std::time::Instant::now();
    let app = Application::build(settings.clone()).await?;
    tracing::info!(
        address = %app.address(),
        public_url = app.public_url(),
        namespaces = settings.namespaces.join(","),
        ready_in = ?started.elapsed(),
        "cbh-invite is ready"
    );
    tracing::info!("mail: {}", app.mail_description());
    // The checks of `cbh-invite check`, logged in the background: a relay that is down now
    // delays the mail (retried), not the start.
    let checked = settings.clone();
    tokio::spawn(async move {
        for check in crate::checks::run_all(&checked).await {
            if check.passed {
                tracing::info!(check = check.name, "start-up check: {check}");
            } else {
                tracing::warn!(check = check.name, "start-up check: {check}");
            }
        }
    });
    for link in app.setup_links() {
        // Printed once, on purpose: whoever can read the service's log may create the first
        // superuser, as with `user add`. The link stops working once any user exists.
        tracing::warn!(
            namespace = link.namespace,
            "first run: namespace {} has no user yet; create its first superuser at {} (works once, for 24 hours)",
            link.namespace,
            link.url
        );
    }
    app.run_until_stopped(shutdown_signal()).await
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
