//! Sending limits that hold for every email and under concurrency: resends count, the recipient
//! is one person across namespaces and `+tags`, a burst from one inviter never overshoots, and
//! one setup link makes one superuser however many posts race.

use std::time::Duration;

use cbh_invite::config::Limit;
use cbh_invite::domain::{EmailAddress, PersonName, Role, Timestamp, Token};
use cbh_invite::store::{NewUser, SetupOutcome};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::wait;
use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);
const OTHER_NS: &str = "other";

fn limit(max: u32) -> Option<Limit> {
    Some(Limit {
        max,
        window: Duration::from_secs(86_400),
    })
}

fn resend_path(id: i64) -> String {
    format!("/{NS}/api/invitations/{id}/resend/")
}

async fn invite(agent: &Agent, email: &str) -> i64 {
    let created = json_with_status(agent.invite(json!({"email": email})).await, 201).await;
    created["id"].as_i64().expect("id")
}

/// Waits until the SMTP server has received `count` emails in all and the outbox has marked
/// them sent (it does so only after the server accepted them).
async fn wait_for_mails(app: &TestApp, count: usize) {
    app.smtp.wait_for(count, WAIT).await;
    wait::until("the outbox marking its emails sent", WAIT, || async {
        queued_emails(app).await == 0
    })
    .await;
}

async fn queued_emails(app: &TestApp) -> usize {
    app.store
        .list_outbox(Some("queued"), 100)
        .await
        .expect("outbox")
        .len()
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

async fn resends_past_the_recipient_limit_get_429_and_queue_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.limits.emails_per_recipient = limit(2)).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;
    wait_for_mails(&app, 1).await;
    json_with_status(editor.post(&resend_path(id), &json!({})).await, 200).await;
    wait_for_mails(&app, 2).await;

    let response = editor.post(&resend_path(id), &json!({})).await;
    let retry_after = response.headers().get("retry-after").cloned();
    let body = json_with_status(response, 429).await;

    assert!(retry_after.is_some());
    assert!(
        error_of(&body).contains("Email limit reached for this address"),
        "{body}"
    );
    assert_eq!(
        queued_emails(&app).await,
        0,
        "the refused resend queued an email"
    );
    assert_eq!(app.smtp.received_count(), 2);
}

async fn resends_count_against_the_inviter_limit(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.limits.invitations_per_inviter = limit(2)).await;
    let (editor, _) = app.editor_with_project().await;
    let id = invite(&editor, "bob@example.org").await;
    wait_for_mails(&app, 1).await;
    json_with_status(editor.post(&resend_path(id), &json!({})).await, 200).await;
    wait_for_mails(&app, 2).await;

    let resent = json_with_status(editor.post(&resend_path(id), &json!({})).await, 429).await;
    let invited = json_with_status(
        editor.invite(json!({"email": "eve@example.org"})).await,
        429,
    )
    .await;

    assert!(error_of(&resent).contains("limit reached"), "{resent}");
    assert!(
        error_of(&invited).contains("Invitation limit reached"),
        "{invited}"
    );
    assert_eq!(queued_emails(&app).await, 0);
    assert_eq!(app.count_invitations().await, 1);
}

/// An editor of a project in the namespace `OTHER_NS`.
async fn editor_in_other_namespace(app: &TestApp) -> Agent {
    let user = app
        .store
        .create_user(
            OTHER_NS,
            NewUser {
                email: EmailAddress::parse("grace@lab.example").expect("email"),
                first_name: PersonName::parse("Grace", "first").expect("name"),
                last_name: PersonName::parse("", "last").expect("name"),
                // Active (API keys of pending users do not work); the key is used, not this.
                password_hash: Some("not a real hash".into()),
                is_superuser: false,
            },
        )
        .await
        .expect("user");
    let project = app.add_project_in(OTHER_NS, "Assays").await;
    app.grant(&user, project, Role::Editor).await;
    app.api_key_agent(&user).await
}

async fn the_recipient_limit_counts_one_address_across_namespaces_and_plus_tags(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.limits.emails_per_recipient = limit(2)).await;
    let (editor, _) = app.editor_with_project().await;
    let elsewhere = editor_in_other_namespace(&app).await;
    let first = invite(&editor, "Bob+1@example.org").await;
    json_with_status(
        elsewhere
            .post(
                &format!("/{OTHER_NS}/api/invitations/"),
                &json!({"email": "bob+lab@example.org"}),
            )
            .await,
        201,
    )
    .await;

    let refused = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        429,
    )
    .await;

    assert!(
        error_of(&refused).contains("Email limit reached for this address"),
        "{refused}"
    );
    // The tag is ignored for the count only: the address is stored as given.
    assert_eq!(
        app.invitation(&editor, first).await["email"],
        "Bob+1@example.org"
    );
    // Another person is not limited.
    invite(&editor, "carol+1@example.org").await;
}

async fn a_concurrent_burst_never_exceeds_the_inviter_limit(backend: Backend) {
    const LIMIT: u32 = 3;
    let app = spawn_app_with(backend, |s| s.limits.invitations_per_inviter = limit(LIMIT)).await;
    let (editor, _) = app.editor_with_project().await;
    // Two nodes on PostgreSQL (each with its committers); SQLite has one process.
    let second_node = match backend {
        Backend::Postgres => Some(app.add_node(|_| {}).await),
        Backend::Sqlite => None,
    };
    let on_second_node = match &second_node {
        Some(node) => app.agent_for(&editor, &node.base),
        None => app.agent_for(&editor, &app.base),
    };

    let burst = (0..40).map(|i| {
        let agent = if i % 2 == 0 { &editor } else { &on_second_node };
        async move {
            agent
                .invite(json!({"email": format!("p{i}@example.org")}))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(burst).await;

    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(created, LIMIT as usize, "{statuses:?}");
    assert_eq!(limited, statuses.len() - created, "{statuses:?}");
    assert_eq!(app.count_invitations().await, i64::from(LIMIT));
}

async fn a_concurrent_burst_to_one_mailbox_never_exceeds_the_recipient_limit(backend: Backend) {
    const LIMIT: u32 = 3;
    let app = spawn_app_with(backend, |s| s.limits.emails_per_recipient = limit(LIMIT)).await;
    let (editor, _) = app.editor_with_project().await;
    let second_node = match backend {
        Backend::Postgres => Some(app.add_node(|_| {}).await),
        Backend::Sqlite => None,
    };
    let on_second_node = match &second_node {
        Some(node) => app.agent_for(&editor, &node.base),
        None => app.agent_for(&editor, &app.base),
    };

    // Forty addresses, one mailbox: each tag is another user of the namespace.
    let burst = (0..40).map(|i| {
        let agent = if i % 2 == 0 { &editor } else { &on_second_node };
        async move {
            agent
                .invite(json!({"email": format!("bob+{i}@example.org")}))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(burst).await;

    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(created, LIMIT as usize, "{statuses:?}");
    assert_eq!(limited, statuses.len() - created, "{statuses:?}");
}

/// Two posts of one setup link race where the store decides: each hashes its password first
/// (on the bounded password threads, which would mostly serialise posts over HTTP), then
/// completes the setup. The token's consumption is the check, so only one may win.
async fn concurrent_posts_of_one_setup_link_create_one_superuser(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let setup = app.setup_url(NS);
    let raw = setup
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("token in the setup URL");
    let token = Token::parse(raw).expect("setup token");

    let posts = (0..8).map(|i| {
        let store = app.store.clone();
        let hash = token.hash();
        tokio::spawn(async move {
            let user = NewUser {
                email: EmailAddress::parse(&format!("root{i}@lab.example")).expect("email"),
                first_name: PersonName::parse("Root", "first").expect("name"),
                last_name: PersonName::parse("", "last").expect("name"),
                password_hash: Some("not a real hash".into()),
                is_superuser: true,
            };
            store
                .complete_setup(NS, &hash, user, Timestamp::now())
                .await
                .expect("setup")
        })
    });
    let outcomes = join_all(posts).await;

    let created = outcomes
        .into_iter()
        .map(|joined| joined.expect("joined"))
        .filter(|outcome| matches!(outcome, SetupOutcome::Created(_)))
        .count();
    assert_eq!(created, 1);
    let mut superusers = 0;
    for i in 0..8 {
        if let Some(user) = app.find_user(NS, &format!("root{i}@lab.example")).await {
            assert!(user.user.is_superuser);
            superusers += 1;
        }
    }
    assert_eq!(superusers, 1);
}

backend_tests!(
    resends_past_the_recipient_limit_get_429_and_queue_nothing,
    resends_count_against_the_inviter_limit,
    the_recipient_limit_counts_one_address_across_namespaces_and_plus_tags,
    a_concurrent_burst_never_exceeds_the_inviter_limit,
    a_concurrent_burst_to_one_mailbox_never_exceeds_the_recipient_limit,
    concurrent_posts_of_one_setup_link_create_one_superuser,
);
