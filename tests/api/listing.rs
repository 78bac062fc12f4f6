use serde_json::{Value, json};

use cbh_invite::domain::Role;

use crate::support::{Agent, Backend, NS, json_with_status, spawn_app};

async fn total(agent: &Agent) -> i64 {
    json_with_status(agent.get(&format!("/{NS}/api/invitations/")).await, 200).await["meta"]
        ["total_count"]
        .as_i64()
        .expect("count")
}

async fn invite_many(agent: &Agent, prefix: &str, count: usize) {
    for i in 0..count {
        json_with_status(
            agent
                .invite(json!({"email": format!("{prefix}{i}@example.org")}))
                .await,
            201,
        )
        .await;
    }
}

async fn the_list_pages_with_tastypie_meta(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    invite_many(&editor, "p", 25).await;

    let first = json_with_status(editor.get(&format!("/{NS}/api/invitations/")).await, 200).await;
    assert_eq!(first["meta"]["limit"], 20);
    assert_eq!(first["meta"]["offset"], 0);
    assert_eq!(first["meta"]["total_count"], 25);
    assert_eq!(first["meta"]["previous"], Value::Null);
    assert_eq!(first["objects"].as_array().map(Vec::len), Some(20));
    let next = first["meta"]["next"]
        .as_str()
        .expect("next page")
        .to_owned();
    assert_eq!(next, format!("/{NS}/api/invitations/?limit=20&offset=20"));

    let second = json_with_status(editor.get(&next).await, 200).await;
    assert_eq!(second["objects"].as_array().map(Vec::len), Some(5));
    assert_eq!(second["meta"]["next"], Value::Null);
    assert!(second["meta"]["previous"].is_string());

    let small = json_with_status(
        editor
            .get(&format!(
                "/{NS}/api/invitations/?limit=3&offset=1&format=json"
            ))
            .await,
        200,
    )
    .await;
    assert_eq!(small["objects"].as_array().map(Vec::len), Some(3));
    let huge = json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?limit=100000"))
            .await,
        200,
    )
    .await;
    assert_eq!(huge["meta"]["limit"], 1000);
    json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?limit=-5"))
            .await,
        400,
    )
    .await;
    json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?offset=x"))
            .await,
        400,
    )
    .await;
}

async fn the_list_filters_by_email_and_status(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    invite_many(&editor, "f", 3).await;
    json_with_status(
        editor
            .invite(json!({"email": "Mixed@Example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let active = app.add_user("act@example.org", "", "", false).await;
    app.grant(&active, project, Role::Viewer).await;
    json_with_status(
        editor
            .invite(json!({"email": "act@example.org", "projects_selected": [{"id": project.0}], "remind": true}))
            .await,
        201,
    )
    .await;

    let count = |query: String| {
        let editor = &editor;
        async move {
            let body = json_with_status(
                editor.get(&format!("/{NS}/api/invitations/?{query}")).await,
                200,
            )
            .await;
            body["meta"]["total_count"].as_i64().expect("count")
        }
    };
    assert_eq!(count("email=Mixed@example.org".into()).await, 1);
    assert_eq!(count("email=mixed@example.org".into()).await, 0);
    assert_eq!(count("email__iexact=MIXED@EXAMPLE.ORG".into()).await, 1);
    assert_eq!(count("status=pending".into()).await, 4);
    assert_eq!(count("status=accepted".into()).await, 1);
    assert_eq!(count("status=expired".into()).await, 0);
    assert_eq!(count("status=revoked".into()).await, 0);
    json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?status=lost"))
            .await,
        400,
    )
    .await;
    json_with_status(
        editor
            .get(&format!("/{NS}/api/invitations/?email__contains=x"))
            .await,
        400,
    )
    .await;
}

async fn users_see_their_own_invitations_and_superusers_see_all(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    invite_many(&editor, "mine", 2).await;
    let other = app.add_user("other@lab.example", "", "", false).await;
    let project = app.add_project("Other's project").await;
    app.grant(&other, project, Role::Editor).await;
    let other = app.api_key_agent(&other).await;
    invite_many(&other, "theirs", 3).await;
    let root = app.add_user("root@lab.example", "", "", true).await;
    let root = app.api_key_agent(&root).await;

    assert_eq!(total(&editor).await, 2);
    assert_eq!(total(&other).await, 3);
    assert_eq!(total(&root).await, 5);
}

async fn the_schema_document_describes_the_resource(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;

    for path in [
        format!("/{NS}/api/invitations/schema/"),
        format!("/{NS}/api/invitations/schema"),
        format!("/{NS}/api/invitations/schema/?format=json"),
    ] {
        let schema = json_with_status(editor.get(&path).await, 200).await;
        assert_eq!(schema["default_format"], "application/json");
        assert_eq!(schema["default_limit"], 20);
        assert_eq!(schema["allowed_list_http_methods"], json!(["get", "post"]));
        assert_eq!(schema["allowed_detail_http_methods"], json!(["get"]));
        assert_eq!(schema["filtering"]["email"], 2);
        let email = &schema["fields"]["email"];
        for key in [
            "type",
            "nullable",
            "blank",
            "readonly",
            "unique",
            "help_text",
            "default",
        ] {
            assert!(email.get(key).is_some(), "email field lacks {key}");
        }
        assert_eq!(email["type"], "string");
        assert_eq!(schema["fields"]["expires"]["nullable"], true);
    }
    // Every field of a real object is described.
    let created =
        json_with_status(editor.invite(json!({"email": "s@example.org"})).await, 201).await;
    let schema = json_with_status(
        editor.get(&format!("/{NS}/api/invitations/schema/")).await,
        200,
    )
    .await;
    for key in created.as_object().expect("object").keys() {
        assert!(
            schema["fields"].get(key).is_some(),
            "{key} is not in the schema"
        );
    }
}

async fn the_projects_list_says_where_the_caller_may_invite(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.add_user("u@lab.example", "", "", false).await;
    let viewed = app.add_project("Viewed").await;
    let edited = app.add_project("Edited").await;
    let owned = app.add_project("Owned").await;
    let _unrelated = app.add_project("Unrelated").await;
    app.grant(&user, viewed, Role::Viewer).await;
    app.grant(&user, edited, Role::Editor).await;
    app.grant(&user, owned, Role::Owner).await;
    let agent = app.api_key_agent(&user).await;

    let body = json_with_status(agent.get(&format!("/{NS}/api/cbh_projects/")).await, 200).await;
    let summary: Vec<(String, String, bool, bool)> = body["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["role"].as_str().unwrap_or_default().to_owned(),
                p["editor"].as_bool().unwrap_or_default(),
                p["owner"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Viewed".into(), "viewer".into(), false, false),
            ("Edited".into(), "editor".into(), true, false),
            ("Owned".into(), "owner".into(), true, true),
        ]
    );

    let root = app.add_user("root@lab.example", "", "", true).await;
    let root = app.api_key_agent(&root).await;
    let all = json_with_status(root.get(&format!("/{NS}/api/cbh_projects/")).await, 200).await;
    assert_eq!(all["meta"]["total_count"], 4);
}

backend_tests!(
    the_list_pages_with_tastypie_meta,
    the_list_filters_by_email_and_status,
    users_see_their_own_invitations_and_superusers_see_all,
    the_schema_document_describes_the_resource,
    the_projects_list_says_where_the_caller_may_invite,
);
