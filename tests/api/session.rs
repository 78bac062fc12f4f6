use serde_json::json;

use crate::support::{Backend, NS, PASSWORD, json_with_status, spawn_app};

async fn login_sets_session_and_csrf_cookies(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;

    let response = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": "Ada@LAB.example", "password": PASSWORD}),
        )
        .await;
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let body = json_with_status(response, 200).await;
    assert_eq!(body["user"]["username"], "ada@lab.example");

    let session = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{NS}_sessionid=")))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"));
    assert!(session.contains("SameSite=Lax"));
    assert!(!session.contains("Secure"), "plain http public URL");
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{NS}csrftoken=")))
        .expect("CSRF cookie");
    assert!(!csrf.contains("HttpOnly"), "scripts read the CSRF token");
}

async fn cookies_are_secure_when_the_public_url_is_https(backend: Backend) {
    let app = crate::support::spawn_app_with(backend, |s| {
        s.public_url = Some("https://hub.example.org".into());
    })
    .await;
    app.add_user("ada@lab.example", "", "", false).await;
    let response = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": "ada@lab.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii cookie").to_owned())
        .collect();
    // Both cookies are there first: "all of none" would pass.
    for name in [format!("{NS}_sessionid="), format!("{NS}csrftoken=")] {
        assert!(
            cookies.iter().any(|c| c.starts_with(&name)),
            "no {name} cookie in {cookies:?}"
        );
    }
    for cookie in &cookies {
        assert!(cookie.contains("; Secure"), "not Secure: {cookie}");
    }
}

async fn failed_logins_all_get_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor.invite(json!({"email": "pending@example.org"})).await,
        201,
    )
    .await;

    let mut messages = Vec::new();
    for (username, password) in [
        ("nobody@lab.example", PASSWORD),
        ("ada@lab.example", "wrong password"),
        ("pending@example.org", ""),
        ("not an email", PASSWORD),
    ] {
        let body = json_with_status(
            app.anonymous()
                .post(
                    &format!("/{NS}/api/session/"),
                    &json!({"username": username, "password": password}),
                )
                .await,
            401,
        )
        .await;
        messages.push(body["error"].as_str().unwrap_or_default().to_owned());
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");
}

async fn get_shows_the_session_and_delete_ends_it(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("ada@lab.example", "Ada", "", true).await;
    let agent = app.login("ada@lab.example", PASSWORD).await;

    let me = json_with_status(agent.get(&format!("/{NS}/api/session/")).await, 200).await;
    assert_eq!(me["user"]["first_name"], "Ada");
    assert_eq!(me["is_superuser"], true);

    let logout = agent.delete(&format!("/{NS}/api/session/")).await;
    assert_eq!(logout.status(), 204);
    json_with_status(agent.get(&format!("/{NS}/api/session/")).await, 401).await;
    json_with_status(
        app.anonymous().get(&format!("/{NS}/api/session/")).await,
        401,
    )
    .await;
}

async fn a_session_belongs_to_its_namespace(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_user("ada@lab.example", "", "", false).await;
    let response = app
        .anonymous()
        .post(
            &format!("/{NS}/api/session/"),
            &json!({"username": "ada@lab.example", "password": PASSWORD}),
        )
        .await;
    let session = response
        .cookies()
        .find(|c| c.name() == format!("{NS}_sessionid"))
        .map(|c| c.value().to_owned())
        .expect("session cookie");
    // Under both namespaces' cookie names: the store, not only the name, keeps them apart.
    let session = format!("{NS}_sessionid={session}; other_sessionid={session}");
    let with_cookie = |path: String| {
        app.anonymous()
            .request(reqwest::Method::GET, &path)
            .header("cookie", session.clone())
            .send()
    };

    // The same cookie, sent by hand where the browser would not send it, is no session there.
    json_with_status(
        with_cookie(format!("/{NS}/api/session/"))
            .await
            .expect("sent"),
        200,
    )
    .await;
    json_with_status(
        with_cookie("/other/api/session/".into())
            .await
            .expect("sent"),
        401,
    )
    .await;
}

async fn login_needs_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .anonymous()
        .request(reqwest::Method::POST, &format!("/{NS}/api/session/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=a&password=b")
        .send()
        .await
        .expect("sent");
    json_with_status(response, 415).await;
}

backend_tests!(
    login_sets_session_and_csrf_cookies,
    cookies_are_secure_when_the_public_url_is_https,
    failed_logins_all_get_the_same_answer,
    get_shows_the_session_and_delete_ends_it,
    a_session_belongs_to_its_namespace,
    login_needs_json,
);
