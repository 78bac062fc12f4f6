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

/// Whether the operation may be called without credentials (`security: [{}]`).
fn is_open(operation: &Value) -> bool {
    operation["security"].as_array().is_some_and(|s| {
        s.iter()
            .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
    })
}

/// `schema` with its `$ref` followed into the document's components.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            let target = &document["components"]["schemas"][name];
            assert!(target.is_object(), "{reference} is not in the document");
            resolve(document, target)
        }
        None => schema,
    }
}

/// Where `value` does not have the shape `schema` documents: required properties, and the JSON
/// type of every property, item and alternative it describes.
fn shape_errors(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(document, schema);
    if let Some(all) = schema["allOf"].as_array() {
        return all
            .iter()
            .flat_map(|s| shape_errors(document, s, value, at))
            .collect();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema[key].as_array() {
            if alternatives
                .iter()
                .any(|s| shape_errors(document, s, value, at).is_empty())
            {
                return Vec::new();
            }
            return vec![format!("{at}: matches none of its {key}: {value}")];
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Vec::new(), // Any value.
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let nullable = schema["nullable"] == true;
    let fits = types.contains(&actual)
        || (actual == "integer" && types.contains(&"number"))
        || (actual == "null" && nullable);
    if !fits {
        return vec![format!("{at}: a {actual}, documented as {types:?}")];
    }
    let mut errors = Vec::new();
    match value {
        Value::Object(object) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().expect("property name");
                if !object.contains_key(name) {
                    errors.push(format!("{at}: required property {name} is missing"));
                }
            }
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    if let Some(field) = object.get(name) {
                        errors.extend(shape_errors(
                            document,
                            property,
                            field,
                            &format!("{at}.{name}"),
                        ));
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                errors.extend(shape_errors(
                    document,
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                ));
            }
        }
        _ => {}
    }
    errors
}

/// What calling every documented operation showed.
#[derive(Default)]
struct Tally {
    calls: usize,
    /// Protected operations that answered 401.
    refused: usize,
    /// 2xx JSON bodies checked against their documented schema.
    bodies_checked: usize,
}

/// Calls every documented operation as `agent` and checks the answer is one it documents, that
/// errors are JSON errors, and that a JSON success has the documented shape. Anonymous, every
/// protected operation must answer 401.
async fn call_every_operation(agent: &Agent, anonymous: bool, document: &Value, id: i64) -> Tally {
    let mut tally = Tally::default();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let url = path.replace("{ns}", NS).replace("{id}", &id.to_string());
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut request = agent.request(method.clone(), &url);
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
            tally.calls += 1;
            if anonymous && !is_open(operation) {
                assert_eq!(
                    status.as_u16(),
                    401,
                    "{method} {url} is protected but answered {status} without credentials"
                );
                tally.refused += 1;
            }
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            if status.as_u16() >= 400 {
                let body: Value = response.json().await.expect("a JSON error");
                assert!(body["error"].is_string() && body["request_id"].is_string());
            } else if status.is_success() && content_type.starts_with("application/json") {
                let schema = &documented["content"]["application/json"]["schema"];
                assert!(
                    schema.is_object(),
                    "{method} {url} answered JSON with {status}, documented without a schema"
                );
                let body: Value = response.json().await.expect("a JSON body");
                let errors = shape_errors(document, schema, &body, "body");
                assert!(
                    errors.is_empty(),
                    "{method} {url} ({status}) does not match its schema: {errors:#?}\n{body:#}"
                );
                tally.bodies_checked += 1;
            }
        }
    }
    tally
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
    let protected = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .filter(|operation| !is_open(operation))
        .count();
    assert!(protected >= 8, "only {protected} protected operations");

    // Without credentials every protected operation is a 401, and that is documented too.
    let anonymous = call_every_operation(&app.anonymous(), true, &document, id).await;
    assert!(
        anonymous.calls >= 14,
        "only {} operations documented",
        anonymous.calls
    );
    assert_eq!(anonymous.refused, protected);
    // With a key, what succeeds has the documented shape: most reads do.
    let with_key = call_every_operation(&editor, false, &document, id).await;
    assert!(
        with_key.bodies_checked >= 6,
        "only {} successful JSON bodies to check",
        with_key.bodies_checked
    );
}

backend_tests!(
    the_document_is_served_for_each_namespace_without_login,
    every_documented_operation_answers_only_documented_statuses,
);
