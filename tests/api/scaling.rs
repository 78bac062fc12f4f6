//! Several nodes on one PostgreSQL database: every email delivered once, nothing lost when a
//! node is killed or the database restarts. PostgreSQL only.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cbh_invite::config::{DatabaseUrl, PoolSettings, ServeRole};
use cbh_invite::store;
use futures_util::StreamExt;
use serde_json::json;

use crate::support::binary::Server;
use crate::support::cluster::Cluster;
use crate::support::postgres::{TestDatabase, postgres_available};
use crate::support::wait;
use crate::support::{Agent, Backend, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(60);

/// Sends one invitation per email, `concurrency` at a time, spread over `agents`; returns each
/// email with the status it got.
async fn invite_all(
    agents: &[&Agent],
    emails: &[String],
    concurrency: usize,
) -> Vec<(String, u16)> {
    futures_util::stream::iter(emails.iter().enumerate())
        .map(|(i, email)| async move {
            let status = send_invitation(agents[i % agents.len()], email).await;
            (email.clone(), status)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// One invitation; its status, 0 when the node did not answer at all.
async fn send_invitation(agent: &Agent, email: &str) -> u16 {
    agent
        .client
        .post(format!("{}/chembiohub/api/invitations/", agent.base))
        .headers(agent.headers.clone())
        .json(&json!({"email": email}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Answers counted as they come: all, 201s and 503s.
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    accepted: AtomicUsize,
    refused: AtomicUsize,
}

/// Sends invitations to `{prefix}{i}@example.org` through `agent`, `concurrency` at a time,
/// until `stop` is set; returns each email with its status (0: no answer).
async fn invite_until_stopped(
    agent: &Agent,
    prefix: &str,
    concurrency: usize,
    stop: &AtomicBool,
    tally: &Tally,
) -> Vec<(String, u16)> {
    futures_util::stream::iter(0..)
        .take_while(|_| futures_util::future::ready(!stop.load(Ordering::SeqCst)))
        .map(|i| async move {
            let email = format!("{prefix}{i}@example.org");
            let status = send_invitation(agent, &email).await;
            tally.done.fetch_add(1, Ordering::SeqCst);
            match status {
                201 => tally.accepted.fetch_add(1, Ordering::SeqCst),
                503 => tally.refused.fetch_add(1, Ordering::SeqCst),
                _ => 0,
            };
            (email, status)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// One request of `invite_during`.
struct Sent {
    email: String,
    /// 0 when the node did not answer at all.
    status: u16,
    /// Sent to the second agent (the node that stays up).
    to_survivor: bool,
    /// Sent before `killed` was set: a request without an answer was cut off in flight.
    sent_before_kill: bool,
}

/// `invite_counting` over two agents, noting for each request whether it was sent before
/// `killed` was set.
async fn invite_during(
    agents: &[&Agent; 2],
    emails: &[String],
    concurrency: usize,
    done: &AtomicUsize,
    killed: &std::sync::atomic::AtomicBool,
) -> Vec<Sent> {
    futures_util::stream::iter(emails.iter().enumerate())
        .map(|(i, email)| {
            let agent = agents[i % 2];
            async move {
                let sent_before_kill = !killed.load(Ordering::SeqCst);
                let status = agent
                    .client
                    .post(format!("{}/chembiohub/api/invitations/", agent.base))
                    .headers(agent.headers.clone())
                    .json(&json!({"email": email}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                done.fetch_add(1, Ordering::SeqCst);
                Sent {
                    email: email.clone(),
                    status,
                    to_survivor: i % 2 == 1,
                    sent_before_kill,
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn emails(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{prefix}{i}@example.org"))
        .collect()
}

#[tokio::test]
async fn two_nodes_deliver_every_email_exactly_once() {
    if !postgres_available("scaling::two_nodes_deliver_every_email_exactly_once") {
        return;
    }
    let mut app = spawn_app(Backend::Postgres).await;
    let mut second = app.add_node(|_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    let editor_b = app.agent_for(&editor, &second.base);
    let emails = emails("pair", 500);

    let results = invite_all(&[&editor, &editor_b], &emails, 16).await;

    assert!(
        results.iter().all(|(_, status)| *status == 201),
        "every request succeeded"
    );
    app.smtp.wait_for(emails.len(), WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.store.next_due().await.expect("store").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox never emptied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stopping waits for sends in flight, so a late duplicate would be counted below.
    second.stop().await;
    app.stop().await;
    let received = app.smtp.received();
    let message_ids: HashSet<String> = received.iter().map(|m| m.message_id()).collect();
    let recipients: HashSet<&String> = received.iter().flat_map(|m| &m.rcpt_to).collect();
    assert_eq!(received.len(), emails.len(), "no email twice");
    assert_eq!(message_ids.len(), emails.len());
    assert_eq!(recipients.len(), emails.len());
}

#[tokio::test]
async fn an_idle_worker_node_is_woken_by_another_nodes_commit() {
    if !postgres_available("scaling::an_idle_worker_node_is_woken_by_another_nodes_commit") {
        return;
    }
    // The API node has no worker; the worker node would poll only once an hour.
    let app = spawn_app_with(Backend::Postgres, |s| s.role = ServeRole::Api).await;
    let _worker = app
        .add_node(|s| {
            s.role = ServeRole::Worker;
            s.delivery.poll_interval = Duration::from_secs(3600);
        })
        .await;
    wait_for_listener(&app.settings.database).await;
    let (editor, _) = app.editor_with_project().await;

    json_with_201(editor.invite(json!({"email": "bob@example.org"})).await).await;

    // Only LISTEN/NOTIFY can have woken it within the deadline.
    app.smtp.wait_for(1, Duration::from_secs(10)).await;
}

async fn json_with_201(response: reqwest::Response) {
    assert_eq!(response.status(), 201);
}

/// Waits until some session of the test database is listening for queued email.
async fn wait_for_listener(database: &DatabaseUrl) {
    use sqlx::Connection;
    let DatabaseUrl::Postgres(url) = database else {
        panic!("PostgreSQL only");
    };
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("query");
        if listening > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no node ever listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn nodes_starting_together_migrate_one_at_a_time() {
    if !postgres_available("scaling::nodes_starting_together_migrate_one_at_a_time") {
        return;
    }
    let database = TestDatabase::create().await;
    let url = DatabaseUrl::Postgres(database.url.clone());
    let pool = PoolSettings::default();

    let (a, b, c) = tokio::join!(
        store::connect(&url, &pool),
        store::connect(&url, &pool),
        store::connect(&url, &pool)
    );

    for store in [a, b, c] {
        store
            .expect("every node starts")
            .ping()
            .await
            .expect("ping");
    }
}

/// A `cbh-invite serve` process on the PostgreSQL database `database_url`.
async fn binary_node(database_url: &str, smtp_port: u16, log: &Path) -> Server {
    let env = [
        ("CBH_DATABASE_URL", database_url.to_owned()),
        ("CBH_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
        ("CBH_OUTBOX_LEASE", "3s".to_owned()),
        ("CBH_INVITE_RATE", "off".to_owned()),
        ("CBH_SMTP_RETRY_BASE", "1s".to_owned()),
        ("CBH_SMTP_RETRY_MAX", "2s".to_owned()),
    ];
    Server::start(&env, log).await
}

#[tokio::test]
async fn a_node_killed_mid_load_loses_no_accepted_invitation() {
    if !postgres_available("scaling::a_node_killed_mid_load_loses_no_accepted_invitation") {
        return;
    }
    // The in-process app only sets up users; the load goes to two real processes.
    let app = spawn_app_with(Backend::Postgres, |s| s.role = ServeRole::Api).await;
    let (setup_agent, _) = app.editor_with_project().await;
    let DatabaseUrl::Postgres(url) = app.settings.database.clone() else {
        unreachable!("PostgreSQL app");
    };
    app.smtp.set_delay(Duration::from_millis(5));
    let logs = tempfile::tempdir().expect("temp dir");
    let mut doomed = binary_node(&url, app.smtp.port, &logs.path().join("a.log")).await;
    let survivor = binary_node(&url, app.smtp.port, &logs.path().join("b.log")).await;
    let to_doomed = app.agent_for(&setup_agent, &doomed.base);
    let to_survivor = app.agent_for(&setup_agent, &survivor.base);
    let all = emails("load", 300);

    // The kill comes while the load runs: after a third of the answers, with requests to the
    // doomed node still on the wire.
    let done = AtomicUsize::new(0);
    let killed = std::sync::atomic::AtomicBool::new(false);
    let agents = [&to_doomed, &to_survivor];
    let load = invite_during(&agents, &all, 8, &done, &killed);
    let kill = async {
        let deadline = tokio::time::Instant::now() + WAIT;
        while done.load(Ordering::SeqCst) < 100 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the load never got going"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        killed.store(true, Ordering::SeqCst);
        doomed.child.kill().expect("SIGKILL");
        doomed.child.wait().expect("reaped");
    };
    let (results, ()) = tokio::join!(load, kill);

    let cut_off = results
        .iter()
        .filter(|r| r.sent_before_kill && r.status == 0)
        .count();
    assert!(
        cut_off > 0,
        "no request was in flight on the doomed node when it was killed"
    );
    let to_survivor_refused: Vec<&Sent> = results
        .iter()
        .filter(|r| r.to_survivor && r.status != 201)
        .collect();
    assert!(
        to_survivor_refused.is_empty(),
        "the surviving node answered every request: {} did not get 201",
        to_survivor_refused.len()
    );
    let accepted: BTreeSet<&String> = results
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| &r.email)
        .collect();
    assert!(accepted.len() >= 150, "{} accepted", accepted.len());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let received = app.smtp.received();
        let delivered: HashSet<&String> = received.iter().flat_map(|m| &m.rcpt_to).collect();
        let missing: Vec<&&String> = accepted
            .iter()
            .filter(|e| !delivered.contains(**e))
            .collect();
        if missing.is_empty() {
            let ids: HashSet<String> = received.iter().map(|m| m.message_id()).collect();
            let duplicates = received.len() - ids.len();
            eprintln!(
                "SIGKILL mid-load: {} accepted, {} delivered, {duplicates} duplicate(s) (messages in flight at the kill)",
                accepted.len(),
                ids.len()
            );
            // A worker claims at most one batch (32) at a time: only those can be sent twice.
            assert!(duplicates <= 32, "{duplicates} duplicates");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} accepted invitations were never delivered, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_node_answers_503_while_postgres_is_down_and_recovers_by_itself() {
    let Some(cluster) = Cluster::start(
        "scaling::the_node_answers_503_while_postgres_is_down_and_recovers_by_itself",
    ) else {
        return;
    };
    // The app's database is the test's own cluster (the SQLite backend is not used).
    let url = cluster.url();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.database = DatabaseUrl::Postgres(url);
        s.pool.acquire_timeout = Duration::from_secs(1);
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    json_with_201(editor.invite(json!({"email": "before@example.org"})).await).await;

    cluster.stop_server();
    let ready = app.anonymous().get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let refused = editor.invite(json!({"email": "during@example.org"})).await;
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("unavailable"))
    );

    cluster.start_server();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.anonymous().get("/readyz").await.status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    json_with_201(editor.invite(json!({"email": "after@example.org"})).await).await;
    app.smtp.wait_for(2, WAIT).await;
}

#[tokio::test]
async fn a_postgres_restart_under_load_leaves_no_201_without_its_rows() {
    let Some(cluster) =
        Cluster::start("scaling::a_postgres_restart_under_load_leaves_no_201_without_its_rows")
    else {
        return;
    };
    let url = cluster.url();
    let db_url = url.clone();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.database = DatabaseUrl::Postgres(db_url);
        s.pool.acquire_timeout = Duration::from_secs(1);
        // Messages sent just before the restart, whose "sent" mark was lost, go out again soon.
        s.delivery.lease = Duration::from_secs(2);
    })
    .await;
    let (editor, _) = app.editor_with_project().await;

    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let load = invite_until_stopped(&editor, "load", 4, &stop, &tally);
    let control = cluster.control.clone();
    let restart = async {
        let tally = &tally;
        wait::until("150 answers before the outage", WAIT, || async move {
            tally.done.load(Ordering::SeqCst) >= 150
        })
        .await;
        let stopping = control.clone();
        tokio::task::spawn_blocking(move || stopping.stop_server())
            .await
            .expect("stop");
        // The outage lasts until the load has met it, however fast or slow the machine: longer
        // than the pool's acquire timeout, so a request gets its 503.
        wait::until("a 503 while PostgreSQL is down", WAIT, || async move {
            tally.refused.load(Ordering::SeqCst) > 0
        })
        .await;
        let starting = control.clone();
        tokio::task::spawn_blocking(move || starting.start_server())
            .await
            .expect("start");
        let before = tally.accepted.load(Ordering::SeqCst);
        wait::until(
            "201s again under load after the restart",
            WAIT,
            || async move { tally.accepted.load(Ordering::SeqCst) >= before + 50 },
        )
        .await;
        stop.store(true, Ordering::SeqCst);
    };
    let (results, ()) = tokio::join!(load, restart);

    let statuses: BTreeSet<u16> = results.iter().map(|(_, s)| *s).collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "only successes and 503s: {statuses:?}"
    );
    assert!(statuses.contains(&503), "the outage met the load");
    // The node recovered by itself: requests after the restart succeed.
    json_with_201(editor.invite(json!({"email": "later@example.org"})).await).await;

    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let stored: HashSet<String> = sqlx::query_scalar(
        "SELECT i.email FROM invitations i JOIN outbox o ON o.invitation_id = i.id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("query")
    .into_iter()
    .collect();
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM invitations i LEFT JOIN outbox o ON o.invitation_id = i.id \
         WHERE o.id IS NULL",
    )
    .fetch_one(&mut conn)
    .await
    .expect("query");
    assert_eq!(orphans, 0, "no invitation without its email");
    let accepted: Vec<&String> = results
        .iter()
        .filter(|(_, s)| *s == 201)
        .map(|(e, _)| e)
        .collect();
    for email in &accepted {
        assert!(
            stored.contains(*email),
            "{email} got a 201 but was not stored"
        );
    }
    eprintln!(
        "PostgreSQL restart under load: {} accepted, {} refused with 503",
        accepted.len(),
        results.len() - accepted.len()
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let received = app.smtp.received();
        let delivered: HashSet<&String> = received.iter().flat_map(|m| &m.rcpt_to).collect();
        let missing = accepted.iter().filter(|e| !delivered.contains(**e)).count();
        if missing == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} accepted invitations were never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
