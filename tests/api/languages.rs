//! The invitation's `language` (issue 14): its emails reach the real SMTP server in that
//! language, with `Content-Language`, on both backends; per bulk row and as the bulk default;
//! `CBH_DEFAULT_LANGUAGE`; and a tag that is no tag is a 400 that writes nothing.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use smtp_sink::ReceivedMail;

use crate::invite_rules::{hidden, page_client, page_text};
use crate::support::{Backend, NS, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(20);
const BULK: &str = "/chembiohub/api/invitations/bulk/";

fn content_language(mail: &ReceivedMail) -> String {
    mail.parsed()
        .header_raw("Content-Language")
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no Content-Language in\n{}", mail.data))
}

/// The message sent to `address`, once it has arrived.
async fn mail_to(app: &crate::support::TestApp, count: usize, address: &str) -> ReceivedMail {
    app.smtp
        .wait_for(count, WAIT)
        .await
        .into_iter()
        .find(|mail| mail.rcpt_to.iter().any(|to| to == address))
        .unwrap_or_else(|| panic!("no email to {address}"))
}

async fn german_and_french_invitations_are_emailed_in_their_language(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;

    let (created, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "bob@example.org", "first_name": "Bob", "language": "de",
                   "projects_selected": [{"id": project.0}]}),
            WAIT,
        )
        .await;
    assert_eq!(created["language"], "de");
    assert_eq!(
        mail.subject(),
        "Ada Lovelace hat Sie zu ChemBio Hub Platform eingeladen"
    );
    assert_eq!(content_language(&mail), "de");
    let text = mail.text();
    assert!(text.starts_with("Guten Tag Bob,"), "{text}");
    assert!(
        text.contains(
            "hat Sie zu ChemBio Hub Platform eingeladen, um folgendes Projekt einzusehen:"
        ),
        "{text}"
    );
    assert!(text.contains("Kinase screen"), "{text}");
    assert!(text.contains("Uhr (UTC)"), "the date in German: {text}");
    assert!(mail.html().contains("<html lang=\"de\">"));
    assert!(mail.html().contains(">Einladung annehmen</a>"));
    assert!(mail.accept_token().is_some(), "the link is there: {text}");

    // A tag we have no catalog for is kept as given, and read in its closest language.
    let (created, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "carole@example.org", "first_name": "Carole", "language": "fr-ca"}),
            WAIT,
        )
        .await;
    assert_eq!(created["language"], "fr-CA");
    let shown = app
        .invitation(&editor, created["id"].as_i64().expect("id"))
        .await;
    assert_eq!(shown["language"], "fr-CA");
    assert_eq!(
        mail.subject(),
        "Ada Lovelace vous invite à rejoindre ChemBio Hub Platform"
    );
    assert_eq!(content_language(&mail), "fr");
    let text = mail.text();
    assert!(text.starts_with("Bonjour Carole,"), "{text}");
    assert!(
        text.contains("vous invite à rejoindre ChemBio Hub Platform."),
        "{text}"
    );
    assert!(mail.html().contains(">Accepter l’invitation</a>"));

    // No language: CBH_DEFAULT_LANGUAGE (en), the original English.
    let (created, mail) = app
        .invite_and_wait_for_mail(&editor, json!({"email": "dan@example.org"}), WAIT)
        .await;
    assert_eq!(created["language"], "en");
    assert_eq!(
        mail.subject(),
        "You have been invited to view ChemBio Hub Platform by Ada Lovelace"
    );
    assert_eq!(content_language(&mail), "en");
}

async fn a_bulk_row_is_emailed_in_its_own_language_or_the_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let answer = json_with_status(
        editor
            .post(
                BULK,
                &json!({
                    "language": "de",
                    "objects": [
                        {"email": "ann@example.org", "language": "fr"},
                        {"email": "ben@example.org"},
                        {"email": "cy@example.org", "language": "français"},
                        {"email": "di@example.org", "language": null},
                    ],
                }),
            )
            .await,
        200,
    )
    .await;
    let statuses: Vec<&Value> = answer["objects"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| &row["status"])
        .collect();
    assert_eq!(statuses, [201, 201, 400, 201]);
    let refused = answer["objects"][2]["error"].as_str().expect("error");
    assert!(refused.starts_with("language: "), "{refused}");
    assert_eq!(answer["objects"][0]["invitation"]["language"], "fr");
    assert_eq!(answer["objects"][1]["invitation"]["language"], "de");

    let ann = mail_to(&app, 3, "ann@example.org").await;
    assert_eq!(content_language(&ann), "fr");
    assert!(ann.text().starts_with("Bonjour,"), "{}", ann.text());
    for address in ["ben@example.org", "di@example.org"] {
        let mail = mail_to(&app, 3, address).await;
        assert_eq!(content_language(&mail), "de");
        assert!(mail.text().starts_with("Guten Tag,"), "{}", mail.text());
    }

    // A bulk default that is no tag refuses the whole request, before any row.
    let error = json_with_status(
        editor
            .post(
                BULK,
                &json!({"language": "de_DE", "objects": [{"email": "eve@example.org"}]}),
            )
            .await,
        400,
    )
    .await;
    assert!(
        error["error"]
            .as_str()
            .expect("error")
            .starts_with("language: "),
        "{error}"
    );
    assert_eq!(app.count_invitations().await, 3);
}

async fn a_malformed_language_is_400_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    for bad in [
        json!("en_GB"),
        json!("de_AT"),
        json!(""),
        json!(42),
        json!(["de"]),
    ] {
        let error = json_with_status(
            editor
                .invite(json!({"email": "bob@example.org", "language": bad}))
                .await,
            400,
        )
        .await;
        let message = error["error"].as_str().expect("an error message");
        assert!(message.starts_with("language: "), "{bad}: {message}");
    }
    assert_eq!(app.count_invitations().await, 0);
    assert_eq!(app.smtp.received_count(), 0);

    // The Tastypie schema describes the field a client may now send.
    let schema =
        json_with_status(editor.get("/chembiohub/api/invitations/schema/").await, 200).await;
    let field = &schema["fields"]["language"];
    assert_eq!(field["type"], "string");
    assert_eq!(field["readonly"], false);
    assert_eq!(field["nullable"], true);
}

/// The invite page, and a project's, offer the invitee's language: the default first (named),
/// then each catalog's language in its own name. A bad tag is the page again with the API's 400 and
/// nothing written; a good one reaches the email, and the page keeps the choice.
async fn the_invite_pages_form_chooses_the_invitees_language(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, project) = app.editor_with_project().await;
    let client = page_client(&app, "ada@lab.example").await;
    let url = format!("{}/{NS}/invite/", app.base);
    let page = page_text(&client, &url).await;
    for option in [
        "<option value=\"\" selected>Default: English</option>",
        "<option value=\"de\" lang=\"de\">Deutsch</option>",
        "<option value=\"fr\" lang=\"fr\">Français</option>",
    ] {
        assert!(page.contains(option), "no {option} in {page}");
    }
    // A project's page invites to that project with the same choice.
    let project_page = page_text(
        &client,
        &format!("{}/{NS}/projects/{}/", app.base, project.0),
    )
    .await;
    assert!(
        project_page.contains("<select id=\"invitee-language\" name=\"language\""),
        "{project_page}"
    );
    assert!(project_page.contains("<option value=\"de\" lang=\"de\">Deutsch</option>"));
    let csrf = hidden(&page, "csrfmiddlewaretoken");
    let project = project.0.to_string();
    let post = |language: &'static str| {
        client
            .post(&url)
            .form(&[
                ("csrfmiddlewaretoken", csrf.as_str()),
                ("email", "carole@example.org"),
                ("first_name", "Carole"),
                ("projects", project.as_str()),
                ("language", language),
            ])
            .send()
    };

    let refused = post("fr_FR").await.expect("sent");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body = refused.text().await.expect("body");
    assert!(body.contains("language: "), "{body}");
    assert!(
        body.contains("value=\"carole@example.org\""),
        "the form keeps what was typed: {body}"
    );
    assert_eq!(app.count_invitations().await, 0);

    let sent = post("fr").await.expect("sent");
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let mail = mail_to(&app, 1, "carole@example.org").await;
    assert_eq!(content_language(&mail), "fr");
    assert!(
        mail.text().starts_with("Bonjour Carole,"),
        "{}",
        mail.text()
    );
}

async fn the_default_language_applies_to_invitations_without_one(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.default_language = "fr".into();
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    let (created, mail) = app
        .invite_and_wait_for_mail(&editor, json!({"email": "bob@example.org"}), WAIT)
        .await;
    assert_eq!(created["language"], "fr");
    assert_eq!(content_language(&mail), "fr");
    // A language without a catalog nor a close one: the default, not English.
    let (created, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "jo@example.org", "language": "ja"}),
            WAIT,
        )
        .await;
    assert_eq!(created["language"], "ja");
    assert_eq!(content_language(&mail), "fr");
    assert!(mail.text().starts_with("Bonjour,"), "{}", mail.text());
}

backend_tests!(
    german_and_french_invitations_are_emailed_in_their_language,
    a_bulk_row_is_emailed_in_its_own_language_or_the_requests,
    a_malformed_language_is_400_and_writes_nothing,
    the_default_language_applies_to_invitations_without_one,
    the_invite_pages_form_chooses_the_invitees_language,
);

#[tokio::test]
async fn a_default_language_without_a_catalog_stops_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = crate::support::app::test_settings(
        cbh_invite::config::DatabaseUrl::Sqlite(dir.path().join("test.db")),
        dir.path(),
        1,
    );
    settings.default_language = "es".into();
    let error = cbh_invite::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    assert!(message.contains("CBH_DEFAULT_LANGUAGE"), "{message}");
    assert!(message.contains("de, en, fr"), "{message}");

    // An operator's catalog adds the language, and then it is one.
    let locales = dir.path().join("templates/locales/es");
    std::fs::create_dir_all(&locales).expect("folder");
    std::fs::write(locales.join("emails.ftl"), "greeting = Hola,\n").expect("catalog");
    let mut settings = crate::support::app::test_settings(
        cbh_invite::config::DatabaseUrl::Sqlite(dir.path().join("test.db")),
        dir.path(),
        1,
    );
    settings.default_language = "es".into();
    settings.template_dir = Some(dir.path().join("templates"));
    cbh_invite::startup::Application::build(settings)
        .await
        .expect("builds with the operator's Spanish");
}
