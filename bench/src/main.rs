//! cbh-invite's benchmark. Run `cargo run --release -p bench` (about 15 minutes; writes
//! BENCHMARKS.md and its plot) or `cargo run --release -p bench -- --quick` (under a minute;
//! checks that the runs complete and every email arrives, and reports the figures). Both end
//! with the bulk configuration (`bulk.rs`): one request of 1,000 invitations per backend; then
//! the open loop (`open_loop.rs`): invitations at a fixed arrival rate, and the highest rate
//! whose p99 stays under 10 ms.
//!
//! Each configuration gets a fresh database, the inviter and its API key made through the real
//! CLI, a real SMTP server on loopback (`smtp-sink`, in this process) and the release server as
//! a child process. Timings are reported, never asserted: the exit status only says whether
//! every run completed and every accepted invitation's email arrived.

mod bulk;
mod delivery;
mod load;
mod open_loop;
mod pg;
mod report;
mod server;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use smtp_sink::SmtpServer;

use crate::load::{LoadPlan, LoadResult};
use crate::pg::PgAdmin;
use crate::server::{ServeOptions, Server};

#[derive(Debug, Parser)]
#[command(
    about = "Benchmark cbh-invite: HTTP load on the release server, email to a loopback SMTP server."
)]
struct Args {
    /// A short smoke run (SQLite and PostgreSQL at 8 clients, no SMTP delay): under a minute.
    #[arg(long)]
    quick: bool,
    /// Where to write the report; the plot goes beside it as <name>-p99.svg. Default:
    /// BENCHMARKS.md at the workspace root (with --quick: no file, the table is printed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds of measured load per configuration (default 10; 3 with --quick).
    #[arg(long)]
    duration: Option<u64>,
    /// The PostgreSQL server for the PostgreSQL configurations; each gets a database of its
    /// own, created here and dropped afterwards. Without TLS by default: on loopback it only
    /// adds the server's encryption work, and the figures stay comparable with those measured
    /// before sqlx spoke TLS (`sslmode=prefer` now negotiates it when the server offers it).
    #[arg(
        long,
        env = "CBH_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    postgres_url: String,
    /// Skip the PostgreSQL configurations.
    #[arg(long)]
    sqlite_only: bool,
    /// Run only the configurations whose label contains this text, e.g. "SQLite, SMTP 0 ms, C=32"
    /// (to profile one, or to measure it again); "bulk" for the bulk configurations alone.
    #[arg(long)]
    only: Option<String>,
    /// CBH_SMTP_CONNECTIONS of the server in the configurations with an SMTP delay (default
    /// 128); the others run with the server's default.
    #[arg(long)]
    smtp_connections: Option<usize>,
    /// Benchmark this server binary instead of building target/release/cbh-invite (to compare
    /// two builds, run after run).
    #[arg(long, env = "CBH_BENCH_SERVER")]
    server: Option<PathBuf>,
    #[command(flatten)]
    open_loop: open_loop::OpenLoopArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// `CBH_SQLITE_SYNC=full`: an fsync per commit, for power-loss safety.
    SqliteFullSync,
    Postgres,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::SqliteFullSync => "SQLite sync=full",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub backend: Backend,
    pub smtp_delay: Duration,
    pub clients: usize,
    pub logins_per_second: u32,
}

impl Scenario {
    fn new(backend: Backend, delay_ms: u64, clients: usize) -> Self {
        Self {
            backend,
            smtp_delay: Duration::from_millis(delay_ms),
            clients,
            logins_per_second: 0,
        }
    }

    fn with_logins(mut self, per_second: u32) -> Self {
        self.logins_per_second = per_second;
        self
    }

    pub fn label(&self) -> String {
        let mut label = format!(
            "{}, SMTP {} ms, C={}",
            self.backend.label(),
            self.smtp_delay.as_millis(),
            self.clients
        );
        if self.logins_per_second > 0 {
            label.push_str(&format!(", {} logins/s", self.logins_per_second));
        }
        label
    }
}

/// How delivery went after the load stopped.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivered: usize,
    /// Accepted but not yet received when the load stopped.
    pub backlog: usize,
    /// Time from the end of the load until every accepted email was received; `None` when the
    /// wait's bound (`delivery::bound`) came first.
    pub drained_in: Option<Duration>,
    /// Emails per second received after the load stopped (the worker alone on the machine).
    pub rate: f64,
}

pub struct RunResult {
    pub scenario: Scenario,
    pub load: LoadResult,
    pub delivery: Delivery,
    pub peak_rss_kib: Option<u64>,
    /// From spawn to `/readyz` on the database the CLI has just made.
    pub ready_first: Duration,
    /// The same after the load, on the database holding everything the run wrote.
    pub ready_restart: Option<Duration>,
    pub problems: Vec<String>,
}

/// What every run shares.
struct Suite {
    binary: PathBuf,
    pg: Option<PgAdmin>,
    warmup: Duration,
    duration: Duration,
    /// CBH_SMTP_CONNECTIONS with an SMTP delay.
    delayed_connections: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        bail!(
            "the benchmark must be built with optimisations: cargo run --release -p bench -- {}",
            if args.quick { "--quick" } else { "" }
        );
    }
    // The load generator and the SMTP server share the machine with the server under test:
    // the default runtime (one worker per core) is what a real client would have.
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let failed = runtime.block_on(run(args))?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Returns whether any run failed.
async fn run(args: Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let load_before = report::load_average();
    let binary = match &args.server {
        Some(binary) => binary.clone(),
        None => {
            println!("building the release server: cargo build --release -p cbh-invite");
            tokio::task::spawn_blocking(server::release_binary).await??
        }
    };

    let pg = if args.sqlite_only {
        None
    } else {
        let admin = PgAdmin::new(&args.postgres_url)?;
        if admin.reachable().await {
            Some(admin)
        } else if ["CBH_BENCH_POSTGRES", "CBH_TEST_POSTGRES"]
            .iter()
            .any(|var| std::env::var(var).is_ok_and(|v| v == "required"))
        {
            bail!("PostgreSQL does not answer at --postgres-url and is required");
        } else {
            println!(
                "PostgreSQL does not answer at --postgres-url: its configurations are skipped"
            );
            None
        }
    };
    let scenarios: Vec<Scenario> = scenarios(args.quick, pg.is_some())
        .into_iter()
        .filter(|s| {
            args.only
                .as_ref()
                .is_none_or(|only| s.label().contains(only.as_str()))
        })
        .collect();
    let mut backends = vec![Backend::Sqlite];
    if pg.is_some() {
        backends.push(Backend::Postgres);
    }
    let mut bulk_backends = backends.clone();
    bulk_backends.retain(|backend| {
        args.only
            .as_ref()
            .is_none_or(|only| bulk_label(*backend).contains(only.as_str()))
    });
    let mut open_loop_backends = backends;
    open_loop_backends.retain(|backend| {
        args.only
            .as_ref()
            .is_none_or(|only| open_loop::label(*backend).contains(only.as_str()))
    });
    let search = open_loop::Search::new(&args.open_loop, args.quick);
    if scenarios.is_empty() && bulk_backends.is_empty() && open_loop_backends.is_empty() {
        bail!("no configuration matches --only");
    }
    let context = Suite {
        binary,
        pg: pg.clone(),
        warmup: Duration::from_millis(if args.quick { 500 } else { 1000 }),
        duration: Duration::from_secs(args.duration.unwrap_or(if args.quick { 3 } else { 10 })),
        delayed_connections: args
            .smtp_connections
            .unwrap_or(delivery::DELAYED_CONNECTIONS),
    };

    let suite = async {
        let mut results = Vec::new();
        for (index, scenario) in scenarios.iter().enumerate() {
            let tag = format!("[{}/{}]", index + 1, scenarios.len());
            println!("{tag} {} ...", scenario.label());
            let result = run_scenario(&context, scenario, index).await;
            match result {
                Ok(result) => {
                    println!("{tag} {}", report::progress_line(&result));
                    for problem in &result.problems {
                        println!("{tag}   FAILED: {problem}");
                    }
                    results.push(result);
                }
                Err(error) => {
                    println!("{tag}   FAILED: {error:#}");
                    return Err(error.context(scenario.label()));
                }
            }
        }
        let mut bulk_results = Vec::new();
        for backend in &bulk_backends {
            println!("[bulk] {} ...", bulk_label(*backend));
            let result = bulk::run(&context.binary, context.pg.as_ref(), *backend)
                .await
                .map_err(|error| error.context(bulk_label(*backend)))?;
            println!(
                "[bulk] {} rows in {:.0} ms, {} created",
                result.rows,
                result.elapsed.as_secs_f64() * 1000.0,
                result.created
            );
            for problem in &result.problems {
                println!("[bulk]   FAILED: {problem}");
            }
            bulk_results.push(result);
        }
        let mut open_loop_results = Vec::new();
        for backend in &open_loop_backends {
            println!("[open loop] {} ...", open_loop::label(*backend));
            let result = open_loop::run(&context.binary, context.pg.as_ref(), *backend, &search)
                .await
                .map_err(|error| error.context(open_loop::label(*backend)))?;
            for problem in &result.problems {
                println!("[open loop]   FAILED: {problem}");
            }
            open_loop_results.push(result);
        }
        Ok((results, bulk_results, open_loop_results))
    };
    let outcome = tokio::select! {
        outcome = suite => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // Whatever ended the suite, no database is left behind (child servers die with their handles).
    if let Some(pg) = &pg {
        pg.drop_all().await;
    }
    let (results, bulk_results, open_loop_results) = outcome?;
    let failed = results.iter().any(|r| !r.problems.is_empty())
        || bulk_results.iter().any(|r| !r.problems.is_empty())
        || open_loop_results.iter().any(|r| !r.problems.is_empty());

    let method = format!(
        "Each configuration: a fresh database; the inviter, its project and API key made with the \
         CLI; `cbh-invite serve` (release build) started as a child process with the SMTP server \
         (smtp-sink, in the benchmark's process) as `CBH_SMTP_URL`. C clients, each on a \
         keep-alive connection, send `POST /chembiohub/api/invitations/` with a new address every \
         time, one request after the other, for {:.1} s of warm-up and then {} s measured \
         (requests/s, latency, non-201 and CPU are of the measured window). {} Peak RSS is the \
         server's `VmHWM`; start-up is from spawn to the first 200 from `/readyz`, first on the \
         database the CLI has just made, then again on the database the run filled. Server CPU \
         is user + system time over the window, as a share of one core and per request.",
        context.warmup.as_secs_f64(),
        context.duration.as_secs(),
        delivery::method(context.delayed_connections)
    );
    let machine = report::Machine::read(load_before, started.elapsed(), method);
    println!();
    println!("{}", report::results_table(&results));
    println!("{}", report::targets_table(&results, &bulk_results));
    println!("{}", bulk::table(&bulk_results));
    println!("{}", open_loop::table(&open_loop_results));
    let out = match (&args.out, args.quick) {
        (Some(out), _) => Some(out.clone()),
        (None, false) => Some(server::workspace_root().join("BENCHMARKS.md")),
        (None, true) => None,
    };
    if let Some(out) = out {
        let open_loop = (!open_loop_results.is_empty())
            .then(|| open_loop::section(&open_loop_results, &search));
        report::write(
            &out,
            &results,
            &bulk_results,
            open_loop.as_deref(),
            &machine,
            args.quick,
        )?;
        println!("wrote {}", out.display());
    }
    println!(
        "{} configurations in {:.0} s{}",
        results.len(),
        started.elapsed().as_secs_f64(),
        if failed { "; some FAILED" } else { "" }
    );
    Ok(failed)
}

fn bulk_label(backend: Backend) -> String {
    format!("{} bulk, {} rows", backend.label(), bulk::ROWS)
}

fn scenarios(quick: bool, postgres: bool) -> Vec<Scenario> {
    let mut backends = vec![Backend::Sqlite];
    if postgres {
        backends.push(Backend::Postgres);
    }
    if quick {
        return backends
            .into_iter()
            .map(|backend| Scenario::new(backend, 0, 8))
            .collect();
    }
    let mut all = Vec::new();
    for backend in backends {
        for clients in [1, 8, 32, 128] {
            all.push(Scenario::new(backend, 0, clients));
        }
        // Right after its baseline (C=32, no delay), so the two see the same machine.
        all.push(Scenario::new(backend, 0, 32).with_logins(10));
        for clients in [1, 8, 32, 128] {
            all.push(Scenario::new(backend, 200, clients));
        }
    }
    all.push(Scenario::new(Backend::SqliteFullSync, 0, 32));
    all
}

async fn run_scenario(
    context: &Suite,
    scenario: &Scenario,
    index: usize,
) -> anyhow::Result<RunResult> {
    let dir = tempfile::Builder::new()
        .prefix("cbh-bench-")
        .tempdir()
        .context("creating a temporary folder")?;
    match scenario.backend {
        Backend::Sqlite | Backend::SqliteFullSync => {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            run_on(context, scenario, index, &url, dir.path()).await
        }
        Backend::Postgres => {
            let pg = context
                .pg
                .as_ref()
                .context("no PostgreSQL server for a PostgreSQL configuration")?;
            let (name, url) = pg.create().await?;
            let result = run_on(context, scenario, index, &url, dir.path()).await;
            pg.drop_database(&name).await?;
            result
        }
    }
}

async fn run_on(
    context: &Suite,
    scenario: &Scenario,
    index: usize,
    database_url: &str,
    dir: &std::path::Path,
) -> anyhow::Result<RunResult> {
    let inviter = server::set_up(&context.binary, database_url).await?;
    let smtp = SmtpServer::start().await;
    smtp.set_delay(scenario.smtp_delay);
    let connections = context.delayed_connections.to_string();
    let mut env: Vec<(&str, &str)> = Vec::new();
    if scenario.backend == Backend::SqliteFullSync {
        env.push(("CBH_SQLITE_SYNC", "full"));
    }
    if !scenario.smtp_delay.is_zero() {
        env.push(("CBH_SMTP_CONNECTIONS", &connections));
    }
    let options = ServeOptions {
        binary: &context.binary,
        database_url,
        smtp_port: smtp.port,
        dir,
        env: &env,
    };
    let (server, ready_first) = Server::start(&options).await?;

    let plan = LoadPlan {
        clients: scenario.clients,
        warmup: context.warmup,
        duration: context.duration,
        logins_per_second: scenario.logins_per_second,
        run_tag: format!("{index}"),
        server_pid: server.pid(),
    };
    let load = load::run(&server.base_url, &inviter, &plan).await?;
    let delivery = delivery::wait(&smtp, load.accepted.len()).await;
    let peak_rss_kib = server.peak_rss_kib().ok();
    let log_tail = server.log_tail();
    server
        .stop()
        .await
        .with_context(|| format!("stopping the server; its log:\n{log_tail}"))?;

    let mut problems = Vec::new();
    if load.accepted.is_empty() {
        problems.push("no invitation was accepted".to_owned());
    }
    if load.failures > 0 {
        problems.push(format!(
            "{} of {} requests did not answer 201 (first: {})",
            load.failures,
            load.requests,
            load.first_failure.as_deref().unwrap_or("?")
        ));
    }
    if let Some(logins) = &load.logins
        && logins.failed > 0
    {
        problems.push(format!("{} logins failed", logins.failed));
    }
    if delivery.drained_in.is_some() {
        problems.extend(check_recipients(&smtp, &load.accepted));
    } else {
        problems.push(format!(
            "only {} of {} accepted invitations' emails arrived within {} s",
            delivery.delivered,
            load.accepted.len(),
            delivery::bound(delivery.backlog).as_secs()
        ));
    }

    // Start-up on an existing database: the one the run filled.
    let ready_restart = match Server::start(&options).await {
        Ok((again, ready)) => {
            again.stop().await?;
            Some(ready)
        }
        Err(error) => {
            problems.push(format!("restart failed: {error:#}"));
            None
        }
    };
    Ok(RunResult {
        scenario: scenario.clone(),
        load,
        delivery,
        peak_rss_kib,
        ready_first,
        ready_restart,
        problems,
    })
}

/// Every accepted address received exactly its email, and nothing else arrived.
fn check_recipients(smtp: &SmtpServer, accepted: &[String]) -> Vec<String> {
    let expected: HashSet<&str> = accepted.iter().map(String::as_str).collect();
    let received = smtp.received();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    let mut duplicates = 0;
    let mut unexpected = 0;
    for mail in &received {
        for recipient in &mail.rcpt_to {
            if !expected.contains(recipient.as_str()) {
                unexpected += 1;
            } else if !seen.insert(recipient.clone()) {
                duplicates += 1;
            }
        }
    }
    if seen.len() != expected.len() {
        problems.push(format!(
            "{} accepted invitations got no email",
            expected.len() - seen.len()
        ));
    }
    if duplicates > 0 {
        problems.push(format!("{duplicates} emails arrived twice"));
    }
    if unexpected > 0 {
        problems.push(format!(
            "{unexpected} emails went to an address never invited"
        ));
    }
    problems
}
