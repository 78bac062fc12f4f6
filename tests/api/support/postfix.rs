//! A real Postfix (Debian's `postfix` package; `scripts/test-env` installs it without a system
//! configuration or a running daemon) as an instance of the test's own: `postfix -c DIR` with
//! its configuration, queue and log in a temporary folder, SMTP on a free loopback port, local
//! delivery for `lab.example`, and the README's pipe service for `bounces+…@lab.example` running
//! the real `cbh-invite bounce`. Needs root (Postfix's master runs as root and drops to its
//! users). Stopped when dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::binary::{BIN, output_within};

const POSTFIX: &str = "/usr/sbin/postfix";
/// The user the pipe runs `cbh-invite bounce` as: Postfix runs no pipe as root.
pub const PIPE_USER: &str = "nobody";

pub struct Postfix {
    dir: tempfile::TempDir,
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

impl Postfix {
    /// Starts an instance on `port` whose pipe runs `cbh-invite bounce` with `env` (the
    /// README's environment file).
    pub async fn start(port: u16, env: &[(&str, String)]) -> Self {
        assert!(
            Path::new(POSTFIX).exists(),
            "{POSTFIX} is missing: apt-get install postfix (scripts/test-env installs it)"
        );
        let uid = output_within(Command::new("id").arg("-u"));
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "a Postfix instance of the test's own needs root"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        // Postfix's daemons (user postfix) and the pipe (nobody) reach into it.
        chmod(dir.path(), 0o755);
        let root = dir.path().to_path_buf();
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir(root.join(sub)).expect("mkdir");
        }
        let chown = output_within(Command::new("chown").arg("postfix").arg(root.join("data")));
        assert!(chown.status.success(), "chown postfix: {chown:?}");
        let env_file = root.join("bounce.env");
        let lines: String = env
            .iter()
            .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', "'\\''")))
            .collect();
        std::fs::write(&env_file, lines).expect("environment file");
        chmod(&env_file, 0o644);
        std::fs::write(root.join("etc/main.cf"), main_cf(&root)).expect("main.cf");
        std::fs::write(root.join("etc/master.cf"), master_cf(port, &env_file)).expect("master.cf");
        // The README's transport map.
        std::fs::write(
            root.join("etc/transport"),
            "bounces@lab.example    cbh-bounce:\n",
        )
        .expect("transport");
        let config = root.join("etc");
        let postmap = output_within(
            Command::new("/usr/sbin/postmap")
                .arg("-c")
                .arg(&config)
                .arg(format!("hash:{}", root.join("etc/transport").display())),
        );
        assert!(postmap.status.success(), "postmap: {postmap:?}");
        let started = output_within(Command::new(POSTFIX).arg("-c").arg(&config).arg("start"));
        let postfix = Self { dir };
        assert!(
            started.status.success(),
            "postfix start: {started:?}\nits log:\n{}",
            postfix.log()
        );
        crate::support::wait::until("Postfix listens", Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        postfix
    }

    /// Postfix's log (`maillog_file`), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("stop")
            .output();
    }
}

/// `lab.example` is Postfix's own domain, delivered locally; any recipient is accepted at SMTP
/// time (`local_recipient_maps` empty), so an unknown user is bounced after the relay accepted
/// the message, as a remote server would. Nothing leaves the machine.
fn main_cf(root: &Path) -> String {
    let root = root.display();
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {root}/queue\n\
         data_directory = {root}/data\n\
         meta_directory = /etc/postfix\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = mx.lab.example\n\
         mydomain = lab.example\n\
         myorigin = lab.example\n\
         mydestination = lab.example\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
         local_recipient_maps =\n\
         alias_maps =\n\
         alias_database =\n\
         recipient_delimiter = +\n\
         transport_maps = hash:{root}/etc/transport\n\
         default_transport = error:this test's Postfix sends nothing out\n\
         relayhost =\n\
         biff = no\n\
         smtputf8_enable = no\n\
         maillog_file = {root}/maillog\n\
         maillog_file_prefixes = {root}\n"
    )
}

/// The daemons a local delivery and its bounce need, none chrooted, and the README's pipe
/// service with the binary under test and the test's environment file.
fn master_cf(port: u16, env_file: &Path) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         cleanup   unix  n - n - 0 cleanup\n\
         qmgr      unix  n - n 300 1 qmgr\n\
         rewrite   unix  - - n - - trivial-rewrite\n\
         bounce    unix  - - n - 0 bounce\n\
         defer     unix  - - n - 0 bounce\n\
         trace     unix  - - n - 0 bounce\n\
         verify    unix  - - n - 1 verify\n\
         flush     unix  n - n 1000 0 flush\n\
         proxymap  unix  - - n - - proxymap\n\
         proxywrite unix - - n - 1 proxymap\n\
         smtp      unix  - - n - - smtp\n\
         relay     unix  - - n - - smtp\n\
         showq     unix  n - n - - showq\n\
         error     unix  - - n - - error\n\
         retry     unix  - - n - - error\n\
         discard   unix  - - n - - discard\n\
         local     unix  - n n - - local\n\
         anvil     unix  - - n - 1 anvil\n\
         scache    unix  - - n - 1 scache\n\
         postlog   unix-dgram n - n - 1 postlogd\n\
         cbh-bounce unix - n n - - pipe\n\
         \x20 flags=q user={PIPE_USER} argv=/bin/sh -c {{ set -a; . {env}; exec {BIN} bounce --recipient \"$$0\" }} ${{recipient}}\n",
        env = env_file.display()
    )
}
