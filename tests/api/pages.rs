//! The invitation journey in a real headless Chromium, against the real application and a real
//! SMTP server on loopback: first-run setup, inviting, the accept page, the reminder after a
//! 409, revoking, and the login redirect. Each page visited is checked for labels and contrast.

use std::time::Duration;

use cbh_invite::domain::{ProjectId, Role};
use serde_json::json;

use crate::support::browser::Browser;
use crate::support::{Agent, Backend, NS, PASSWORD, TestApp, spawn_app, spawn_app_with};

const MAIL_WAIT: Duration = Duration::from_secs(20);
const GOOD_PASSWORD: &str = "a good long password";

/// Ada, editor of two projects, and her API agent.
async fn editor_of_two_projects(app: &TestApp) -> (Agent, ProjectId, ProjectId) {
    let ada = app
        .add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;
    let kinase = app.add_project("Kinase screen").await;
    let fragments = app.add_project("Fragment library").await;
    app.grant(&ada, kinase, Role::Editor).await;
    app.grant(&ada, fragments, Role::Editor).await;
    (app.api_key_agent(&ada).await, kinase, fragments)
}

/// The row of the invitations table for `email`, as a CSS selector.
async fn row_of(browser: &Browser, email: &str) -> String {
    let id = browser
        .script(
            "for (const row of document.querySelectorAll('#invitations tbody tr')) { \
               if (row.querySelector('td.email').textContent.trim() === arguments[0]) \
                 return row.getAttribute('data-id'); } return null;",
            vec![json!(email)],
        )
        .await;
    match id.as_str() {
        Some(id) => format!("#invitations tr[data-id=\"{id}\"]"),
        None => {
            browser
                .fail(&format!("no row for {email} in the invitations table"))
                .await;
            String::new()
        }
    }
}

async fn first_run_setup_url_creates_a_superuser_who_is_logged_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let setup_url = app.setup_url(NS);
    let browser = Browser::start("first_run_setup").await;

    browser.goto(&setup_url).await;
    browser.wait_for_text("h1", "Set up").await;
    browser.assert_accessible("setup").await;
    browser.fill("#email", "Root@Lab.example").await;
    browser.fill("#first-name", "Grace").await;
    browser.fill("#last-name", "Hopper").await;
    browser.fill("#password", GOOD_PASSWORD).await;
    browser.fill("#password-again", GOOD_PASSWORD).await;
    browser.submit_and_wait("form button[type=submit]").await;

    browser
        .wait_for_path("the invite page", |path| path == format!("/{NS}/invite/"))
        .await;
    browser.wait_for_text("header .who", "Grace Hopper").await;
    // A superuser sees every invitation of the namespace.
    browser.wait_for_text("#list h2", "All invitations").await;
    let created = app.user_by_email("root@lab.example").await;
    assert!(created.user.is_superuser && created.user.is_active);

    // The link works once.
    browser.goto(&setup_url).await;
    browser
        .wait_for_text("h1", "This setup link no longer works")
        .await;
    browser.assert_accessible("used setup link").await;
    browser.quit().await;
}

async fn an_editor_invites_a_new_person_to_two_projects_and_sees_queued_then_sent(
    backend: Backend,
) {
    // Retries go on for as long as the browser may take.
    let app = spawn_app_with(backend, |s| s.delivery.max_attempts = 1000).await;
    let (_, kinase, fragments) = editor_of_two_projects(&app).await;
    // The mail server refuses for now (a temporary 451): the email stays queued until the
    // browser has shown it as such, however slow the machine, and is sent once it accepts.
    app.smtp.set_data_reply(Some("451 4.3.0 try again later"));
    let browser = Browser::start("invite_two_projects").await;
    browser.log_in(&app, "ada@lab.example", PASSWORD).await;
    browser
        .wait_for_path("the invite page", |path| path == format!("/{NS}/invite/"))
        .await;
    browser.assert_accessible("empty invite").await;

    browser
        .click(&format!("#projects option[value=\"{}\"]", kinase.0))
        .await;
    browser
        .click(&format!("#projects option[value=\"{}\"]", fragments.0))
        .await;
    browser.fill("#invite-email", "bob@example.org").await;
    browser.fill("#first-name", "Bob").await;
    browser.fill("#last-name", "Smith").await;
    // Bob reads German: the page is in English, the email in his language.
    browser
        .click("#invitee-language option[value=\"de\"]")
        .await;
    browser.submit_and_wait("#send-invite").await;

    browser
        .wait_for_text(
            ".notice",
            "Invite sent successfully to bob@example.org, would you like to invite anyone else?",
        )
        .await;
    let row = row_of(&browser, "bob@example.org").await;
    let projects = browser
        .text(&format!("{row} td[data-label=Projects]"))
        .await;
    browser
        .check(
            projects.contains("Kinase screen") && projects.contains("Fragment library"),
            &format!("the row lists both projects, not '{projects}'"),
        )
        .await;
    browser
        .wait_for_text(&format!("{row} td[data-label=Status]"), "pending")
        .await;
    browser
        .wait_for_text(&format!("{row} td.delivery"), "queued")
        .await;
    app.smtp.set_data_reply(None);
    // The page's script asks the API until the worker has sent the email.
    browser
        .wait_for_text(&format!("{row} td.delivery"), "sent")
        .await;
    let mail = &app.smtp.wait_for(1, MAIL_WAIT).await[0];
    assert_eq!(mail.rcpt_to, ["bob@example.org"]);
    assert!(
        mail.text().starts_with("Guten Tag Bob,"),
        "the email in the chosen language: {}",
        mail.text()
    );
    browser.assert_accessible("invite with an invitation").await;
    browser
        .save_screenshot_for_docs("invite.png", 1000, 930)
        .await;

    // Phone width: one column, nothing wider than the screen.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("resize");
    let overflow = browser
        .script(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await;
    browser
        .check(
            overflow.as_i64().is_some_and(|px| px <= 0),
            &format!("the invite page scrolls sideways at phone width by {overflow}px"),
        )
        .await;
    browser.assert_accessible("invite at phone width").await;
    browser.quit().await;
}

async fn the_email_link_opens_an_accept_page_that_refuses_a_short_password_then_welcomes(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (editor, kinase, fragments) = editor_of_two_projects(&app).await;
    let (_, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({
                "email": "bob@example.org",
                "first_name": "Bob",
                "last_name": "Smith",
                "projects_selected": [{"id": kinase.0}, {"id": fragments.0}],
            }),
            MAIL_WAIT,
        )
        .await;
    let link = mail.accept_link().expect("the email has an accept link");
    let browser = Browser::start("accept_page").await;

    browser.goto(&app.local(&link)).await;
    let invited_by = browser.wait_for_text(".invited-by", "Ada Lovelace").await;
    browser
        .check(
            invited_by.contains("ada@lab.example"),
            "the page names the inviter's address",
        )
        .await;
    let projects = browser.text("ul.projects").await;
    browser
        .check(
            projects.contains("Kinase screen") && projects.contains("Fragment library"),
            &format!("the page names both projects, not '{projects}'"),
        )
        .await;
    browser.assert_accessible("accept").await;
    browser
        .save_screenshot_for_docs("accept.png", 1000, 800)
        .await;

    browser.fill("#password", "too short").await;
    browser.fill("#password-again", "too short").await;
    browser.submit_and_wait("form button[type=submit]").await;
    browser
        .wait_for_text(".error", "Password must be at least 10 characters")
        .await;
    browser.assert_accessible("accept with an error").await;

    browser.fill("#password", GOOD_PASSWORD).await;
    browser.fill("#password-again", GOOD_PASSWORD).await;
    browser.submit_and_wait("form button[type=submit]").await;
    browser
        .wait_for_path("the welcome page", |path| path == format!("/{NS}/welcome/"))
        .await;
    browser.wait_for_text("header .who", "Bob Smith").await;
    let mine = browser.wait_for_text("#my-projects", "Kinase screen").await;
    browser
        .check(
            mine.contains("Fragment library"),
            &format!("the welcome page lists both projects, not '{mine}'"),
        )
        .await;
    browser.assert_accessible("welcome").await;
    browser.quit().await;
}

async fn inviting_the_same_address_again_offers_a_reminder_whose_link_replaces_the_old_one(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (editor, kinase, _) = editor_of_two_projects(&app).await;
    let (_, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "bob@example.org", "projects_selected": [{"id": kinase.0}]}),
            MAIL_WAIT,
        )
        .await;
    let first_link = mail.accept_link().expect("first link");
    let browser = Browser::start("reminder").await;
    browser.log_in(&app, "ada@lab.example", PASSWORD).await;

    browser
        .click(&format!("#projects option[value=\"{}\"]", kinase.0))
        .await;
    browser.fill("#invite-email", "bob@example.org").await;
    browser.submit_and_wait("#send-invite").await;
    browser
        .wait_for_text(
            ".error",
            "User already exists, do you wish to invite again?",
        )
        .await;
    browser
        .wait_for_text("#send-reminder", "Send Invite Reminder")
        .await;
    browser.assert_accessible("invite after a 409").await;
    browser.submit_and_wait("#send-reminder").await;
    browser
        .wait_for_text(".notice", "Sign-up reminder sent to bob@example.org")
        .await;

    let mails = app.smtp.wait_for(2, MAIL_WAIT).await;
    let second_link = mails[1].accept_link().expect("the reminder has a link");
    assert_ne!(first_link, second_link);

    // The older link was superseded: its page says so and offers a new link.
    browser.goto(&app.local(&first_link)).await;
    browser
        .wait_for_text("h1", "This link was replaced by a newer one")
        .await;
    browser
        .wait_for_text("button[type=submit]", "Email me a new link")
        .await;
    browser.assert_accessible("superseded link").await;
    browser.goto(&app.local(&second_link)).await;
    browser.wait_for_text(".invited-by", "Ada Lovelace").await;
    browser.quit().await;
}

async fn revoking_an_invitation_makes_its_link_show_the_gone_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, kinase, _) = editor_of_two_projects(&app).await;
    let (_, mail) = app
        .invite_and_wait_for_mail(
            &editor,
            json!({"email": "bob@example.org", "projects_selected": [{"id": kinase.0}]}),
            MAIL_WAIT,
        )
        .await;
    let link = mail.accept_link().expect("link");
    let browser = Browser::start("revoke").await;
    browser.log_in(&app, "ada@lab.example", PASSWORD).await;

    let row = row_of(&browser, "bob@example.org").await;
    browser
        .submit_and_wait(&format!("{row} button.danger"))
        .await;
    browser
        .wait_for_text(".notice", "Invitation to bob@example.org revoked")
        .await;
    browser
        .wait_for_text(&format!("{row} td[data-label=Status]"), "revoked")
        .await;

    browser.goto(&app.local(&link)).await;
    browser
        .wait_for_text("h1", "This invitation link no longer works")
        .await;
    browser.wait_for_text(".ask", "Ada Lovelace").await;
    browser.quit().await;
}

async fn a_page_without_a_session_sends_to_login_and_back_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    editor_of_two_projects(&app).await;
    let browser = Browser::start("login_redirect").await;

    browser.goto(&format!("{}/{NS}/welcome/", app.base)).await;
    browser
        .wait_for_path("the login page", |path| {
            path == format!("/{NS}/login/?next=%2F{NS}%2Fwelcome%2F")
        })
        .await;
    browser.assert_accessible("login").await;

    // An unknown address and a wrong password get the same message.
    browser.submit_login("nobody@lab.example", PASSWORD).await;
    let unknown = browser.wait_for_text(".error", "Login failed").await;
    browser
        .submit_login("ada@lab.example", "not her password")
        .await;
    let wrong = browser.wait_for_text(".error", "Login failed").await;
    assert_eq!(unknown, wrong);
    browser.assert_accessible("login with an error").await;

    browser.submit_login("ada@lab.example", PASSWORD).await;
    browser
        .wait_for_path("the page asked for first", |path| {
            path == format!("/{NS}/welcome/")
        })
        .await;
    browser.wait_for_text("header .who", "Ada Lovelace").await;
    browser.quit().await;
}

async fn the_accessibility_check_catches_a_missing_label_and_low_contrast(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = Browser::start("accessibility_check").await;
    browser.goto(&format!("{}/{NS}/login/", app.base)).await;
    browser.wait_for_text("h1", "Log in").await;
    assert_eq!(browser.accessibility_problems().await, Vec::<String>::new());

    // Break the page on purpose: a field without a label, and pale grey text on white.
    browser
        .script(
            "const field = document.createElement('input'); field.id = 'unlabelled'; \
             document.querySelector('form').appendChild(field); \
             document.querySelector('h1').style.color = '#aaaaaa';",
            vec![],
        )
        .await;
    let problems = browser.accessibility_problems().await;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("no label") && p.contains("unlabelled")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("contrast 2.32:1") && p.contains("<h1")),
        "{problems:#?}"
    );
    browser.quit().await;
}

backend_tests!(
    first_run_setup_url_creates_a_superuser_who_is_logged_in,
    an_editor_invites_a_new_person_to_two_projects_and_sees_queued_then_sent,
    the_email_link_opens_an_accept_page_that_refuses_a_short_password_then_welcomes,
    inviting_the_same_address_again_offers_a_reminder_whose_link_replaces_the_old_one,
    revoking_an_invitation_makes_its_link_show_the_gone_page,
    a_page_without_a_session_sends_to_login_and_back_after_it,
    the_accessibility_check_catches_a_missing_label_and_low_contrast,
);
