use std::time::Duration;

use cbh_invite::domain::Role;
use serde_json::json;

use crate::support::{Backend, NS, PASSWORD, json_with_status, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

async fn inviting_a_new_address_creates_a_pending_user_and_returns_the_whole_object(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;

    let response = editor
        .invite(json!({
            "email": "Bob@Example.ORG",
            "first_name": "Bob",
            "last_name": "Smith",
            "projects_selected": [{"id": project.0, "name": "Kinase screen"}],
        }))
        .await;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = json_with_status(response, 201).await;

    assert_eq!(
        body["message"],
        "Invite sent successfully to Bob@example.org, would you like to invite anyone else?"
    );
    let id = body["id"].as_i64().expect("id");
    assert_eq!(body["resource_uri"], format!("/{NS}/api/invitations/{id}/"));
    assert_eq!(
        location.as_deref(),
        Some(format!("http://invite.test.example/{NS}/api/invitations/{id}/").as_str())
    );
    assert_eq!(body["email"], "Bob@example.org");
    assert_eq!(body["first_name"], "Bob");
    assert_eq!(body["last_name"], "Smith");
    assert_eq!(body["created_by"]["username"], "ada@lab.example");
    assert_eq!(body["created_by"]["first_name"], "Ada");
    assert!(body["created_by"]["resource_uri"].is_string());
    assert_eq!(
        body["projects_selected"],
        json!([{"id": project.0, "name": "Kinase screen", "role": "viewer"}])
    );
    assert_eq!(body["status"], "pending");
    assert!(body["expires"].as_str().is_some_and(|e| e.ends_with('Z')));
    assert!(body["created"].as_str().is_some_and(|e| e.ends_with('Z')));
    assert!(body["modified"].is_string());
    assert_eq!(body["delivery"]["status"], "queued");

    let invitee = app.user_by_email("bob@example.org").await;
    assert!(!invitee.user.is_active, "the new user is pending");
    assert!(invitee.password_hash.is_none());
    let memberships = app.store.memberships(invitee.user.id).await.expect("store");
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].project.id, project);
    assert_eq!(memberships[0].role, Role::Viewer);

    // A pending user cannot log in, and gets the same answer as a wrong password.
    let login = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": "bob@example.org", "password": ""}),
        )
        .await;
    assert_eq!(login.status(), 401);
}

async fn an_existing_user_gets_only_the_new_projects(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, first) = app.editor_with_project().await;
    let editor_user = app.user_by_email("ada@lab.example").await.user;
    let second = app.add_project("Crystal structures").await;
    app.grant(&editor_user, second, Role::Owner).await;
    let bob = app.add_user("bob@example.org", "Bob", "Smith", false).await;
    app.grant(&bob, first, Role::Viewer).await;

    let body = json_with_status(
        editor
            .invite(json!({
                "email": "bob@example.org",
                "projects_selected": [{"id": first.0}, {"id": second.0}],
            }))
            .await,
        201,
    )
    .await;

    assert_eq!(
        body["message"],
        "Existing user bob@example.org invited to new projects, would you like to invite anyone else?"
    );
    let roles: Vec<_> = app
        .store
        .memberships(bob.id)
        .await
        .expect("store")
        .into_iter()
        .map(|m| (m.project.id, m.role))
        .collect();
    assert_eq!(roles, vec![(first, Role::Viewer), (second, Role::Viewer)]);
    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(
        mails[0].subject(),
        "Ada Lovelace has edited your project access on ChemBio Hub Platform"
    );
    assert!(
        mails[0].accept_link().is_none(),
        "an active user needs no sign-up link"
    );
}

async fn inviting_a_user_who_has_every_project_answers_409(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let body = json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]});
    json_with_status(editor.invite(body.clone()).await, 201).await;

    let conflict = json_with_status(editor.invite(body).await, 409).await;

    assert_eq!(
        conflict["error"],
        "User already exists, do you wish to invite again?"
    );
}

async fn remind_sends_a_pending_user_a_fresh_link_and_voids_the_old_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let body = json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]});
    json_with_status(editor.invite(body.clone()).await, 201).await;
    let first = app.smtp.wait_for(1, WAIT).await;

    let mut remind = body;
    remind["remind"] = json!(true);
    let reminded = json_with_status(editor.invite(remind).await, 201).await;

    assert_eq!(
        reminded["message"],
        "Sign-up reminder sent to bob@example.org, would you like to invite anyone else?"
    );
    let mails = app.smtp.wait_for(2, WAIT).await;
    assert_eq!(
        mails[1].subject(),
        "Ada Lovelace would like to remind you to log on to ChemBio Hub Platform"
    );
    let old_token = first[0].accept_token().expect("first link");
    let new_token = mails[1].accept_token().expect("reminder link");
    assert_ne!(old_token, new_token);
    assert_eq!(
        app.accept(&old_token, "a long enough password")
            .await
            .status(),
        410
    );
    assert_eq!(
        app.accept(&new_token, "a long enough password")
            .await
            .status(),
        200
    );
}

async fn remind_asks_an_active_user_to_look_at_the_projects(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let bob = app.add_user("bob@example.org", "Bob", "", false).await;
    app.grant(&bob, project, Role::Viewer).await;

    let body = json_with_status(
        editor
            .invite(json!({
                "email": "bob@example.org",
                "projects_selected": [{"id": project.0}],
                "remind": true,
            }))
            .await,
        201,
    )
    .await;

    assert_eq!(
        body["message"],
        "User bob@example.org reminded to look at these projects, would you like to invite anyone else?"
    );
    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(
        mails[0].subject(),
        "Ada Lovelace would like to remind you to log on to ChemBio Hub Platform"
    );
    assert!(mails[0].text().contains("/chembiohub/login/"));
}

async fn camel_case_names_from_the_original_client_are_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;

    let body = json_with_status(
        editor
            .invite(json!({
                "email": "carol@example.org",
                "firstName": "Carol",
                "lastName": "Jones",
                "projects_selected": [{"id": project.0, "name": "Kinase screen", "extra": 1}],
            }))
            .await,
        201,
    )
    .await;

    assert_eq!(body["first_name"], "Carol");
    assert_eq!(body["last_name"], "Jones");
}

async fn emails_are_one_user_whatever_their_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    json_with_status(
        editor
            .invite(json!({"email": "Bob@X.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;

    let again = json_with_status(
        editor
            .invite(json!({"email": "bob@x.org", "projects_selected": [{"id": project.0}], "remind": true}))
            .await,
        201,
    )
    .await;

    assert_eq!(again["email"], "Bob@x.org", "the first spelling is kept");
    assert_eq!(
        again["message"],
        "Sign-up reminder sent to Bob@x.org, would you like to invite anyone else?"
    );
}

async fn an_invitation_to_the_platform_alone_needs_no_project(backend: Backend) {
    let app = spawn_app(backend).await;
    // Inviting needs a role somewhere (tests/api/authorization.rs), not on a selected project.
    let editor = app.add_user("val@lab.example", "Val", "", false).await;
    let project = app.add_project("Kinase screen").await;
    app.grant(&editor, project, Role::Editor).await;
    let agent = app.api_key_agent(&editor).await;

    let body = json_with_status(agent.invite(json!({"email": "dan@example.org"})).await, 201).await;
    assert_eq!(body["projects_selected"], json!([]));

    // For an existing user, no projects means nothing new: 409 unless reminding.
    json_with_status(
        agent
            .invite(json!({"email": "dan@example.org", "projects_selected": []}))
            .await,
        409,
    )
    .await;
}

async fn only_editors_and_owners_may_invite_to_a_project(backend: Backend) {
    let app = spawn_app(backend).await;
    let project = app.add_project("Secret").await;
    let viewer = app.add_user("val@lab.example", "Val", "", false).await;
    app.grant(&viewer, project, Role::Viewer).await;
    let outsider = app.add_user("out@lab.example", "Out", "", false).await;
    let owner = app.add_user("own@lab.example", "Own", "", false).await;
    app.grant(&owner, project, Role::Owner).await;
    let root = app.add_user("root@lab.example", "Root", "", true).await;
    let body = |email: &str| json!({"email": email, "projects_selected": [{"id": project.0}]});

    for user in [&viewer, &outsider] {
        let refused = json_with_status(
            app.api_key_agent(user)
                .await
                .invite(body("x@example.org"))
                .await,
            403,
        )
        .await;
        assert!(
            refused["error"]
                .as_str()
                .is_some_and(|e| e.contains("Secret"))
        );
    }
    json_with_status(
        app.api_key_agent(&owner)
            .await
            .invite(body("y@example.org"))
            .await,
        201,
    )
    .await;
    json_with_status(
        app.api_key_agent(&root)
            .await
            .invite(body("z@example.org"))
            .await,
        201,
    )
    .await;
    assert_eq!(
        app.count_invitations().await,
        2,
        "refused requests stored nothing"
    );
}

async fn an_unknown_project_is_a_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let foreign = app.add_project_in("other", "Elsewhere").await;

    for id in [json!(999_999), json!(foreign.0), json!("abc"), json!(null)] {
        let body = json_with_status(
            editor
                .invite(json!({"email": "e@example.org", "projects_selected": [{"id": id}]}))
                .await,
            400,
        )
        .await;
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("projects_selected"))
        );
    }
}

async fn not_logged_in_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let anonymous = app.anonymous();

    let body = json_with_status(
        anonymous.invite(json!({"email": "e@example.org"})).await,
        401,
    )
    .await;
    assert!(body["error"].is_string());
    json_with_status(anonymous.get(&format!("/{NS}/api/invitations/")).await, 401).await;

    let mut bad_key = app.anonymous();
    bad_key.headers.insert(
        "authorization",
        format!("ApiKey ada@lab.example:{}", "A".repeat(43))
            .parse()
            .expect("header"),
    );
    json_with_status(bad_key.get(&format!("/{NS}/api/invitations/")).await, 401).await;
}

async fn a_session_needs_the_csrf_header_to_post(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.add_user("ada@lab.example", "Ada", "", false).await;
    let project = app.add_project("P").await;
    app.grant(&user, project, Role::Editor).await;
    let mut agent = app.login("ada@lab.example", PASSWORD).await;
    let body = json!({"email": "e@example.org", "projects_selected": [{"id": project.0}]});
    let csrf = agent.headers.remove("x-csrftoken").expect("csrf header");

    let missing = json_with_status(agent.invite(body.clone()).await, 403).await;
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("CSRF"))
    );
    agent
        .headers
        .insert("x-csrftoken", "B".repeat(43).parse().expect("header"));
    json_with_status(agent.invite(body.clone()).await, 403).await;

    agent.headers.insert("x-csrftoken", csrf);
    json_with_status(agent.invite(body).await, 201).await;
}

async fn namespaces_do_not_see_each_other(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let created = json_with_status(
        editor
            .invite(json!({"email": "e@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");

    // The same API key is unknown in another namespace.
    json_with_status(editor.get("/other/api/invitations/").await, 401).await;
    json_with_status(
        editor.get(&format!("/other/api/invitations/{id}/")).await,
        401,
    )
    .await;
    // A namespace the service does not serve is 404, logged in or not.
    json_with_status(editor.get("/nowhere/api/invitations/").await, 404).await;
    json_with_status(app.anonymous().get("/nowhere/api/invitations/").await, 404).await;
    json_with_status(
        app.anonymous()
            .post("/nowhere/api/invitations/", &json!({}))
            .await,
        404,
    )
    .await;
    // The same address in another namespace is another user.
    let other_user = app.find_user("other", "e@example.org").await;
    assert!(other_user.is_none());
}

async fn a_retry_with_the_same_idempotency_key_sends_nothing_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut editor, project) = app.editor_with_project().await;
    editor
        .headers
        .insert("idempotency-key", "retry-1".parse().expect("header"));
    let body = json!({"email": "e@example.org", "projects_selected": [{"id": project.0}]});

    let first = editor.invite(body.clone()).await;
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.expect("json");
    let again = editor.invite(body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["message"], first["message"]);

    let different = json_with_status(
        editor
            .invite(json!({"email": "f@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        422,
    )
    .await;
    assert!(
        different["error"]
            .as_str()
            .is_some_and(|e| e.contains("Idempotency-Key"))
    );

    app.smtp.wait_for(1, WAIT).await;
    // Give a second email every chance to appear before counting.
    app.outbox.deliver_due().await.expect("delivery");
    assert_eq!(app.smtp.received().len(), 1, "one email only");
    assert_eq!(app.count_invitations().await, 1, "one invitation only");
}

/// Requests that arrive together are committed together (`store::group_commit`); each must
/// still be decided as if the others had come before or after it.
async fn a_burst_of_invitations_is_decided_as_if_one_by_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, first) = app.editor_with_project().await;
    let second = app.add_project("Second screen").await;
    let ada = app.user_by_email("ada@lab.example").await;
    app.grant(&ada.user, second, Role::Editor).await;
    let known = app
        .add_user("known@example.org", "Known", "User", false)
        .await;
    app.grant(&known, first, Role::Viewer).await;

    let mut keyed = app.api_key_agent(&ada.user).await;
    keyed
        .headers
        .insert("idempotency-key", "burst-1".parse().expect("header"));
    let only_first = json!([{"id": first.0}]);
    let mut requests = Vec::new();
    for n in 0..30 {
        requests.push((
            &editor,
            json!({"email": format!("new{n}@example.org"), "projects_selected": only_first}),
        ));
    }
    // One new address three times: the first creates the user, the others find them invited.
    for _ in 0..3 {
        requests.push((
            &editor,
            json!({"email": "Twice@Example.org", "projects_selected": only_first}),
        ));
    }
    // A known user gets the project they lack.
    requests.push((&editor, json!({"email": "known@example.org", "projects_selected": [{"id": first.0}, {"id": second.0}]})));
    // One request sent twice with its Idempotency-Key: one invitation.
    for _ in 0..2 {
        requests.push((
            &keyed,
            json!({"email": "keyed@example.org", "projects_selected": only_first}),
        ));
    }
    let responses =
        futures_util::future::join_all(requests.iter().map(|(agent, body)| async move {
            let response = agent.invite(body.clone()).await;
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json");
            (body["email"].as_str().map(str::to_owned), status, body)
        }))
        .await;

    let statuses = |email: &str| -> Vec<u16> {
        let mut found: Vec<u16> = responses
            .iter()
            .zip(&requests)
            .filter(|(_, (_, body))| body["email"] == email)
            .map(|((_, status, _), _)| *status)
            .collect();
        found.sort_unstable();
        found
    };
    for n in 0..30 {
        assert_eq!(statuses(&format!("new{n}@example.org")), [201]);
    }
    assert_eq!(statuses("Twice@Example.org"), [201, 409, 409]);
    assert_eq!(statuses("known@example.org"), [201]);
    assert_eq!(statuses("keyed@example.org"), [201, 201]);
    let keyed_ids: Vec<&serde_json::Value> = responses
        .iter()
        .filter(|(email, _, _)| email.as_deref() == Some("keyed@example.org"))
        .map(|(_, _, body)| &body["id"])
        .collect();
    assert_eq!(keyed_ids.len(), 2);
    assert_eq!(
        keyed_ids[0], keyed_ids[1],
        "a replay names the same invitation"
    );

    let known_projects = app.store.memberships(known.id).await.expect("store");
    assert_eq!(
        known_projects.len(),
        2,
        "the known user gained the second project"
    );
    let created: std::collections::BTreeSet<i64> = responses
        .iter()
        .filter(|(_, status, _)| *status == 201)
        .filter_map(|(_, _, body)| body["id"].as_i64())
        .collect();
    // 30 new, one of the three to one address, the known user, the keyed one.
    assert_eq!(created.len(), 33);
    assert_eq!(
        app.count_invitations().await,
        33,
        "one invitation per 201, replays aside"
    );
    let since = cbh_invite::domain::Timestamp(0);
    let audited: std::collections::BTreeSet<i64> = app
        .store
        .audit_since(since, 1_000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|event| event.event == "invitation_created")
        .filter_map(|event| event.subject?.parse().ok())
        .collect();
    assert_eq!(audited, created, "each invitation audited once, by its id");
    let mails = app.smtp.wait_for(33, WAIT).await;
    let links = mails
        .iter()
        .filter(|mail| mail.accept_link().is_some())
        .count();
    // All but the known user's, who is active and has nothing to accept.
    assert_eq!(
        links, 32,
        "every email to a pending invitee carries an accept link"
    );
    app.outbox.deliver_due().await.expect("delivery");
    assert_eq!(app.smtp.received().len(), 33, "one email per invitation");
}

backend_tests!(
    inviting_a_new_address_creates_a_pending_user_and_returns_the_whole_object,
    a_burst_of_invitations_is_decided_as_if_one_by_one,
    an_existing_user_gets_only_the_new_projects,
    inviting_a_user_who_has_every_project_answers_409,
    remind_sends_a_pending_user_a_fresh_link_and_voids_the_old_one,
    remind_asks_an_active_user_to_look_at_the_projects,
    camel_case_names_from_the_original_client_are_accepted,
    emails_are_one_user_whatever_their_case,
    an_invitation_to_the_platform_alone_needs_no_project,
    only_editors_and_owners_may_invite_to_a_project,
    an_unknown_project_is_a_bad_request,
    not_logged_in_is_401,
    a_session_needs_the_csrf_header_to_post,
    namespaces_do_not_see_each_other,
    a_retry_with_the_same_idempotency_key_sends_nothing_twice,
);
