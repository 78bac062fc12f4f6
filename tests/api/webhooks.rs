//! Signed webhooks: every event reaches a real receiver on loopback, signed as the Standard
//! Webhooks specification says (checked by `support::webhooks::verify`, written apart from the
//! server's signing); a receiver that is down, fails or hangs gets each event later, once; the
//! last attempt is `failed` and visible; private addresses are refused when added and again
//! after DNS.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use cbh_invite::domain::Timestamp;
use cbh_invite::domain::webhook::{EventFilter, WebhookSecret};
use cbh_invite::store::NewWebhook;
use serde_json::{Value, json};

use crate::support::postgres::postgres_available;
use crate::support::webhooks::{Mode, Receiver, admin_with_webhook, verify};
use crate::support::{Backend, NS, TestApp, json_with_status, spawn_app, spawn_app_with, wait};

const WAIT: Duration = Duration::from_secs(20);

fn without(mut value: Value, fields: &[&str]) -> Value {
    for field in fields {
        value.as_object_mut().expect("object").remove(*field);
    }
    value
}

async fn every_event_type_arrives_signed_with_the_api_shapes(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let (admin, created) = admin_with_webhook(&app, &receiver, &[]).await;
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64");
    assert_eq!(key.len(), 32);
    let listed = json_with_status(admin.get(&format!("/{NS}/api/webhooks/")).await, 200).await;
    assert_eq!(listed["objects"][0]["id"], created["id"]);
    assert_eq!(listed["objects"][0]["events"], json!(["*"]));
    assert!(
        !listed.to_string().contains(&secret),
        "the list shows no secret"
    );

    // membership.changed (none to editor), by the grant the command line uses.
    let (editor, project) = app.editor_with_project().await;
    let selected = json!([{"id": project.0}]);
    // invitation.created and membership.changed (none to viewer), then invitation.resent.
    let (bob, _) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "bob@example.org", "first_name": "Bob", "projects_selected": selected}),
            WAIT,
        )
        .await;
    let bob_id = bob["id"].as_i64().expect("id");
    let before = app.smtp.received_count();
    json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{bob_id}/resend/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    let resent_mail = app
        .smtp
        .wait_for(before + 1, WAIT)
        .await
        .swap_remove(before);
    let token = resent_mail.accept_token().expect("token");
    // invitation.accepted and user.activated.
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    // invitation.revoked and membership.changed (viewer to none).
    let carol = json_with_status(
        editor
            .invite(json!({"email": "carol@example.org", "projects_selected": selected}))
            .await,
        201,
    )
    .await;
    let carol_id = carol["id"].as_i64().expect("id");
    json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{carol_id}/revoke/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    // email.failed: the mail server refuses the message for good.
    app.smtp
        .set_data_reply(Some("550 5.1.1 mailbox unavailable"));
    json_with_status(
        editor.invite(json!({"email": "dave@example.org"})).await,
        201,
    )
    .await;

    // membership.changed (viewer to editor) and user.deactivated, by a superuser's API calls.
    let bob_user = app.user_by_email("bob@example.org").await.user.id.0;
    json_with_status(
        admin
            .request(
                reqwest::Method::PUT,
                &format!("/{NS}/api/cbh_projects/{}/members/{bob_user}/", project.0),
            )
            .json(&json!({"role": "editor"}))
            .send()
            .await
            .expect("sent"),
        200,
    )
    .await;
    json_with_status(
        admin
            .post(
                &format!("/{NS}/api/users/{bob_user}/deactivate/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    // user.activated again, by a superuser this time; membership.changed (none to owner) for
    // the superuser who creates a project.
    json_with_status(
        admin
            .post(&format!("/{NS}/api/users/{bob_user}/activate/"), &json!({}))
            .await,
        200,
    )
    .await;
    let assay = json_with_status(
        admin
            .post(
                &format!("/{NS}/api/cbh_projects/"),
                &json!({"name": "Assay"}),
            )
            .await,
        201,
    )
    .await;

    let expected = [
        "invitation.created",
        "invitation.resent",
        "invitation.accepted",
        "invitation.revoked",
        "email.failed",
        "user.activated",
        "user.deactivated",
        "membership.changed",
    ];
    wait::until("every event type delivered", WAIT, || async {
        let seen: BTreeSet<String> = receiver.accepted().iter().map(|r| r.event()).collect();
        expected.iter().all(|event| seen.contains(*event))
    })
    .await;
    receiver
        .wait_for("Dave's email failed", WAIT, |r| {
            r.event() == "email.failed" && r.json()["data"]["email"] == "dave@example.org"
        })
        .await;
    // Four membership changes: editor and Bob's and Carol's viewer grants given, Carol's taken.
    receiver
        .wait_for("Carol's grant removed", WAIT, |r| {
            let body = r.json();
            r.event() == "membership.changed" && body["data"]["old_role"] == "viewer"
        })
        .await;

    receiver
        .wait_for("the superuser's new project", WAIT, |r| {
            r.event() == "membership.changed" && r.json()["data"]["project"]["name"] == "Assay"
        })
        .await;
    receiver
        .wait_for("Bob activated by the superuser", WAIT, |r| {
            r.event() == "user.activated" && r.json()["data"]["user"]["id"] == bob_user
        })
        .await;

    let received = receiver.accepted();
    let mut by_event: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for message in &received {
        assert!(
            message.verified,
            "signature of {} does not verify",
            message.body
        );
        assert!(
            ids.insert(message.id.clone()),
            "webhook-id {} seen twice",
            message.id
        );
        assert!(message.id.starts_with("msg_"));
        let sent_at: i64 = message.timestamp.parse().expect("Unix seconds");
        assert!((sent_at - Timestamp::now().millis() / 1000).abs() < 300);
        assert!(!message.body.contains(&token), "a token in a webhook body");
        assert!(
            !message.body.contains("/accept/"),
            "a link in a webhook body"
        );
        let body = message.json();
        assert!(
            time::OffsetDateTime::parse(
                body["timestamp"].as_str().expect("timestamp"),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "timestamp is RFC 3339: {body}"
        );
        by_event.entry(message.event()).or_default().push(body);
    }
    // A body changed on the way (or a replayed signature on another time) does not verify.
    let sample = &received[0];
    assert!(!verify(
        &secret,
        &sample.id,
        &sample.timestamp,
        &sample.body.replacen('{', "{ ", 1),
        &sample.signature
    ));
    let later = (sample.timestamp.parse::<i64>().expect("seconds") + 1).to_string();
    assert!(!verify(
        &secret,
        &sample.id,
        &later,
        &sample.body,
        &sample.signature
    ));

    // Invitation events carry the invitation as the API shows it.
    let revoked = &by_event["invitation.revoked"][0]["data"];
    let carol_now = json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/{carol_id}/"))
            .await,
        200,
    )
    .await;
    assert_eq!(
        without(revoked.clone(), &["delivery"]),
        without(carol_now, &["delivery"])
    );
    let created_bob = by_event["invitation.created"]
        .iter()
        .find(|b| b["data"]["id"] == bob_id)
        .expect("Bob's invitation.created");
    let stable = [
        "id",
        "resource_uri",
        "email",
        "first_name",
        "last_name",
        "created_by",
    ];
    for field in stable
        .iter()
        .chain(&["projects_selected", "created", "status", "expires"])
    {
        assert_eq!(created_bob["data"][field], bob[field], "field {field}");
    }
    let accepted = &by_event["invitation.accepted"][0]["data"];
    assert_eq!(accepted["id"], bob_id);
    assert_eq!(accepted["status"], "accepted");
    let activated = &by_event["user.activated"][0]["data"]["user"];
    assert_eq!(activated["email"], "bob@example.org");
    assert_eq!(activated["is_active"], true);
    assert_eq!(activated["first_name"], "Bob");
    // Carol's email may have been on its way when the server began refusing: Dave's is the
    // one refused for sure.
    let failed = &by_event["email.failed"]
        .iter()
        .find(|b| b["data"]["email"] == "dave@example.org")
        .expect("Dave's email.failed")["data"];
    assert!(
        failed["mail"]["last_error"]
            .as_str()
            .expect("error")
            .contains("550")
    );
    // The invitation's own fields, as for every invitation event, plus `mail`.
    assert!(
        failed["id"].is_i64() && failed["status"].is_string(),
        "{failed}"
    );
    assert_eq!(failed["mail"]["recipient"], "dave@example.org");
    let memberships = &by_event["membership.changed"];
    let removed = memberships
        .iter()
        .find(|b| b["data"]["new_role"].is_null())
        .expect("a grant removed");
    assert_eq!(removed["data"]["old_role"], "viewer");
    assert_eq!(removed["data"]["user"]["email"], "carol@example.org");
    assert_eq!(removed["data"]["project"]["id"], project.0);
    assert_eq!(removed["data"]["project"]["name"], "Kinase screen");
    assert!(memberships.iter().any(|b| b["data"]["old_role"].is_null()
        && b["data"]["new_role"] == "editor"
        && b["data"]["user"]["email"] == "ada@lab.example"));
    assert!(memberships.iter().any(|b| b["data"]["old_role"] == "viewer"
        && b["data"]["new_role"] == "editor"
        && b["data"]["user"]["email"] == "bob@example.org"));
    let deactivated = &by_event["user.deactivated"][0]["data"]["user"];
    assert_eq!(deactivated["id"], bob_user);
    assert_eq!(deactivated["email"], "bob@example.org");
    assert_eq!(deactivated["is_active"], false);
    // Bob accepted, then was activated again by the superuser: two user.activated.
    let bob_activated: Vec<&Value> = by_event["user.activated"]
        .iter()
        .filter(|b| b["data"]["user"]["id"] == bob_user)
        .collect();
    assert_eq!(bob_activated.len(), 2, "{bob_activated:?}");
    assert_eq!(bob_activated[1]["data"]["user"]["is_active"], true);
    let owner = memberships
        .iter()
        .find(|b| b["data"]["project"]["id"] == assay["id"])
        .expect("membership.changed of the new project");
    assert!(owner["data"]["old_role"].is_null());
    assert_eq!(owner["data"]["new_role"], "owner");
    assert_eq!(owner["data"]["user"]["email"], "root@lab.example");
    assert_eq!(owner["data"]["project"]["name"], "Assay");
}

/// The newest delivery (the one just queued): status, attempts, last error.
async fn latest_delivery(app: &TestApp) -> Option<(String, i64, Option<String>)> {
    let rows = app
        .store
        .webhook_deliveries(NS, None, 1)
        .await
        .expect("deliveries");
    rows.first()
        .map(|row| (row.status.clone(), row.attempts, row.last_error.clone()))
}

async fn a_receiver_that_fails_hangs_or_is_down_gets_each_event_later_once(backend: Backend) {
    let mut receiver = Receiver::start().await;
    receiver.set_mode(Mode::Fail);
    let app = spawn_app(backend).await;
    let (_admin, _) = admin_with_webhook(&app, &receiver, &["invitation.created"]).await;
    let (editor, _) = app.editor_with_project().await;
    let is_for = |email: &'static str| {
        move |r: &crate::support::webhooks::Received| r.json()["data"]["email"] == email
    };

    // Answers 500: retried until it answers 2xx.
    json_with_status(editor.invite(json!({"email": "a@example.org"})).await, 201).await;
    wait::until("two failed attempts", WAIT, || async {
        latest_delivery(&app)
            .await
            .is_some_and(|(_, attempts, error)| {
                attempts >= 2 && error.is_some_and(|e| e.contains("500"))
            })
    })
    .await;
    receiver.set_mode(Mode::Ok);
    receiver
        .wait_for("a@ delivered", WAIT, is_for("a@example.org"))
        .await;

    // Hangs: the attempt times out (CBH_WEBHOOK_TIMEOUT) and is retried.
    receiver.set_mode(Mode::Hang);
    json_with_status(editor.invite(json!({"email": "b@example.org"})).await, 201).await;
    wait::until("b@ reaching the hanging receiver", WAIT, || async {
        receiver.received().iter().any(is_for("b@example.org"))
    })
    .await;
    receiver.set_mode(Mode::Ok);
    receiver
        .wait_for("b@ delivered", WAIT, is_for("b@example.org"))
        .await;

    // Down: connections refused, retried until it is back.
    receiver.stop();
    json_with_status(editor.invite(json!({"email": "c@example.org"})).await, 201).await;
    wait::until("a refused attempt", WAIT, || async {
        latest_delivery(&app)
            .await
            .is_some_and(|(_, attempts, error)| attempts >= 1 && error.is_some())
    })
    .await;
    receiver.restart().await;
    receiver
        .wait_for("c@ delivered", WAIT, is_for("c@example.org"))
        .await;

    wait::until("every delivery marked sent", WAIT, || async {
        let rows = app
            .store
            .webhook_deliveries(NS, None, 100)
            .await
            .expect("rows");
        rows.len() == 3 && rows.iter().all(|row| row.status == "sent")
    })
    .await;
    for email in ["a@example.org", "b@example.org", "c@example.org"] {
        let accepted: Vec<_> = receiver
            .accepted()
            .into_iter()
            .filter(is_for(email))
            .collect();
        assert_eq!(
            accepted.len(),
            1,
            "{email} accepted {} times",
            accepted.len()
        );
        assert!(accepted[0].verified);
        // Every attempt of one event carries the same webhook-id.
        let ids: BTreeSet<String> = receiver
            .received()
            .into_iter()
            .filter(is_for(email))
            .map(|r| r.id)
            .collect();
        assert_eq!(ids.len(), 1, "{email}: {ids:?}");
    }
}

async fn the_last_attempt_is_failed_and_visible_and_can_be_retried(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.set_mode(Mode::Fail);
    let app = spawn_app_with(backend, |settings| settings.delivery.max_attempts = 2).await;
    admin_with_webhook(&app, &receiver, &["invitation.created"]).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(editor.invite(json!({"email": "a@example.org"})).await, 201).await;
    wait::until("the delivery failed", WAIT, || async {
        let rows = app
            .store
            .webhook_deliveries(NS, Some("failed"), 10)
            .await
            .expect("rows");
        rows.iter().any(|row| {
            row.attempts == 2 && row.last_error.as_deref().is_some_and(|e| e.contains("500"))
        })
    })
    .await;
    assert_eq!(receiver.received().len(), 2);
    assert!(receiver.accepted().is_empty());

    receiver.set_mode(Mode::Ok);
    let queued = app
        .store
        .retry_webhooks(NS, None, Timestamp::now())
        .await
        .expect("retry");
    assert_eq!(queued, 1);
    receiver
        .wait_for("delivered after the retry", WAIT, |r| r.verified)
        .await;
    wait::until("the node's counters", WAIT, || async {
        let metrics = app
            .anonymous()
            .get("/metrics")
            .await
            .text()
            .await
            .expect("metrics");
        metrics.contains("cbh_webhooks_failed_total 1\n")
            && metrics.contains("cbh_webhooks_retried_total 1\n")
            && metrics.contains("cbh_webhooks_sent_total 1\n")
    })
    .await;
}

async fn private_addresses_are_refused_at_creation_and_after_dns(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(backend, |settings| settings.webhooks.allow_private = false).await;
    let root = app
        .add_user("root@lab.example", "Root", "Admin", true)
        .await;
    let admin = app.api_key_agent(&root).await;
    let path = format!("/{NS}/api/webhooks/");
    for url in [
        receiver.url(),
        format!("http://localhost:{}/hooks", receiver.port),
        "http://[::1]/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
    ] {
        let refused = json_with_status(admin.post(&path, &json!({"url": url})).await, 400).await;
        assert!(
            refused["error"]
                .as_str()
                .expect("error")
                .contains("refused"),
            "{url}: {refused}"
        );
    }
    for body in [
        json!({"url": "ftp://hooks.example.org/"}),
        json!({"url": "https://hooks.example.org/", "events": ["invitation.eaten"]}),
        json!({"url": 5}),
        json!({"events": []}),
        json!({"url": format!("https://hooks.example.org/{}", "a".repeat(3000))}),
    ] {
        let answer = json_with_status(admin.post(&path, &body).await, 400).await;
        assert!(answer["error"].is_string(), "{body}: {answer}");
    }
    let not_json = admin
        .request(reqwest::Method::POST, &path)
        .header("content-type", "text/plain")
        .body("url=http://x")
        .send()
        .await
        .expect("sent");
    assert_eq!(not_json.status(), 415);
    let (editor, _) = app.editor_with_project().await;
    json_with_status(editor.get(&path).await, 403).await;
    json_with_status(
        editor
            .post(&path, &json!({"url": "https://hooks.example.org/"}))
            .await,
        403,
    )
    .await;
    json_with_status(admin.delete(&format!("{path}999/")).await, 404).await;
    assert!(app.store.webhooks(NS).await.expect("list").is_empty());

    // Added while private addresses were allowed: refused after DNS, when connecting.
    let secret = WebhookSecret::generate();
    app.store
        .add_webhook(NewWebhook {
            namespace: NS.into(),
            url: format!("http://localhost:{}/hooks", receiver.port),
            secret,
            events: EventFilter::All,
            now: Timestamp::now(),
        })
        .await
        .expect("added");
    json_with_status(editor.invite(json!({"email": "a@example.org"})).await, 201).await;
    wait::until("the delivery refused for good", WAIT, || async {
        let rows = app
            .store
            .webhook_deliveries(NS, Some("failed"), 10)
            .await
            .expect("rows");
        rows.iter().any(|row| {
            row.last_error
                .as_deref()
                .is_some_and(|e| e.contains("refused") && e.contains("localhost resolves to"))
        })
    })
    .await;
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

async fn removing_an_endpoint_stops_its_deliveries(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.set_mode(Mode::Fail);
    let app = spawn_app(backend).await;
    let (admin, created) = admin_with_webhook(&app, &receiver, &["invitation.created"]).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(editor.invite(json!({"email": "a@example.org"})).await, 201).await;
    wait::until("an attempt", WAIT, || async {
        !receiver.received().is_empty()
    })
    .await;
    let id = created["id"].as_i64().expect("id");
    let gone = admin.delete(&format!("/{NS}/api/webhooks/{id}/")).await;
    assert_eq!(gone.status(), 204);
    assert!(
        app.store
            .webhook_deliveries(NS, None, 10)
            .await
            .expect("rows")
            .is_empty()
    );
    json_with_status(admin.get(&format!("/{NS}/api/webhooks/")).await, 200).await;
    let audit = app
        .store
        .audit_since(Timestamp(0), 100)
        .await
        .expect("audit");
    for event in ["webhook_added", "webhook_removed"] {
        assert!(
            audit.iter().any(|r| r.event == event),
            "{event} not audited"
        );
    }
}

async fn invitations_created_together_or_one_by_one_each_announce_once(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = spawn_app(backend).await;
    admin_with_webhook(
        &app,
        &receiver,
        &["invitation.created", "membership.changed"],
    )
    .await;
    let (editor, project) = app.editor_with_project().await;
    let selected = json!([{"id": project.0}]);
    // A known invitee (the superuser) is created one by one inside the batch's transaction.
    json_with_status(
        editor
            .invite(json!({"email": "root@lab.example", "projects_selected": selected}))
            .await,
        201,
    )
    .await;
    // Twenty at once: the group commit creates new invitees together.
    let invites = (0..20).map(|i| {
        let editor = &editor;
        let selected = selected.clone();
        async move {
            json_with_status(
                editor
                    .invite(json!({"email": format!("n{i}@example.org"), "projects_selected": selected}))
                    .await,
                201,
            )
            .await
        }
    });
    futures_util::future::join_all(invites).await;

    let viewers = |received: &[crate::support::webhooks::Received]| {
        received
            .iter()
            .filter(|r| {
                r.event() == "membership.changed" && r.json()["data"]["new_role"] == "viewer"
            })
            .count()
    };
    wait::until(
        "21 invitations and their grants announced",
        WAIT,
        || async {
            let accepted = receiver.accepted();
            let created = accepted
                .iter()
                .filter(|r| r.event() == "invitation.created")
                .count();
            created >= 21 && viewers(&accepted) >= 21
        },
    )
    .await;
    wait::until("every delivery marked sent", WAIT, || async {
        let rows = app
            .store
            .webhook_deliveries(NS, None, 1000)
            .await
            .expect("rows");
        rows.iter().all(|row| row.status == "sent")
    })
    .await;
    let accepted = receiver.accepted();
    let mut invited: BTreeMap<String, usize> = BTreeMap::new();
    for message in accepted
        .iter()
        .filter(|r| r.event() == "invitation.created")
    {
        assert!(message.verified);
        let email = message.json()["data"]["email"]
            .as_str()
            .expect("email")
            .to_owned();
        *invited.entry(email).or_default() += 1;
    }
    assert_eq!(invited.len(), 21, "{invited:?}");
    assert!(invited.values().all(|n| *n == 1), "{invited:?}");
    assert_eq!(viewers(&accepted), 21);
    let root = accepted
        .iter()
        .map(|r| r.json())
        .find(|b| b["data"]["user"]["email"] == "root@lab.example")
        .expect("the known invitee's grant");
    assert_eq!(root["data"]["user"]["is_active"], true);
    assert_eq!(root["data"]["old_role"], Value::Null);
}

/// Several nodes share a PostgreSQL database (SQLite serves one node).
#[tokio::test]
async fn two_nodes_deliver_each_event_once() {
    if !postgres_available("webhooks::two_nodes_deliver_each_event_once") {
        return;
    }
    let receiver = Receiver::start().await;
    let app = spawn_app(Backend::Postgres).await;
    admin_with_webhook(&app, &receiver, &["invitation.created"]).await;
    let mut other = app.add_node(|_| {}).await;
    let (editor, _) = app.editor_with_project().await;
    let on_other = app.agent_for(&editor, &other.base);
    let invites = (0..30).map(|i| {
        let agent = if i % 2 == 0 { &editor } else { &on_other };
        async move {
            json_with_status(
                agent
                    .invite(json!({"email": format!("m{i}@example.org")}))
                    .await,
                201,
            )
            .await
        }
    });
    futures_util::future::join_all(invites).await;
    wait::until("30 events delivered", WAIT, || async {
        receiver.accepted().len() >= 30
    })
    .await;
    wait::until("every delivery marked sent", WAIT, || async {
        let rows = app
            .store
            .webhook_deliveries(NS, None, 100)
            .await
            .expect("rows");
        rows.len() == 30 && rows.iter().all(|row| row.status == "sent")
    })
    .await;
    other.stop().await;
    let ids: BTreeSet<String> = receiver.accepted().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 30);
    assert_eq!(
        receiver.accepted().len(),
        30,
        "an event was delivered twice"
    );
}

backend_tests!(
    every_event_type_arrives_signed_with_the_api_shapes,
    a_receiver_that_fails_hangs_or_is_down_gets_each_event_later_once,
    the_last_attempt_is_failed_and_visible_and_can_be_retried,
    private_addresses_are_refused_at_creation_and_after_dns,
    removing_an_endpoint_stops_its_deliveries,
    invitations_created_together_or_one_by_one_each_announce_once,
);
