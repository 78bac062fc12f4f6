//! Security and operations: throttling, sending limits, password changes, the audit log,
//! metrics, and SMTP faults that must end in the right delivery state.

use std::time::Duration;

use cbh_invite::config::Limit;
use cbh_invite::domain::Timestamp;
use serde_json::json;
use smtp_sink::Fault;

use crate::support::{Backend, NS, PASSWORD, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(15);

async fn login_status(
    app: &crate::support::TestApp,
    email: &str,
    password: &str,
) -> (u16, Option<String>) {
    let response = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": email, "password": password}),
        )
        .await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), retry_after)
}

async fn repeated_failed_logins_are_throttled_alike_for_known_and_unknown_accounts(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.limits.login_failures_per_account = Some(Limit {
            max: 3,
            window: Duration::from_secs(600),
        });
        s.limits.login_failures_per_client = None;
    })
    .await;
    app.add_user("ada@lab.example", "Ada", "", false).await;

    for account in ["ada@lab.example", "nobody@lab.example"] {
        for _ in 0..3 {
            assert_eq!(login_status(&app, account, "wrong password").await.0, 401);
        }
        let (status, retry_after) = login_status(&app, account, "wrong password").await;
        assert_eq!(status, 429, "{account}");
        let seconds: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
        assert!((1..=600).contains(&seconds));
    }
    // Even the right password waits out the throttle; another account is not affected.
    assert_eq!(login_status(&app, "ada@lab.example", PASSWORD).await.0, 429);
    app.add_user("bob@lab.example", "Bob", "", false).await;
    assert_eq!(login_status(&app, "bob@lab.example", PASSWORD).await.0, 200);
}

async fn failed_logins_from_one_client_are_throttled(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.login_failures_per_account = None;
        s.limits.login_failures_per_client = Some(Limit {
            max: 4,
            window: Duration::from_secs(600),
        });
    })
    .await;
    for i in 0..4 {
        let account = format!("guess{i}@lab.example");
        assert_eq!(login_status(&app, &account, "x").await.0, 401);
    }
    assert_eq!(login_status(&app, "guess9@lab.example", "x").await.0, 429);
}

async fn an_inviter_over_the_hourly_limit_gets_429_saying_which_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.invitations_per_inviter = Some(Limit {
            max: 3,
            window: Duration::from_secs(3_600),
        });
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    for i in 0..3 {
        json_with_status(
            editor
                .invite(json!({"email": format!("p{i}@example.org")}))
                .await,
            201,
        )
        .await;
    }

    let response = editor.invite(json!({"email": "p9@example.org"})).await;
    let retry_after = response.headers().get("retry-after").cloned();
    let body = json_with_status(response, 429).await;

    assert!(retry_after.is_some());
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Invitation limit reached") && error.contains("3 invitations"),
        "{error}"
    );
    assert_eq!(
        app.count_invitations().await,
        3,
        "the refused invitation was not stored"
    );
}

async fn reminders_cannot_flood_one_inbox(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.emails_per_recipient = Some(Limit {
            max: 2,
            window: Duration::from_secs(86_400),
        });
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    let remind = json!({"email": "bob@example.org", "remind": true});
    json_with_status(editor.invite(remind.clone()).await, 201).await;
    json_with_status(editor.invite(remind.clone()).await, 201).await;

    let body = json_with_status(editor.invite(remind).await, 429).await;

    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("Email limit reached for this address")),
        "{body}"
    );
    // Another address is not limited.
    json_with_status(
        editor.invite(json!({"email": "carol@example.org"})).await,
        201,
    )
    .await;
}

async fn a_password_change_ends_the_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("ada@lab.example", "Ada", "", false).await;
    let here = app.login("ada@lab.example", PASSWORD).await;
    let elsewhere = app.login("ada@lab.example", PASSWORD).await;
    let path = format!("/{NS}/api/session/password/");

    let wrong = here
        .post(
            &path,
            &json!({"old_password": "not it", "new_password": "a brand new password"}),
        )
        .await;
    assert_eq!(wrong.status(), 403);
    let short = here
        .post(
            &path,
            &json!({"old_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(short.status(), 400);
    let changed = here
        .post(
            &path,
            &json!({"old_password": PASSWORD, "new_password": "a brand new password"}),
        )
        .await;
    assert_eq!(changed.status(), 200);

    json_with_status(here.get(&format!("/{NS}/api/session/")).await, 200).await;
    json_with_status(elsewhere.get(&format!("/{NS}/api/session/")).await, 401).await;
    assert_eq!(login_status(&app, "ada@lab.example", PASSWORD).await.0, 401);
    assert_eq!(
        login_status(&app, "ada@lab.example", "a brand new password")
            .await
            .0,
        200
    );
}

async fn security_events_are_in_the_audit_log(backend: Backend) {
    let app = spawn_app(backend).await;
    let started = Timestamp::now();
    let (editor, _) = app.editor_with_project().await;
    assert_eq!(login_status(&app, "ada@lab.example", "wrong").await.0, 401);
    assert_eq!(login_status(&app, "ada@lab.example", PASSWORD).await.0, 200);
    let (created, mail) = app
        .invite_and_wait_for_mail(&editor, json!({"email": "bob@example.org"}), WAIT)
        .await;
    let token = mail.accept_token().expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;

    let events = app.store.audit_since(started, 100).await.expect("audit");
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for expected in [
        "login_failed",
        "login_succeeded",
        "invitation_created",
        "invitation_accepted",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let created_event = events
        .iter()
        .find(|e| e.event == "invitation_created")
        .expect("created");
    assert_eq!(
        created_event.actor_email.as_deref(),
        Some("ada@lab.example")
    );
    assert_eq!(
        created_event.subject,
        created["id"].as_i64().map(|id| id.to_string())
    );
    assert_eq!(created_event.client_ip.as_deref(), Some("127.0.0.1"));
    let failed = events
        .iter()
        .find(|e| e.event == "login_failed")
        .expect("failed");
    assert_eq!(failed.subject.as_deref(), Some("ada@lab.example"));
    assert!(
        events
            .iter()
            .all(|e| e.detail.as_deref().is_none_or(|d| !d.contains(&token))),
        "no secret in the audit log"
    );
}

async fn metrics_count_invitations_emails_and_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    app.smtp.wait_for(1, WAIT).await;

    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let text = app
            .anonymous()
            .get("/metrics")
            .await
            .text()
            .await
            .expect("text");
        if text.contains("cbh_emails_sent_total 1") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sent email never counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains("cbh_invitations_created_total 1"), "{text}");
    assert!(text.contains("# TYPE cbh_outbox_depth gauge"));
    assert!(text.contains("cbh_outbox_depth 0"), "{text}");
    assert!(text.contains("cbh_outbox_oldest_age_seconds"));
    assert!(
        text.contains(
            "cbh_http_requests_total{route=\"/{ns}/api/invitations/\",method=\"POST\",status=\"201\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("cbh_http_request_duration_seconds_bucket{route=\"/{ns}/api/invitations/\",method=\"POST\",status=\"201\",le=\"+Inf\"} 1"));
}

/// Each SMTP fault ends in a retry (the message is still queued, with the error recorded),
/// and the worker is not stuck: once the server behaves, the message goes out.
async fn smtp_faults_are_retried_and_no_worker_hangs(backend: Backend) {
    for fault in [
        Fault::SilentGreeting,
        Fault::StallAfterData,
        Fault::DropInData,
    ] {
        let app = spawn_app_with(backend, |s| {
            s.delivery.smtp_timeout = Duration::from_millis(700);
        })
        .await;
        app.smtp.set_fault(Some(fault));
        let (editor, _) = app.editor_with_project().await;
        let created = json_with_status(
            editor.invite(json!({"email": "bob@example.org"})).await,
            201,
        )
        .await;
        let id = created["id"].as_i64().expect("id");

        let failing = app
            .wait_for_invitation(&editor, id, WAIT, |inv| {
                inv["delivery"]["attempts"].as_i64().unwrap_or(0) >= 1
                    && inv["delivery"]["last_error"].is_string()
            })
            .await;
        assert_eq!(
            failing["delivery"]["status"], "queued",
            "{fault:?}: retried later"
        );

        app.smtp.set_fault(None);
        app.smtp.wait_for(1, WAIT).await;
        app.wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
            .await;
    }
}

async fn a_421_reply_is_temporary(backend: Backend) {
    let app = spawn_app(backend).await;
    app.smtp
        .set_data_reply(Some("421 4.3.2 service shutting down"));
    let (editor, _) = app.editor_with_project().await;
    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let retrying = app
        .wait_for_invitation(&editor, id, WAIT, |inv| {
            inv["delivery"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("421"))
        })
        .await;
    assert_eq!(retrying["delivery"]["status"], "queued");
    app.smtp.set_data_reply(None);
    app.wait_for_invitation(&editor, id, WAIT, |inv| inv["delivery"]["status"] == "sent")
        .await;
}

backend_tests!(
    repeated_failed_logins_are_throttled_alike_for_known_and_unknown_accounts,
    failed_logins_from_one_client_are_throttled,
    an_inviter_over_the_hourly_limit_gets_429_saying_which_limit,
    reminders_cannot_flood_one_inbox,
    a_password_change_ends_the_other_sessions,
    security_events_are_in_the_audit_log,
    metrics_count_invitations_emails_and_requests,
    smtp_faults_are_retried_and_no_worker_hangs,
    a_421_reply_is_temporary,
);
