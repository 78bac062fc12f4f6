//! A PostgreSQL cluster of a test's own, started with the server programs of Debian's
//! `postgresql` package, for the tests that stop and restart the database.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::postgres::{PostgresLeg, announce_skip, postgres_leg};
use crate::support::tls::ServerCert;
use crate::support::wait::free_port;

/// A PostgreSQL cluster of the test's own, in a temporary folder, that it may stop and restart
/// without disturbing other tests.
pub struct Cluster {
    pub control: ClusterControl,
    _dir: tempfile::TempDir,
}

/// What it takes to start and stop the cluster (cheap to hand to another thread).
#[derive(Clone)]
pub struct ClusterControl {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Cluster {
    /// Starts a cluster with the server programs of Debian's `postgresql` package. Without
    /// them the test fails, or with `CBH_TEST_POSTGRES=skip` it is announced as skipped and
    /// this returns `None`.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_configured(test, |_| {})
    }

    /// A cluster serving TLS (`ssl = on`) with `server`'s certificate and key.
    pub fn start_with_tls(test: &str, server: &ServerCert) -> Option<Self> {
        Self::start_configured(test, |control| {
            control.write_owned("server.crt", &server.cert_pem, 0o644);
            // PostgreSQL refuses a key that others may read.
            control.write_owned("server.key", &server.key_pem, 0o600);
            let conf = control.data.join("postgresql.conf");
            let mut settings = std::fs::read_to_string(&conf).expect("postgresql.conf");
            settings.push_str("\nssl = on\n");
            std::fs::write(&conf, settings).expect("postgresql.conf");
        })
    }

    /// Runs `configure` between initdb and the server's start.
    fn start_configured(test: &str, configure: impl FnOnce(&ClusterControl)) -> Option<Self> {
        let Some(bin) = postgres_bin_dir() else {
            let why = "initdb is not installed (no /usr/lib/postgresql/*/bin/initdb)";
            match postgres_leg() {
                PostgresLeg::Skip => {
                    announce_skip(test, why);
                    return None;
                }
                PostgresLeg::Required => panic!(
                    "PostgreSQL is required and {why}: apt-get install postgresql (.ci/run \
                     does), or set CBH_TEST_POSTGRES=skip to skip the PostgreSQL tests"
                ),
            }
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let port = free_port();
        let control = ClusterControl { bin, data, port };
        control.chown_to_postgres(dir.path());
        control.run(
            "initdb",
            &[
                "-D",
                &control.data_str(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        configure(&control);
        control.start_server();
        Some(Self { control, _dir: dir })
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.control.port
        )
    }

    pub fn start_server(&self) {
        self.control.start_server();
    }

    pub fn stop_server(&self) {
        self.control.stop_server();
    }
}

/// The newest installed PostgreSQL's programs folder, as Debian lays them out.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    bins.sort_by_key(|bin| {
        bin.parent()
            .and_then(|version| version.file_name())
            .and_then(|version| version.to_str())
            .and_then(|version| version.parse::<u32>().ok())
    });
    bins.pop()
}

impl ClusterControl {
    fn data_str(&self) -> String {
        self.data.display().to_string()
    }

    /// PostgreSQL refuses to run as root: as root, run its programs as the postgres user.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let status = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .stdout(Stdio::null())
                .status()
        } else {
            Command::new(&path)
                .args(args)
                .stdout(Stdio::null())
                .status()
        }
        .expect("PostgreSQL program runs");
        assert!(status.success(), "{program} {args:?} failed");
    }

    /// Writes a file into the data folder, owned by the user the server runs as.
    fn write_owned(&self, name: &str, contents: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data.join(name);
        std::fs::write(&path, contents).expect("write into the data folder");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        self.chown_to_postgres(&path);
    }

    fn chown_to_postgres(&self, path: &Path) {
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres", &path.display().to_string()])
                .status()
                .expect("chown runs");
            assert!(status.success());
        }
    }

    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data_str()
        );
        let log = self.data.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_str(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    pub fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data_str(), "-m", "fast", "-w", "stop"],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = self.control.bin.join("pg_ctl");
        let data = self.control.data_str();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        } else {
            Command::new(&path)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
