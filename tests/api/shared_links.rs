//! Shareable links (`CBH_LINK_SHARING`): `return_link` hands the accept link back once, in the
//! 201 only; `send_email: false` creates an invitation without its email, which a later resend
//! sends; who may do either is the setting's to decide.

use std::time::Duration;

use cbh_invite::config::{Limit, LinkSharing};
use cbh_invite::domain::Timestamp;
use serde_json::{Value, json};

use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

async fn superuser(app: &TestApp) -> Agent {
    let root = app
        .add_user("root@lab.example", "Root", "Admin", true)
        .await;
    app.api_key_agent(&root).await
}

/// The token at the end of an accept link handed out by the API.
fn token_of(app: &TestApp, accept_url: &str) -> String {
    let prefix = format!("{}/{NS}/accept/", app.public_url);
    accept_url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{accept_url} does not start with {prefix}"))
        .to_owned()
}

async fn audit_events(app: &TestApp) -> Vec<(String, Option<String>, String)> {
    app.store
        .audit_since(Timestamp(0), 1000)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| {
            let whole = format!("{r:?}");
            (r.event, r.subject, whole)
        })
        .collect()
}

async fn sharing_is_refused_with_a_403_naming_the_setting_when_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let root = superuser(&app).await;
    for agent in [&editor, &root] {
        for body in [
            json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}], "return_link": true}),
            json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}], "send_email": false}),
        ] {
            let refused = json_with_status(agent.invite(body).await, 403).await;
            assert!(error_of(&refused).contains("CBH_LINK_SHARING"), "{refused}");
        }
    }
    assert_eq!(app.count_invitations().await, 0);
    // Asking for no link is no sharing: allowed as ever.
    json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "return_link": false, "send_email": true}))
            .await,
        201,
    )
    .await;
}

async fn a_superuser_gets_the_link_once_and_it_activates_the_invitee(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.link_sharing = LinkSharing::Superusers).await;
    let (editor, project) = app.editor_with_project().await;
    let root = superuser(&app).await;
    let body = json!({
        "email": "bob@example.org",
        "projects_selected": [{"id": project.0}],
        "return_link": true,
    });

    let refused = json_with_status(editor.invite(body.clone()).await, 403).await;
    assert!(error_of(&refused).contains("CBH_LINK_SHARING"), "{refused}");
    assert_eq!(app.count_invitations().await, 0);

    // The link's host is the configured public URL's, whatever the request says.
    let response = root
        .request(reqwest::Method::POST, &format!("/{NS}/api/invitations/"))
        .header("idempotency-key", "once")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .json(&body)
        .send()
        .await
        .expect("request");
    let created = json_with_status(response, 201).await;
    let id = created["id"].as_i64().expect("id");
    let accept_url = created["accept_url"]
        .as_str()
        .expect("accept_url")
        .to_owned();
    let token = token_of(&app, &accept_url);
    assert_eq!(created["delivery"]["status"], "queued", "{created}");

    // The email still goes, with the very same link.
    let mail = app.smtp.wait_for(1, WAIT).await.swap_remove(0);
    assert_eq!(mail.accept_link().as_deref(), Some(accept_url.as_str()));

    // Never again: not in the invitation, the list, or a replay of the same request.
    let shown = app.invitation(&root, id).await;
    let listed = json_with_status(root.get(&format!("/{NS}/api/invitations/")).await, 200).await;
    let replay = root
        .request(reqwest::Method::POST, &format!("/{NS}/api/invitations/"))
        .header("idempotency-key", "once")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let replayed = json_with_status(replay, 201).await;
    assert_eq!(replayed["id"], id);
    assert_eq!(listed["objects"][0]["id"], id);
    for later in [&shown, &listed, &replayed] {
        assert!(later.get("accept_url").is_none(), "{later}");
        assert!(!later.to_string().contains(&token), "{later}");
    }

    // The audit log says the link was handed out, and not what it was.
    let events = audit_events(&app).await;
    assert!(
        events
            .iter()
            .any(|(event, subject, _)| event == "invitation_link_returned"
                && subject.as_deref() == Some(id.to_string().as_str())),
        "{events:?}"
    );
    assert!(events.iter().all(|(_, _, whole)| !whole.contains(&token)));

    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    assert!(app.user_by_email("bob@example.org").await.user.is_active);
}

async fn send_email_false_sends_nothing_until_a_resend(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.link_sharing = LinkSharing::Editors).await;
    let (editor, project) = app.editor_with_project().await;
    let quiet = json_with_status(
        editor
            .invite(json!({
                "email": "bob@example.org",
                "projects_selected": [{"id": project.0}],
                "send_email": false,
                "return_link": true,
            }))
            .await,
        201,
    )
    .await;
    let quiet_id = quiet["id"].as_i64().expect("id");
    assert!(quiet["delivery"].is_null(), "{quiet}");
    let token = token_of(&app, quiet["accept_url"].as_str().expect("accept_url"));

    // The sink works: an invitation sent after it arrives, and is the only email.
    app.invite_and_wait_for_mail(&editor, json!({"email": "carol@example.org"}), WAIT)
        .await;
    wait_until_sent(&app).await;
    assert_eq!(app.smtp.received_count(), 1);
    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, vec!["carol@example.org".to_owned()]);
    let outbox = app.store.list_outbox(None, 100).await.expect("outbox");
    assert!(outbox.iter().all(|row| row.invitation_id != quiet_id));
    assert!(app.invitation(&editor, quiet_id).await["delivery"].is_null());

    // A resend sends the email (with a fresh link: the returned one stops working).
    json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{quiet_id}/resend/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    assert_eq!(mails[1].rcpt_to, vec!["bob@example.org".to_owned()]);
    let resent = app
        .wait_for_invitation(&editor, quiet_id, WAIT, |inv| {
            inv["delivery"]["status"] == "sent"
        })
        .await;
    assert!(resent.get("accept_url").is_none());
    json_with_status(app.accept(&token, "a good long password").await, 410).await;
    let fresh = mails[1].accept_token().expect("token");
    json_with_status(app.accept(&fresh, "a good long password").await, 200).await;
}

async fn wait_until_sent(app: &TestApp) {
    crate::support::wait::until("the outbox to send everything", WAIT, || async {
        app.store
            .list_outbox(Some("queued"), 100)
            .await
            .expect("outbox")
            .is_empty()
    })
    .await;
}

async fn invitations_without_email_do_not_count_against_the_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.link_sharing = LinkSharing::Editors;
        s.limits.invitations_per_inviter = Some(Limit {
            max: 1,
            window: Duration::from_secs(86_400),
        });
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    let mut quiet = Vec::new();
    for email in ["a@example.org", "b@example.org"] {
        let created = json_with_status(
            editor
                .invite(json!({"email": email, "send_email": false, "return_link": true}))
                .await,
            201,
        )
        .await;
        quiet.push(created["id"].as_i64().expect("id"));
    }
    json_with_status(editor.invite(json!({"email": "c@example.org"})).await, 201).await;
    json_with_status(editor.invite(json!({"email": "d@example.org"})).await, 429).await;
    // A resend sends an email, so it counts.
    json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{}/resend/", quiet[0]),
                &json!({}),
            )
            .await,
        429,
    )
    .await;
}

async fn a_reminder_with_return_link_returns_the_fresh_link(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.link_sharing = LinkSharing::Editors).await;
    let (editor, project) = app.editor_with_project().await;
    let body = json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]});
    let (_, first_mail) = app.invite_and_wait_for_mail(&editor, body, WAIT).await;
    let first = first_mail.accept_token().expect("token");
    let reminded = json_with_status(
        editor
            .invite(json!({
                "email": "bob@example.org",
                "projects_selected": [{"id": project.0}],
                "remind": true,
                "return_link": true,
            }))
            .await,
        201,
    )
    .await;
    let token = token_of(&app, reminded["accept_url"].as_str().expect("accept_url"));
    assert_ne!(token, first);
    json_with_status(app.accept(&first, "a good long password").await, 410).await;
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
}

async fn the_openapi_document_describes_the_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = json_with_status(
        app.anonymous()
            .get(&format!("/{NS}/api/openapi.json"))
            .await,
        200,
    )
    .await;
    let schemas = &document["components"]["schemas"];
    let request = &schemas["InvitationRequest"]["properties"];
    assert_eq!(
        request["return_link"]["type"],
        json!(["boolean", "null"]),
        "{request}"
    );
    assert_eq!(
        request["send_email"]["type"],
        json!(["boolean", "null"]),
        "{request}"
    );
    let resource = &schemas["InvitationResource"];
    let required = resource["required"].as_array().expect("required");
    assert!(required.contains(&json!("delivery")), "{resource}");
    assert!(!required.contains(&json!("accept_url")), "{resource}");
    assert_eq!(
        resource["properties"]["accept_url"]["type"], "string",
        "{resource}"
    );
    let delivery = resource["properties"]["delivery"].to_string();
    assert!(
        delivery.contains("null"),
        "delivery must be nullable: {delivery}"
    );
}

/// Invitations arriving together are committed together (`store::group_commit`): those without
/// email must still get none, and the others theirs.
async fn concurrent_invitations_with_and_without_email_each_get_theirs(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.link_sharing = LinkSharing::Editors).await;
    let (editor, _) = app.editor_with_project().await;
    let bodies: Vec<Value> = (0..12)
        .map(|n| {
            json!({
                "email": format!("person{n}@example.org"),
                "send_email": n % 2 == 0,
                "return_link": n % 3 == 0,
            })
        })
        .collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|body| {
        let editor = &editor;
        async move { json_with_status(editor.invite(body.clone()).await, 201).await }
    }))
    .await;
    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(answer["delivery"].is_null(), n % 2 != 0, "{n}: {answer}");
        assert_eq!(
            answer.get("accept_url").is_some(),
            n % 3 == 0,
            "{n}: {answer}"
        );
    }
    let mails = app.smtp.wait_for(6, WAIT).await;
    wait_until_sent(&app).await;
    assert_eq!(app.smtp.received_count(), 6);
    let mut recipients: Vec<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    recipients.sort();
    let mut expected: Vec<String> = (0..12)
        .filter(|n| n % 2 == 0)
        .map(|n| format!("person{n}@example.org"))
        .collect();
    expected.sort();
    assert_eq!(recipients, expected);
    let returned = audit_events(&app)
        .await
        .into_iter()
        .filter(|(event, _, _)| event == "invitation_link_returned")
        .count();
    assert_eq!(returned, 4);
}

backend_tests!(
    sharing_is_refused_with_a_403_naming_the_setting_when_off,
    a_superuser_gets_the_link_once_and_it_activates_the_invitee,
    send_email_false_sends_nothing_until_a_resend,
    invitations_without_email_do_not_count_against_the_limit,
    a_reminder_with_return_link_returns_the_fresh_link,
    the_openapi_document_describes_the_fields,
    concurrent_invitations_with_and_without_email_each_get_theirs,
);
