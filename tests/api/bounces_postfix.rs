//! A bounce that a real mail server makes: the application sends through a Postfix of the
//! test's own (`support::postfix`) to an unknown local user; Postfix accepts the message, fails
//! to deliver it, and sends its own delivery status notification to the VERP envelope sender,
//! which its pipe service (the README's lines) hands to the real `cbh-invite bounce`. The
//! invitation shows `bounced` and its creator is told.

use std::os::unix::fs::PermissionsExt;

use cbh_invite::config::DatabaseUrl;
use serde_json::json;

use crate::bounces::{BOUNCES, WAIT, bounce_env};
use crate::support::postfix::Postfix;
use crate::support::wait::free_port;
use crate::support::{Backend, json_with_status, spawn_app_with};

/// The pipe runs as an unprivileged user: a SQLite database must be writable by it (with
/// PostgreSQL it connects over TCP like any client).
fn open_to_the_pipe(database: &DatabaseUrl) {
    if let DatabaseUrl::Sqlite(path) = database {
        let folder = path.parent().expect("folder");
        let open = |path: &std::path::Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        };
        open(folder, 0o777);
        for entry in std::fs::read_dir(folder).expect("folder") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                open(&entry.path(), 0o666);
            }
        }
    }
}

async fn a_real_postfix_bounces_an_unknown_user_back_through_the_pipe(backend: Backend) {
    let postfix_port = free_port();
    // Invitations go to Postfix; the creator's notice (sent by `cbh-invite bounce`) to the
    // app's own SMTP server, where the test reads it.
    let app = spawn_app_with(backend, |settings| {
        settings.delivery.bounce_address = Some(BOUNCES.parse().expect("address"));
        if let Some(smtp) = settings.smtp.as_mut() {
            smtp.port = postfix_port;
        }
    })
    .await;
    open_to_the_pipe(&app.settings.database);
    let mail_dir = tempfile::tempdir().expect("temp dir");
    let postfix = Postfix::start(postfix_port, &bounce_env(&app, mail_dir.path())).await;
    let (editor, _) = app.editor_with_project().await;

    let created = json_with_status(
        editor
            .invite(json!({"email": "nobody-here@lab.example", "first_name": "Nobody"}))
            .await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    let bounced = loop {
        let invitation = app.invitation(&editor, id).await;
        if invitation["delivery"]["status"] == "bounced" {
            break invitation;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the invitation never bounced: {invitation:#}\nPostfix's log:\n{}",
            postfix.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // The pipe logs its delivery once the command has exited (after the notice below).
    let piped = "relay=cbh-bounce";
    loop {
        let log = postfix.log();
        if log
            .lines()
            .any(|l| l.contains(piped) && l.contains("status=sent"))
        {
            assert!(
                log.contains("from=<bounces+"),
                "the message went out from its VERP address:\n{log}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Postfix never piped its report to cbh-invite bounce:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        bounced["delivery"]["last_error"], "unknown user: \"nobody-here\"",
        "{bounced:#}"
    );
    let notice = app
        .smtp
        .wait_for(1, WAIT)
        .await
        .into_iter()
        .find(|m| m.rcpt_to == ["ada@lab.example"])
        .expect("the creator's notice");
    assert_eq!(
        notice.subject(),
        "Your invitation to nobody-here@lab.example could not be delivered"
    );
    assert!(
        notice.text().contains("the address does not exist"),
        "{}",
        notice.text()
    );
}

backend_tests!(a_real_postfix_bounces_an_unknown_user_back_through_the_pipe);
