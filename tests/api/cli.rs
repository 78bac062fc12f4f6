//! The real binary: the CLI commands, `serve` on the embedded default (mail to .eml files), a
//! bad setting, and SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::binary::{
    BIN, exit_status_within, output_of, output_within, run, sigterm, stdout_of,
};
use crate::support::wait::{free_port, until_ready};

fn cbh(dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    run(dir, &[], args, stdin)
}

#[tokio::test]
async fn the_cli_sets_up_users_projects_and_keys_that_serve_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();

    let user_id = stdout_of(&cbh(
        d,
        &[
            "user",
            "add",
            "--email",
            "Ada@Lab.example",
            "--first-name",
            "Ada",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    ));
    assert!(user_id.parse::<i64>().is_ok(), "prints the id: {user_id}");
    let project = stdout_of(&cbh(
        d,
        &["project", "add", "--name", "Kinase screen"],
        None,
    ));
    let project_id: i64 = project.parse().expect("project add prints only the id");
    stdout_of(&cbh(
        d,
        &[
            "grant",
            "--email",
            "ada@lab.example",
            "--project",
            &project,
            "--role",
            "editor",
        ],
        None,
    ));
    let key = stdout_of(&cbh(
        d,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    ));
    assert_eq!(key.len(), 43, "apikey create prints only the key");

    // Errors are one clear line with a non-zero status.
    let duplicate = cbh(d, &["user", "add", "--email", "ada@LAB.example"], None);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    let bad_role = cbh(
        d,
        &[
            "grant",
            "--email",
            "ada@lab.example",
            "--project",
            &project,
            "--role",
            "god",
        ],
        None,
    );
    assert!(!bad_role.status.success());
    let short = cbh(
        d,
        &[
            "user",
            "add",
            "--email",
            "b@lab.example",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10"));

    // serve on the embedded defaults: SQLite file in the folder, mail to ./mail/*.eml.
    let port = free_port();
    let server = Command::new(BIN)
        .arg("serve")
        .current_dir(d)
        .env_clear()
        .env("CBH_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let base = format!("http://127.0.0.1:{port}");
    until_ready(&base, Duration::from_secs(20), "serve becomes ready").await;
    let client = crate::support::agent::client();
    let response = client
        .post(format!("{base}/chembiohub/api/invitations/"))
        .header("authorization", format!("ApiKey ada@lab.example:{key}"))
        .json(&json!({"email": "bob@example.org", "projects_selected": [{"id": project_id}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);

    let mail_dir = d.join("mail");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let eml = loop {
        let found = std::fs::read_dir(&mail_dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(path) = found {
            break std::fs::read_to_string(path).expect("read eml");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no .eml file was written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(eml.contains("bob@example.org"));
    assert!(
        eml.contains(&format!("{base}/chembiohub/accept/")),
        "link uses the default public URL"
    );
    assert!(d.join("cbh-invite.db").exists());

    // SIGTERM: a clean exit.
    sigterm(server.id());
    let exit = tokio::task::spawn_blocking(move || {
        let output = output_of(server, "serve after SIGTERM");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("join");
    assert!(
        exit.0.success(),
        "serve exits 0 on SIGTERM: {:?} {}",
        exit.0,
        exit.1
    );
    assert!(
        exit.1.contains(".eml"),
        "serve says where mail goes: {}",
        exit.1
    );
    assert!(
        !exit.1.contains("/setup/"),
        "no setup link once the namespace has a user: {}",
        exit.1
    );
}

#[tokio::test]
async fn serve_prints_a_one_time_setup_url_while_the_namespace_has_no_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut server = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("CBH_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = server.stderr.take().expect("stderr");
    let (lines, found) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let prefix = format!("http://127.0.0.1:{port}/chembiohub/setup/");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let url = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = found
            .recv_timeout(left)
            .expect("serve logged a setup URL in time");
        if let Some(at) = line.find(&prefix) {
            let url: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ":/._-".contains(*c))
                .collect();
            break url;
        }
    };

    let page = crate::support::agent::client()
        .get(&url)
        .send()
        .await
        .expect("setup page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("Set up"));

    sigterm(server.id());
    exit_status_within(&mut server, "serve after SIGTERM");
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (var, value) in [
        ("CBH_INVITE_TTL", "7 days"),
        ("CBH_LISTEN", "nowhere"),
        ("CBH_SMTP_URL", "http://mail"),
        ("CBH_PUBLIC_URL", "ftp://x"),
        ("CBH_DATABASE_URL", "mysql://x"),
        ("CBH_SMTP_MAX_ATTEMPTS", "0"),
        ("CBH_APP_URL", "javascript:alert(1)"),
        ("CBH_WEBHOOK_TIMEOUT", "10"),
        ("CBH_WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("CBH_LINK_SHARING", "everyone"),
    ] {
        let output = output_within(
            Command::new(BIN)
                .arg("serve")
                .current_dir(dir.path())
                .env_clear()
                .env(var, value),
        );
        assert_eq!(output.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{var}: {stderr}");
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

#[test]
fn migrate_creates_the_database_named_by_the_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = output_within(
        Command::new(BIN)
            .args(["migrate", "--database-url", "sqlite://nested/folder/x.db"])
            .current_dir(dir.path())
            .env_clear(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("nested/folder/x.db").exists());
}
