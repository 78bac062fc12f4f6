//! Roles other than viewer (issue 13): `projects_selected: [{"id", "role"}]`, who may give
//! which role, a member's role rising (never falling), what the invitation shows, and revoke
//! putting back the role it found.

use std::time::Duration;

use cbh_invite::domain::{ProjectId, Role, User};
use serde_json::{Value, json};

use crate::invite_rules::{hidden, page_client, page_text};
use crate::support::webhooks::{Receiver, admin_with_webhook};
use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

backend_tests!(
    an_editor_invites_as_editor_and_the_member_is_editor_after_accepting,
    an_editor_may_not_give_owner,
    an_owner_and_a_superuser_may_give_owner,
    an_existing_viewer_rises_to_editor_with_the_access_changed_email,
    an_equal_or_lower_role_is_409_and_never_lowers,
    revoke_restores_the_previous_role_and_removes_the_added_project,
    revoke_leaves_a_role_changed_since,
    revoking_the_earlier_invitation_first_ends_where_both_started,
    a_bad_role_is_400_naming_it,
    whole_project_objects_of_the_web_client_mean_viewer,
    invitations_created_together_get_their_roles,
    the_invite_page_offers_the_roles_the_inviter_may_give,
    webhooks_carry_the_roles_given_and_taken_back,
    bulk_rows_give_roles_within_the_inviters_own,
);

fn selection(projects: &[(ProjectId, &str)]) -> Vec<Value> {
    projects
        .iter()
        .map(|(id, role)| json!({"id": id.0, "role": role}))
        .collect()
}

async fn invite(agent: &Agent, email: &str, projects: &[(ProjectId, &str)], status: u16) -> Value {
    let body = json!({"email": email, "projects_selected": selection(projects)});
    json_with_status(agent.invite(body).await, status).await
}

/// The user's role on each project they have, in project order.
async fn roles_of(app: &TestApp, user: &User) -> Vec<(ProjectId, Role)> {
    let mut roles: Vec<(ProjectId, Role)> = app
        .store
        .memberships(user.id)
        .await
        .expect("memberships")
        .into_iter()
        .map(|m| (m.project.id, m.role))
        .collect();
    roles.sort();
    roles
}

/// `projects_selected` of an invitation as (id, role) pairs.
fn shown_roles(invitation: &Value) -> Vec<(i64, String)> {
    invitation["projects_selected"]
        .as_array()
        .expect("projects_selected")
        .iter()
        .map(|p| {
            (
                p["id"].as_i64().expect("id"),
                p["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect()
}

fn revoke_path(id: &Value) -> String {
    format!("/{NS}/api/invitations/{}/revoke/", id.as_i64().expect("id"))
}

async fn an_editor_invites_as_editor_and_the_member_is_editor_after_accepting(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;

    let created = invite(&editor, "bob@example.org", &[(project, "editor")], 201).await;
    assert_eq!(shown_roles(&created), [(project.0, "editor".to_owned())]);
    // The list and the detail show it too.
    let list = json_with_status(editor.get(&format!("/{NS}/api/invitations/")).await, 200).await;
    assert_eq!(
        shown_roles(&list["objects"][0]),
        [(project.0, "editor".to_owned())]
    );
    let id = created["id"].as_i64().expect("id");
    let detail = app.invitation(&editor, id).await;
    assert_eq!(shown_roles(&detail), [(project.0, "editor".to_owned())]);

    let token = app.smtp.wait_for(1, WAIT).await[0]
        .accept_token()
        .expect("token");
    json_with_status(app.accept(&token, "a good long password").await, 200).await;
    let bob = app.user_by_email("bob@example.org").await.user;
    assert!(bob.is_active);
    assert_eq!(roles_of(&app, &bob).await, [(project, Role::Editor)]);
}

async fn an_editor_may_not_give_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;

    let refused = invite(&editor, "bob@example.org", &[(project, "owner")], 403).await;
    let error = refused["error"].as_str().expect("error");
    assert!(error.contains("'Kinase screen'"), "{error}");
    assert!(error.contains("editor"), "{error}");
    assert_eq!(app.count_invitations().await, 0);
    assert!(app.find_user(NS, "bob@example.org").await.is_none());
}

async fn an_owner_and_a_superuser_may_give_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.add_user("olga@lab.example", "Olga", "O", false).await;
    let root = app.add_user("root@lab.example", "Root", "R", true).await;
    let owned = app.add_project("Kinase screen").await;
    let other = app.add_project("Assay panel").await;
    app.grant(&owner, owned, Role::Owner).await;
    let owner = app.api_key_agent(&owner).await;
    let root = app.api_key_agent(&root).await;

    invite(&owner, "bob@example.org", &[(owned, "owner")], 201).await;
    // The superuser holds no role on the project, and may give any.
    invite(&root, "bob@example.org", &[(other, "owner")], 201).await;
    let bob = app.user_by_email("bob@example.org").await.user;
    assert_eq!(
        roles_of(&app, &bob).await,
        [(owned, Role::Owner), (other, Role::Owner)]
    );
}

async fn an_existing_viewer_rises_to_editor_with_the_access_changed_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let bob = app.add_user("bob@example.org", "Bob", "Smith", false).await;
    app.grant(&bob, project, Role::Viewer).await;

    let created = invite(&editor, "bob@example.org", &[(project, "editor")], 201).await;
    assert_eq!(
        created["message"],
        "Existing user bob@example.org invited to new projects, would you like to invite anyone else?"
    );
    assert_eq!(shown_roles(&created), [(project.0, "editor".to_owned())]);
    assert_eq!(roles_of(&app, &bob).await, [(project, Role::Editor)]);
    let mails = app.smtp.wait_for(1, WAIT).await;
    assert_eq!(
        mails[0].subject(),
        "Ada Lovelace has edited your project access on ChemBio Hub Platform"
    );
    assert!(
        mails[0].text().contains("Kinase screen (editor)"),
        "{}",
        mails[0].text()
    );
}

async fn an_equal_or_lower_role_is_409_and_never_lowers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let other = app.add_project("Assay panel").await;
    let ada = app.user_by_email("ada@lab.example").await.user;
    app.grant(&ada, other, Role::Editor).await;
    let bob = app.add_user("bob@example.org", "Bob", "Smith", false).await;
    app.grant(&bob, project, Role::Editor).await;

    for role in ["viewer", "editor"] {
        let refused = invite(&editor, "bob@example.org", &[(project, role)], 409).await;
        assert_eq!(
            refused["error"],
            "User already exists, do you wish to invite again?"
        );
    }
    // With something new elsewhere it is created, and the higher role stays.
    invite(
        &editor,
        "bob@example.org",
        &[(project, "viewer"), (other, "viewer")],
        201,
    )
    .await;
    assert_eq!(
        roles_of(&app, &bob).await,
        [(project, Role::Editor), (other, Role::Viewer)]
    );
}

async fn revoke_restores_the_previous_role_and_removes_the_added_project(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, first) = app.editor_with_project().await;
    let second = app.add_project("Assay panel").await;
    let ada = app.user_by_email("ada@lab.example").await.user;
    app.grant(&ada, second, Role::Editor).await;

    let earlier = invite(&editor, "bob@example.org", &[(first, "viewer")], 201).await;
    let later = invite(
        &editor,
        "bob@example.org",
        &[(first, "editor"), (second, "viewer")],
        201,
    )
    .await;
    let bob = app.user_by_email("bob@example.org").await.user;
    assert_eq!(
        roles_of(&app, &bob).await,
        [(first, Role::Editor), (second, Role::Viewer)]
    );

    let revoked = json_with_status(
        editor.post(&revoke_path(&later["id"]), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        shown_roles(&revoked),
        [
            (first.0, "editor".to_owned()),
            (second.0, "viewer".to_owned())
        ]
    );
    // The rise undone, the added project removed; the earlier invitation's grant stays.
    assert_eq!(roles_of(&app, &bob).await, [(first, Role::Viewer)]);

    json_with_status(
        editor.post(&revoke_path(&earlier["id"]), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(roles_of(&app, &bob).await, []);
}

async fn revoking_the_earlier_invitation_first_ends_where_both_started(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let earlier = invite(&editor, "bob@example.org", &[(project, "viewer")], 201).await;
    let later = invite(&editor, "bob@example.org", &[(project, "editor")], 201).await;
    let bob = app.user_by_email("bob@example.org").await.user;

    // The later invitation's rise stays while it is in force.
    json_with_status(
        editor.post(&revoke_path(&earlier["id"]), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(roles_of(&app, &bob).await, [(project, Role::Editor)]);
    // Its start was the earlier one's viewer, which is gone: nothing is left.
    json_with_status(
        editor.post(&revoke_path(&later["id"]), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(roles_of(&app, &bob).await, []);
}

async fn revoke_leaves_a_role_changed_since(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let created = invite(&editor, "bob@example.org", &[(project, "editor")], 201).await;
    let bob = app.user_by_email("bob@example.org").await.user;
    // An owner made the invitee owner after the invitation.
    app.grant(&bob, project, Role::Owner).await;

    json_with_status(
        editor.post(&revoke_path(&created["id"]), &json!({})).await,
        200,
    )
    .await;
    assert_eq!(roles_of(&app, &bob).await, [(project, Role::Owner)]);
}

async fn a_bad_role_is_400_naming_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;

    for (role, named) in [
        (json!("admin"), "'admin'"),
        (json!("OWNER"), "'OWNER'"),
        (json!(3), "'3'"),
    ] {
        let body = json!({
            "email": "bob@example.org",
            "projects_selected": [{"id": project.0, "role": role}],
        });
        let refused = json_with_status(editor.invite(body).await, 400).await;
        let error = refused["error"].as_str().expect("error");
        assert!(error.contains(named), "{error}");
        assert!(error.contains("viewer, editor or owner"), "{error}");
    }
    assert_eq!(app.count_invitations().await, 0);
}

async fn whole_project_objects_of_the_web_client_mean_viewer(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.add_user("olga@lab.example", "Olga", "O", false).await;
    let project = app.add_project("Kinase screen").await;
    app.grant(&owner, project, Role::Owner).await;
    let owner = app.api_key_agent(&owner).await;

    // What the web client does: read the projects, send them back whole.
    let projects =
        json_with_status(owner.get(&format!("/{NS}/api/cbh_projects/")).await, 200).await;
    let objects = projects["objects"].clone();
    assert_eq!(objects[0]["role"], "owner", "{objects}");
    let created = json_with_status(
        owner
            .invite(json!({"email": "bob@example.org", "projects_selected": objects}))
            .await,
        201,
    )
    .await;
    assert_eq!(shown_roles(&created), [(project.0, "viewer".to_owned())]);
    let bob = app.user_by_email("bob@example.org").await.user;
    assert_eq!(roles_of(&app, &bob).await, [(project, Role::Viewer)]);
}

async fn invitations_created_together_get_their_roles(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let roles = ["viewer", "editor"];
    // At once, so that the group commit creates many of them in one batch.
    let answers = futures_util::future::join_all((0..12).map(|n| {
        let editor = &editor;
        let role = roles[n % 2];
        async move {
            let email = format!("person{n}@example.org");
            (
                email.clone(),
                invite(editor, &email, &[(project, role)], 201).await,
            )
        }
    }))
    .await;
    for (n, (email, answer)) in answers.iter().enumerate() {
        let role = roles[n % 2];
        assert_eq!(shown_roles(answer), [(project.0, role.to_owned())], "{n}");
        let person = app.user_by_email(email).await.user;
        let expected = if n % 2 == 0 {
            Role::Viewer
        } else {
            Role::Editor
        };
        assert_eq!(roles_of(&app, &person).await, [(project, expected)], "{n}");
    }
}

async fn the_invite_page_offers_the_roles_the_inviter_may_give(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, project) = app.editor_with_project().await;
    let client = page_client(&app, "ada@lab.example").await;
    let url = format!("{}/{NS}/invite/", app.base);
    let page = page_text(&client, &url).await;
    // An editor: viewer and editor, not owner.
    assert!(page.contains("<option value=\"viewer\""), "{page}");
    assert!(page.contains("<option value=\"editor\""), "{page}");
    assert!(!page.contains("<option value=\"owner\""), "{page}");
    let csrf = hidden(&page, "csrfmiddlewaretoken");
    let project_id = project.0.to_string();
    let post = |email: &'static str, role: &'static str| {
        client
            .post(&url)
            .form(&[
                ("csrfmiddlewaretoken", csrf.as_str()),
                ("email", email),
                ("projects", project_id.as_str()),
                ("role", role),
            ])
            .send()
    };

    let invited = post("bob@example.org", "editor").await.expect("sent");
    assert_eq!(invited.status(), 303);
    let bob = app.user_by_email("bob@example.org").await.user;
    assert_eq!(roles_of(&app, &bob).await, [(project, Role::Editor)]);
    let list = client
        .get(&url)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert!(list.contains("Kinase screen (editor)"), "{list}");

    // A forged owner is refused by name, as in the API.
    let refused = post("carol@example.org", "owner").await.expect("sent");
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.expect("body");
    assert!(body.contains("project &#x27;Kinase screen&#x27;"), "{body}");
    assert!(app.find_user(NS, "carol@example.org").await.is_none());
}

async fn webhooks_carry_the_roles_given_and_taken_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    admin_with_webhook(
        &app,
        &receiver,
        &["invitation.created", "membership.changed"],
    )
    .await;
    let (editor, project) = app.editor_with_project().await;

    invite(&editor, "bob@example.org", &[(project, "viewer")], 201).await;
    let raised = invite(&editor, "bob@example.org", &[(project, "editor")], 201).await;
    receiver
        .wait_for("the invitation with its role", WAIT, |r| {
            let body = r.json();
            r.event() == "invitation.created"
                && body["data"]["id"] == raised["id"]
                && body["data"]["projects_selected"][0]["role"] == "editor"
        })
        .await;
    let changed = |old: &'static str, new: &'static str| {
        move |r: &crate::support::webhooks::Received| {
            let body = r.json();
            r.event() == "membership.changed"
                && body["data"]["old_role"] == old
                && body["data"]["new_role"] == new
        }
    };
    receiver
        .wait_for("viewer raised to editor", WAIT, changed("viewer", "editor"))
        .await;
    json_with_status(
        editor.post(&revoke_path(&raised["id"]), &json!({})).await,
        200,
    )
    .await;
    receiver
        .wait_for("editor back to viewer", WAIT, changed("editor", "viewer"))
        .await;
}

/// A bulk request's rows follow the single POST's role rules, row by row: a row's own roles, the
/// request's default roles for a row without, and a 403 naming the project for a role above
/// the inviter's own that stops no other row.
async fn bulk_rows_give_roles_within_the_inviters_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let answer = json_with_status(
        editor
            .post(
                &format!("/{NS}/api/invitations/bulk/"),
                &json!({
                    "projects_selected": selection(&[(project, "editor")]),
                    "objects": [
                        {"email": "own@lab.example", "projects_selected": selection(&[(project, "viewer")])},
                        {"email": "default@lab.example"},
                        {"email": "owner@lab.example", "projects_selected": selection(&[(project, "owner")])},
                    ],
                }),
            )
            .await,
        200,
    )
    .await;
    let rows = answer["objects"].as_array().expect("rows");
    let statuses: Vec<i64> = rows
        .iter()
        .map(|r| r["status"].as_i64().expect("status"))
        .collect();
    assert_eq!(statuses, [201, 201, 403], "{answer:#}");
    assert_eq!(
        shown_roles(&rows[0]["invitation"]),
        [(project.0, "viewer".to_owned())]
    );
    assert_eq!(
        shown_roles(&rows[1]["invitation"]),
        [(project.0, "editor".to_owned())]
    );
    let refused = rows[2]["error"].as_str().expect("error");
    assert!(
        refused.contains("at most your own role (editor)"),
        "{refused}"
    );
    let invited = app.user_by_email("default@lab.example").await.user;
    assert_eq!(roles_of(&app, &invited).await, [(project, Role::Editor)]);
    assert!(app.find_user(NS, "owner@lab.example").await.is_none());
}
