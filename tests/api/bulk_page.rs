//! "Invite several people" on the invite page: in a real headless Chromium (paste, preview with
//! an invalid row marked, upload a CSV file, send, results, download), and with plain form posts
//! as a browser without JavaScript sends them (CSRF, limits, a roster changed between the steps,
//! escaping), on both backends.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::browser::Browser;
use crate::support::{Backend, NS, PASSWORD, TestApp, spawn_app};

const BOUNDARY: &str = "----cbh-bulk-test-boundary";
const WELCOME: &str = "would you like to invite anyone else?";

/// A cookie-keeping client logged in through the login page, and the invite page's CSRF token.
async fn page_client(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let client = crate::support::agent::client_builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = format!("{}/{NS}/login/", app.base);
    let page = client.get(&login).send().await.expect("sent");
    let token = hidden(&page.text().await.expect("body"), "form_token");
    let done = client
        .post(&login)
        .form(&[
            ("form_token", token.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let invite = client
        .get(format!("{}/{NS}/invite/", app.base))
        .send()
        .await
        .expect("sent");
    let body = invite.text().await.expect("body");
    assert!(body.contains("Invite several people"), "{body}");
    let csrf = hidden(&body, "csrfmiddlewaretoken");
    (client, csrf)
}

/// The value of the first hidden field `name`, unescaped.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {body}"))
        + marker.len();
    let end = body[start..].find('"').expect("closing quote") + start;
    body[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// A multipart/form-data body, as a browser builds it: text fields, then the file.
fn multipart(fields: &[(&str, &str)], file: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"team.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.unwrap_or_default());
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(
    app: &TestApp,
    client: &reqwest::Client,
    fields: &[(&str, &str)],
    file: Option<&[u8]>,
) -> (StatusCode, String) {
    let response = client
        .post(format!("{}/{NS}/invite/several/", app.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(fields, file))
        .send()
        .await
        .expect("sent");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn the_bulk_form_previews_sends_and_downloads_without_javascript(backend: Backend) {
    let app = spawn_app(backend).await;
    let (agent, project) = app.editor_with_project().await;
    let project = project.0.to_string();
    let (client, csrf) = page_client(&app, "ada@lab.example").await;

    // The text area: a preview, nothing sent yet.
    let pasted = "bob@lab.example, Bob, Smith\nnot-an-address\n";
    let (status, body) = upload(
        &app,
        &client,
        &[
            ("csrfmiddlewaretoken", &csrf),
            ("projects", &project),
            ("roster", pasted),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("<tr data-line=\"2\" class=\"invalid\">"),
        "{body}"
    );
    assert!(body.contains("1 of 2 rows will be sent"), "{body}");
    assert!(body.contains("Projects: Kinase screen"), "{body}");
    assert_eq!(app.count_invitations().await, 0);

    // A file wins over the text area; its header, `;` and a hostile name are read, and escaped.
    let file = "email;first name;last name\r\ncarl@lab.example;<script>x</script>;C\r\nbob@lab.example;Bob;\r\nbob@lab.example;Again;\r\n";
    let (status, body) = upload(
        &app,
        &client,
        &[
            ("csrfmiddlewaretoken", &csrf),
            ("projects", &project),
            ("roster", pasted),
        ],
        Some(file.as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.contains("<script>x"), "escaped: {body}");
    assert!(body.contains("2 of 3 rows will be sent"), "{body}");
    assert!(body.contains("the same address as line 3"), "{body}");
    let roster = hidden(&body, "roster");
    assert_eq!(roster, file.replace("\r\n", "\n").replace('\n', "\r\n"));

    // Confirm with a roster changed on the way: it is read and checked again, never trusted.
    let changed = format!("{roster}not-valid@\r\n");
    let send = |roster: String, csrf: String| {
        let client = client.clone();
        let url = format!("{}/{NS}/invite/several/send/", app.base);
        let project = project.clone();
        async move {
            let response = client
                .post(url)
                .form(&[
                    ("csrfmiddlewaretoken", csrf.as_str()),
                    ("roster", roster.as_str()),
                    ("projects", project.as_str()),
                ])
                .send()
                .await
                .expect("sent");
            let status = response.status();
            (status, response.text().await.expect("body"))
        }
    };
    let (status, _) = send(changed.clone(), "not-the-token".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.count_invitations().await, 0);
    let (status, body) = send(changed, csrf.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("2 invited, 2 refused, 4 in all"), "{body}");
    assert!(
        body.contains("<tr data-line=\"2\" data-status=\"201\">"),
        "{body}"
    );
    assert!(
        body.contains("<tr data-line=\"4\" data-status=\"400\" class=\"invalid\">"),
        "{body}"
    );
    assert!(
        body.contains("<tr data-line=\"5\" data-status=\"400\" class=\"invalid\">"),
        "{body}"
    );
    let listed = agent.get(&format!("/{NS}/api/invitations/")).await;
    let listed: serde_json::Value = listed.json().await.expect("JSON");
    let mut emails: Vec<&str> = listed["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|i| i["email"].as_str().expect("email"))
        .collect();
    emails.sort_unstable();
    assert_eq!(emails, ["bob@lab.example", "carl@lab.example"]);
    assert_eq!(
        listed["objects"][0]["projects_selected"][0]["name"],
        json!("Kinase screen"),
        "{listed}"
    );

    // The download: the same results, as a CSV attachment.
    let csv = hidden(&body, "results");
    let download = client
        .post(format!("{}/{NS}/invite/several/results.csv", app.base))
        .form(&[("csrfmiddlewaretoken", csrf.as_str()), ("results", &csv)])
        .send()
        .await
        .expect("sent");
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=\"invitation-results.csv\""
    );
    let text = download.text().await.expect("body");
    assert!(text.starts_with("line,email,status,outcome\r\n2,carl@lab.example,201,\"Invite sent successfully to carl@lab.example, "), "{text}");
    assert!(
        text.contains("\r\n4,bob@lab.example,400,the same address as line 3\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\n5,not-valid@,400,'not-valid@' is not a valid email address\r\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 5, "{text}");
}

async fn the_bulk_form_refuses_what_it_cannot_use_with_a_page(backend: Backend) {
    let app = spawn_app(backend).await;
    app.editor_with_project().await;
    let (client, csrf) = page_client(&app, "ada@lab.example").await;
    let token = [("csrfmiddlewaretoken", csrf.as_str())];

    // Without the session's token.
    let (status, body) = upload(&app, &client, &[("roster", "bob@lab.example")], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("This form has expired"), "{body}");

    // Not UTF-8, more than 1,000 rows, nothing at all: a page that says so.
    let (status, body) = upload(&app, &client, &token, Some(b"bob@lab.example;Bj\xF6rn\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not UTF-8 text (line 1)"), "{body}");
    let many: String = (0..1001).map(|i| format!("u{i}@lab.example\n")).collect();
    let (status, body) = upload(&app, &client, &token, Some(many.as_bytes())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("more than 1000 rows"), "{body}");
    let (status, body) = upload(&app, &client, &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no address to invite"), "{body}");

    // 1,000 rows with long names fit (well past the 64 KiB of the other forms)...
    let long = "N".repeat(100);
    let full: String = (0..1000)
        .map(|i| format!("u{i}@lab.example;{long};{long}\n"))
        .collect();
    assert!(full.len() > 200 * 1024);
    let (status, body) = upload(&app, &client, &token, Some(full.as_bytes())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("1000 of 1000 rows will be sent"));
    // ... and the confirm form carries them back.
    let roster = hidden(&body, "roster");
    let confirm = client
        .post(format!("{}/{NS}/invite/several/send/", app.base))
        .form(&[
            ("csrfmiddlewaretoken", "wrong"),
            ("roster", roster.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(
        confirm.status(),
        StatusCode::FORBIDDEN,
        "read, then refused"
    );
    // Past 1 MiB: a page that says how much fits.
    let huge = vec![b'a'; 1024 * 1024 + 1];
    let (status, body) = upload(&app, &client, &token, Some(&huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("larger than 1 MiB"), "{body}");
    assert_eq!(app.count_invitations().await, 0);
}

async fn in_a_browser_an_editor_pastes_uploads_previews_sends_and_downloads(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, project) = app.editor_with_project().await;
    let browser = Browser::start("bulk_invite").await;
    browser.log_in(&app, "ada@lab.example", PASSWORD).await;
    browser
        .wait_for_path("the invite page", |path| path == format!("/{NS}/invite/"))
        .await;

    // Pasted: the preview marks the invalid row.
    browser
        .fill("#roster", "bob@lab.example, Bob, Smith\nnot-an-address\n")
        .await;
    browser.submit_and_wait("#bulk-preview").await;
    browser
        .wait_for_text("#bulk-summary", "1 of 2 rows will be sent")
        .await;
    browser
        .wait_for_text("#bulk-rows tr.invalid", "not a valid email address")
        .await;
    browser.assert_accessible("bulk preview").await;

    // Uploaded: a CSV file, to a project.
    browser.goto(&format!("{}/{NS}/invite/", app.base)).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("team.csv");
    std::fs::write(
        &file,
        "email,first name,last name\ncarl@lab.example,Carl,Gauss\nwrong@\ndora@lab.example,Dora,\n",
    )
    .expect("csv");
    browser
        .click(&format!("#bulk-projects option[value=\"{}\"]", project.0))
        .await;
    let input = browser
        .client
        .find(fantoccini::Locator::Css("#roster-file"))
        .await
        .expect("file input");
    input
        .send_keys(file.to_str().expect("path"))
        .await
        .expect("file chosen");
    browser.submit_and_wait("#bulk-preview").await;
    browser
        .wait_for_text("#bulk-summary", "2 of 3 rows will be sent")
        .await;
    browser
        .wait_for_text("#bulk-rows tr.invalid td[data-label=Email]", "wrong@")
        .await;
    browser
        .wait_for_text("main", "Projects: Kinase screen")
        .await;

    browser.submit_and_wait("#bulk-send").await;
    browser
        .wait_for_text("#bulk-summary", "2 invited, 1 refused, 3 in all")
        .await;
    browser
        .wait_for_text("#bulk-results tr[data-line=\"2\"]", WELCOME)
        .await;
    browser
        .wait_for_text("#bulk-results tr[data-line=\"3\"]", "400")
        .await;
    browser.assert_accessible("bulk results").await;
    assert_eq!(app.count_invitations().await, 2);

    // The download link's form, posted as the browser would, answers the results as a file.
    // (WebDriver waits for the promise a script returns.)
    let body = browser
        .script(
            "const form = document.getElementById('bulk-download-form'); \
             return fetch(form.action, {method: 'POST', body: new URLSearchParams(new FormData(form))}) \
               .then(r => r.text().then(text => \
                 [r.headers.get('content-disposition'), r.headers.get('content-type'), text]));",
            vec![],
        )
        .await;
    assert_eq!(
        body[0],
        json!("attachment; filename=\"invitation-results.csv\"")
    );
    assert_eq!(body[1], json!("text/csv; charset=utf-8"));
    let csv = body[2].as_str().expect("CSV text");
    assert!(
        csv.starts_with("line,email,status,outcome\r\n2,carl@lab.example,201,"),
        "{csv}"
    );
    assert!(
        csv.contains("\r\n3,wrong@,400,'wrong@' is not a valid email address\r\n"),
        "{csv}"
    );
    assert!(csv.contains("\r\n4,dora@lab.example,201,"), "{csv}");
    browser.quit().await;
}

backend_tests!(
    the_bulk_form_previews_sends_and_downloads_without_javascript,
    the_bulk_form_refuses_what_it_cannot_use_with_a_page,
    in_a_browser_an_editor_pastes_uploads_previews_sends_and_downloads,
);
