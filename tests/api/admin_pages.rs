//! Administration in the browser, from first-run setup to deactivating someone, in a real
//! headless Chromium (the journey of issue 12, part 4); and the administration pages' refusals
//! without a browser.

use std::time::Duration;

use cbh_invite::domain::{ProjectId, Role};
use serde_json::json;

use crate::support::browser::Browser;
use crate::support::{Agent, Backend, NS, PASSWORD, TestApp, spawn_app};

const MAIL_WAIT: Duration = Duration::from_secs(20);
const GOOD_PASSWORD: &str = "a good long password";

async fn set_up_create_a_project_invite_accept_change_the_role_and_deactivate(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = Browser::start("administration_journey").await;

    // Set up: the first superuser.
    browser.goto(&app.setup_url(NS)).await;
    browser.wait_for_text("h1", "Set up").await;
    browser.fill("#email", "root@lab.example").await;
    browser.fill("#first-name", "Grace").await;
    browser.fill("#last-name", "Hopper").await;
    browser.fill("#password", GOOD_PASSWORD).await;
    browser.fill("#password-again", GOOD_PASSWORD).await;
    browser.submit_and_wait("form button[type=submit]").await;
    browser.wait_for_text("header .who", "Grace Hopper").await;

    // Create a project.
    browser.click("header a[href$=\"/projects/\"]").await;
    browser.wait_for_text("h1", "Projects").await;
    browser.assert_accessible("projects").await;
    browser.fill("#project-name", "Kinase screen").await;
    browser.submit_and_wait("#create-project-button").await;
    browser
        .wait_for_text(".notice", "The project is created; you are its owner.")
        .await;
    browser.wait_for_text("h1", "Kinase screen").await;
    let path = browser.path().await;
    let project: i64 = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches(&format!("/{NS}/projects/"))
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("a project's page, not {path}"));
    browser
        .wait_for_text("#members tbody", "root@lab.example")
        .await;
    browser.assert_accessible("project").await;

    // Invite from the project's page: the project is selected.
    browser.fill("#invite-email", "bob@example.org").await;
    browser.fill("#first-name", "Bob").await;
    browser.submit_and_wait("#send-invite").await;
    browser
        .wait_for_text(".notice", "Invite sent successfully to bob@example.org")
        .await;
    let mail = &app.smtp.wait_for(1, MAIL_WAIT).await[0];
    let link = mail.accept_link().expect("the email has an accept link");

    // Accept (as Bob, in the same browser), then back to Grace.
    browser.goto(&app.local(&link)).await;
    browser.fill("#password", GOOD_PASSWORD).await;
    browser.fill("#password-again", GOOD_PASSWORD).await;
    browser.submit_and_wait("form button[type=submit]").await;
    browser
        .wait_for_path("the welcome page", |path| path == format!("/{NS}/welcome/"))
        .await;
    browser.wait_for_text("#my-projects", "Kinase screen").await;
    browser
        .log_in(&app, "root@lab.example", GOOD_PASSWORD)
        .await;

    // Change the new member's role.
    let bob = app.user_by_email("bob@example.org").await.user;
    browser
        .goto(&format!("{}/{NS}/projects/{project}/", app.base))
        .await;
    let row = format!("#members tr[data-id=\"{}\"]", bob.id.0);
    browser
        .wait_for_text(&format!("{row} td[data-label=Status]"), "active")
        .await;
    browser
        .click(&format!("#role-{} option[value=\"editor\"]", bob.id.0))
        .await;
    browser
        .submit_and_wait(&format!("{row} button.change-role"))
        .await;
    browser
        .wait_for_text(".notice", "The role is changed.")
        .await;
    let roles = app.store.memberships(bob.id).await.expect("memberships");
    assert_eq!(roles.len(), 1);
    assert_eq!(
        (roles[0].project.id, roles[0].role),
        (ProjectId(project), Role::Editor)
    );

    // Deactivate him.
    browser.click("header a[href$=\"/users/\"]").await;
    browser.wait_for_text("h1", "Users").await;
    browser.assert_accessible("users").await;
    let user_row = format!("#users tr[data-id=\"{}\"]", bob.id.0);
    browser
        .submit_and_wait(&format!("{user_row} button.deactivate"))
        .await;
    browser
        .wait_for_text(".notice", "bob@example.org is deactivated.")
        .await;
    browser
        .wait_for_text(&format!("{user_row} td[data-label=Status]"), "deactivated")
        .await;
    browser.assert_accessible("users after deactivating").await;
    browser.quit().await;

    let login = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": "bob@example.org", "password": GOOD_PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 401);
}

/// A form post as the logged-in `agent` (whose CSRF header holds the session's token).
async fn post_form(agent: &Agent, path: &str, fields: &[(&str, &str)], csrf: bool) -> u16 {
    let token = agent.headers["x-csrftoken"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    if csrf {
        form.push(("csrfmiddlewaretoken", &token));
    }
    agent
        .client
        .post(format!("{}{path}", agent.base))
        .form(&form)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

async fn html_of(agent: &Agent, path: &str) -> (u16, String) {
    let response = agent
        .client
        .get(format!("{}{path}", agent.base))
        .send()
        .await
        .expect("sent");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

async fn administration_pages_refuse_other_callers_and_forms_without_a_token(backend: Backend) {
    let app: TestApp = spawn_app(backend).await;
    let root = app.add_user("root@lab.example", "Root", "", true).await;
    let ada = app
        .add_user("ada@lab.example", "<b>Ada</b>", "", false)
        .await;
    let project = app.add_project("<i>Kinase</i>").await;
    app.grant(&root, project, Role::Owner).await;
    app.grant(&ada, project, Role::Viewer).await;
    let admin = app.login("root@lab.example", PASSWORD).await;
    let viewer = app.login("ada@lab.example", PASSWORD).await;

    // Everything shown is escaped.
    let (status, html) = html_of(&admin, &format!("/{NS}/projects/{}/", project.0)).await;
    assert_eq!(status, 200);
    assert!(html.contains("&lt;i&gt;Kinase&lt;&#x2f;i&gt;") && !html.contains("<i>Kinase"));
    assert!(html.contains("&lt;b&gt;Ada&lt;&#x2f;b&gt;") && !html.contains("<b>Ada"));

    // Only superusers see the users; only editors, owners and superusers a project's members.
    assert_eq!(html_of(&viewer, &format!("/{NS}/users/")).await.0, 403);
    assert_eq!(
        html_of(&viewer, &format!("/{NS}/projects/{}/", project.0))
            .await
            .0,
        403
    );
    assert_eq!(
        html_of(&admin, &format!("/{NS}/projects/999999/")).await.0,
        404
    );
    assert_eq!(html_of(&admin, &format!("/{NS}/projects/x/")).await.0, 404);
    let (status, html) = html_of(&viewer, &format!("/{NS}/projects/")).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("create-project"),
        "only superusers create projects"
    );

    // Forms need the session's token; the refusals change nothing.
    let deactivate = format!("/{NS}/users/{}/deactivate/", ada.id.0);
    assert_eq!(post_form(&admin, &deactivate, &[], false).await, 403);
    assert_eq!(post_form(&viewer, &deactivate, &[], true).await, 403);
    let role = format!("/{NS}/projects/{}/members/{}/", project.0, ada.id.0);
    assert_eq!(
        post_form(&admin, &role, &[("role", "owner")], false).await,
        403
    );
    assert_eq!(
        post_form(&viewer, &role, &[("role", "owner")], true).await,
        403
    );
    assert_eq!(
        post_form(&admin, &role, &[("role", "god")], true).await,
        400
    );
    let create = format!("/{NS}/projects/");
    assert_eq!(
        post_form(&admin, &create, &[("name", "New")], false).await,
        403
    );
    assert_eq!(
        post_form(&viewer, &create, &[("name", "New")], true).await,
        403
    );
    assert_eq!(
        post_form(&admin, &create, &[("name", " ")], true).await,
        400
    );
    assert_eq!(app.store.projects(NS).await.expect("projects").len(), 1);
    let roles = app.store.memberships(ada.id).await.expect("memberships");
    assert_eq!(roles[0].role, Role::Viewer);
    let account = app
        .store
        .account(NS, ada.id)
        .await
        .expect("account")
        .expect("ada");
    assert!(!account.deactivated);

    // The last owner stays, and yourself you cannot deactivate: the page says why.
    let own = format!("/{NS}/projects/{}/members/{}/remove/", project.0, root.id.0);
    assert_eq!(post_form(&admin, &own, &[], true).await, 409);
    let me = format!("/{NS}/users/{}/deactivate/", root.id.0);
    assert_eq!(post_form(&admin, &me, &[], true).await, 409);
    // Done right, a button redirects back to its page.
    assert_eq!(post_form(&admin, &deactivate, &[], true).await, 200);
    let account = app
        .store
        .account(NS, ada.id)
        .await
        .expect("account")
        .expect("ada");
    assert!(account.deactivated);

    // The users page offers to activate her again, and its button does.
    let activate = format!("/{NS}/users/{}/activate/", ada.id.0);
    let (_, html) = html_of(&admin, &format!("/{NS}/users/")).await;
    assert!(html.contains(&format!("action=\"{activate}\"")), "{html}");
    assert_eq!(post_form(&admin, &activate, &[], false).await, 403);
    assert_eq!(post_form(&admin, &activate, &[], true).await, 200);
    let account = app
        .store
        .account(NS, ada.id)
        .await
        .expect("account")
        .expect("ada");
    assert!(!account.deactivated);
    let (_, html) = html_of(&admin, &format!("/{NS}/users/")).await;
    assert!(!html.contains(&format!("action=\"{activate}\"")));
    assert!(html.contains(&format!("action=\"{deactivate}\"")));

    // The project page's remove button takes a member off the project.
    let remove = format!("/{NS}/projects/{}/members/{}/remove/", project.0, ada.id.0);
    assert_eq!(post_form(&admin, &remove, &[], true).await, 200);
    assert!(
        app.store
            .memberships(ada.id)
            .await
            .expect("memberships")
            .is_empty()
    );
    let (status, html) = html_of(&admin, &format!("/{NS}/projects/{}/", project.0)).await;
    assert_eq!(status, 200);
    assert!(!html.contains("ada@lab.example"), "{html}");
}

backend_tests!(
    set_up_create_a_project_invite_accept_change_the_role_and_deactivate,
    administration_pages_refuse_other_callers_and_forms_without_a_token,
);
