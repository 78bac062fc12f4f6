//! Email that arrives (issue 17), on the real binary: `dkim keygen` makes a key and prints its
//! TXT record, `serve` signs every message with it, and an independent verifier (dkimpy) accepts
//! the message as the relay received it, and refuses it once one byte of the body changed.
//! `mail test` signs too. Every message says `Auto-Submitted: auto-generated` and has its
//! Message-ID at the sender's domain. A key that cannot be read stops `serve`; `check` says what
//! it signs as.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::binary::{Server, on_sqlite, run, stdout_of};
use crate::support::dkim::verifies;
use crate::support::smtp::SmtpServer;

const WAIT: Duration = Duration::from_secs(30);
const FROM: &str = "Lab invitations <invite@lab.example>";

/// `dkim keygen`: the key file and the record name and value it printed.
fn keygen(dir: &Path, algorithm: &str) -> (String, String, String) {
    let key = dir.join(format!("{algorithm}.pem"));
    let out = stdout_of(&run(
        dir,
        &[("CBH_MAIL_FROM", FROM.to_owned())],
        &[
            "dkim",
            "keygen",
            "--selector",
            "s2026",
            "--out",
            &key.display().to_string(),
            "--algorithm",
            algorithm,
        ],
        None,
    ));
    let (name, rest) = out.split_once(" IN TXT ").expect("a TXT record line");
    let record = rest.trim().trim_matches('"').to_owned();
    (key.display().to_string(), name.to_owned(), record)
}

/// One byte of the body (after the blank line) changed: a letter, as whitespace may change
/// under relaxed canonicalization.
fn flip_body_byte(message: &[u8]) -> Vec<u8> {
    let body = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a body")
        + 4;
    let at = body
        + message[body..]
            .iter()
            .rposition(u8::is_ascii_alphabetic)
            .expect("a letter in the body");
    let mut changed = message.to_vec();
    changed[at] = if changed[at] == b'x' { b'y' } else { b'x' };
    changed
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\r\n\r\n").next().expect("headers");
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn signed_messages_verify_independently_and_not_once_the_body_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let db = d.join("dkim.db");
    on_sqlite(
        &db,
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
    let project = on_sqlite(&db, &["project", "add", "--name", "Kinase screen"], None);
    on_sqlite(
        &db,
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
    let api_key = on_sqlite(
        &db,
        &["apikey", "create", "--email", "ada@lab.example"],
        None,
    );
    let smtp = SmtpServer::start().await;

    for (n, algorithm) in ["rsa", "ed25519"].into_iter().enumerate() {
        let (key_file, name, record) = keygen(d, algorithm);
        assert_eq!(name, "s2026._domainkey.lab.example.");
        let k = if algorithm == "rsa" { "rsa" } else { "ed25519" };
        assert!(
            record.starts_with(&format!("v=DKIM1; k={k}; p=")),
            "{record}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key_file)
                .expect("key file")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "the key is readable by others");

        let env = [
            ("CBH_DATABASE_URL", format!("sqlite://{}", db.display())),
            ("CBH_SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port)),
            ("CBH_MAIL_FROM", FROM.to_owned()),
            ("CBH_DKIM_KEY_FILE", key_file.clone()),
            ("CBH_DKIM_SELECTOR", "s2026".to_owned()),
        ];
        // Off the test's runtime, which meanwhile serves the SMTP sink that check talks to.
        let check = {
            let (d, env) = (d.to_owned(), env.clone());
            tokio::task::spawn_blocking(move || stdout_of(&run(&d, &env, &["check"], None)))
                .await
                .expect("check ran")
        };
        assert!(
            check.lines().any(|l| l
                == format!(
                    "ok   dkim: signing as s2026._domainkey.lab.example ({algorithm}-sha256)"
                )),
            "{check}"
        );

        let server = Server::start(&env, &d.join("serve.log")).await;
        let response = reqwest::Client::new()
            .post(format!("{}/chembiohub/api/invitations/", server.base))
            .header("authorization", format!("ApiKey ada@lab.example:{api_key}"))
            .json(&json!({
                "email": format!("bob{n}@example.org"),
                "projects_selected": [{"id": project.parse::<i64>().expect("id")}],
            }))
            .send()
            .await
            .expect("invite");
        assert_eq!(response.status(), 201);
        let mail = smtp.wait_for(2 * n + 1, WAIT).await.swap_remove(2 * n);
        drop(server);

        let raw = mail.data.as_bytes();
        assert!(
            header(&mail.data, "DKIM-Signature").is_some_and(
                |v| v.contains(&format!("a={algorithm}-sha256; d=lab.example; s=s2026;"))
            ),
            "{}",
            mail.data
        );
        assert_eq!(header(&mail.data, "Auto-Submitted"), Some("auto-generated"));
        let message_id = header(&mail.data, "Message-ID").expect("a Message-ID");
        assert!(message_id.ends_with("@lab.example>"), "{message_id}");
        assert!(
            verifies(raw, &name, &record),
            "dkimpy refuses the {algorithm} signature:\n{}",
            mail.data
        );
        assert!(
            !verifies(&flip_body_byte(raw), &name, &record),
            "dkimpy accepts a changed body ({algorithm})"
        );

        // `mail test` signs as serve does.
        let sent = {
            let (d, env) = (d.to_owned(), env.clone());
            tokio::task::spawn_blocking(move || {
                stdout_of(&run(
                    &d,
                    &env,
                    &["mail", "test", "--to", "carol@example.org"],
                    None,
                ))
            })
            .await
            .expect("mail test ran")
        };
        assert!(sent.starts_with("250"), "{sent}");
        let test_mail = smtp.wait_for(2 * n + 2, WAIT).await.swap_remove(2 * n + 1);
        assert_eq!(test_mail.rcpt_to, ["carol@example.org"]);
        assert_eq!(
            header(&test_mail.data, "Auto-Submitted"),
            Some("auto-generated")
        );
        assert!(
            header(&test_mail.data, "Message-ID").is_some_and(|id| id.ends_with("@lab.example>")),
            "{}",
            test_mail.data
        );
        assert!(
            verifies(test_mail.data.as_bytes(), &name, &record),
            "dkimpy refuses mail test's {algorithm} signature:\n{}",
            test_mail.data
        );
    }
}

#[tokio::test]
async fn a_key_that_cannot_be_read_stops_serve_in_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let not_a_key = d.join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello\n").expect("write");
    for key_file in [d.join("missing.pem"), not_a_key] {
        let output = run(
            d,
            &[
                (
                    "CBH_DATABASE_URL",
                    format!("sqlite://{}", d.join("x.db").display()),
                ),
                ("CBH_MAIL_FROM", FROM.to_owned()),
                ("CBH_DKIM_KEY_FILE", key_file.display().to_string()),
                ("CBH_DKIM_SELECTOR", "s1".to_owned()),
            ],
            &["serve"],
            None,
        );
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("CBH_DKIM_KEY_FILE (--dkim-key-file)"),
            "{stderr}"
        );
        assert!(
            !d.join("x.db").exists(),
            "serve went on to open the database"
        );
    }
}
