//! The OpenAPI 3 document of the JSON API, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and response types, and served at `/{ns}/api/openapi.json`.
//! The web pages are not in it: they answer HTML.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::extract::{Namespace, NamespaceParam};
use super::{
    AppState, forward_auth, health, invitations, members, metrics, projects, session, users,
    webhooks,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/{ns}/api/openapi.json", get(openapi_json))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cbh-invite",
        description = "Invite colleagues to a research data platform by email: ChemBio Hub's \
            invitations API (Django Tastypie conventions). Every path is also answered without \
            its trailing slash. Errors are always `{\"error\", \"request_id\"}`; a method a path \
            does not have answers 405, an unknown namespace 404.",
    ),
    paths(
        invitations::handlers::list,
        invitations::handlers::create,
        invitations::bulk::create_bulk,
        invitations::handlers::detail,
        invitations::handlers::schema,
        invitations::handlers::accept,
        invitations::decline::decline,
        invitations::handlers::resend_handler,
        invitations::handlers::revoke_handler,
        session::current,
        session::login,
        session::update,
        session::logout,
        session::change_password,
        forward_auth::verify,
        projects::list,
        webhooks::list,
        webhooks::create,
        webhooks::remove,
        projects::create,
        projects::rename,
        members::list,
        members::put_role,
        members::remove,
        users::list,
        users::deactivate,
        users::activate,
        health::alive,
        health::ready,
        metrics::render,
        openapi_json,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "invitations", description = "Invite, list, resend, revoke, accept and decline"),
        (name = "session", description = "Log in and out (cookies), or send an API key instead"),
        (name = "projects", description = "The projects the caller may invite to; creating, renaming, and their members"),
        (name = "users", description = "The namespace's users, for superusers: list, deactivate, activate"),
        (name = "forward-auth", description = "For a reverse proxy: is this request logged in, and as whom"),
        (name = "webhooks", description = "Signed event deliveries to the platform (superusers)"),
        (name = "health", description = "Probes for load balancers, and metrics for monitoring"),
        (name = "openapi", description = "This document"),
    ),
)]
struct ApiDoc;

/// The two ways to authenticate: a browser's session cookie (whose unsafe requests also carry
/// the CSRF token), or a script's API key.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "{ns}_sessionid",
                "Set by POST /{ns}/api/session/; named by CBH_SESSION_COOKIE (default `{ns}_sessionid`)",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRFToken",
                "The CSRF cookie's value (`{ns}csrftoken`, CBH_CSRF_COOKIE); needed on POST, PUT, PATCH and DELETE made with a session",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "ApiKey <email>:<key> (Tastypie's format; `cbh-invite apikey create`)",
            ))),
        );
    }
}

/// The document as generated from the code, with `{ns}` left open.
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    for operation in operations(&mut document) {
        let links = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links").and_then(Value::as_object_mut))
            .flat_map(|links| links.values_mut())
            .filter_map(Value::as_object_mut);
        // utoipa 5.5 writes a Link's fields in snake_case; OpenAPI (and every client) reads
        // camelCase.
        for link in links {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(from) {
                    link.insert(to.into(), value);
                }
            }
        }
    }
    document
}

/// Every operation object of the document (`paths.*.{get,post,…}`).
fn operations(document: &mut Value) -> impl Iterator<Item = &mut Value> {
    document
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|path| path.values_mut())
}

/// The document as one server publishes it: `{ns}` may only be one of its namespaces, so that a
/// client (or a schema-driven fuzzer) knows which values are served.
pub fn document_for(namespaces: &[String]) -> Value {
    let mut document = document();
    for operation in operations(&mut document) {
        let parameters = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for parameter in parameters {
            if parameter["name"] == "ns" && parameter["in"] == "path" {
                parameter["schema"]["enum"] = Value::from(namespaces.to_vec());
            }
        }
    }
    document
}

/// This document.
#[utoipa::path(
    get,
    path = "/{ns}/api/openapi.json",
    operation_id = "get_openapi_document",
    tag = "openapi",
    params(NamespaceParam),
    responses(
        (status = 200, description = "The OpenAPI 3 document of this API", body = Object),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
    ),
    security(()),
)]
async fn openapi_json(State(state): State<AppState>, _namespace: Namespace) -> Json<Value> {
    Json(document_for(&state.config.namespaces))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// The source files of the JSON API's modules: those of `src/http` and of its folders
    /// (`invitations/`), but not `pages/`, which answer HTML.
    fn api_sources() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut files = Vec::new();
        let mut folders = vec![dir];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("a folder of src/http") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    if path.file_name().is_none_or(|name| name != "pages") {
                        folders.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        files
    }

    /// Every `.route(path, methods)` in the JSON API's modules, as (path without its trailing
    /// slash, method). Read from the source because an axum `Router` does not list its routes.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        for path in api_sources() {
            let source = std::fs::read_to_string(&path).expect("source");
            let code = source.split("#[cfg(test)]").next().unwrap_or("");
            for call in code.split(".route(").skip(1) {
                let mut quoted = call.splitn(3, '"');
                let route = quoted.nth(1).expect("a path literal");
                let rest = quoted.next().unwrap_or("");
                // The method router is everything up to the call's closing parenthesis.
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let methods = &rest[..end];
                for method in METHODS {
                    let called = methods.match_indices(&format!("{method}(")).any(|(i, _)| {
                        !methods[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    });
                    if called {
                        routes.insert((route.trim_end_matches('/').to_owned(), method.into()));
                    }
                }
            }
        }
        routes
    }

    fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
        let mut operations = BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if METHODS.contains(&method.as_str()) {
                    operations.insert((path.trim_end_matches('/').to_owned(), method.clone()));
                }
            }
        }
        operations
    }

    #[test]
    fn every_route_of_the_api_is_documented_and_nothing_else() {
        let routed = routes_in_source();
        assert!(
            routed.len() >= 14,
            "the source scan found too few routes: {routed:?}"
        );
        let document = document();
        assert_eq!(
            documented_operations(&document),
            routed,
            "the OpenAPI document and the routers disagree: document the new route with \
             #[utoipa::path] and list it in ApiDoc"
        );
    }

    #[test]
    fn roles_are_described_where_projects_are_selected_and_shown() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        let pattern = "^(viewer|editor|owner)$";
        let selected = &schemas["ProjectSelection"]["properties"]["role"];
        assert_eq!(selected["pattern"], pattern, "{selected}");
        assert!(
            selected["description"]
                .as_str()
                .is_some_and(|d| d.contains("resource_uri")),
            "{selected}"
        );
        let shown = &schemas["ProjectRef"];
        assert_eq!(shown["properties"]["role"]["pattern"], pattern, "{shown}");
        assert!(
            shown["required"]
                .as_array()
                .is_some_and(|r| r.contains(&serde_json::json!("role"))),
            "{shown}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_with_the_error_body_and_both_credentials() {
        let text = document().to_string();
        let document: Value = serde_json::from_str(&text).expect("valid JSON");
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3."))
        );
        let error = &document["components"]["schemas"]["ErrorBody"];
        assert_eq!(
            error["required"],
            serde_json::json!(["error", "request_id"])
        );
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["session"]["in"], "cookie");
        assert_eq!(schemes["csrf"]["name"], "X-CSRFToken");
        assert_eq!(schemes["api_key"]["name"], "Authorization");
    }

    #[test]
    fn every_operation_documents_its_errors() {
        let document = document();
        let mut operation_ids = BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let id = operation["operationId"].as_str().expect("operationId");
                assert!(operation_ids.insert(id), "operationId {id} is used twice");
                let responses = operation["responses"].as_object().expect("responses");
                let name = format!("{method} {path}");
                assert!(
                    responses.keys().any(|code| code.starts_with('2')),
                    "{name}: no success"
                );
                for (code, response) in responses {
                    if code.starts_with('4') || code.starts_with('5') {
                        let schema = &response["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(
                            schema, "#/components/schemas/ErrorBody",
                            "{name} {code}: errors are ErrorBody"
                        );
                    }
                }
                if path.starts_with("/{ns}/") {
                    assert!(responses.contains_key("404"), "{name}: unknown namespace");
                }
                let open = operation["security"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
                });
                if !open {
                    assert!(responses.contains_key("401"), "{name}: not logged in");
                }
            }
        }
    }

    #[test]
    fn links_name_existing_operations_in_camel_case() {
        let document = document();
        let ids: BTreeSet<&str> = document["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("item").values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let links =
            &document["paths"]["/{ns}/api/invitations/"]["post"]["responses"]["201"]["links"];
        let links = links
            .as_object()
            .expect("the 201 of an invitation has links");
        assert_eq!(links.len(), 3);
        for link in links.values() {
            assert!(link.get("operation_id").is_none(), "{link}");
            let target = link["operationId"].as_str().expect("operationId");
            assert!(ids.contains(target), "{target} is not an operation");
        }
    }

    #[test]
    fn the_published_document_names_the_served_namespaces() {
        let document = document_for(&["chembiohub".into(), "other".into()]);
        let parameters = &document["paths"]["/{ns}/api/invitations/"]["get"]["parameters"];
        let ns = parameters
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "ns"))
            .expect("ns parameter");
        assert_eq!(
            ns["schema"]["enum"],
            serde_json::json!(["chembiohub", "other"])
        );
    }
}
