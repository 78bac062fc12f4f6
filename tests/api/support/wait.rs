//! Waiting for a condition with a deadline, never a fixed sleep: a slow machine only makes a
//! test slower, and a hang fails one test with a message instead of eating the CI's time.

use std::future::Future;
use std::time::Duration;

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// A TCP port nothing listens on at the moment (for a child process or a driver to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Polls `check` until it holds; panics naming `what` when `timeout` passes first.
pub async fn until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // A check that itself hangs counts against the same deadline.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if tokio::time::timeout(left, check()).await == Ok(true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `GET {base}/readyz` answers 200.
pub async fn until_ready(base: &str, timeout: Duration, what: &str) {
    let client = crate::support::agent::client_builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = format!("{base}/readyz");
    until(what, timeout, || async {
        client
            .get(&url)
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
    })
    .await;
}

/// How long one test of `backend_tests!` may run: several times what the slowest needs on a
/// busy machine, so that a hang fails that test rather than the whole run.
pub const TEST_DEADLINE: Duration = Duration::from_secs(600);

/// Runs a whole test, failing it when it is still running after `TEST_DEADLINE`.
pub async fn test_within_deadline(test: impl Future<Output = ()>) {
    if tokio::time::timeout(TEST_DEADLINE, test).await.is_err() {
        panic!("the test was still running after {TEST_DEADLINE:?}");
    }
}
