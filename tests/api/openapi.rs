//! The OpenAPI document as a client sees it: served without login for each namespace, and
//! true to the server: every operation it lists is routed and answers only the statuses it
//! documents. (`scripts/schemathesis` explores the same document far more widely.)

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Agent, Backend, NS, json_with_status, spawn_app};

async fn the_document_is_served_for_each_namespace_without_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .anonymous()
        .get(&format!("/{NS}/api/openapi.json"))
        .await;
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "application/json"
    );
    let document = json_with_status(response, 200).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let ns = document["paths"]["/{ns}/api/invitations/"]["post"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "ns"))
        .expect("ns parameter");
    assert_eq!(ns["schema"]["enum"], json!([NS, "other"]));

    let unknown = app.anonymous().get("/nowhere/api/openapi.json").await;
    let body = json_with_status(unknown, 404).await;
    assert!(body["request_id"].is_string());
}

/// Calls every documented operation as `agent` and checks the answer is one it documents.
async fn call_every_operation(app_agent: &Agent, document: &Value, id: i64) -> usize {
    let mut calls = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let url = path.replace("{ns}", NS).replace("{id}", &id.to_string());
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut request = app_agent.request(method.clone(), &url);
            if operation.get("requestBody").is_some() {
                request = request.json(&json!({}));
            }
            let response = request.send().await.expect("sent");
            let status = response.status();
            let documented = &operation["responses"][status.as_str()];
            assert!(
                documented.is_object(),
                "{method} {url} answered {status}, which its operation does not document"
            );
            if status.as_u16() >= 400 {
                let body: Value = response.json().await.expect("a JSON error");
                assert!(body["error"].is_string() && body["request_id"].is_string());
            }
            calls += 1;
        }
    }
    calls
}

async fn every_documented_operation_answers_only_documented_statuses(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let created = json_with_status(
        editor
            .invite(json!({"email": "bob@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    let document = json_with_status(
        app.anonymous()
            .get(&format!("/{NS}/api/openapi.json"))
            .await,
        200,
    )
    .await;

    // Without credentials every protected operation is a 401, and that is documented too.
    let anonymous = call_every_operation(&app.anonymous(), &document, id).await;
    let with_key = call_every_operation(&editor, &document, id).await;
    assert_eq!(anonymous, with_key);
    assert!(anonymous >= 14, "only {anonymous} operations documented");
}

backend_tests!(
    the_document_is_served_for_each_namespace_without_login,
    every_documented_operation_answers_only_documented_statuses,
);
