//! Bulk invitations (`POST /{ns}/api/invitations/bulk/`, and `cbh_invite::invite::invite_rows`
//! under it): every row decided as if it had been posted alone, in order, with a result per
//! row; the whole request's `Idempotency-Key`; dry runs; the size limits.

use std::time::Duration;

use cbh_invite::config::{Limit, LinkSharing};
use cbh_invite::domain::{EmailAddress, PersonName, Role, Timestamp};
use cbh_invite::invite::{self, InviteSettings, Inviter, RowStatus, ValidInvitation};
use serde_json::{Value, json};

use crate::support::{Agent, Backend, NS, TestApp, json_with_status, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(10);
const BULK: &str = "/chembiohub/api/invitations/bulk/";

async fn bulk(agent: &Agent, body: &Value) -> Value {
    json_with_status(agent.post(BULK, body).await, 200).await
}

fn statuses(answer: &Value) -> Vec<u64> {
    answer["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|row| row["status"].as_u64().expect("status"))
        .collect()
}

fn row(answer: &Value, index: usize) -> &Value {
    &answer["objects"][index]
}

async fn outbox_rows(app: &TestApp) -> usize {
    app.store
        .list_outbox(None, 10_000)
        .await
        .expect("outbox")
        .len()
}

async fn rows_get_the_single_posts_outcomes_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let other = app.add_project("Not theirs").await;
    let member = app.add_user("carol@example.org", "Carol", "C", false).await;
    app.grant(&member, project, Role::Viewer).await;

    let answer = bulk(
        &editor,
        &json!({
            "projects_selected": [{"id": project.0}],
            "objects": [
                {"email": "bob@example.org", "firstName": "Bob", "lastName": "Smith"},
                {"email": "not an address"},
                {"email": "dan@example.org", "projects_selected": [{"id": other.0}]},
                {"email": "carol@example.org"},
                {"email": "bob@example.org"},
                ["eve@example.org"],
                {"email": "eve@example.org", "projects_selected": []},
            ],
        }),
    )
    .await;

    assert_eq!(statuses(&answer), [201, 400, 403, 409, 409, 400, 201]);
    assert_eq!(
        answer["meta"],
        json!({"total": 7, "created": 2, "refused": 5, "dry_run": false})
    );
    for (index, object) in answer["objects"]
        .as_array()
        .expect("rows")
        .iter()
        .enumerate()
    {
        assert_eq!(object["index"], index);
    }
    let bob = row(&answer, 0);
    assert_eq!(
        bob["message"],
        "Invite sent successfully to bob@example.org, would you like to invite anyone else?"
    );
    // camelCase names, and the request's projects for a row without its own.
    assert_eq!(bob["invitation"]["first_name"], "Bob");
    assert_eq!(bob["invitation"]["last_name"], "Smith");
    assert_eq!(bob["invitation"]["projects_selected"][0]["id"], project.0);
    // The single POST's messages.
    let single =
        json_with_status(editor.invite(json!({"email": "not an address"})).await, 400).await;
    assert_eq!(row(&answer, 1)["error"], single["error"]);
    assert!(row(&answer, 1).get("invitation").is_none());
    assert_eq!(
        row(&answer, 2)["error"],
        "you must be an editor or owner of project 'Not theirs' to invite people to it"
    );
    assert_eq!(
        row(&answer, 3)["error"],
        "User already exists, do you wish to invite again?"
    );
    // An explicit empty list is the platform alone, not the default.
    assert_eq!(
        row(&answer, 6)["invitation"]["projects_selected"],
        json!([])
    );
    assert!(app.find_user(NS, "dan@example.org").await.is_none());
    // Two emails: bob's and eve's.
    app.smtp.wait_for(2, WAIT).await;
    assert_eq!(outbox_rows(&app).await, 2);
}

async fn rows_past_the_inviters_limit_get_429(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.invitations_per_inviter = Some(Limit {
            max: 3,
            window: Duration::from_secs(3_600),
        });
    })
    .await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor.invite(json!({"email": "first@example.org"})).await,
        201,
    )
    .await;
    let objects: Vec<Value> = (0..5)
        .map(|i| json!({"email": format!("person{i}@example.org")}))
        .collect();

    let answer = bulk(&editor, &json!({"objects": objects})).await;

    // One sent before, two rows fit; the limit counts the rows before.
    assert_eq!(statuses(&answer), [201, 201, 429, 429, 429]);
    let limited = row(&answer, 2);
    assert!(
        limited["error"]
            .as_str()
            .expect("error")
            .starts_with("Invitation limit reached: you may send 3 invitations"),
        "{limited}"
    );
    assert!(limited["retry_after"].as_u64().expect("retry_after") > 0);
    assert!(app.find_user(NS, "person2@example.org").await.is_none());
    assert_eq!(app.count_invitations().await, 3);
}

async fn two_rows_to_one_address_are_decided_in_row_order(backend: Backend) {
    // The first row cannot go through a group commit's fast path (it returns its link), the
    // second could: it must still come second, and find the first.
    let app = spawn_app_with(backend, |s| s.link_sharing = LinkSharing::Editors).await;
    let (editor, project) = app.editor_with_project().await;

    let answer = bulk(
        &editor,
        &json!({
            "projects_selected": [{"id": project.0}],
            "objects": [
                {"email": "bob@example.org", "return_link": true},
                {"email": "bob@example.org"},
            ],
        }),
    )
    .await;

    assert_eq!(statuses(&answer), [201, 409]);
    let link = row(&answer, 0)["invitation"]["accept_url"]
        .as_str()
        .expect("the first row's link");
    assert!(
        link.starts_with("http://invite.test.example/chembiohub/accept/"),
        "{link}"
    );
}

async fn more_than_1000_rows_is_400_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    let objects: Vec<Value> = (0..1001)
        .map(|i| json!({"email": format!("p{i}@example.org")}))
        .collect();

    let refused =
        json_with_status(editor.post(BULK, &json!({"objects": objects})).await, 400).await;

    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("at most 1000"),
        "{refused}"
    );
    assert_eq!(app.count_invitations().await, 0);
    assert!(app.find_user(NS, "p0@example.org").await.is_none());
    let missing = json_with_status(editor.post(BULK, &json!({"rows": []})).await, 400).await;
    assert!(
        missing["error"]
            .as_str()
            .expect("error")
            .starts_with("objects")
    );
    // A bad default is the request's mistake, not each row's.
    let bad_default =
        json!({"projects_selected": [{"id": "x"}], "objects": [{"email": "p0@example.org"}]});
    let refused = json_with_status(editor.post(BULK, &bad_default).await, 400).await;
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .starts_with("projects_selected"),
        "{refused}"
    );
    assert_eq!(app.count_invitations().await, 0);
}

async fn a_retry_with_the_same_key_replays_the_answer_and_emails_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let body = json!({
        "projects_selected": [{"id": project.0}],
        "objects": [
            {"email": "bob@example.org", "remind": true},
            {"email": "eve@example.org"},
            {"email": "broken"},
        ],
    });
    let send = |body: Value| {
        editor
            .request(reqwest::Method::POST, BULK)
            .header("Idempotency-Key", "import-42")
            .json(&body)
            .send()
    };

    let first = send(body.clone()).await.expect("sent");
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json_with_status(first, 200).await;
    let again = send(body.clone()).await.expect("sent");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = json_with_status(again, 200).await;

    assert_eq!(statuses(&first), [201, 201, 400]);
    assert_eq!(again, first);
    assert_eq!(app.count_invitations().await, 2);
    app.smtp.wait_for(2, WAIT).await;
    // Another key's worth of time for a second email that must not come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.received_count(), 2);
    let mut recipients: Vec<String> = app
        .smtp
        .received()
        .iter()
        .flat_map(|mail| mail.rcpt_to.clone())
        .collect();
    recipients.sort();
    assert_eq!(recipients, ["bob@example.org", "eve@example.org"]);

    let mut other = body;
    other["objects"][1]["email"] = json!("zed@example.org");
    let reused = json_with_status(send(other).await.expect("sent"), 422).await;
    assert!(
        reused["error"]
            .as_str()
            .expect("error")
            .contains("Idempotency-Key")
    );
    assert!(app.find_user(NS, "zed@example.org").await.is_none());
}

/// An `Idempotency-Key` names one request: a key a single POST used is refused to a bulk
/// request, and a key a bulk request used is refused to a single POST, each writing nothing.
async fn one_key_serves_one_request_single_or_bulk(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let single = |key: &'static str, email: &str| {
        editor
            .request(reqwest::Method::POST, "/chembiohub/api/invitations/")
            .header("Idempotency-Key", key)
            .json(&json!({"email": email, "projects_selected": [{"id": project.0}]}))
            .send()
    };
    let many = |key: &'static str, email: &str| {
        editor
            .request(reqwest::Method::POST, BULK)
            .header("Idempotency-Key", key)
            .json(&json!({"projects_selected": [{"id": project.0}], "objects": [{"email": email}]}))
            .send()
    };
    let refused = |answer: Value| {
        let error = answer["error"].as_str().expect("error").to_owned();
        assert!(error.contains("Idempotency-Key"), "{error}");
    };

    json_with_status(
        single("first-single", "bob@example.org")
            .await
            .expect("sent"),
        201,
    )
    .await;
    refused(
        json_with_status(
            many("first-single", "eve@example.org").await.expect("sent"),
            422,
        )
        .await,
    );

    let answer = json_with_status(
        many("first-bulk", "dan@example.org").await.expect("sent"),
        200,
    )
    .await;
    assert_eq!(statuses(&answer), [201]);
    refused(
        json_with_status(
            single("first-bulk", "zed@example.org").await.expect("sent"),
            422,
        )
        .await,
    );

    assert_eq!(app.count_invitations().await, 2);
    for refused_address in ["eve@example.org", "zed@example.org"] {
        assert!(app.find_user(NS, refused_address).await.is_none());
    }
}

/// A single POST and a bulk request sent together with one key: one of them gets the key, the
/// other 422, never both. (On PostgreSQL, neither transaction sees the other's uncommitted
/// claim: the sender's lock orders them.) The pairs must have been in flight together, or the
/// race was not run.
async fn a_single_and_a_bulk_request_racing_for_one_key_do_not_both_get_it(backend: Backend) {
    const PAIRS: usize = 30;
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let timed = |request: reqwest::RequestBuilder| async move {
        let start = tokio::time::Instant::now();
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        (start..tokio::time::Instant::now(), status, body)
    };
    let mut together = 0;
    for i in 0..PAIRS {
        let key = format!("race-{i}");
        let single = editor
            .request(reqwest::Method::POST, &format!("/{NS}/api/invitations/"))
            .header("Idempotency-Key", &key)
            .json(&json!({"email": format!("s{i}@example.org"), "projects_selected": [{"id": project.0}]}));
        let many = editor
            .request(reqwest::Method::POST, BULK)
            .header("Idempotency-Key", &key)
            .json(&json!({"projects_selected": [{"id": project.0}], "objects": [{"email": format!("b{i}@example.org")}]}));
        let ((single_time, single_status, single_body), (bulk_time, bulk_status, bulk_body)) =
            tokio::join!(timed(single), timed(many));
        if single_time.start < bulk_time.end && bulk_time.start < single_time.end {
            together += 1;
        }
        let outcome = format!(
            "pair {i}: single {single_status} {single_body}, bulk {bulk_status} {bulk_body}"
        );
        match (single_status, bulk_status) {
            (201, 422) => {}
            (422, 200) => assert_eq!(statuses(&bulk_body), [201], "{outcome}"),
            _ => panic!("one of the two gets the key: {outcome}"),
        }
    }
    assert!(
        together >= PAIRS / 2,
        "only {together} of {PAIRS} pairs were in flight together"
    );
    assert_eq!(
        app.count_invitations().await,
        i64::try_from(PAIRS).expect("count")
    );
}

async fn a_dry_run_writes_and_sends_nothing_and_predicts_the_real_run(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.invitations_per_inviter = Some(Limit {
            max: 4,
            window: Duration::from_secs(3_600),
        });
    })
    .await;
    let (editor, project) = app.editor_with_project().await;
    let other = app.add_project("Not theirs").await;
    let mut objects = vec![
        json!({"email": "bad"}),
        json!({"email": "dan@example.org", "projects_selected": [{"id": other.0}]}),
        json!({"email": "bob@example.org"}),
        json!({"email": "bob@example.org"}),
    ];
    objects.extend((0..5).map(|i| json!({"email": format!("p{i}@example.org")})));
    let body = |dry_run: bool| json!({"projects_selected": [{"id": project.0}], "objects": objects, "dry_run": dry_run});

    let predicted = bulk(&editor, &body(true)).await;

    assert_eq!(predicted["meta"]["dry_run"], true);
    assert_eq!(
        statuses(&predicted),
        [400, 403, 201, 409, 201, 201, 201, 429, 429]
    );
    assert!(row(&predicted, 2).get("invitation").is_none());
    assert_eq!(app.count_invitations().await, 0);
    assert!(app.find_user(NS, "bob@example.org").await.is_none());
    assert_eq!(outbox_rows(&app).await, 0);

    let real = bulk(&editor, &body(false)).await;

    assert_eq!(statuses(&real), statuses(&predicted));
    // The same words, but for a 429's wait, which is counted from each run's own time.
    let words = |row: &Value, field: &str| {
        let text = row[field].as_str().unwrap_or_default().to_owned();
        text.split("; try again")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    for index in 0..objects.len() {
        let (real, predicted) = (row(&real, index), row(&predicted, index));
        assert_eq!(
            words(real, "message"),
            words(predicted, "message"),
            "row {index}"
        );
        assert_eq!(
            words(real, "error"),
            words(predicted, "error"),
            "row {index}"
        );
    }
    app.smtp.wait_for(4, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.received_count(), 4);
}

async fn the_bulk_path_takes_1_mib_and_answers_413_beyond(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    // The web client sends whole project objects: 200 KiB, over the 64 KiB of other paths.
    let config = "x".repeat(20 * 1024);
    let objects: Vec<Value> = (0..10)
        .map(|i| {
            json!({"email": format!("p{i}@example.org"),
                   "projects_selected": [{"id": project.0, "custom_field_config": config}]})
        })
        .collect();
    let answer = bulk(&editor, &json!({"objects": objects})).await;
    assert_eq!(answer["meta"]["created"], 10);

    let huge = json!({"objects": [{"email": "a@example.org", "padding": "y".repeat(1024 * 1024)}]});
    let refused = json_with_status(editor.post(BULK, &huge).await, 413).await;
    assert!(refused["error"].is_string());
    assert!(app.find_user(NS, "a@example.org").await.is_none());
}

async fn the_core_invites_rows_without_http(backend: Backend) {
    let app = spawn_app(backend).await;
    let inviter = app
        .add_user("ada@lab.example", "Ada", "Lovelace", false)
        .await;
    let project = app.add_project("Kinase screen").await;
    app.grant(&inviter, project, Role::Owner).await;
    let name = |s: &str| PersonName::parse(s, "name").expect("name");
    let row = |email: &str| {
        Ok(ValidInvitation::new(
            EmailAddress::parse(email).expect("email"),
            name("A"),
            name("B"),
            [project],
        ))
    };
    let settings = InviteSettings {
        invite_ttl: app.settings.invite_ttl,
        rules: &app.settings.invite_rules,
        link_sharing: app.settings.link_sharing,
        limits: app.settings.limits,
        mail_domain: "invite.test.example",
        default_language: "en",
    };
    let who = Inviter {
        namespace: NS,
        user: &inviter,
        client_ip: None,
    };
    let rows = vec![
        row("bob@example.org"),
        Err("not an address".to_owned()),
        row("bob@example.org"),
    ];

    let results = invite::invite_rows(app.store.as_ref(), &settings, &who, rows, false)
        .await
        .expect("invited");

    let outcomes: Vec<RowStatus> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        outcomes,
        [
            RowStatus::Created,
            RowStatus::Invalid,
            RowStatus::AlreadyInvited
        ]
    );
    assert_eq!(results[1].message, "not an address");
    let record = results[0].invitation.as_ref().expect("the invitation");
    assert_eq!(record.email, "bob@example.org");
    assert_eq!(record.created_by.id, inviter.id);
    assert!(record.created <= Timestamp::now());
    assert_eq!(app.count_invitations().await, 1);
}

async fn a_thousand_new_addresses_in_one_request_are_all_invited(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    let objects: Vec<Value> = (0..1000)
        .map(|i| json!({"email": format!("p{i}@example.org"), "first_name": "P"}))
        .collect();

    let started = std::time::Instant::now();
    let answer = bulk(
        &editor,
        &json!({"projects_selected": [{"id": project.0}], "objects": objects}),
    )
    .await;
    // Reported, not asserted: this is a debug build (the benchmark measures the release one).
    eprintln!("1000 rows in one bulk request: {:?}", started.elapsed());

    assert_eq!(answer["meta"]["created"], 1000);
    assert!(statuses(&answer).iter().all(|status| *status == 201));
    let emails: Vec<&str> = answer["objects"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["invitation"]["email"].as_str().expect("email"))
        .collect();
    let expected: Vec<String> = (0..1000).map(|i| format!("p{i}@example.org")).collect();
    assert_eq!(emails, expected);
    assert_eq!(app.count_invitations().await, 1000);
    assert_eq!(outbox_rows(&app).await, 1000);
}

async fn a_retry_while_the_first_request_runs_does_not_work_on_its_rows(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, project) = app.editor_with_project().await;
    // A reminder row would send a second email if a retry worked on the rows again.
    let objects: Vec<Value> = (0..200)
        .map(|i| json!({"email": format!("p{i}@example.org"), "remind": true}))
        .collect();
    let body = json!({"projects_selected": [{"id": project.0}], "objects": objects});
    let send = || {
        editor
            .request(reqwest::Method::POST, BULK)
            .header("Idempotency-Key", "same-import")
            .json(&body)
            .send()
    };

    let (first, second) = tokio::join!(send(), send());

    let mut answered = Vec::new();
    for response in [first, second] {
        let response = response.expect("sent");
        match response.status().as_u16() {
            200 => answered.push(response.json::<Value>().await.expect("json")),
            409 => {
                let body: Value = response.json().await.expect("json");
                assert!(
                    body["error"]
                        .as_str()
                        .expect("error")
                        .contains("Idempotency-Key")
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(!answered.is_empty());
    assert!(answered.iter().all(|answer| *answer == answered[0]));
    assert_eq!(answered[0]["meta"]["created"], 200);
    // Once the first has answered, a retry gets its answer.
    let again = json_with_status(send().await.expect("sent"), 200).await;
    assert_eq!(again, answered[0]);
    assert_eq!(app.count_invitations().await, 200);
    assert_eq!(outbox_rows(&app).await, 200);
}

/// The document takes any row (a bad one is its row's 400, not the request's), so that a
/// schema-driven fuzzer's "invalid" rows are not expected to refuse the whole request.
async fn the_document_describes_the_bulk_post(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = json_with_status(
        app.anonymous()
            .get(&format!("/{NS}/api/openapi.json"))
            .await,
        200,
    )
    .await;
    let operation = &document["paths"]["/{ns}/api/invitations/bulk/"]["post"];
    assert_eq!(operation["operationId"], "create_invitations_in_bulk");
    let body = &document["components"]["schemas"]["BulkRequest"];
    assert_eq!(body["required"], json!(["objects"]));
    let objects = &body["properties"]["objects"];
    assert_eq!(objects["maxItems"], 1000);
    let row = objects["items"].as_object().expect("items");
    assert!(
        row.get("type").is_none() && row.get("$ref").is_none(),
        "{row:?}"
    );
    for status in ["200", "400", "413", "422"] {
        assert!(operation["responses"][status].is_object(), "{status}");
    }
}

backend_tests!(
    a_retry_while_the_first_request_runs_does_not_work_on_its_rows,
    the_document_describes_the_bulk_post,
    a_thousand_new_addresses_in_one_request_are_all_invited,
    rows_get_the_single_posts_outcomes_in_order,
    rows_past_the_inviters_limit_get_429,
    two_rows_to_one_address_are_decided_in_row_order,
    more_than_1000_rows_is_400_and_writes_nothing,
    a_retry_with_the_same_key_replays_the_answer_and_emails_once,
    one_key_serves_one_request_single_or_bulk,
    a_single_and_a_bulk_request_racing_for_one_key_do_not_both_get_it,
    a_dry_run_writes_and_sends_nothing_and_predicts_the_real_run,
    the_bulk_path_takes_1_mib_and_answers_413_beyond,
    the_core_invites_rows_without_http,
);
