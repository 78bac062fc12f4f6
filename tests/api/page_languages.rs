//! The web pages in the reader's language: `Accept-Language`, the invitation's language on the
//! accept and decline pages, the switcher (a plain link and a cookie, no JavaScript),
//! `<html lang>` and `Content-Language` on every kind of page, and the language a logged-in
//! visit stores for the emails to that person. On both backends.

use reqwest::header::{ACCEPT_LANGUAGE, CONTENT_LANGUAGE, CONTENT_TYPE, SET_COOKIE};
use serde_json::json;

use crate::decline::{WAIT, invite_bob};
use crate::support::{Backend, NS, PASSWORD, TestApp, spawn_app};

/// A page as a browser would fetch it, with an `Accept-Language` (or none).
async fn fetch(client: &reqwest::Client, url: &str, accept: Option<&str>) -> Page {
    let mut request = client.get(url);
    if let Some(accept) = accept {
        request = request.header(ACCEPT_LANGUAGE, accept);
    }
    Page::of(request.send().await.expect("sent")).await
}

struct Page {
    status: u16,
    content_language: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl Page {
    async fn of(response: reqwest::Response) -> Self {
        let headers = response.headers();
        Page {
            status: response.status().as_u16(),
            content_language: headers
                .get(CONTENT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            set_cookies: headers
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
            body: response.text().await.expect("body"),
        }
    }

    /// The page says, both ways, that it is written in `lang`.
    #[track_caller]
    fn assert_written_in(&self, lang: &str, what: &str) {
        assert!(
            self.body.contains(&format!("<html lang=\"{lang}\">")),
            "{what}: <html lang=\"{lang}\"> in {}",
            self.body
        );
        assert_eq!(
            self.content_language.as_deref(),
            Some(lang),
            "{what}: Content-Language"
        );
    }

    /// The value of a hidden form field.
    fn field(&self, name: &str) -> String {
        self.body
            .split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            .to_owned()
    }
}

fn cookie_client() -> reqwest::Client {
    crate::support::agent::client_builder()
        .cookie_store(true)
        .build()
        .expect("client")
}

async fn invite(app: &TestApp, language: Option<&str>) -> (i64, String) {
    let (editor, kinase) = app.editor_with_project().await;
    let mut body = json!({"email": "bob@example.org", "first_name": "Bob", "projects_selected": [{"id": kinase.0}]});
    if let Some(language) = language {
        body["language"] = json!(language);
    }
    let (created, mail) = app.invite_and_wait_for_mail(&editor, body, WAIT).await;
    let link = app.local(&mail.accept_link().expect("an accept link"));
    (created["id"].as_i64().expect("id"), link)
}

async fn the_accept_page_follows_accept_language_in_german_and_french(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, link) = invite(&app, None).await;
    let client = crate::support::agent::client();

    let german = fetch(&client, &link, Some("de-DE,de;q=0.9,en;q=0.5")).await;
    assert_eq!(german.status, 200);
    german.assert_written_in("de", "German accept page");
    for words in [
        "Willkommen bei ChemBio Hub Platform",
        "hat Sie zu diesen Projekten eingeladen:",
        "Mein Konto aktivieren",
        "Passwort wiederholen",
    ] {
        assert!(german.body.contains(words), "{words}: {}", german.body);
    }
    assert!(!german.body.contains("Activate my account"));

    let french = fetch(&client, &link, Some("fr-CH, fr;q=0.9, en;q=0.8")).await;
    assert_eq!(french.status, 200);
    french.assert_written_in("fr", "French accept page");
    for words in [
        "Rejoignez ChemBio Hub Platform",
        "vous a invité(e) aux projets suivants",
        "Activer mon compte",
    ] {
        assert!(french.body.contains(words), "{words}: {}", french.body);
    }

    // English stays as it was.
    let english = fetch(&client, &link, Some("en-GB")).await;
    english.assert_written_in("en", "English accept page");
    assert!(english.body.contains("Activate my account"));
}

async fn the_accept_and_decline_pages_fall_back_to_the_invitations_language(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, link) = invite(&app, Some("fr")).await;
    let decline = link.replace("/accept/", "/decline/");
    let client = crate::support::agent::client();

    // No Accept-Language at all, or only languages we do not have: the invitation's.
    for accept in [None, Some("ja, zh;q=0.8")] {
        let page = fetch(&client, &link, accept).await;
        assert_eq!(page.status, 200);
        page.assert_written_in("fr", "accept page, invitation in French");
        assert!(page.body.contains("Activer mon compte"), "{}", page.body);
        let page = fetch(&client, &decline, accept).await;
        assert_eq!(page.status, 200);
        page.assert_written_in("fr", "decline page, invitation in French");
        assert!(page.body.contains("Refuser l’invitation"), "{}", page.body);
    }
    // A browser that names one of ours wins over the invitation.
    let page = fetch(&client, &link, Some("de")).await;
    page.assert_written_in("de", "accept page, German browser");
    // The other pages do not know the invitation: the default language.
    let login = fetch(&client, &format!("{}/{NS}/login/", app.base), None).await;
    login.assert_written_in("en", "login page without Accept-Language");
}

async fn the_switcher_is_a_plain_link_and_its_cookie_then_governs(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, link) = invite(&app, None).await;
    let client = cookie_client();

    let english = fetch(&client, &link, Some("en")).await;
    english.assert_written_in("en", "before switching");
    for name in ["Deutsch", "English", "Français"] {
        assert!(english.body.contains(name), "the switcher lists {name}");
    }
    // The link as the page writes it, followed as a browser without JavaScript would.
    let href = english
        .body
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.contains("lang=de"))
        .expect("a link to the German page")
        .to_owned();
    let target = reqwest::Url::parse(&link)
        .expect("url")
        .join(&href)
        .expect("relative link");
    let german = fetch(&client, target.as_str(), Some("en")).await;
    assert_eq!(german.status, 200);
    german.assert_written_in("de", "after following the switcher");
    assert!(
        german
            .set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{NS}_language=de;")) && c.contains("Path=/")),
        "{:?}",
        german.set_cookies
    );

    // The cookie now governs, over the browser's Accept-Language, on every page.
    let again = fetch(&client, &link, Some("en")).await;
    again.assert_written_in("de", "the accept page again, English browser");
    let login = fetch(&client, &format!("{}/{NS}/login/", app.base), Some("fr")).await;
    login.assert_written_in("de", "the login page, French browser");
    assert!(login.body.contains("Anmelden"));

    // A language we do not have changes nothing.
    let unknown = fetch(&client, &format!("{link}?lang=xx"), Some("en")).await;
    unknown.assert_written_in("de", "?lang=xx");
    assert!(
        unknown
            .set_cookies
            .iter()
            .all(|c| !c.contains("_language="))
    );
}

async fn every_kind_of_page_says_its_language(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, kinase) = app.editor_with_project().await;
    let (id, mail) = invite_bob(&app, &editor, "bob@example.org", kinase).await;
    let old_link = app.local(&mail.accept_link().expect("link"));
    let fr = Some("fr");
    let client = cookie_client();
    let base = &app.base;

    // Superseded (410): a resend replaces the first link.
    editor.resend(id).await;
    app.smtp.wait_for(2, WAIT).await;
    let superseded = fetch(&client, &old_link, fr).await;
    assert_eq!(superseded.status, 410);
    superseded.assert_written_in("fr", "superseded");
    assert!(
        superseded.body.contains("Un e-mail plus récent"),
        "{}",
        superseded.body
    );
    let new_link = app.local(
        &app.smtp.received()[1]
            .accept_link()
            .expect("the resent link"),
    );

    let pages = [
        ("login", format!("{base}/{NS}/login/"), 200),
        ("accept", new_link.clone(), 200),
        ("decline", new_link.replace("/accept/", "/decline/"), 200),
        (
            "gone (unknown link)",
            format!("{base}/{NS}/accept/{}", "a".repeat(43)),
            410,
        ),
        ("error (404)", format!("{base}/nowhere/login/"), 404),
    ];
    for (what, url, status) in &pages {
        let page = fetch(&client, url, fr).await;
        assert_eq!(page.status, *status, "{what}: {}", page.body);
        page.assert_written_in("fr", what);
    }

    // Declined, through the decline page's own form.
    let decline_url = new_link.replace("/accept/", "/decline/");
    let form = fetch(&client, &decline_url, fr).await;
    let declined = Page::of(
        client
            .post(&decline_url)
            .header(ACCEPT_LANGUAGE, "fr")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("form_token={}", form.field("form_token")))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(declined.status, 200, "{}", declined.body);
    declined.assert_written_in("fr", "declined");
    assert!(declined.body.contains("Vous avez refusé l’invitation"));
    // Its link is gone now (410, with the inviter named).
    let gone = fetch(&client, &new_link, fr).await;
    assert_eq!(gone.status, 410);
    gone.assert_written_in("fr", "gone (declined link)");
    assert!(gone.body.contains("Demandez à"), "{}", gone.body);

    // The pages of a logged-in person.
    let root = app
        .add_user("root@lab.example", "Grace", "Hopper", true)
        .await;
    let _ = root;
    let agent = app.login("root@lab.example", PASSWORD).await;
    for path in ["invite/", "welcome/", "projects/", "users/"] {
        let page = fetch(&agent.client, &format!("{base}/{NS}/{path}"), fr).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        page.assert_written_in("fr", path);
    }
    let invite = fetch(&agent.client, &format!("{base}/{NS}/invite/"), fr).await;
    assert!(
        invite.body.contains("Toutes les invitations"),
        "{}",
        invite.body
    );
    // Dates in the page's language: the month's French name.
    assert!(
        [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre"
        ]
        .iter()
        .any(|month| invite.body.contains(&format!(" {month} "))),
        "{}",
        invite.body
    );
}

/// The stored language of the person whose session cookie is `session`.
async fn stored_language(app: &TestApp, session: &str) -> Option<String> {
    let token = cbh_invite::domain::Token::parse(session).expect("a session token");
    app.store
        .session(NS, &token.hash(), cbh_invite::domain::Timestamp::now())
        .await
        .expect("session")
        .expect("a live session")
        .language
}

async fn a_page_visit_stores_the_users_language_when_it_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;
    let client = cookie_client();
    let login = client
        .post(format!("{}/{NS}/api/session/", app.base))
        .json(&json!({"username": "ada@lab.example", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), 200);
    let session = login
        .cookies()
        .find(|c| c.name() == format!("{NS}_sessionid"))
        .expect("the session cookie")
        .value()
        .to_owned();
    assert_eq!(
        stored_language(&app, &session).await,
        None,
        "none before a visit"
    );

    let welcome = format!("{}/{NS}/welcome/", app.base);
    let page = fetch(&client, &welcome, Some("de-CH, en;q=0.5")).await;
    assert_eq!(page.status, 200);
    page.assert_written_in("de", "welcome");
    assert_eq!(stored_language(&app, &session).await.as_deref(), Some("de"));

    let page = fetch(&client, &welcome, Some("fr")).await;
    page.assert_written_in("fr", "welcome");
    assert_eq!(stored_language(&app, &session).await.as_deref(), Some("fr"));

    // The switcher's choice counts the same way.
    let page = fetch(&client, &format!("{welcome}?lang=en"), Some("fr")).await;
    page.assert_written_in("en", "welcome, English chosen");
    assert_eq!(stored_language(&app, &session).await.as_deref(), Some("en"));
}

backend_tests!(
    a_page_visit_stores_the_users_language_when_it_changes,
    the_accept_page_follows_accept_language_in_german_and_french,
    the_accept_and_decline_pages_fall_back_to_the_invitations_language,
    the_switcher_is_a_plain_link_and_its_cookie_then_governs,
    every_kind_of_page_says_its_language,
);
