//! Login throttling under concurrency: a burst of wrong passwords gets no more verdicts than
//! the limits allow, a burst from one address does not lock the owner out, and a password
//! change counts a wrong current password as a failed login.

use std::net::IpAddr;
use std::time::Duration;

use cbh_invite::config::Limit;
use serde_json::json;

use crate::support::agent::client_builder;
use cbh_invite::config::Settings;

use crate::support::{Backend, NS, PASSWORD, TestApp, spawn_app_with};

/// The burst: far more attempts than any limit below.
const BURST: usize = 40;

/// How long an attempt answered 503 (the password queue was full) keeps retrying.
const RETRY_FOR: Duration = Duration::from_secs(120);

fn limit(max: u32) -> Option<Limit> {
    Some(Limit {
        max,
        window: Duration::from_secs(900),
    })
}

/// Only the limits a test names are on.
fn login_limits(
    s: &mut Settings,
    pair: Option<Limit>,
    ceiling: Option<Limit>,
    client: Option<Limit>,
) {
    s.limits.login_failures_per_account = pair;
    s.limits.login_account_ceiling = ceiling;
    s.limits.login_failures_per_client = client;
}

/// A client whose connections come from `ip` (any 127.x.y.z reaches the loopback listener).
fn client_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().expect("address");
    client_builder().local_address(ip).build().expect("client")
}

/// Posts a login from `client` to `base`; a 503 (the password queue was full, nothing was
/// checked) is retried, so every attempt ends with a verdict: 200, 401 or 429.
async fn login_from(client: &reqwest::Client, base: &str, email: &str, password: &str) -> u16 {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    loop {
        let response = client
            .post(format!("{base}/{NS}/api/session/"))
            .json(&json!({"username": email, "password": password}))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        if status != 503 {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the password queue stayed full for {RETRY_FOR:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends every attempt at once and returns the statuses.
async fn burst(attempts: Vec<(reqwest::Client, String, String)>, password: &str) -> Vec<u16> {
    let all = attempts.iter().map(|(client, base, email)| async move {
        login_from(client, base, email, password).await
    });
    futures_util::future::join_all(all).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

fn assert_verdicts(statuses: &[u16], max_401: usize) {
    for status in statuses {
        assert!(matches!(status, 401 | 429), "{status} in {statuses:?}");
    }
    assert!(
        count(statuses, 401) <= max_401,
        "{} wrong passwords checked, limit {max_401}: {statuses:?}",
        count(statuses, 401)
    );
    assert!(
        count(statuses, 401) >= 1,
        "no password was checked at all: {statuses:?}"
    );
}

async fn concurrent_wrong_passwords_for_one_account_get_at_most_the_limit_of_401s(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| login_limits(s, limit(5), None, None)).await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let client = client_from("127.0.0.1");
    let attempts = (0..BURST)
        .map(|_| (client.clone(), app.base.clone(), "ada@lab.example".into()))
        .collect();

    let statuses = burst(attempts, "wrong password").await;

    assert_verdicts(&statuses, 5);
    assert_eq!(
        login_from(&client, &app.base, "ada@lab.example", PASSWORD).await,
        429
    );
}

async fn concurrent_wrong_logins_from_one_address_get_at_most_the_limit_of_401s(backend: Backend) {
    let app = spawn_app_with(backend, |s| login_limits(s, None, None, limit(5))).await;
    let client = client_from("127.0.0.1");
    let attempts = (0..BURST)
        .map(|i| {
            (
                client.clone(),
                app.base.clone(),
                format!("guess{i}@lab.example"),
            )
        })
        .collect();

    let statuses = burst(attempts, "x").await;

    assert_verdicts(&statuses, 5);
}

/// The ceiling counts an account's failures from every address, and on PostgreSQL across
/// nodes: half of the burst goes to a second node.
async fn the_account_ceiling_holds_across_addresses_and_nodes(backend: Backend) {
    let app = spawn_app_with(backend, |s| login_limits(s, limit(100), limit(6), None)).await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let second = match backend {
        Backend::Postgres => Some(app.add_node(|_| {}).await),
        Backend::Sqlite => None,
    };
    let bases = [
        app.base.clone(),
        second.as_ref().map_or(app.base.clone(), |n| n.base.clone()),
    ];
    let clients = [client_from("127.0.0.2"), client_from("127.0.0.3")];
    let attempts = (0..BURST)
        .map(|i| {
            (
                clients[i % 2].clone(),
                bases[(i / 2) % 2].clone(),
                "ada@lab.example".into(),
            )
        })
        .collect();

    let statuses = burst(attempts, "wrong password").await;

    assert_verdicts(&statuses, 6);
    // Past the ceiling even a fresh address waits.
    let fresh = client_from("127.0.0.4");
    assert_eq!(
        login_from(&fresh, &app.base, "ada@lab.example", PASSWORD).await,
        429
    );
}

async fn a_burst_from_one_address_does_not_lock_the_owner_out(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        login_limits(s, limit(5), limit(100), None);
    })
    .await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let attacker = client_from("127.0.0.2");
    let attempts = (0..BURST / 2)
        .map(|_| (attacker.clone(), app.base.clone(), "ada@lab.example".into()))
        .collect();

    let statuses = burst(attempts, "wrong password").await;

    assert_verdicts(&statuses, 5);
    assert_eq!(
        login_from(&attacker, &app.base, "ada@lab.example", PASSWORD).await,
        429
    );
    let owner = client_from("127.0.0.1");
    assert_eq!(
        login_from(&owner, &app.base, "ada@lab.example", PASSWORD).await,
        200
    );
}

/// Logs in from `ip` with cookies kept; returns the client and its CSRF token.
async fn session_from(app: &TestApp, ip: &str) -> (reqwest::Client, String) {
    let ip: IpAddr = ip.parse().expect("address");
    let client = client_builder()
        .local_address(ip)
        .cookie_store(true)
        .build()
        .expect("client");
    let response = client
        .post(format!("{}/{NS}/api/session/", app.base))
        .json(&json!({"username": "ada@lab.example", "password": PASSWORD}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
    let csrf = response
        .cookies()
        .find(|c| c.name() == format!("{NS}csrftoken"))
        .expect("the CSRF cookie")
        .value()
        .to_owned();
    (client, csrf)
}

async fn change_password(client: &reqwest::Client, base: &str, csrf: &str, old: &str) -> u16 {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    loop {
        let status = client
            .post(format!("{base}/{NS}/api/session/password/"))
            .header("x-csrftoken", csrf)
            .json(&json!({"old_password": old, "new_password": "a brand new password"}))
            .send()
            .await
            .expect("request sent")
            .status()
            .as_u16();
        if status != 503 {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "queue stayed full");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_wrong_current_password_counts_as_a_failed_login(backend: Backend) {
    let app = spawn_app_with(backend, |s| login_limits(s, limit(3), None, None)).await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let (client, csrf) = session_from(&app, "127.0.0.2").await;

    let guesses = (0..10).map(|_| change_password(&client, &app.base, &csrf, "not it"));
    let statuses = futures_util::future::join_all(guesses).await;

    for status in &statuses {
        assert!(matches!(status, 403 | 429), "{status} in {statuses:?}");
    }
    assert!((1..=3).contains(&count(&statuses, 403)), "{statuses:?}");
    // Past the limit even the right password waits, and so does a login from that address.
    assert_eq!(
        change_password(&client, &app.base, &csrf, PASSWORD).await,
        429
    );
    let same_address = client_from("127.0.0.2");
    assert_eq!(
        login_from(&same_address, &app.base, "ada@lab.example", PASSWORD).await,
        429
    );
}

async fn a_right_current_password_is_not_counted(backend: Backend) {
    let app = spawn_app_with(backend, |s| login_limits(s, limit(2), None, None)).await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let (client, csrf) = session_from(&app, "127.0.0.2").await;

    assert_eq!(
        change_password(&client, &app.base, &csrf, "not it").await,
        403
    );
    assert_eq!(
        change_password(&client, &app.base, &csrf, PASSWORD).await,
        200
    );

    // One failure is on record, the change is not: one more wrong password is still checked.
    assert_eq!(
        login_from(&client_from("127.0.0.2"), &app.base, "ada@lab.example", "x").await,
        401
    );
    let events = app
        .store
        .audit_since(cbh_invite::domain::Timestamp(0), 100)
        .await
        .expect("audit");
    let failed = events.iter().filter(|e| e.event == "login_failed").count();
    let succeeded = events
        .iter()
        .filter(|e| e.event == "login_succeeded")
        .count();
    assert_eq!((failed, succeeded), (2, 1), "{events:?}");
}

backend_tests!(
    concurrent_wrong_passwords_for_one_account_get_at_most_the_limit_of_401s,
    concurrent_wrong_logins_from_one_address_get_at_most_the_limit_of_401s,
    the_account_ceiling_holds_across_addresses_and_nodes,
    a_burst_from_one_address_does_not_lock_the_owner_out,
    a_wrong_current_password_counts_as_a_failed_login,
    a_right_current_password_is_not_counted,
);
