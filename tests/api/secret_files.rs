//! Secrets from files, with the real binary: `CBH_DATABASE_URL_FILE` for every command and
//! `CBH_SMTP_URL_FILE` for `serve` (here an `smtps://` relay with a login, trusted through
//! `CBH_SMTP_CA_FILE`); a variable set together with its `_FILE` twin, or a file that cannot be
//! read, stops the command with one line naming the variable.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use smtp_sink::{Options, SmtpServer, TlsIdentity};

use crate::support::binary::{Server, run, stdout_of};
use crate::support::tls::TestCa;

const WAIT: Duration = Duration::from_secs(30);
const SMTP_PASSWORD: &str = "relay-secret-8c1f";

/// Writes `contents` to `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path.display().to_string()
}

/// A command of the binary with the database URL given by file; must succeed.
fn with_url_file(dir: &Path, url_file: &str, args: &[&str], stdin: Option<&str>) -> String {
    stdout_of(&run(
        dir,
        &[("CBH_DATABASE_URL_FILE", url_file.to_owned())],
        args,
        stdin,
    ))
}

#[tokio::test]
async fn serve_and_the_commands_read_their_secrets_from_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("secret.db");
    // One trailing newline, as `echo` or `systemd-creds` leave it.
    let url_file = write(
        dir.path(),
        "database-url",
        &format!("sqlite://{}\n", db.display()),
    );
    with_url_file(
        dir.path(),
        &url_file,
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--first-name",
            "Ada",
            "--password-stdin",
        ],
        Some("a good long password\n"),
    );
    let project = with_url_file(
        dir.path(),
        &url_file,
        &["project", "add", "--name", "Kinase screen"],
        None,
    );
    with_url_file(
        dir.path(),
        &url_file,
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
    );
    let key = with_url_file(
        dir.path(),
        &url_file,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    );
    assert!(
        db.exists(),
        "the commands did not use the URL from the file"
    );

    let ca = TestCa::new("relay CA");
    let cert = ca.server_cert();
    let smtp = SmtpServer::start_with(Options {
        tls: Some(TlsIdentity {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }),
        implicit_tls: true,
        auth: Some(("mailer".into(), SMTP_PASSWORD.into())),
        ..Options::default()
    })
    .await;
    let smtp_file = write(
        dir.path(),
        "smtp-url",
        &format!("smtps://mailer:{SMTP_PASSWORD}@127.0.0.1:{}\n", smtp.port),
    );
    let log = dir.path().join("serve.log");
    let server = Server::start(
        &[
            ("CBH_DATABASE_URL_FILE", url_file.clone()),
            ("CBH_SMTP_URL_FILE", smtp_file),
            (
                "CBH_SMTP_CA_FILE",
                ca.write(dir.path(), "ca.pem").display().to_string(),
            ),
        ],
        &log,
    )
    .await;
    let response = reqwest::Client::new()
        .post(format!("{}/chembiohub/api/invitations/", server.base))
        .header("authorization", format!("ApiKey ada@lab.example:{key}"))
        .json(&json!({"email": "bob@example.org", "projects_selected": [{"id": project.parse::<i64>().expect("id")}]}))
        .send()
        .await
        .expect("invite");
    assert_eq!(response.status(), 201);
    let mail = smtp.wait_for(1, WAIT).await.swap_remove(0);
    assert!(mail.tls);
    assert_eq!(mail.user.as_deref(), Some("mailer"));
    drop(server);
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(
        log.contains(&format!(
            "SMTP relay 127.0.0.1:{}, TLS (smtps), as mailer",
            smtp.port
        )),
        "{log}"
    );
    assert!(!log.contains(SMTP_PASSWORD), "the log shows the password");
}

#[tokio::test]
async fn a_variable_with_its_file_twin_or_an_unreadable_file_stops_the_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let url_file = write(dir.path(), "database-url", &url);
    let missing = dir.path().join("missing").display().to_string();
    let refused = |env: &[(&str, String)], args: &[&str], expected: &str| {
        let output = run(dir.path(), env, args, None);
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    refused(
        &[
            ("CBH_DATABASE_URL", url.clone()),
            ("CBH_DATABASE_URL_FILE", url_file.clone()),
        ],
        &["migrate"],
        "CBH_DATABASE_URL and CBH_DATABASE_URL_FILE are both set",
    );
    refused(
        &[("CBH_DATABASE_URL_FILE", missing.clone())],
        &["migrate"],
        "CBH_DATABASE_URL_FILE: cannot read",
    );
    let smtp_file = write(dir.path(), "smtp-url", "smtp://127.0.0.1:2525\n");
    refused(
        &[
            ("CBH_DATABASE_URL_FILE", url_file.clone()),
            ("CBH_SMTP_URL", "smtp://127.0.0.1:2525".to_owned()),
            ("CBH_SMTP_URL_FILE", smtp_file),
        ],
        &["serve"],
        "CBH_SMTP_URL and CBH_SMTP_URL_FILE are both set",
    );
    refused(
        &[
            ("CBH_DATABASE_URL_FILE", url_file.clone()),
            ("CBH_SMTP_URL_FILE", missing),
        ],
        &["serve"],
        "CBH_SMTP_URL_FILE: cannot read",
    );
    // CBH_SMTP_CA_FILE: only with a TLS relay, and a file of PEM certificates.
    let not_pem = write(dir.path(), "not-a-ca.pem", "hello\n");
    refused(
        &[
            ("CBH_DATABASE_URL_FILE", url_file.clone()),
            ("CBH_SMTP_URL", "smtp://127.0.0.1:2525".to_owned()),
            ("CBH_SMTP_CA_FILE", not_pem.clone()),
        ],
        &["serve"],
        "CBH_SMTP_CA_FILE (--smtp-ca-file): CBH_SMTP_URL uses no TLS",
    );
    refused(
        &[
            ("CBH_DATABASE_URL_FILE", url_file.clone()),
            ("CBH_SMTP_URL", "smtps://127.0.0.1:2525".to_owned()),
            ("CBH_SMTP_CA_FILE", not_pem),
        ],
        &["serve"],
        "holds no PEM certificate",
    );
    // Nothing was created on the way.
    assert!(!dir.path().join("x.db").exists());
    // The flag beats both.
    let flagged = dir.path().join("flag.db");
    let output = run(
        dir.path(),
        &[("CBH_DATABASE_URL_FILE", url_file)],
        &[
            "--database-url",
            &format!("sqlite://{}", flagged.display()),
            "migrate",
        ],
        None,
    );
    stdout_of(&output);
    assert!(flagged.exists() && !dir.path().join("x.db").exists());
}
