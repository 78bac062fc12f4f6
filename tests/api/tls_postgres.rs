//! PostgreSQL over TLS: a cluster of the test's own with `ssl = on` and a certificate from a CA
//! the test made. `sslmode=verify-full` with that CA carries invitations, and the server shows
//! every connection of the service as encrypted, as with `require`, `verify-ca` and `prefer`
//! (`disable`: plain); another CA (through `migrate` and `serve`), or `sslmode=require`
//! against a server without TLS, stops the service at start-up with one clear line.

use std::path::Path;
use std::time::{Duration, Instant};

use cbh_invite::config::DatabaseUrl;
use serde_json::json;
use sqlx::Connection;

use crate::support::binary;
use crate::support::cluster::Cluster;
use crate::support::tls::TestCa;
use crate::support::wait::{self, test_within_deadline};
use crate::support::{Backend, json_with_status, spawn_app_with};

const WAIT: Duration = Duration::from_secs(30);

/// `cbh-invite migrate` on `url`: it must fail; returns its standard error, checked to be one
/// line that names the variable and the server, and to have come without a 30 s retry loop.
fn migrate_fails(dir: &Path, url: &str, server: &str) -> String {
    let started = Instant::now();
    let output = binary::run(
        dir,
        &[("CBH_DATABASE_URL", url.to_owned())],
        &["migrate"],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert!(!output.status.success(), "migrate succeeded: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("error: CBH_DATABASE_URL"), "{stderr}");
    assert!(stderr.contains(server), "the server is not named: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a TLS failure was retried like an unreachable server ({:?})",
        started.elapsed()
    );
    stderr
}

/// Whether this connection to the server is encrypted, as the server sees it.
async fn encrypted(conn: &mut sqlx::PgConnection) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pg_stat_ssl")
}

/// The service on `url` (a database of its own, `database`) sends an invitation and its
/// invitee accepts; whether the server saw every connection of the service encrypted (all or
/// none: a mix fails).
async fn invitation_over(url: &str, observer: &mut sqlx::PgConnection, database: &str) -> bool {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.database = DatabaseUrl::Postgres(url.to_owned());
    })
    .await;
    let (editor, project) = app.editor_with_project().await;
    let (created, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}),
            WAIT,
        )
        .await;
    let token = mail.accept_token().expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(
        app.invitation(&editor, id).await["status"],
        "accepted",
        "{url}"
    );
    let (total, tls): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = 'cbh-invite' AND a.datname = $1",
    )
    .bind(database)
    .fetch_one(observer)
    .await
    .expect("pg_stat_activity");
    assert!(total > 0, "{url}: the service holds no connection");
    assert!(
        tls == 0 || tls == total,
        "{url}: {tls} of {total} encrypted"
    );
    tls == total
}

#[tokio::test]
async fn postgres_over_verified_tls_carries_invitations_and_a_wrong_ca_stops_start_up() {
    test_within_deadline(async {
        let ca = TestCa::new("cbh-invite test CA");
        let Some(cluster) = Cluster::start_with_tls(
            "tls_postgres::postgres_over_verified_tls_carries_invitations_and_a_wrong_ca_stops_start_up",
            &ca.server_cert(),
        ) else {
            return;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = ca.write(dir.path(), "ca.pem");
        let verified = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            cluster.url(),
            ca_file.display()
        );

        // The service, on that URL, sends an invitation and its invitee accepts it.
        let app = spawn_app_with(Backend::Sqlite, |s| {
            s.database = DatabaseUrl::Postgres(verified.clone());
        })
        .await;
        let (editor, project) = app.editor_with_project().await;
        let (created, mail) = app
            .invite_and_wait_for_mail(
                &editor,
                json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}),
                WAIT,
            )
            .await;
        let token = mail.accept_token().expect("token");
        json_with_status(app.accept(&token, "a good long password").await, 200).await;
        let id = created["id"].as_i64().expect("id");
        assert_eq!(app.invitation(&editor, id).await["status"], "accepted");

        // The server sees every connection of the service as encrypted.
        let plain = format!("{}?sslmode=disable", cluster.url());
        let mut observer = sqlx::PgConnection::connect(&plain)
            .await
            .expect("plain connection");
        assert!(!encrypted(&mut observer).await, "sslmode=disable encrypted");
        let (total, tls): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'cbh-invite'",
        )
        .fetch_one(&mut observer)
        .await
        .expect("pg_stat_activity");
        assert!(total > 0, "the service holds no connection to the cluster");
        assert_eq!(tls, total, "some of the service's connections are not TLS");
        let mut client = sqlx::PgConnection::connect(&verified)
            .await
            .expect("verify-full connection");
        assert!(encrypted(&mut client).await);
        drop(app);

        // The other modes, each on a database of its own in the same cluster: the service
        // carries an invitation, encrypted except with `disable`.
        let ca_param = format!("sslrootcert={}", ca_file.display());
        for (database, query, tls_expected) in [
            ("cbh_require", "sslmode=require".to_owned(), true),
            ("cbh_verify_ca", format!("sslmode=verify-ca&{ca_param}"), true),
            ("cbh_prefer", "sslmode=prefer".to_owned(), true),
            ("cbh_disable", "sslmode=disable".to_owned(), false),
        ] {
            sqlx::query(&format!("CREATE DATABASE {database}"))
                .execute(&mut observer)
                .await
                .expect("create database");
            let base = cluster.url();
            let server_url = base.strip_suffix("/postgres").expect("…/postgres");
            let url = format!("{server_url}/{database}?{query}");
            let tls = invitation_over(&url, &mut observer, database).await;
            assert_eq!(tls, tls_expected, "{query}: encrypted {tls}");
        }

        // A CA that did not sign the server's certificate: refused at start-up, at once.
        let stranger = TestCa::new("another CA");
        let wrong_ca = stranger.write(dir.path(), "other-ca.pem");
        let server = format!("127.0.0.1:{}", url::Url::parse(&cluster.url()).expect("url").port().expect("port"));
        let wrong = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            cluster.url(),
            wrong_ca.display()
        );
        let error = migrate_fails(dir.path(), &wrong, &server);
        assert!(error.contains("certificate"), "{error}");
        // The same with verify-ca, which checks the issuer but not the name.
        let error = migrate_fails(dir.path(), &wrong.replace("verify-full", "verify-ca"), &server);
        assert!(error.contains("certificate"), "{error}");
        // And `serve`: it does not start, and its last line says why.
        let serve = binary::run(
            dir.path(),
            &[
                ("CBH_DATABASE_URL", wrong.clone()),
                ("CBH_LISTEN", format!("127.0.0.1:{}", wait::free_port())),
            ],
            &["serve"],
            None,
        );
        let stderr = String::from_utf8_lossy(&serve.stderr);
        assert!(!serve.status.success(), "serve started: {stderr}");
        let last = stderr.trim().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: CBH_DATABASE_URL")
                && last.contains(&server)
                && last.contains("certificate"),
            "{stderr}"
        );

        // A server without TLS: sslmode=require refuses to go on in plain text.
        sqlx::query("ALTER SYSTEM SET ssl = off")
            .execute(&mut observer)
            .await
            .expect("ssl off");
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut observer)
            .await
            .expect("reload");
        let prefer = format!("{}?sslmode=prefer", cluster.url());
        wait::until("the cluster serves without TLS", WAIT, || async {
            match sqlx::PgConnection::connect(&prefer).await {
                Ok(mut conn) => !encrypted(&mut conn).await,
                Err(_) => false,
            }
        })
        .await;
        let error = migrate_fails(
            dir.path(),
            &format!("{}?sslmode=require", cluster.url()),
            &server,
        );
        assert!(error.contains("does not support TLS"), "{error}");
    })
    .await;
}
