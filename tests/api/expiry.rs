//! The expiry sweep: a pending invitation past its expiry is stored as `expired` once (the
//! janitor of two nodes, two sweeps racing, `cbh-invite prune`), announced once to a real
//! webhook receiver and recorded once in the audit log; its link stays dead even after a resend
//! makes it pending again, and the resent link works; no reminder follows; the list filters
//! agree. And the dead-link page the accept and decline pages share.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cbh_invite::config::ServeRole;
use cbh_invite::domain::{InvitationId, Timestamp};
use cbh_invite::mail::Reminders;
use cbh_invite::maintenance::sweep_expired;
use cbh_invite::store::{self, InvitationRecord, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::binary::on_database;
use crate::support::webhooks::{Receiver, admin_with_webhook};
use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(20);
const DAY: Duration = Duration::from_secs(86_400);
/// The words of the plain 410 page (`gone.html`), and of the superseded page's offer.
const GONE: &str = "This invitation link no longer works";
const NEW_LINK: &str = "Email me a new link";

async fn invite(agent: &Agent, email: &str) -> i64 {
    json_with_status(agent.invite(json!({"email": email})).await, 201).await["id"]
        .as_i64()
        .expect("id")
}

/// A webhook endpoint for `invitation.expired` on a real receiver.
async fn expiry_receiver(app: &TestApp) -> Receiver {
    let receiver = Receiver::start().await;
    admin_with_webhook(app, &receiver, &["invitation.expired"]).await;
    receiver
}

/// The ids of a listing `?status=…` of every invitation.
async fn listed(agent: &Agent, status: &str) -> HashSet<i64> {
    let page = json_with_status(
        agent
            .get(&format!("/{NS}/api/invitations/?status={status}&limit=100"))
            .await,
        200,
    )
    .await;
    page["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

/// The invitation as stored.
async fn stored(app: &TestApp, id: i64) -> InvitationRecord {
    app.store
        .invitation(NS, InvitationId(id))
        .await
        .expect("read")
        .expect("invitation")
}

async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app.anonymous().get(path).await;
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn the_janitors_of_two_nodes_mark_an_expired_invitation_once_and_announce_it(
    backend: Backend,
) {
    let fast = |s: &mut cbh_invite::config::Settings| {
        s.invite_ttl = Duration::from_millis(500);
        s.retention.interval = Duration::from_millis(200);
    };
    let mut app = spawn_app_with(backend, fast).await;
    let mut second = app.add_node(fast).await;
    let receiver = expiry_receiver(&app).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;

    receiver
        .wait_for("invitation.expired", WAIT, |r| {
            r.event() == "invitation.expired"
        })
        .await;
    // Nothing is left to mark: the janitors claimed it, once.
    assert_eq!(
        sweep_expired(app.store.as_ref(), Timestamp::now())
            .await
            .expect("sweep"),
        0
    );
    second.stop().await;
    app.stop().await;

    let events: Vec<Value> = receiver.accepted().iter().map(|r| r.json()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(receiver.accepted()[0].verified);
    assert_eq!(events[0]["type"], "invitation.expired");
    assert_eq!(events[0]["data"]["id"], id);
    assert_eq!(events[0]["data"]["status"], "expired");
    assert_eq!(
        app.audit_subjects("invitation_expired").await,
        vec![id.to_string()]
    );
    assert_eq!(stored(&app, id).await.stored_status, "expired");
}

async fn the_unsent_email_of_an_expired_invitation_is_not_sent_and_its_link_is_dead(
    backend: Backend,
) {
    // No worker: the email stays queued until the test delivers.
    let app = spawn_app_with(backend, |s| s.role = ServeRole::Api).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;
    // Read its link as a worker would, leaving it due again at once.
    let claimed = app
        .store
        .claim_outbox(Timestamp::now(), Duration::ZERO, 10)
        .await
        .expect("claim");
    let token = claimed[0].accept_token.clone().expect("the queued link");

    let swept = sweep_expired(app.store.as_ref(), Timestamp::now().plus(8 * DAY))
        .await
        .expect("sweep");

    assert_eq!(swept, 1);
    let claimed = app
        .store
        .claim_outbox(Timestamp::now(), Duration::ZERO, 10)
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "{claimed:?}");
    assert_eq!(app.outbox.deliver_due().await.expect("delivery").sent, 0);
    assert!(app.smtp.received().is_empty());
    let rows = app.store.list_outbox(None, 10).await.expect("outbox");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "failed");
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("not sent: the invitation expired")
    );
    let invitation = app.invitation(&editor, id).await;
    assert_eq!(invitation["status"], "expired");
    assert_eq!(invitation["delivery"]["status"], "failed");
    json_with_status(app.accept(&token, "a good long password").await, 410).await;
}

async fn two_sweeps_racing_mark_each_invitation_once(backend: Backend) {
    // The janitor ran at start, before any invitation, and not again (every 10 minutes).
    let app = spawn_app_with(backend, |s| s.invite_ttl = Duration::from_millis(300)).await;
    let receiver = expiry_receiver(&app).await;
    let (editor, _) = app.editor_with_project().await;
    let mut ids = HashSet::new();
    for i in 0..12 {
        ids.insert(invite(&editor, &format!("p{i}@example.org")).await);
    }
    // A second connection pool on the same database, as another node has.
    let other: Arc<dyn Store> = store::connect(&app.settings.database, &app.settings.pool)
        .await
        .expect("store");

    crate::support::wait::until("every invitation reads expired", WAIT, || async {
        listed(&editor, "expired").await.len() == ids.len()
    })
    .await;

    // Both sweep at once; each marks a share, none twice.
    let when = Timestamp::now();
    let (a, b) = tokio::join!(
        sweep_expired(app.store.as_ref(), when),
        sweep_expired(other.as_ref(), when)
    );
    let (a, b) = (a.expect("sweep"), b.expect("sweep"));

    assert_eq!(a + b, ids.len(), "{a} + {b}");
    assert_eq!(sweep_expired(other.as_ref(), when).await.expect("sweep"), 0);
    let audited: Vec<String> = app.audit_subjects("invitation_expired").await;
    assert_eq!(audited.len(), ids.len());
    let audited: HashSet<i64> = audited.iter().map(|s| s.parse().expect("id")).collect();
    assert_eq!(audited, ids);
    crate::support::wait::until("every expiry is delivered", WAIT, || async {
        receiver.accepted().len() >= ids.len()
    })
    .await;
    let announced: Vec<i64> = receiver
        .accepted()
        .iter()
        .map(|r| r.json()["data"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(announced.len(), ids.len(), "{announced:?}");
    assert_eq!(announced.into_iter().collect::<HashSet<_>>(), ids);
    assert_eq!(listed(&editor, "expired").await, ids);
    assert!(listed(&editor, "pending").await.is_empty());
}

async fn an_expired_link_stays_dead_after_a_resend_and_the_new_link_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;
    let revoked = invite(&editor, "carol@example.org").await;
    let mails = app.smtp.wait_for(2, WAIT).await;
    let old = mails
        .iter()
        .find(|m| m.rcpt_to == ["bob@example.org"])
        .and_then(|m| m.accept_token())
        .expect("token");

    // Swept as if a week had passed: the clock is not there yet, but the link is dead for good.
    let swept = sweep_expired(app.store.as_ref(), Timestamp::now().plus(8 * DAY))
        .await
        .expect("sweep");
    assert_eq!(swept, 2);
    assert_eq!(app.invitation(&editor, id).await["status"], "expired");
    assert_eq!(
        listed(&editor, "expired").await,
        HashSet::from([id, revoked])
    );
    assert!(listed(&editor, "pending").await.is_empty());
    json_with_status(app.accept(&old, "a good long password").await, 410).await;
    for path in [
        format!("/{NS}/accept/{old}"),
        format!("/{NS}/decline/{old}"),
    ] {
        let (status, body) = page(&app, &path).await;
        assert_eq!(status, StatusCode::GONE, "{path}");
        assert!(
            body.contains(GONE) && !body.contains(NEW_LINK),
            "{path}: {body}"
        );
    }

    // An expired invitation can be revoked …
    let revoked_now = json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/{revoked}/revoke/"),
                &json!({}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(revoked_now["status"], "revoked");
    // … or resent: pending again, with a new expiry and a fresh link.
    let resent = editor.resend(id).await;
    assert_eq!(resent["status"], "pending");
    let record = stored(&app, id).await;
    assert_eq!(record.stored_status, "pending");
    assert!(
        record.expires.expect("expires") > Timestamp::now().plus(6 * DAY),
        "{resent}"
    );
    assert_eq!(listed(&editor, "pending").await, HashSet::from([id]));
    let new = app.smtp.wait_for(3, WAIT).await[2]
        .accept_token()
        .expect("token");
    assert_ne!(new, old);

    // The old link still answers the plain 410 page, not the superseded page's offer.
    let (status, body) = page(&app, &format!("/{NS}/accept/{old}")).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(body.contains(GONE) && !body.contains(NEW_LINK), "{body}");
    json_with_status(app.accept(&old, "a good long password").await, 410).await;
    json_with_status(app.accept(&new, "a good long password").await, 200).await;
    assert_eq!(app.invitation(&editor, id).await["status"], "accepted");
}

async fn no_reminder_follows_the_sweep(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;
    app.wait_for_invitation(&editor, id, WAIT, |i| i["delivery"]["status"] == "sent")
        .await;
    let reminders = Reminders::new(
        app.store.clone(),
        vec![Duration::from_secs(1)],
        None,
        "invite.test.example".into(),
        Arc::new(Notify::new()),
    );
    let expires = stored(&app, id).await.expires.expect("expires");

    // Swept at its expiry, while the reminder is due an hour before it by the schedule.
    assert_eq!(
        sweep_expired(app.store.as_ref(), expires)
            .await
            .expect("sweep"),
        1
    );
    let scan = reminders
        .remind_due(expires.minus(Duration::from_secs(3600)))
        .await
        .expect("scan");

    assert_eq!(scan.sent, 0);
    assert_eq!(app.invitation(&editor, id).await["reminders_sent"], 0);
    assert_eq!(app.smtp.received_count(), 1);
}

async fn an_invitation_past_its_expiry_reads_expired_before_and_after_prune_marks_it(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| s.invite_ttl = Duration::from_millis(300)).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;
    let before = app
        .wait_for_invitation(&editor, id, WAIT, |i| i["status"] == "expired")
        .await;
    assert_eq!(listed(&editor, "expired").await, HashSet::from([id]));
    assert!(listed(&editor, "pending").await.is_empty());

    let dry = on_database(&app.settings.database, &["prune", "--dry-run"]);
    assert!(dry.contains("would mark 1 invitations expired"), "{dry}");
    let pruned = on_database(&app.settings.database, &["prune"]);
    assert!(pruned.contains("marked 1 invitations expired"), "{pruned}");
    let again = on_database(&app.settings.database, &["prune"]);
    assert!(again.contains("marked 0 invitations expired"), "{again}");

    let after = app.invitation(&editor, id).await;
    assert_eq!(after["status"], "expired");
    assert_eq!(after["expires"], before["expires"]);
    assert_eq!(listed(&editor, "expired").await, HashSet::from([id]));
    assert!(listed(&editor, "pending").await.is_empty());
    assert_eq!(
        app.audit_subjects("invitation_expired").await,
        vec![id.to_string()]
    );
}

async fn the_decline_page_of_a_superseded_link_shows_the_superseded_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;
    let old = app.smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");
    editor.resend(id).await;
    app.smtp.wait_for(2, WAIT).await;

    for path in [
        format!("/{NS}/decline/{old}"),
        format!("/{NS}/accept/{old}"),
    ] {
        let (status, body) = page(&app, &path).await;
        assert_eq!(status, StatusCode::GONE, "{path}");
        assert!(body.contains(NEW_LINK), "{path}: {body}");
    }
}

backend_tests!(
    the_janitors_of_two_nodes_mark_an_expired_invitation_once_and_announce_it,
    the_unsent_email_of_an_expired_invitation_is_not_sent_and_its_link_is_dead,
    two_sweeps_racing_mark_each_invitation_once,
    an_expired_link_stays_dead_after_a_resend_and_the_new_link_works,
    no_reminder_follows_the_sweep,
    an_invitation_past_its_expiry_reads_expired_before_and_after_prune_marks_it,
    the_decline_page_of_a_superseded_link_shows_the_superseded_page,
);
