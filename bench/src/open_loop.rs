//! The open-loop configurations: invitations sent at a fixed arrival rate, whatever the server
//! does, and the search for the "sustainable rate", the highest rate whose p99 stays under
//! 10 ms.
//!
//! A closed loop (`load.rs`, and wrk) sends the next request only when the previous one has
//! answered, so a server that stalls also stalls its load: the requests that would have arrived
//! meanwhile are never sent, and their wait is never measured (coordinated omission). Here each
//! request has an intended send time fixed in advance (the n-th at `start + n / rate`), and its
//! latency runs from that time to the whole answer read. When every connection is busy, the
//! requests due meanwhile wait for one, and that wait is part of their latency: overload shows
//! as latency, as it would for people whose clicks do not wait for each other.
//!
//! C clients (connections) take the next intended time from a shared counter, wait until it
//! comes, send, and read the answer (as wrk2 does). A request is measured when its intended time
//! falls within the measured window; those still unsent a second after the window are counted
//! as not sent, with the time they had waited by then as their latency (a lower bound).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use smtp_sink::SmtpServer;
use tokio::task::JoinSet;

use crate::load::{cpu_over, histogram};
use crate::pg::PgAdmin;
use crate::server::{self, Inviter, NAMESPACE, ServeOptions, Server};
use crate::{Backend, check_recipients};

/// The p99 a rate must keep to be sustainable.
pub const P99_LIMIT: Duration = Duration::from_millis(10);
/// Connections of the open-loop configurations.
pub const CLIENTS: usize = 32;
/// Longest wait for one response, as in the closed loop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the window requests due within it may still be sent.
const DRAIN: Duration = Duration::from_secs(1);
/// The search stops when the lowest failing rate is within this factor of the highest passing.
const RESOLUTION: f64 = 1.1;

/// The open-loop options of the command line (flattened into the benchmark's own).
#[derive(Debug, Clone, clap::Args)]
pub struct OpenLoopArgs {
    /// Run the open-loop configurations at this one arrival rate (invitations/s) instead of
    /// searching for the sustainable rate.
    #[arg(long)]
    pub open_loop_rate: Option<f64>,
    /// Seconds of measured load per rate of the open-loop configurations (default 5; 1 with
    /// --quick).
    #[arg(long)]
    pub open_loop_step: Option<f64>,
}

/// One rate, sent for one window.
#[derive(Debug, Clone)]
pub struct Step {
    /// Intended arrivals per second.
    pub rate: f64,
    /// Requests due within the window.
    pub due: u64,
    /// Of those, answered (any status).
    pub answered: u64,
    /// Non-201 answers and failed requests among those due.
    pub failures: u64,
    /// Due within the window but not sent by the end of the drain.
    pub not_sent: u64,
    /// From the intended send time to the answer read, µs.
    pub latency: Histogram<u64>,
    pub server_cpu: Option<Duration>,
    pub first_failure: Option<String>,
}

impl Step {
    pub fn p99(&self) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(0.99))
    }

    pub fn p50(&self) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(0.50))
    }

    /// Whether this rate is sustainable: every request sent and answered 201, p99 under 10 ms.
    pub fn sustainable(&self) -> bool {
        self.failures == 0 && self.not_sent == 0 && self.due > 0 && self.p99() < P99_LIMIT
    }

    /// µs of server CPU per answered request.
    pub fn cpu_per_request(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.answered > 0).then(|| cpu.as_secs_f64() * 1e6 / self.answered as f64)
    }

    fn summary(&self) -> String {
        format!(
            "{:.0}/s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} answered, {} non-201, {} not sent, server CPU {} µs/req",
            self.rate,
            self.p50().as_secs_f64() * 1e3,
            self.p99().as_secs_f64() * 1e3,
            self.latency.value_at_quantile(0.999) as f64 / 1e3,
            self.answered,
            self.failures,
            self.not_sent,
            self.cpu_per_request()
                .map_or("?".to_owned(), |cpu| format!("{cpu:.0}")),
        )
    }
}

/// The open-loop configuration of one backend: its steps in the order run.
pub struct OpenLoopResult {
    pub backend: Backend,
    pub clients: usize,
    pub steps: Vec<Step>,
    pub problems: Vec<String>,
}

impl OpenLoopResult {
    /// The highest rate that kept p99 under 10 ms.
    pub fn sustainable(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| s.sustainable())
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    }

    /// The lowest rate that did not.
    pub fn first_over(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| !s.sustainable())
            .min_by(|a, b| a.rate.total_cmp(&b.rate))
    }
}

/// The label `--only` matches.
pub fn label(backend: Backend) -> String {
    format!("{} open loop, C={CLIENTS}", backend.label())
}

/// How the rates are chosen.
pub struct Search {
    /// The first rate tried.
    pub start: f64,
    /// The most steps run.
    pub max_steps: usize,
    pub warmup: Duration,
    pub step: Duration,
    /// A single rate: no search.
    pub fixed: Option<f64>,
}

impl Search {
    pub fn new(args: &OpenLoopArgs, quick: bool) -> Self {
        let step = args
            .open_loop_step
            .unwrap_or(if quick { 1.0 } else { 5.0 })
            .max(0.1);
        Self {
            start: if quick { 250.0 } else { 1000.0 },
            max_steps: if quick { 2 } else { 10 },
            warmup: Duration::from_millis(if quick { 300 } else { 1000 }),
            step: Duration::from_secs_f64(step),
            fixed: args.open_loop_rate.filter(|rate| *rate > 0.0),
        }
    }

    /// The next rate to try after `steps`, or none when the search is done: doubling from
    /// `start` until a rate fails, then halving the interval between the highest passing and the
    /// lowest failing rate.
    fn next(&self, steps: &[Step]) -> Option<f64> {
        if let Some(fixed) = self.fixed {
            return steps.is_empty().then_some(fixed);
        }
        if steps.len() >= self.max_steps {
            return None;
        }
        let passed = steps
            .iter()
            .filter(|s| s.sustainable())
            .map(|s| s.rate)
            .reduce(f64::max);
        let failed = steps
            .iter()
            .filter(|s| !s.sustainable())
            .map(|s| s.rate)
            .reduce(f64::min);
        match (passed, failed) {
            (None, None) => Some(self.start),
            (Some(passed), None) => Some(passed * 2.0),
            (None, Some(failed)) => (failed > 50.0).then_some(failed / 2.0),
            (Some(passed), Some(failed)) => {
                (failed / passed > RESOLUTION).then_some(((passed + failed) / 2.0).round())
            }
        }
    }
}

/// Runs the open-loop configuration on `backend`: one server and database for all its steps,
/// the outbox emptied between steps (so each starts from a quiet server), every accepted
/// invitation's email checked at the end.
pub async fn run(
    binary: &Path,
    pg: Option<&PgAdmin>,
    backend: Backend,
    search: &Search,
) -> anyhow::Result<OpenLoopResult> {
    let dir = tempfile::Builder::new()
        .prefix("cbh-bench-open-")
        .tempdir()
        .context("creating a temporary folder")?;
    match backend {
        Backend::Postgres => {
            let pg = pg.context("no PostgreSQL server for the open-loop configuration")?;
            let (name, url) = pg.create().await?;
            let result = run_on(binary, backend, &url, dir.path(), search).await;
            pg.drop_database(&name).await?;
            result
        }
        _ => {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            run_on(binary, backend, &url, dir.path(), search).await
        }
    }
}

async fn run_on(
    binary: &Path,
    backend: Backend,
    database_url: &str,
    dir: &Path,
    search: &Search,
) -> anyhow::Result<OpenLoopResult> {
    let inviter = server::set_up(binary, database_url).await?;
    let smtp = SmtpServer::start().await;
    let env: &[(&str, &str)] = match backend {
        Backend::SqliteFullSync => &[("CBH_SQLITE_SYNC", "full")],
        _ => &[],
    };
    let options = ServeOptions {
        binary,
        database_url,
        smtp_port: smtp.port,
        dir,
        env,
    };
    let (server, _) = Server::start(&options).await?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(CLIENTS)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let url = format!("{}/{NAMESPACE}/api/invitations/", server.base_url);
    let target = Target {
        client,
        url,
        inviter,
        server_pid: server.pid(),
    };

    let mut steps = Vec::new();
    let mut accepted = Vec::new();
    let mut problems = Vec::new();
    while let Some(rate) = search.next(&steps) {
        let tag = format!("o{}", steps.len());
        let (step, mut step_accepted) = one_rate(&target, rate, search, &tag).await?;
        println!("[open loop] {} {}", backend.label(), step.summary());
        accepted.append(&mut step_accepted);
        // The next rate starts with an empty outbox.
        let delivered = smtp
            .wait_for_count(accepted.len(), Duration::from_secs(60))
            .await;
        if delivered < accepted.len() {
            problems.push(format!(
                "only {delivered} of {} accepted invitations' emails arrived",
                accepted.len()
            ));
            break;
        }
        if let Some(failure) = &step.first_failure {
            println!("[open loop]   first failure at {rate:.0}/s: {failure}");
        }
        steps.push(step);
    }
    let log_tail = server.log_tail();
    server
        .stop()
        .await
        .with_context(|| format!("stopping the server; its log:\n{log_tail}"))?;
    if accepted.is_empty() {
        problems.push("no invitation was accepted".to_owned());
    } else if problems.is_empty() {
        problems.extend(check_recipients(&smtp, &accepted));
    }
    Ok(OpenLoopResult {
        backend,
        clients: CLIENTS,
        steps,
        problems,
    })
}

/// Where the requests go.
struct Target {
    client: reqwest::Client,
    url: String,
    inviter: Inviter,
    server_pid: Option<u32>,
}

/// What one client saw.
struct ClientTally {
    due: u64,
    answered: u64,
    failures: u64,
    not_sent: u64,
    latency: Histogram<u64>,
    accepted: Vec<String>,
    first_failure: Option<String>,
}

/// Sends `rate` invitations per second for the warm-up and the window; returns the step and
/// every address that got a 201 (warm-up included).
async fn one_rate(
    target: &Target,
    rate: f64,
    search: &Search,
    tag: &str,
) -> anyhow::Result<(Step, Vec<String>)> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let schedule = Schedule {
        started,
        interval,
        measure_from: started + search.warmup,
        end: started + search.warmup + search.step,
        next: Arc::new(AtomicU64::new(0)),
    };
    let cpu = tokio::spawn(cpu_over(
        target.server_pid,
        schedule.measure_from,
        schedule.end,
    ));
    let mut clients = JoinSet::new();
    for index in 0..CLIENTS {
        clients.spawn(one_client(
            target.client.clone(),
            target.url.clone(),
            target.inviter.clone(),
            format!("{tag}-{index}"),
            schedule.clone(),
        ));
    }
    let mut step = Step {
        rate,
        due: 0,
        answered: 0,
        failures: 0,
        not_sent: 0,
        latency: histogram()?,
        server_cpu: None,
        first_failure: None,
    };
    let mut accepted = Vec::new();
    while let Some(joined) = clients.join_next().await {
        let tally = joined.context("an open-loop client panicked")??;
        step.due += tally.due;
        step.answered += tally.answered;
        step.failures += tally.failures;
        step.not_sent += tally.not_sent;
        step.latency.add(&tally.latency)?;
        accepted.extend(tally.accepted);
        if step.first_failure.is_none() {
            step.first_failure = tally.first_failure;
        }
    }
    (step.server_cpu, _) = cpu.await.context("the CPU sampler panicked")?;
    Ok((step, accepted))
}

/// The intended send times, shared by the clients of one step: the n-th request is due at
/// `started + n × interval`, whoever sends it.
#[derive(Clone)]
struct Schedule {
    started: Instant,
    interval: Duration,
    measure_from: Instant,
    end: Instant,
    next: Arc<AtomicU64>,
}

impl Schedule {
    /// The next request's number and intended time, until the window ends.
    fn take(&self) -> Option<(u64, Instant)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let offset = self.interval.checked_mul(u32::try_from(n).ok()?)?;
        let due = self.started + offset;
        (due < self.end).then_some((n, due))
    }
}

async fn one_client(
    client: reqwest::Client,
    url: String,
    inviter: Inviter,
    tag: String,
    schedule: Schedule,
) -> anyhow::Result<ClientTally> {
    let mut tally = ClientTally {
        due: 0,
        answered: 0,
        failures: 0,
        not_sent: 0,
        latency: histogram()?,
        accepted: Vec::new(),
        first_failure: None,
    };
    let give_up = schedule.end + DRAIN;
    while let Some((n, due)) = schedule.take() {
        let measured = due >= schedule.measure_from;
        if Instant::now() >= give_up {
            // Overloaded past the drain: the rest of this client's share is counted unsent,
            // each with the wait it had so far (at least).
            if measured {
                tally.due += 1;
                tally.not_sent += 1;
                record(&mut tally.latency, give_up.duration_since(due));
            }
            continue;
        }
        tokio::time::sleep_until(due.into()).await;
        let email = format!("{tag}-{n}@bench.example");
        let body = format!(
            r#"{{"email":"{email}","first_name":"Ada","last_name":"Bench","projects_selected":[{{"id":{}}}]}}"#,
            inviter.project_id
        );
        let response = client
            .post(&url)
            .header(AUTHORIZATION, &inviter.authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match response {
            Ok(response) => {
                let status = response.status();
                match (status, response.bytes().await) {
                    (StatusCode::CREATED, Ok(_)) => Ok(()),
                    (status, Ok(body)) => Err(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )),
                    (_, Err(error)) => Err(format!("reading the response: {error}")),
                }
            }
            Err(error) => Err(format!("{error}")),
        };
        // From the time the request was due, not the time it could be sent.
        let latency = due.elapsed();
        if outcome.is_ok() {
            tally.accepted.push(email);
        }
        if !measured {
            continue;
        }
        tally.due += 1;
        tally.answered += 1;
        record(&mut tally.latency, latency);
        if let Err(failure) = outcome {
            tally.failures += 1;
            tally.first_failure.get_or_insert(failure);
        }
    }
    Ok(tally)
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// Milliseconds as the report writes them.
fn ms(duration: Duration) -> String {
    crate::report::ms(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

/// The report's open-loop table: per backend, the sustainable rate with its latency and CPU,
/// the lowest rate that was not, and every rate tried.
pub fn table(results: &[OpenLoopResult]) -> String {
    let mut table = String::from(
        "| backend | C | sustainable rate (p99 < 10 ms) | p50 ms | p99 ms | server CPU µs/req | lowest rate over | its p99 ms | rates tried (p99 ms) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for result in results {
        let (rate, p50, p99, cpu) = match result.sustainable() {
            Some(step) => (
                format!("{:.0}/s", step.rate),
                ms(step.p50()),
                ms(step.p99()),
                step.cpu_per_request()
                    .map_or("?".to_owned(), |cpu| format!("{cpu:.0}")),
            ),
            None => ("none tried".into(), "–".into(), "–".into(), "–".into()),
        };
        let (over, over_p99) = match result.first_over() {
            Some(step) => (format!("{:.0}/s", step.rate), ms(step.p99())),
            None => ("–".into(), "–".into()),
        };
        let tried = result
            .steps
            .iter()
            .map(|step| {
                let mut text = format!("{:.0}: {}", step.rate, ms(step.p99()));
                if step.not_sent > 0 {
                    text.push_str(&format!(", {} not sent", step.not_sent));
                }
                if step.failures > 0 {
                    text.push_str(&format!(", {} non-201", step.failures));
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; ");
        table.push_str(&format!(
            "| {} | {} | {rate} | {p50} | {p99} | {cpu} | {over} | {over_p99} | {tried} |\n",
            result.backend.label(),
            result.clients,
        ));
    }
    table
}

/// The report's section: how the open loop is run, then `table`.
pub fn section(results: &[OpenLoopResult], search: &Search) -> String {
    let how = if search.fixed.is_some() {
        "at the one rate given with `--open-loop-rate`".to_owned()
    } else {
        format!(
            "doubling the rate from {:.0}/s until p99 reaches 10 ms, then halving the interval \
             between the highest rate under and the lowest over, to within {:.0}% or {} rates",
            search.start,
            (RESOLUTION - 1.0) * 100.0,
            search.max_steps
        )
    };
    format!(
        "### Open loop: the sustainable rate\n\nInvitations sent at a fixed arrival rate on {CLIENTS} \
         connections, each request at its intended time whatever the server does; its latency runs \
         from that intended time to the answer read, so a server that falls behind shows it as \
         latency instead of slowing its load down (coordinated omission). One server and database \
         per backend, {:.1} s of warm-up and {:.1} s measured per rate, the outbox emptied between \
         rates and every email checked at the end; {how}. A rate is sustainable when every \
         request due in the window answered 201 with p99 under 10 ms.\n\n{}",
        search.warmup.as_secs_f64(),
        search.step.as_secs_f64(),
        table(results)
    )
}
