//! The load: C clients, each on its own keep-alive connection, sending `POST /{ns}/api/invitations/`
//! with a new address every time, one request after the other (a closed loop, as wrk does), for
//! a fixed time; and, beside them, logins at a fixed rate.

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use tokio::task::JoinSet;

use crate::server::{INVITER_EMAIL, INVITER_PASSWORD, Inviter, NAMESPACE};

/// Longest wait for one response: a stuck request counts as an error, it never hangs the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Microseconds, from 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("creating a histogram")
}

pub struct LoadPlan {
    pub clients: usize,
    /// Requests sent but not measured: connections open, caches warm.
    pub warmup: Duration,
    pub duration: Duration,
    pub logins_per_second: u32,
    /// Makes the addresses of this run unique.
    pub run_tag: String,
    /// The server's process, whose CPU time over the window is measured.
    pub server_pid: Option<u32>,
}

pub struct LoadResult {
    /// Responses completed within the measured window (any status).
    pub requests: u64,
    /// Non-201 responses and failed requests within the measured window.
    pub failures: u64,
    /// Latency of the requests completed within the window, in µs.
    pub latency: Histogram<u64>,
    pub window: Duration,
    /// Every address that got a 201, warm-up included: each must receive its email.
    pub accepted: Vec<String>,
    /// The first failure, to say what went wrong.
    pub first_failure: Option<String>,
    pub logins: Option<LoginResult>,
    /// CPU time used within the window by the server and by this process (the load generator
    /// and the SMTP server): on a shared machine, CPU per request varies less than throughput.
    pub server_cpu: Option<Duration>,
    pub bench_cpu: Option<Duration>,
}

pub struct LoginResult {
    pub ok: u64,
    pub failed: u64,
    pub latency: Histogram<u64>,
}

struct ClientResult {
    requests: u64,
    failures: u64,
    latency: Histogram<u64>,
    accepted: Vec<String>,
    first_failure: Option<String>,
}

pub async fn run(base_url: &str, inviter: &Inviter, plan: &LoadPlan) -> anyhow::Result<LoadResult> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(plan.clients)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let url = format!("{base_url}/{NAMESPACE}/api/invitations/");
    let started = Instant::now();
    let measure_from = started + plan.warmup;
    let end = measure_from + plan.duration;

    let cpu = tokio::spawn(cpu_over(plan.server_pid, measure_from, end));
    let logins = (plan.logins_per_second > 0)
        .then(|| tokio::spawn(logins(base_url.to_owned(), plan.logins_per_second, end)));
    let mut clients = JoinSet::new();
    for index in 0..plan.clients {
        clients.spawn(one_client(
            client.clone(),
            url.clone(),
            inviter.clone(),
            format!("{}-{index}", plan.run_tag),
            measure_from,
            end,
        ));
    }
    let mut total = LoadResult {
        requests: 0,
        failures: 0,
        latency: histogram()?,
        window: plan.duration,
        accepted: Vec::new(),
        first_failure: None,
        logins: None,
        server_cpu: None,
        bench_cpu: None,
    };
    while let Some(joined) = clients.join_next().await {
        let result = joined.context("a load client panicked")??;
        total.requests += result.requests;
        total.failures += result.failures;
        total.latency.add(&result.latency)?;
        total.accepted.extend(result.accepted);
        if total.first_failure.is_none() {
            total.first_failure = result.first_failure;
        }
    }
    if let Some(logins) = logins {
        total.logins = Some(logins.await.context("the login task panicked")??);
    }
    (total.server_cpu, total.bench_cpu) = cpu.await.context("the CPU sampler panicked")?;
    Ok(total)
}

/// CPU time (user + system) of the server and of this process between `from` and `to`.
pub async fn cpu_over(
    server: Option<u32>,
    from: Instant,
    to: Instant,
) -> (Option<Duration>, Option<Duration>) {
    let sample = || {
        (
            server.and_then(|pid| cpu_time(&pid.to_string())),
            cpu_time("self"),
        )
    };
    tokio::time::sleep_until(from.into()).await;
    let before = sample();
    tokio::time::sleep_until(to.into()).await;
    let after = sample();
    let spent = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    (spent(before.0, after.0), spent(before.1, after.1))
}

/// utime + stime of a process, from `/proc/<pid>/stat`.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields that follow come after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_millis(ticks * 1000 / per_second))
}

async fn one_client(
    client: reqwest::Client,
    url: String,
    inviter: Inviter,
    tag: String,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<ClientResult> {
    let mut result = ClientResult {
        requests: 0,
        failures: 0,
        latency: histogram()?,
        accepted: Vec::new(),
        first_failure: None,
    };
    let mut sequence: u64 = 0;
    while Instant::now() < end {
        sequence += 1;
        let email = format!("i{tag}-{sequence}@bench.example");
        let body = format!(
            r#"{{"email":"{email}","first_name":"Ada","last_name":"Bench","projects_selected":[{{"id":{}}}]}}"#,
            inviter.project_id
        );
        let sent = Instant::now();
        let response = client
            .post(&url)
            .header(AUTHORIZATION, &inviter.authorization)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match response {
            // The body is read so the connection can be reused.
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await;
                match (status, body) {
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
        let done = Instant::now();
        if outcome.is_ok() {
            result.accepted.push(email);
        }
        if done < measure_from || done > end {
            continue;
        }
        result.requests += 1;
        let micros = u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
        result.latency.saturating_record(micros.max(1));
        if let Err(failure) = outcome {
            result.failures += 1;
            result.first_failure.get_or_insert(failure);
        }
    }
    Ok(result)
}

/// `rate` logins per second until `end`, each in its own task so that a slow one does not
/// lower the rate.
async fn logins(base_url: String, rate: u32, end: Instant) -> anyhow::Result<LoginResult> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the login client")?;
    let url = format!("{base_url}/{NAMESPACE}/api/session/");
    let body = format!(r#"{{"username":"{INVITER_EMAIL}","password":"{INVITER_PASSWORD}"}}"#);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut attempts = JoinSet::new();
    loop {
        ticks.tick().await;
        if Instant::now() >= end {
            break;
        }
        let request = client
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone());
        attempts.spawn(async move {
            let sent = Instant::now();
            let ok = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    response.bytes().await.is_ok() && status == StatusCode::OK
                }
                Err(_) => false,
            };
            (ok, sent.elapsed())
        });
    }
    let mut result = LoginResult {
        ok: 0,
        failed: 0,
        latency: histogram()?,
    };
    while let Some(joined) = attempts.join_next().await {
        let (ok, elapsed) = joined.context("a login task panicked")?;
        if ok {
            result.ok += 1;
        } else {
            result.failed += 1;
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        result.latency.saturating_record(micros.max(1));
    }
    Ok(result)
}
