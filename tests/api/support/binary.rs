//! Running the real `cbh-invite` binary: its commands, and `serve` as a child process.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use cbh_invite::config::DatabaseUrl;

use crate::support::Backend;
use crate::support::postgres::TestDatabase;
use crate::support::wait::{free_port, until_ready};

pub const BIN: &str = env!("CARGO_BIN_EXE_cbh-invite");

/// How long a command, or `serve` after SIGTERM, may take to exit before the test fails: far
/// more than any needs, far less than the CI's whole budget.
pub const EXIT_WITHIN: Duration = Duration::from_secs(120);

/// A database of either backend for the binary's commands, and a folder for what they read and
/// write (the SQLite file, mail, logs, CSV files). The PostgreSQL database is dropped with it.
pub struct CommandDatabase {
    dir: tempfile::TempDir,
    pub url: String,
    _database: Option<TestDatabase>,
}

impl CommandDatabase {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("cbh.db").display()),
                None,
            ),
            Backend::Postgres => {
                let database = TestDatabase::create().await;
                (database.url.clone(), Some(database))
            }
        };
        Self {
            dir,
            url,
            _database: database,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Waits for a spawned command to exit and collects its output; kills it and fails when it
/// has not exited within `EXIT_WITHIN`.
pub fn output_of(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match exited.recv_timeout(EXIT_WITHIN) {
        Ok(output) => output.expect("binary exits"),
        Err(_) => {
            kill(pid);
            panic!("{what} did not exit within {EXIT_WITHIN:?}");
        }
    }
}

/// Runs `command` to its end (stdin closed), as `Command::output` but with a deadline.
pub fn output_within(command: &mut Command) -> Output {
    let what = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    output_of(child, &what)
}

/// Waits until `child` exits; kills it and fails when that takes longer than `EXIT_WITHIN`.
pub fn exit_status_within(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = std::time::Instant::now() + EXIT_WITHIN;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {EXIT_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to the process `pid`.
pub fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {pid}");
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Runs a command in `dir` with a clean environment plus `env`; returns its output whatever
/// its status.
pub fn run(dir: &Path, env: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    output_of(child, &format!("cbh-invite {args:?}"))
}

/// The standard output of a command that must have succeeded.
pub fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A command on the SQLite file `db` that must succeed; returns its standard output.
pub fn on_sqlite(db: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let dir = db.parent().unwrap_or(Path::new("."));
    let url = vec![("CBH_DATABASE_URL", format!("sqlite://{}", db.display()))];
    stdout_of(&run(dir, &url, args, stdin))
}

/// A command on the database of a test app (either backend) that must succeed; returns its
/// standard output.
pub fn on_database(database: &DatabaseUrl, args: &[&str]) -> String {
    let url = match database {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.clone(),
    };
    stdout_of(&run(
        &std::env::temp_dir(),
        &[("CBH_DATABASE_URL", url)],
        args,
        None,
    ))
}

/// `cbh-invite serve` as a child process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `serve` on a free port with a clean environment plus `env`, its log appended to
    /// `log`, and waits until it is ready.
    pub async fn start(env: &[(&str, String)], log: &Path) -> Self {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("CBH_LISTEN", format!("127.0.0.1:{port}"))
            .env("CBH_PUBLIC_URL", "http://invite.test.example")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log file"),
            )
            .spawn()
            .expect("serve starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        until_ready(
            &server.base,
            Duration::from_secs(20),
            &format!("serve becomes ready (its log: {})", log.display()),
        )
        .await;
        server
    }

    /// SIGTERM, then the exit status (a failure when it does not exit within `EXIT_WITHIN`).
    pub fn sigterm(&mut self) -> ExitStatus {
        sigterm(self.child.id());
        exit_status_within(&mut self.child, "serve after SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
