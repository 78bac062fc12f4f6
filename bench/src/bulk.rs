//! The bulk configuration: one `POST /{ns}/api/invitations/bulk/` of 1,000 new addresses on a
//! fresh database and server, timed from the first byte sent to the whole answer read, after
//! one small bulk request that warms the connection and the server's prepared statements.
//! Every row must answer 201 and every address receive its email once.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use smtp_sink::SmtpServer;

use crate::Backend;
use crate::pg::PgAdmin;
use crate::server::{self, Inviter, NAMESPACE, ServeOptions, Server};

/// Rows in the measured request: the most one request may hold.
pub const ROWS: usize = 1000;

pub struct BulkResult {
    pub backend: Backend,
    pub rows: usize,
    /// The measured request, sent to answered.
    pub elapsed: Duration,
    /// Rows answered 201.
    pub created: usize,
    /// From the answer until every email arrived.
    pub delivered_in: Option<Duration>,
    pub problems: Vec<String>,
}

/// Runs the bulk configuration on `backend` (a PostgreSQL database of its own, dropped after).
pub async fn run(
    binary: &Path,
    pg: Option<&PgAdmin>,
    backend: Backend,
) -> anyhow::Result<BulkResult> {
    let dir = tempfile::Builder::new()
        .prefix("cbh-bench-bulk-")
        .tempdir()
        .context("creating a temporary folder")?;
    match backend {
        Backend::Postgres => {
            let pg = pg.context("no PostgreSQL server for the bulk configuration")?;
            let (name, url) = pg.create().await?;
            let result = run_on(binary, backend, &url, dir.path()).await;
            pg.drop_database(&name).await?;
            result
        }
        _ => {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            run_on(binary, backend, &url, dir.path()).await
        }
    }
}

async fn run_on(
    binary: &Path,
    backend: Backend,
    database_url: &str,
    dir: &Path,
) -> anyhow::Result<BulkResult> {
    let inviter = server::set_up(binary, database_url).await?;
    let smtp = SmtpServer::start().await;
    let options = ServeOptions {
        binary,
        database_url,
        smtp_port: smtp.port,
        dir,
        env: &[],
    };
    let (server, _) = Server::start(&options).await?;
    let client = reqwest::Client::new();
    let warmup = post(&client, &server.base_url, &inviter, &addresses("warm", 10)).await?;
    let addresses = addresses("bulk", ROWS);
    let started = Instant::now();
    let answer = post(&client, &server.base_url, &inviter, &addresses).await?;
    let elapsed = started.elapsed();
    let created = answer.matches("\"status\":201").count();
    let expected = warmup.matches("\"status\":201").count() + created;
    let waiting = Instant::now();
    let delivered = smtp.wait_for_count(expected, Duration::from_secs(60)).await;
    let delivered_in = (delivered >= expected).then(|| waiting.elapsed());
    server.stop().await?;

    let mut problems = Vec::new();
    if created != ROWS {
        problems.push(format!("{created} of {ROWS} rows were created"));
    }
    if delivered_in.is_none() {
        problems.push(format!("only {delivered} of {expected} emails arrived"));
    }
    let mut seen = HashSet::new();
    for mail in smtp.received() {
        for recipient in mail.rcpt_to {
            if !seen.insert(recipient.clone()) {
                problems.push(format!("{recipient} received two emails"));
            }
        }
    }
    Ok(BulkResult {
        backend,
        rows: ROWS,
        elapsed,
        created,
        delivered_in,
        problems,
    })
}

fn addresses(tag: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{tag}-{i}@bench.example"))
        .collect()
}

/// One bulk request; its answer's body. (The benchmark's reqwest has no JSON feature: the
/// addresses need no escaping.)
async fn post(
    client: &reqwest::Client,
    base_url: &str,
    inviter: &Inviter,
    addresses: &[String],
) -> anyhow::Result<String> {
    let rows: Vec<String> = addresses
        .iter()
        .map(|email| format!("{{\"email\":\"{email}\",\"first_name\":\"Bench\"}}"))
        .collect();
    let body = format!(
        "{{\"projects_selected\":[{{\"id\":{}}}],\"objects\":[{}]}}",
        inviter.project_id,
        rows.join(",")
    );
    let response = client
        .post(format!("{base_url}/{NAMESPACE}/api/invitations/bulk/"))
        .header(AUTHORIZATION, &inviter.authorization)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .context("sending the bulk request")?;
    let status = response.status();
    let text = response.text().await.context("reading the bulk answer")?;
    anyhow::ensure!(
        status.is_success(),
        "the bulk request answered {status}: {text}"
    );
    Ok(text)
}

/// A line of the report's bulk table.
pub fn table(results: &[BulkResult]) -> String {
    let mut table = String::from(
        "| configuration | rows | one request | rows created | all emails arrived after |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for result in results {
        table.push_str(&format!(
            "| {} | {} | {:.0} ms | {} | {} |\n",
            result.backend.label(),
            result.rows,
            result.elapsed.as_secs_f64() * 1000.0,
            result.created,
            result
                .delivered_in
                .map_or("–".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        ));
    }
    table
}
