//! Who may act on an invitation: one rule for reading, resending and revoking it (its creator,
//! a superuser, or an owner of every one of its projects), a role needed to invite at all, and
//! the accept endpoint's answer to a body without a token.

use cbh_invite::domain::{EmailAddress, ProjectId, Role};
use serde_json::{Value, json};

use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app};

fn detail_path(id: i64) -> String {
    format!("/{NS}/api/invitations/{id}/")
}

fn resend_path(id: i64) -> String {
    format!("/{NS}/api/invitations/{id}/resend/")
}

fn revoke_path(id: i64) -> String {
    format!("/{NS}/api/invitations/{id}/revoke/")
}

async fn invite(agent: &Agent, email: &str, projects: &[ProjectId]) -> i64 {
    let selected: Vec<Value> = projects.iter().map(|p| json!({"id": p.0})).collect();
    let created = json_with_status(
        agent
            .invite(json!({"email": email, "projects_selected": selected}))
            .await,
        201,
    )
    .await;
    created["id"].as_i64().expect("id")
}

/// Ada, editor of two projects, invites Bob to both; Olga owns only the first.
async fn an_invitation_to_two_projects(app: &TestApp) -> (Agent, Agent, i64) {
    let ada = app.add_user("ada@lab.example", "Ada", "", false).await;
    let kinase = app.add_project("Kinase screen").await;
    let secret = app.add_project("Secret compounds").await;
    app.grant(&ada, kinase, Role::Editor).await;
    app.grant(&ada, secret, Role::Editor).await;
    let olga = app.add_user("olga@lab.example", "Olga", "", false).await;
    app.grant(&olga, kinase, Role::Owner).await;
    let ada = app.api_key_agent(&ada).await;
    let id = invite(&ada, "bob@example.org", &[kinase, secret]).await;
    (ada, app.api_key_agent(&olga).await, id)
}

async fn an_owner_of_only_some_of_its_projects_gets_404_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, olga, id) = an_invitation_to_two_projects(&app).await;

    for response in [
        olga.get(&detail_path(id)).await,
        olga.post(&resend_path(id), &json!({})).await,
        olga.post(&revoke_path(id), &json!({})).await,
    ] {
        let body = json_with_status(response, 404).await;
        assert!(
            !body.to_string().contains("Secret compounds"),
            "another project's name leaked: {body}"
        );
    }

    // Nothing changed: the invitation is pending and Bob still has both projects.
    let invitation = app.invitation(&ada, id).await;
    assert_eq!(invitation["status"], "pending");
    let bob = app
        .store
        .user_by_email(NS, &EmailAddress::parse("bob@example.org").expect("email"))
        .await
        .expect("store")
        .expect("bob exists")
        .user;
    let memberships = app.store.memberships(bob.id).await.expect("memberships");
    assert_eq!(memberships.len(), 2, "{memberships:?}");
}

async fn an_owner_of_every_project_may_read_resend_and_revoke(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.add_user("ada@lab.example", "Ada", "", false).await;
    let kinase = app.add_project("Kinase screen").await;
    let secret = app.add_project("Secret compounds").await;
    let olga = app.add_user("olga@lab.example", "Olga", "", false).await;
    for project in [kinase, secret] {
        app.grant(&ada, project, Role::Editor).await;
        app.grant(&olga, project, Role::Owner).await;
    }
    let ada = app.api_key_agent(&ada).await;
    let olga = app.api_key_agent(&olga).await;
    let id = invite(&ada, "bob@example.org", &[kinase, secret]).await;

    let seen = json_with_status(olga.get(&detail_path(id)).await, 200).await;
    assert_eq!(seen["id"], id);
    json_with_status(olga.post(&resend_path(id), &json!({})).await, 200).await;
    let revoked = json_with_status(olga.post(&revoke_path(id), &json!({})).await, 200).await;
    assert_eq!(revoked["status"], "revoked");
}

async fn an_invitation_without_projects_is_for_its_creator_and_superusers_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.add_user("ada@lab.example", "Ada", "", false).await;
    let project = app.add_project("Kinase screen").await;
    app.grant(&ada, project, Role::Editor).await;
    // Olga owns every project the invitation has, vacuously: that must not be enough.
    let olga = app.add_user("olga@lab.example", "Olga", "", false).await;
    app.grant(&olga, project, Role::Owner).await;
    let root = app.add_user("root@lab.example", "Root", "", true).await;
    let ada = app.api_key_agent(&ada).await;
    let olga = app.api_key_agent(&olga).await;
    let root = app.api_key_agent(&root).await;
    let id = invite(&ada, "dan@example.org", &[]).await;

    json_with_status(olga.get(&detail_path(id)).await, 404).await;
    json_with_status(olga.post(&resend_path(id), &json!({})).await, 404).await;
    json_with_status(olga.post(&revoke_path(id), &json!({})).await, 404).await;

    json_with_status(ada.get(&detail_path(id)).await, 200).await;
    json_with_status(root.get(&detail_path(id)).await, 200).await;
    json_with_status(root.post(&resend_path(id), &json!({})).await, 200).await;
    json_with_status(ada.post(&revoke_path(id), &json!({})).await, 200).await;
}

async fn inviting_needs_an_editor_or_owner_role_somewhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let project = app.add_project("Kinase screen").await;
    let viewer = app.add_user("val@lab.example", "Val", "", false).await;
    app.grant(&viewer, project, Role::Viewer).await;
    let outsider = app.add_user("out@lab.example", "Out", "", false).await;
    // An existing account: without the rule, 409 (rather than 201) would tell that it exists.
    app.add_user("known@lab.example", "Known", "", false).await;

    for user in [&viewer, &outsider] {
        let agent = app.api_key_agent(user).await;
        for body in [
            json!({"email": "dan@example.org", "projects_selected": []}),
            json!({"email": "dan@example.org"}),
            json!({"email": "known@lab.example", "projects_selected": []}),
        ] {
            let refused = json_with_status(agent.invite(body.clone()).await, 403).await;
            assert!(
                refused["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("editor or owner")),
                "{body} by {}: {refused}",
                user.email
            );
        }
    }
    let dan = app
        .store
        .user_by_email(NS, &EmailAddress::parse("dan@example.org").expect("email"))
        .await
        .expect("store");
    assert!(dan.is_none(), "a refused invitation created a user");

    // An editor of some project, and a superuser of none, may invite to the platform alone.
    let editor = app.add_user("ed@lab.example", "Ed", "", false).await;
    app.grant(&editor, project, Role::Editor).await;
    let editor = app.api_key_agent(&editor).await;
    json_with_status(
        editor
            .invite(json!({"email": "dan@example.org", "projects_selected": []}))
            .await,
        201,
    )
    .await;
    let root = app.add_user("root@lab.example", "Root", "", true).await;
    let root = app.api_key_agent(&root).await;
    json_with_status(root.invite(json!({"email": "eve@example.org"})).await, 201).await;
}

async fn accept_without_a_string_token_is_400_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in [
        json!({"password": "a good long password"}),
        json!({"token": null, "password": "a good long password"}),
        json!({"token": 42, "password": "a good long password"}),
        json!({"token": ["abc"], "password": "a good long password"}),
        json!({"token": {"value": "abc"}, "password": "a good long password"}),
        json!({"token": true}),
    ] {
        let response = app
            .anonymous()
            .post(&format!("/{NS}/api/invitations/accept/"), &body)
            .await;
        let error = json_with_status(response, 400).await;
        assert!(
            error["error"].as_str().is_some_and(|e| e.contains("token")),
            "{body}: {error}"
        );
    }
    // A string that is not a live token is still 410.
    let response = app
        .anonymous()
        .post(
            &format!("/{NS}/api/invitations/accept/"),
            &json!({"token": "nope", "password": "a good long password"}),
        )
        .await;
    json_with_status(response, 410).await;
}

backend_tests!(
    an_owner_of_only_some_of_its_projects_gets_404_everywhere,
    an_owner_of_every_project_may_read_resend_and_revoke,
    an_invitation_without_projects_is_for_its_creator_and_superusers_only,
    inviting_needs_an_editor_or_owner_role_somewhere,
    accept_without_a_string_token_is_400_naming_the_field,
);
