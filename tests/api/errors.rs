//! Malformed, oversized and hostile input: the right status, a JSON error that says what is
//! wrong, and nothing written.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, NS, json_with_status, spawn_app};

async fn error_of(response: reqwest::Response, status: u16) -> String {
    let body = json_with_status(response, status).await;
    assert!(
        body["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "every error names its request: {body}"
    );
    assert!(
        body.get("traceback").is_none(),
        "no traceback in production"
    );
    body["error"].as_str().expect("error message").to_owned()
}

async fn malformed_and_mistyped_bodies_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let path = format!("/{NS}/api/invitations/");

    let raw = |body: &'static str| {
        editor
            .request(Method::POST, &path)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let error = error_of(raw("{\"email\": ").await.expect("sent"), 400).await;
    assert!(error.contains("malformed JSON"), "{error}");
    error_of(raw("[1, 2]").await.expect("sent"), 400).await;
    error_of(raw("{\"email\": 5}").await.expect("sent"), 400).await;
    error_of(
        raw("{\"email\": \"a@x.org\", \"remind\": \"yes\"}")
            .await
            .expect("sent"),
        400,
    )
    .await;
    error_of(
        raw("{\"email\": \"a@x.org\", \"projects_selected\": 3}")
            .await
            .expect("sent"),
        400,
    )
    .await;
    error_of(raw("\u{0}").await.expect("sent"), 400).await;
    // serde would read an array as the fields in order; the API takes objects only.
    let error = error_of(
        raw("[\"a@x.org\", \"Bob\", \"Smith\", [], false]")
            .await
            .expect("sent"),
        400,
    )
    .await;
    assert!(error.contains("expected a JSON object"), "{error}");
    // Bytes that are not UTF-8, even in a field that is otherwise ignored (found by fuzzing).
    let not_utf8 = editor
        .request(Method::POST, &path)
        .header("content-type", "application/json")
        .body(&b"{\"email\": \"a@x.org\", \"note\": \"\xff\xfe\"}"[..])
        .send()
        .await
        .expect("sent");
    let error = error_of(not_utf8, 400).await;
    assert!(error.contains("not UTF-8"), "{error}");
}

async fn invalid_fields_are_400_with_the_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;

    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "email is required"),
        (json!({"email": "not-an-address"}), "not a valid email"),
        (
            json!({"email": format!("{}@x.org", "a".repeat(250))}),
            "longer than 254",
        ),
        (
            json!({"email": "a@x.org", "first_name": "x".repeat(151)}),
            "first_name is longer than 150",
        ),
        (
            json!({"email": "a@x.org", "lastName": "y".repeat(151)}),
            "last_name is longer than 150",
        ),
        (
            json!({"email": "a@x.org", "first_name": "Eve\r\nBcc: victim@y.org"}),
            "control character",
        ),
        (
            json!({"email": "a@x.org", "last_name": "Eve\u{85}"}),
            "control character",
        ),
        (
            json!({"email": "a@x.org\r\nBcc: victim@y.org"}),
            "not a valid email",
        ),
        (
            json!({"email": "a@x.org", "first_name": "A", "firstName": "B"}),
            "duplicate field",
        ),
    ];
    for (body, expected) in cases {
        let error = error_of(editor.invite(body.clone()).await, 400).await;
        assert!(error.contains(expected), "{body}: {error}");
    }
    // Exactly at the limits is fine.
    json_with_status(
        editor
            .invite(json!({"email": "b@x.org", "first_name": "é".repeat(150)}))
            .await,
        201,
    )
    .await;
    assert_eq!(
        app.count_invitations().await,
        1,
        "refused requests wrote nothing"
    );
}

/// Header injection: a control character (or a Unicode line separator or bidirectional
/// override) in any text field of an invitation is refused with a 400, whether it sits inside
/// the value or at an end where trimming could have dropped it; nothing is stored or sent.
async fn control_characters_in_any_field_are_400_and_nothing_is_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let hostile = [
        "\r", "\n", "\r\n", "\0", "\t", "\u{b}", "\u{c}", "\u{1b}", "\u{7f}", "\u{85}",
    ];
    let name_only = ["\u{2028}", "\u{2029}", "\u{202e}", "\u{2066}"];
    let fields = ["email", "first_name", "firstName", "last_name", "lastName"];
    for field in fields {
        let characters = hostile.iter().chain(if field == "email" {
            &[][..]
        } else {
            &name_only[..]
        });
        for c in characters {
            let good = if field == "email" {
                "bob@example.org"
            } else {
                "Eve"
            };
            for value in [
                format!("{good}{c}Bcc: victim@evil.example"),
                format!("{good}{c}"),
                format!("{c}{good}"),
            ] {
                let mut body = json!({
                    "email": "bob@example.org",
                    "projects_selected": [{"id": project.0}],
                });
                body[field] = json!(value);
                let error = error_of(editor.invite(body.clone()).await, 400).await;
                let reason = if field == "email" {
                    "not a valid email"
                } else {
                    "control character"
                };
                assert!(error.contains(reason), "{body}: {error}");
                assert!(
                    !error.chars().any(char::is_control),
                    "the message echoes no control character: {error:?}"
                );
            }
        }
    }
    assert_eq!(
        app.count_invitations().await,
        0,
        "refused requests wrote nothing"
    );
    assert!(app.smtp.received().is_empty(), "and sent nothing");
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let response = editor
        .request(Method::POST, &format!("/{NS}/api/invitations/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%40x.org")
        .send()
        .await
        .expect("sent");
    let error = error_of(response, 415).await;
    assert!(error.contains("JSON"));
    let no_type = editor
        .request(Method::POST, &format!("/{NS}/api/invitations/"))
        .body("{}")
        .send()
        .await
        .expect("sent");
    error_of(no_type, 415).await;
}

async fn bodies_over_1_mib_on_the_invitation_list_and_64_kib_elsewhere_are_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    // The web client sends whole project objects: 900 KiB of them is still an invitation.
    let padding = "x".repeat(900 * 1024);
    let large = json!({
        "email": "large@x.org",
        "projects_selected": [{"id": project.0, "custom_field_config": {"padding": padding}}],
    });
    json_with_status(
        editor.post(&format!("/{NS}/api/invitations"), &large).await,
        201,
    )
    .await;

    let over = json!({"email": "a@x.org", "first_name": "x".repeat(1024 * 1024)});
    let error = error_of(editor.invite(over).await, 413).await;
    assert!(error.contains("1048576"), "{error}");
    assert_eq!(app.count_invitations().await, 1, "nothing written");

    // Also when the client does not announce the length.
    let chunks = futures_chunks(1100 * 1024);
    let streamed = editor
        .request(Method::POST, &format!("/{NS}/api/invitations/"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("sent");
    error_of(streamed, 413).await;

    // Elsewhere the limit stays 64 KiB, announced or not.
    let login = json!({"username": "a@x.org", "password": "x".repeat(70 * 1024)});
    let error = error_of(
        app.anonymous()
            .post(&format!("/{NS}/api/session/"), &login)
            .await,
        413,
    )
    .await;
    assert!(error.contains("65536"), "{error}");
    let streamed = app
        .anonymous()
        .request(Method::POST, &format!("/{NS}/api/invitations/accept/"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_chunks(80 * 1024)))
        .send()
        .await
        .expect("sent");
    error_of(streamed, 413).await;
}

fn futures_chunks(
    total: usize,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let mut chunks = vec![Ok(b"{\"email\": \"a@x.org\", \"first_name\": \"".to_vec())];
    chunks.extend((0..total / 1024).map(|_| Ok(vec![b'x'; 1024])));
    chunks.push(Ok(b"\"}".to_vec()));
    futures_util::stream::iter(chunks)
}

async fn unknown_routes_objects_and_methods(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;

    error_of(editor.get(&format!("/{NS}/api/nothing/")).await, 404).await;
    error_of(
        editor.get(&format!("/{NS}/api/invitations/999999/")).await,
        404,
    )
    .await;
    error_of(
        editor.get(&format!("/{NS}/api/invitations/abc/")).await,
        404,
    )
    .await;
    error_of(
        editor
            .get(&format!("/{NS}/api/invitations/99999999999999999999999/"))
            .await,
        404,
    )
    .await;
    let put = editor
        .request(Method::PUT, &format!("/{NS}/api/invitations/"))
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    error_of(put, 405).await;
    let delete = editor.delete(&format!("/{NS}/api/invitations/1/")).await;
    error_of(delete, 405).await;
    let unknown_ns_put = editor
        .request(Method::PUT, "/nowhere/api/invitations/")
        .send()
        .await
        .expect("sent");
    error_of(unknown_ns_put, 404).await;
}

async fn another_users_invitation_is_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let created = json_with_status(
        editor
            .invite(json!({"email": "e@example.org", "projects_selected": [{"id": project.0}]}))
            .await,
        201,
    )
    .await;
    let stranger = app.add_user("s@lab.example", "S", "", false).await;
    let stranger = app.api_key_agent(&stranger).await;

    error_of(
        stranger
            .get(&format!("/{NS}/api/invitations/{}/", created["id"]))
            .await,
        404,
    )
    .await;
}

async fn responses_carry_security_headers_and_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .anonymous()
        .get(&format!("/{NS}/api/invitations/"))
        .await;
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let request_id = headers["x-request-id"].to_str().expect("ascii").to_owned();
    let body = json_with_status(response, 401).await;
    assert_eq!(body["request_id"], request_id);
}

backend_tests!(
    malformed_and_mistyped_bodies_are_400,
    invalid_fields_are_400_with_the_reason,
    control_characters_in_any_field_are_400_and_nothing_is_sent,
    a_body_that_is_not_json_is_415,
    bodies_over_1_mib_on_the_invitation_list_and_64_kib_elsewhere_are_413,
    unknown_routes_objects_and_methods,
    another_users_invitation_is_404,
    responses_carry_security_headers_and_a_request_id,
);
