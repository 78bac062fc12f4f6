//! Administration through the API: creating and renaming projects, members and their roles
//! (a project keeps an owner), and users' accounts (list, deactivate, activate), each change in
//! the audit log.

use std::time::Duration;

use cbh_invite::domain::{Role, Timestamp, User};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Agent, Backend, NS, PASSWORD, TestApp, json_with_status, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

fn projects_path() -> String {
    format!("/{NS}/api/cbh_projects/")
}

fn members_path(project: i64) -> String {
    format!("/{NS}/api/cbh_projects/{project}/members/")
}

fn member_path(project: i64, user: i64) -> String {
    format!("/{NS}/api/cbh_projects/{project}/members/{user}/")
}

async fn send(agent: &Agent, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let request = agent.request(method, path);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("request sent")
}

async fn put_role(agent: &Agent, project: i64, user: i64, role: &str) -> reqwest::Response {
    send(
        agent,
        Method::PUT,
        &member_path(project, user),
        Some(json!({ "role": role })),
    )
    .await
}

async fn superuser(app: &TestApp) -> (User, Agent) {
    let admin = app
        .add_user("root@lab.example", "Rosalind", "Franklin", true)
        .await;
    let agent = app.api_key_agent(&admin).await;
    (admin, agent)
}

async fn create_project(agent: &Agent, name: &str) -> i64 {
    let created = json_with_status(
        agent.post(&projects_path(), &json!({ "name": name })).await,
        201,
    )
    .await;
    created["id"].as_i64().expect("id")
}

/// The audit log's (event, subject, detail) since `since`.
async fn audit(app: &TestApp, since: Timestamp) -> Vec<(String, Option<String>, Option<String>)> {
    app.store
        .audit_since(since, 1_000)
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.event, r.subject, r.detail))
        .collect()
}

fn roles_of(members: &Value) -> Vec<(String, String)> {
    members["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|m| {
            (
                m["user"]["email"].as_str().expect("email").to_owned(),
                m["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect()
}

async fn a_superuser_creates_a_project_and_becomes_its_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let started = Timestamp::now();
    let (admin, root) = superuser(&app).await;

    let created = json_with_status(
        root.post(&projects_path(), &json!({"name": "  Kinase screen "}))
            .await,
        201,
    )
    .await;
    assert_eq!(created["name"], "Kinase screen");
    assert_eq!(created["role"], "owner");
    let id = created["id"].as_i64().expect("id");
    let members = json_with_status(root.get(&members_path(id)).await, 200).await;
    assert_eq!(
        roles_of(&members),
        vec![("root@lab.example".to_owned(), "owner".to_owned())]
    );
    assert_eq!(members["objects"][0]["user"]["id"], admin.id.0);

    let renamed = json_with_status(
        send(
            &root,
            Method::PATCH,
            &format!("{}{id}/", projects_path()),
            Some(json!({"name": "Kinase screen 2"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(renamed["name"], "Kinase screen 2");
    let listed = json_with_status(root.get(&projects_path()).await, 200).await;
    assert_eq!(listed["objects"][0]["name"], "Kinase screen 2");

    let events = audit(&app, started).await;
    let id_text = id.to_string();
    assert!(events.contains(&(
        "project_created".into(),
        Some(id_text.clone()),
        Some("Kinase screen".into())
    )));
    assert!(events.contains(&(
        "membership_changed".into(),
        Some("root@lab.example".into()),
        Some(format!("project {id}: none -> owner"))
    )));
    assert!(events.contains(&(
        "project_renamed".into(),
        Some(id_text),
        Some("Kinase screen -> Kinase screen 2".into())
    )));
}

async fn creating_and_renaming_projects_refuse_bad_input_and_other_callers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, root) = superuser(&app).await;
    let id = create_project(&root, "Kinase screen").await;
    let ada = app.add_user("ada@lab.example", "Ada", "", false).await;
    app.grant(&ada, cbh_invite::domain::ProjectId(id), Role::Editor)
        .await;
    let editor = app.api_key_agent(&ada).await;

    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": 7}),
        json!({"name": "x".repeat(201)}),
        json!({"name": "tab\tin name"}),
        json!([]),
    ] {
        let answer = json_with_status(root.post(&projects_path(), &body).await, 400).await;
        assert!(answer["error"].is_string(), "{body}");
    }
    let refused = json_with_status(
        editor
            .post(&projects_path(), &json!({"name": "Mine"}))
            .await,
        403,
    )
    .await;
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("superuser")
    );

    let path = format!("{}{id}/", projects_path());
    json_with_status(
        send(
            &editor,
            Method::PATCH,
            &path,
            Some(json!({"name": "Hijacked"})),
        )
        .await,
        403,
    )
    .await;
    json_with_status(
        send(&root, Method::PATCH, &path, Some(json!({"name": ""}))).await,
        400,
    )
    .await;
    for missing in ["999999", "abc"] {
        json_with_status(
            send(
                &root,
                Method::PATCH,
                &format!("{}{missing}/", projects_path()),
                Some(json!({"name": "Nope"})),
            )
            .await,
            404,
        )
        .await;
    }
    let other = app.add_project_in("other", "Elsewhere").await;
    json_with_status(
        send(
            &root,
            Method::PATCH,
            &format!("{}{}/", projects_path(), other.0),
            Some(json!({"name": "Nope"})),
        )
        .await,
        404,
    )
    .await;
    let unchanged = json_with_status(root.get(&projects_path()).await, 200).await;
    assert_eq!(unchanged["objects"][0]["name"], "Kinase screen");
}

async fn owners_change_roles_and_a_project_keeps_an_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let started = Timestamp::now();
    let (admin, root) = superuser(&app).await;
    let id = create_project(&root, "Kinase screen").await;
    let bob = app.add_user("bob@lab.example", "Bob", "", false).await;
    let carol = app.add_user("carol@lab.example", "Carol", "", false).await;

    let given = json_with_status(put_role(&root, id, bob.id.0, "editor").await, 200).await;
    assert_eq!(given["role"], "editor");
    assert_eq!(given["user"]["email"], "bob@lab.example");
    json_with_status(put_role(&root, id, carol.id.0, "viewer").await, 200).await;

    // Editors see the members but cannot change them; viewers do not see them.
    let bob_agent = app.api_key_agent(&bob).await;
    let seen = json_with_status(bob_agent.get(&members_path(id)).await, 200).await;
    assert_eq!(
        roles_of(&seen),
        vec![
            ("root@lab.example".to_owned(), "owner".to_owned()),
            ("bob@lab.example".to_owned(), "editor".to_owned()),
            ("carol@lab.example".to_owned(), "viewer".to_owned()),
        ]
    );
    json_with_status(put_role(&bob_agent, id, carol.id.0, "editor").await, 403).await;
    let carol_agent = app.api_key_agent(&carol).await;
    json_with_status(carol_agent.get(&members_path(id)).await, 403).await;

    // Bad input.
    for role in ["admin", "", "Owner"] {
        json_with_status(put_role(&root, id, bob.id.0, role).await, 400).await;
    }
    json_with_status(
        send(
            &root,
            Method::PUT,
            &member_path(id, bob.id.0),
            Some(json!({})),
        )
        .await,
        400,
    )
    .await;
    json_with_status(put_role(&root, id, 999_999, "viewer").await, 404).await;
    json_with_status(put_role(&root, 999_999, bob.id.0, "viewer").await, 404).await;
    json_with_status(root.get(&members_path(999_999)).await, 404).await;

    // The last owner stays.
    let refused = json_with_status(put_role(&root, id, admin.id.0, "editor").await, 409).await;
    assert!(refused["error"].as_str().expect("error").contains("owner"));
    json_with_status(root.delete(&member_path(id, admin.id.0)).await, 409).await;

    // With a second owner, the first may go; then the second is the last.
    json_with_status(put_role(&root, id, bob.id.0, "owner").await, 200).await;
    let removed = root.delete(&member_path(id, admin.id.0)).await;
    assert_eq!(removed.status(), 204);
    json_with_status(root.delete(&member_path(id, bob.id.0)).await, 409).await;
    // Nothing to remove.
    json_with_status(root.delete(&member_path(id, admin.id.0)).await, 404).await;
    // The superuser still manages it without a role; bob, now owner, does too.
    json_with_status(put_role(&bob_agent, id, carol.id.0, "editor").await, 200).await;

    let now = json_with_status(root.get(&members_path(id)).await, 200).await;
    assert_eq!(
        roles_of(&now),
        vec![
            ("bob@lab.example".to_owned(), "owner".to_owned()),
            ("carol@lab.example".to_owned(), "editor".to_owned()),
        ]
    );
    let events = audit(&app, started).await;
    let changes: Vec<(Option<String>, Option<String>)> = events
        .into_iter()
        .filter(|(event, _, _)| event == "membership_changed")
        .map(|(_, subject, detail)| (subject, detail))
        .collect();
    let change =
        |who: &str, what: &str| (Some(who.to_owned()), Some(format!("project {id}: {what}")));
    assert_eq!(
        changes,
        vec![
            change("root@lab.example", "none -> owner"),
            change("bob@lab.example", "none -> editor"),
            change("carol@lab.example", "none -> viewer"),
            change("bob@lab.example", "editor -> owner"),
            change("root@lab.example", "owner -> none"),
            change("carol@lab.example", "viewer -> editor"),
        ]
    );
}

fn emails(list: &Value) -> Vec<String> {
    list["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|u| u["email"].as_str().expect("email").to_owned())
        .collect()
}

fn deactivate_path(user: i64) -> String {
    format!("/{NS}/api/users/{user}/deactivate/")
}

fn activate_path(user: i64) -> String {
    format!("/{NS}/api/users/{user}/activate/")
}

async fn superusers_list_users_with_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, root) = superuser(&app).await;
    // ada, an editor who can log in; bob, invited and pending; dan, deactivated.
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let dan = app.add_user("dan@lab.example", "Dan", "", false).await;
    json_with_status(root.post(&deactivate_path(dan.id.0), &json!({})).await, 200).await;
    let path = |query: &str| format!("/{NS}/api/users/{query}");

    let all = json_with_status(root.get(&path("")).await, 200).await;
    assert_eq!(all["meta"]["total_count"], 4);
    assert_eq!(
        emails(&all),
        [
            "ada@lab.example",
            "bob@example.org",
            "dan@lab.example",
            "root@lab.example"
        ]
    );
    let by_email = |email: &str| {
        all["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|u| u["email"] == email)
            .cloned()
            .expect("listed")
    };
    let flags = |u: Value| {
        (
            u["is_active"].clone(),
            u["is_pending"].clone(),
            u["is_deactivated"].clone(),
        )
    };
    assert_eq!(
        flags(by_email("ada@lab.example")),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(
        flags(by_email("bob@example.org")),
        (json!(false), json!(true), json!(false))
    );
    assert_eq!(
        flags(by_email("dan@lab.example")),
        (json!(false), json!(false), json!(true))
    );
    assert_eq!(by_email("root@lab.example")["is_superuser"], true);

    let active = json_with_status(root.get(&path("?is_active=true")).await, 200).await;
    assert_eq!(emails(&active), ["ada@lab.example", "root@lab.example"]);
    let inactive = json_with_status(root.get(&path("?is_active=false")).await, 200).await;
    assert_eq!(emails(&inactive), ["bob@example.org", "dan@lab.example"]);
    let one = json_with_status(root.get(&path("?email=ADA@lab.example")).await, 200).await;
    assert_eq!(emails(&one), ["ada@lab.example"]);
    let first = json_with_status(root.get(&path("?limit=1&is_active=false")).await, 200).await;
    assert_eq!(emails(&first), ["bob@example.org"]);
    let next = first["meta"]["next"].as_str().expect("a next page");
    let second = json_with_status(root.get(next).await, 200).await;
    assert_eq!(emails(&second), ["dan@lab.example"]);
    assert!(second["meta"]["next"].is_null());

    for bad in [
        "?is_active=maybe",
        "?limit=-1",
        "?offset=x",
        "?email__startswith=a",
    ] {
        let answer = json_with_status(root.get(&path(bad)).await, 400).await;
        assert!(answer["error"].is_string(), "{bad}");
    }
    let refused = json_with_status(editor.get(&path("")).await, 403).await;
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("superuser")
    );
    json_with_status(app.anonymous().get(&path("")).await, 401).await;
}

async fn a_deactivated_user_cannot_authenticate_by_any_means(backend: Backend) {
    let app = spawn_app(backend).await;
    let started = Timestamp::now();
    let (admin, root) = superuser(&app).await;
    let ada = app
        .add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;
    let session = app.login("ada@lab.example", PASSWORD).await;
    let key = app.api_key_agent(&ada).await;
    let me = format!("/{NS}/api/session/");
    let verify = format!("/{NS}/auth/verify");
    json_with_status(session.get(&me).await, 200).await;
    json_with_status(key.get(&me).await, 200).await;
    assert_eq!(session.get(&verify).await.status(), 200);
    assert_eq!(key.get(&verify).await.status(), 200);
    // A pending invitee with a live link.
    let (_, mail) = app
        .invite_and_wait_for_mail(&root, json!({"email": "bob@example.org"}), WAIT)
        .await;
    let token = mail.accept_token().expect("token");
    let bob = app.user_by_email("bob@example.org").await.user;

    let done = json_with_status(root.post(&deactivate_path(ada.id.0), &json!({})).await, 200).await;
    assert_eq!(done["is_active"], false);
    assert_eq!(done["is_deactivated"], true);
    json_with_status(session.get(&me).await, 401).await;
    json_with_status(key.get(&me).await, 401).await;
    // Forward-auth uses the same lookups: the proxy is told 401.
    json_with_status(session.get(&verify).await, 401).await;
    json_with_status(key.get(&verify).await, 401).await;
    // Logging in answers as a wrong password does.
    let anonymous = app.anonymous();
    let login = |password: &'static str| {
        let body = json!({"username": "ada@lab.example", "password": password});
        let me = me.clone();
        let anonymous = &anonymous;
        async move { anonymous.post(&me, &body).await }
    };
    let wrong = json_with_status(login("not the password at all").await, 401).await;
    let right = json_with_status(login(PASSWORD).await, 401).await;
    assert_eq!(right["error"], wrong["error"]);
    // Deactivating twice changes nothing more.
    json_with_status(root.post(&deactivate_path(ada.id.0), &json!({})).await, 200).await;

    json_with_status(root.post(&deactivate_path(bob.id.0), &json!({})).await, 200).await;
    let dead = json_with_status(app.accept(&token, "a good long password").await, 410).await;
    assert!(dead["error"].is_string());
    let page = app.anonymous().get(&format!("/{NS}/accept/{token}")).await;
    assert_eq!(page.status(), 410);

    // Activated again: the password and the key work; the ended session stays ended.
    let back = json_with_status(root.post(&activate_path(ada.id.0), &json!({})).await, 200).await;
    assert_eq!(back["is_active"], true);
    json_with_status(login(PASSWORD).await, 200).await;
    json_with_status(key.get(&me).await, 200).await;
    json_with_status(session.get(&me).await, 401).await;
    // The pending invitee, active again, still has no live link: the old one was voided.
    json_with_status(root.post(&activate_path(bob.id.0), &json!({})).await, 200).await;
    json_with_status(app.accept(&token, "a good long password").await, 410).await;

    // Refusals.
    let own = json_with_status(
        root.post(&deactivate_path(admin.id.0), &json!({})).await,
        409,
    )
    .await;
    assert!(own["error"].as_str().expect("error").contains("yourself"));
    json_with_status(root.post(&deactivate_path(999_999), &json!({})).await, 404).await;
    json_with_status(
        root.post(&format!("/{NS}/api/users/x/activate/"), &json!({}))
            .await,
        404,
    )
    .await;
    json_with_status(
        key.post(&deactivate_path(admin.id.0), &json!({})).await,
        403,
    )
    .await;

    let events: Vec<(String, Option<String>)> = audit(&app, started)
        .await
        .into_iter()
        .filter(|(event, _, _)| event.starts_with("user_"))
        .map(|(event, subject, _)| (event, subject))
        .collect();
    let event = |name: &str, who: &str| (name.to_owned(), Some(who.to_owned()));
    assert_eq!(
        events,
        vec![
            event("user_deactivated", "ada@lab.example"),
            event("user_deactivated", "bob@example.org"),
            event("user_activated", "ada@lab.example"),
            event("user_activated", "bob@example.org"),
        ]
    );
}

async fn hostile_bodies_get_json_errors_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, root) = superuser(&app).await;
    let id = create_project(&root, "Kinase screen").await;
    let bob = app.add_user("bob@lab.example", "Bob", "", false).await;
    let targets = [
        (Method::POST, projects_path()),
        (Method::PATCH, format!("{}{id}/", projects_path())),
        (Method::PUT, member_path(id, bob.id.0)),
    ];
    for (method, path) in &targets {
        let raw = |body: &'static str, content_type: &'static str| {
            root.request(method.clone(), path)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        for (body, content_type, status) in [
            (
                "name=x&role=owner",
                "application/x-www-form-urlencoded",
                415,
            ),
            ("{\"name\": ", "application/json", 400),
            ("[\"owner\"]", "application/json", 400),
            ("\"owner\"", "application/json", 400),
            (
                "{\"name\": \"\\u0000\", \"role\": \"\\u0000\"}",
                "application/json",
                400,
            ),
        ] {
            let answer =
                json_with_status(raw(body, content_type).await.expect("sent"), status).await;
            assert!(answer["error"].is_string(), "{method} {path} {body}");
        }
        let big = json!({"name": "x".repeat(70 * 1024), "role": "x".repeat(70 * 1024)});
        let answer =
            json_with_status(send(&root, method.clone(), path, Some(big)).await, 413).await;
        assert!(answer["error"].is_string());
    }
    let projects = app.store.projects(NS).await.expect("projects");
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].name, "Kinase screen");
    assert!(
        app.store
            .memberships(bob.id)
            .await
            .expect("memberships")
            .is_empty()
    );
}

/// Two owners removing each other at once: one succeeds; the other finds itself the last
/// owner (409: the project's row is locked for the change) or no longer an owner (403).
async fn concurrent_removals_never_leave_a_project_without_an_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin, root) = superuser(&app).await;
    let ann = app.add_user("ann@lab.example", "Ann", "", false).await;
    let ben = app.add_user("ben@lab.example", "Ben", "", false).await;
    let ann_agent = app.api_key_agent(&ann).await;
    let ben_agent = app.api_key_agent(&ben).await;
    for round in 0..20 {
        let id = create_project(&root, &format!("Project {round}")).await;
        for user in [&ann, &ben] {
            json_with_status(put_role(&root, id, user.id.0, "owner").await, 200).await;
        }
        json_with_status(root.delete(&member_path(id, admin.id.0)).await, 204).await;
        let (remove_ben, remove_ann) = (member_path(id, ben.id.0), member_path(id, ann.id.0));
        let (a, b) = tokio::join!(ann_agent.delete(&remove_ben), ben_agent.delete(&remove_ann),);
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert!(
            statuses == [204, 403] || statuses == [204, 409],
            "round {round}: {statuses:?}"
        );
        let members = json_with_status(root.get(&members_path(id)).await, 200).await;
        let roles = roles_of(&members);
        assert_eq!(roles.len(), 1, "round {round}: {roles:?}");
        assert_eq!(roles[0].1, "owner");
    }
}

backend_tests!(
    a_superuser_creates_a_project_and_becomes_its_owner,
    creating_and_renaming_projects_refuse_bad_input_and_other_callers,
    owners_change_roles_and_a_project_keeps_an_owner,
    superusers_list_users_with_filters,
    a_deactivated_user_cannot_authenticate_by_any_means,
    hostile_bodies_get_json_errors_and_change_nothing,
    concurrent_removals_never_leave_a_project_without_an_owner,
    inviting_a_deactivated_account_is_409_and_sends_nothing,
);

/// A deactivated account's link could never be used: inviting its address (alone, by remind,
/// in bulk or on the page) is a 409 saying so, with nothing written or queued; once activated
/// again, it may be invited.
async fn inviting_a_deactivated_account_is_409_and_sends_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, root) = superuser(&app).await;
    let project = create_project(&root, "Kinase screen").await;
    let ada = app
        .add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;
    json_with_status(root.post(&deactivate_path(ada.id.0), &json!({})).await, 200).await;
    let before = app.count_invitations().await;
    let message = "This person's account is deactivated; a superuser can activate it again";
    for body in [
        json!({"email": "ada@lab.example", "projects_selected": [{"id": project}]}),
        json!({"email": "Ada@Lab.example", "projects_selected": [], "remind": true}),
    ] {
        let refused = json_with_status(root.invite(body).await, 409).await;
        assert_eq!(refused["error"], message);
    }
    let bulk = json_with_status(
        root.post(
            &format!("/{NS}/api/invitations/bulk/"),
            &json!({"objects": [{"email": "ada@lab.example"}, {"email": "bob@lab.example"}]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(bulk["objects"][0]["status"], 409, "{bulk:#}");
    assert_eq!(bulk["objects"][0]["error"], message);
    assert_eq!(bulk["objects"][1]["status"], 201, "{bulk:#}");
    assert_eq!(app.count_invitations().await, before + 1, "only bob's");
    let queued: Vec<String> = app
        .store
        .list_outbox(None, 100)
        .await
        .expect("outbox")
        .into_iter()
        .map(|row| row.recipient)
        .collect();
    assert_eq!(queued, ["bob@lab.example"]);

    json_with_status(root.post(&activate_path(ada.id.0), &json!({})).await, 200).await;
    json_with_status(
        root.invite(json!({"email": "ada@lab.example", "projects_selected": [{"id": project}]}))
            .await,
        201,
    )
    .await;
}
