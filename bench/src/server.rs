//! The server under test: the release binary, set up through its own CLI commands and run as a
//! child process, so that its memory and start-up are its own and nothing of the benchmark is
//! linked into it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// Every command and start-up has a deadline: a hung server fails the run instead of the bench.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM gives the outbox worker up to 10 s to finish its sends; then a little slack.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

pub const NAMESPACE: &str = "chembiohub";
pub const INVITER_EMAIL: &str = "inviter@bench.example";
pub const INVITER_PASSWORD: &str = "a long benchmark password";

/// `target/release/cbh-invite`, built first when it is missing or older than its sources
/// (`cargo build` decides that, and does nothing when it is up to date).
pub fn release_binary() -> anyhow::Result<PathBuf> {
    let workspace = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "cbh-invite"])
        .current_dir(&workspace)
        .status()
        .context("running cargo build --release -p cbh-invite")?;
    if !status.success() {
        bail!("cargo build --release -p cbh-invite failed ({status})");
    }
    // The bench runs from the same target folder as the server it builds.
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let dir = exe
        .parent()
        .context("the bench executable has no folder")?
        .to_path_buf();
    let binary = dir.join("cbh-invite");
    if !binary.is_file() {
        bail!("{} is missing after cargo build", binary.display());
    }
    Ok(binary)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// What the load needs to call the API as the inviter.
#[derive(Debug, Clone)]
pub struct Inviter {
    pub authorization: String,
    pub project_id: i64,
}

/// Creates the inviter (an active user with a password, so it can also log in), a project it
/// owns, and an API key, through the real CLI commands.
pub async fn set_up(binary: &Path, database_url: &str) -> anyhow::Result<Inviter> {
    run_cli(
        binary,
        database_url,
        &[
            "user",
            "add",
            "--email",
            INVITER_EMAIL,
            "--first-name",
            "Bench",
            "--last-name",
            "Inviter",
            "--password-stdin",
        ],
        Some(INVITER_PASSWORD),
    )
    .await?;
    let project = run_cli(
        binary,
        database_url,
        &["project", "add", "--name", "Benchmark project"],
        None,
    )
    .await?;
    let project_id: i64 = project
        .trim()
        .parse()
        .with_context(|| format!("project add printed {project:?}, not an id"))?;
    run_cli(
        binary,
        database_url,
        &[
            "grant",
            "--email",
            INVITER_EMAIL,
            "--project",
            &project_id.to_string(),
            "--role",
            "owner",
        ],
        None,
    )
    .await?;
    let key = run_cli(
        binary,
        database_url,
        &["apikey", "create", "--email", INVITER_EMAIL],
        None,
    )
    .await?;
    Ok(Inviter {
        authorization: format!("ApiKey {INVITER_EMAIL}:{}", key.trim()),
        project_id,
    })
}

/// A command with the benchmark's environment: none of the caller's `CBH_*` or log settings,
/// so that a developer's shell cannot change what is measured.
fn command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        let inherited = name
            .to_str()
            .is_some_and(|n| n.starts_with("CBH_") || n == "RUST_LOG" || n == "RUST_BACKTRACE");
        if inherited {
            command.env_remove(&name);
        }
    }
    command.kill_on_drop(true);
    command
}

async fn run_cli(
    binary: &Path,
    database_url: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<String> {
    let mut command = command(binary);
    command
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(format!("{input}\n").as_bytes()).await?;
    }
    let output = tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("cbh-invite {} took over {CLI_TIMEOUT:?}", args.join(" ")))??;
    if !output.status.success() {
        bail!(
            "cbh-invite {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("the command printed something that is not UTF-8")
}

/// How to start `serve`.
pub struct ServeOptions<'a> {
    pub binary: &'a Path,
    pub database_url: &'a str,
    pub smtp_port: u16,
    /// Holds the log file and the `.eml` folder (unused with SMTP, but kept out of the tree).
    pub dir: &'a Path,
    /// Extra environment, e.g. `CBH_SQLITE_SYNC`.
    pub env: &'a [(&'a str, &'a str)],
}

/// A running `cbh-invite serve`; killed if dropped without `stop`.
pub struct Server {
    child: Child,
    pub base_url: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server and waits for `/readyz`; returns it with the time from spawn to ready.
    pub async fn start(options: &ServeOptions<'_>) -> anyhow::Result<(Self, Duration)> {
        let port = free_port()?;
        let base_url = format!("http://127.0.0.1:{port}");
        let log = options.dir.join(format!("serve-{port}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = command(options.binary);
        command
            .arg("--database-url")
            .arg(options.database_url)
            .arg("serve")
            .env("CBH_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "CBH_SMTP_URL",
                format!("smtp://127.0.0.1:{}", options.smtp_port),
            )
            .env("CBH_MAIL_DIR", options.dir.join("mail"))
            // One inviter sends the whole load: its hourly limit (200 by default) would turn
            // all but the first 200 requests into 429s.
            .env("CBH_INVITE_RATE", "off")
            .envs(options.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // To a file, not a pipe: a pipe nobody reads would block the server's logging.
            .stderr(log_file);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {} serve", options.binary.display()))?;
        let mut server = Server {
            child,
            base_url,
            log,
        };
        let ready = server.wait_ready(started).await?;
        Ok((server, ready))
    }

    async fn wait_ready(&mut self, started: Instant) -> anyhow::Result<Duration> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(0)
            .build()?;
        let url = format!("{}/readyz", self.base_url);
        while started.elapsed() < READY_TIMEOUT {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited during start-up ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!(
            "the server was not ready within {READY_TIMEOUT:?}; its log:\n{}",
            self.log_tail()
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The server's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("reading /proc/<pid>/status")?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .context("no VmHWM in /proc/<pid>/status")
    }

    /// SIGTERM and a graceful exit, as in production; SIGKILL after the deadline.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!(
                        "the server exited with {status} on SIGTERM; its log:\n{}",
                        self.log_tail()
                    );
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM")
            }
        }
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A port that was free a moment ago (the server binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
