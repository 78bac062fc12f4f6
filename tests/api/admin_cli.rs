//! The administration commands of the real binary: `user list`, `project list`, `outbox list`
//! (each with `--json`), `user deactivate|activate` and `grant --role none`, on both backends.

use std::path::Path;

use cbh_invite::config::DatabaseUrl;
use serde_json::{Value, json};

use crate::support::binary::{CommandDatabase, run, stdout_of};
use crate::support::{Backend, NS, json_with_status, spawn_app};

struct Cli {
    db: CommandDatabase,
}

impl Cli {
    async fn new(backend: Backend) -> Self {
        Self {
            db: CommandDatabase::new(backend).await,
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        run(
            self.dir(),
            &[
                ("CBH_DATABASE_URL", self.db.url.clone()),
                // For `webhook add` of a receiver on loopback.
                ("CBH_WEBHOOK_ALLOW_PRIVATE", "true".into()),
            ],
            args,
            stdin,
        )
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        stdout_of(&self.run(args, stdin))
    }

    fn dir(&self) -> &Path {
        self.db.dir()
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args, None)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
            .collect()
    }
}

async fn the_cli_lists_deactivates_and_removes_roles(backend: Backend) {
    let cli = Cli::new(backend).await;
    let password = Some("a long enough password\n");
    for email in ["ada@lab.example", "bob@lab.example"] {
        cli.ok(
            &["user", "add", "--email", email, "--password-stdin"],
            password,
        );
    }
    cli.ok(&["user", "add", "--email", "carl@lab.example"], None);
    let project = cli.ok(&["project", "add", "--name", "Kinase screen"], None);
    let grant = |email: &str, role: &str| {
        cli.run(
            &[
                "grant",
                "--email",
                email,
                "--project",
                &project,
                "--role",
                role,
            ],
            None,
        )
    };
    stdout_of(&grant("ada@lab.example", "owner"));
    stdout_of(&grant("bob@lab.example", "editor"));

    let users = cli.json_lines(&["user", "list", "--json"]);
    let summary: Vec<(String, bool, bool)> = users
        .iter()
        .map(|u| {
            (
                u["email"].as_str().expect("email").to_owned(),
                u["is_active"].as_bool().expect("is_active"),
                u["is_pending"].as_bool().expect("is_pending"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ada@lab.example".into(), true, false),
            ("bob@lab.example".into(), true, false),
            ("carl@lab.example".into(), false, true),
        ]
    );
    let projects = cli.json_lines(&["project", "list", "--json"]);
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0]["name"], "Kinase screen");
    assert_eq!(projects[0]["members"][0]["email"], "ada@lab.example");
    assert_eq!(projects[0]["members"][0]["role"], "owner");
    assert_eq!(projects[0]["members"][1]["role"], "editor");
    let text = cli.ok(&["project", "list"], None);
    assert!(
        text.contains("Kinase screen\tada@lab.example:owner bob@lab.example:editor"),
        "{text}"
    );

    // The last owner keeps the role; an editor's role goes.
    let refused = grant("ada@lab.example", "none");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("last owner"));
    stdout_of(&grant("bob@lab.example", "none"));
    let projects = cli.json_lines(&["project", "list", "--json"]);
    assert_eq!(projects[0]["members"].as_array().map(Vec::len), Some(1));

    cli.ok(&["user", "deactivate", "--email", "bob@lab.example"], None);
    let text = cli.ok(&["user", "list"], None);
    assert!(text.contains("bob@lab.example\t \tdeactivated"), "{text}");
    cli.ok(&["user", "activate", "--email", "bob@lab.example"], None);
    let users = cli.json_lines(&["user", "list", "--json"]);
    assert_eq!(users[1]["is_active"], true);
    let unknown = cli.run(
        &["user", "deactivate", "--email", "nobody@lab.example"],
        None,
    );
    assert_eq!(unknown.status.code(), Some(2));

    let audit = cli.json_lines(&["audit", "--json"]);
    let events: Vec<&str> = audit
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("user_") || *e == "membership_changed")
        .collect();
    assert_eq!(
        events,
        [
            "user_created",
            "user_created",
            "user_created",
            "membership_changed",
            "membership_changed",
            "membership_changed",
            "user_deactivated",
            "user_activated"
        ]
    );
}

/// `project add` and `user add` are changes like the API's: each is in the audit log and emits
/// its webhook event, and `project add --owner` gives the project its owner.
async fn project_and_user_add_are_audited_and_announced(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.ok(&["migrate"], None);
    cli.ok(
        &["webhook", "add", "--url", "http://127.0.0.1:9/hook"],
        None,
    );
    let password = Some("a long enough password\n");
    cli.ok(
        &[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--password-stdin",
        ],
        password,
    );
    cli.ok(&["user", "add", "--email", "carl@lab.example"], None);
    let owned = cli.ok(
        &[
            "project",
            "add",
            "--name",
            "Kinase screen",
            "--owner",
            "ada@lab.example",
        ],
        None,
    );
    let unowned = cli.ok(&["project", "add", "--name", "Spare"], None);
    let unknown = cli.run(
        &[
            "project",
            "add",
            "--name",
            "Ghost",
            "--owner",
            "nobody@lab.example",
        ],
        None,
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody@lab.example"));

    let projects = cli.json_lines(&["project", "list", "--json"]);
    let names: Vec<&str> = projects.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["Kinase screen", "Spare"], "no project Ghost");
    assert_eq!(projects[0]["members"][0]["email"], "ada@lab.example");
    assert_eq!(projects[0]["members"][0]["role"], "owner");
    assert_eq!(projects[1]["members"].as_array().map(Vec::len), Some(0));

    let audit = cli.json_lines(&["audit", "--json"]);
    let records: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e["event"] != "webhook_added")
        .map(|e| {
            (
                e["event"].as_str().expect("event"),
                e["subject"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("user_created", "ada@lab.example"),
        ("user_created", "carl@lab.example"),
        ("project_created", owned.as_str()),
        ("project_created", unowned.as_str()),
    ] {
        assert!(records.contains(&expected), "{expected:?} in {records:?}");
    }
    assert_eq!(
        records
            .iter()
            .filter(|(e, _)| *e == "membership_changed")
            .count(),
        1,
        "{records:?}"
    );

    // Ada, active at once, is announced as activated; Carl, pending, is not; Ada's ownership
    // is a membership change.
    let deliveries = cli.json_lines(&["webhook", "deliveries", "--json"]);
    let mut events: Vec<&str> = deliveries
        .iter()
        .filter_map(|d| d["event"].as_str())
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["membership.changed", "user.activated"]);
}

async fn outbox_list_prints_json_lines(backend: Backend) {
    let app = spawn_app(backend).await;
    let (editor, _) = app.editor_with_project().await;
    json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let url = match &app.settings.database {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.clone(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let output = stdout_of(&run(
        dir.path(),
        &[("CBH_DATABASE_URL", url)],
        &["outbox", "list", "--json"],
        None,
    ));
    let rows: Vec<Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 1, "{output}");
    assert_eq!(rows[0]["recipient"], "bob@example.org");
    assert_eq!(rows[0]["namespace"], NS);
    assert!(rows[0]["status"].is_string() && rows[0]["attempts"].is_i64());
}

backend_tests!(
    the_cli_lists_deactivates_and_removes_roles,
    project_and_user_add_are_audited_and_announced,
    outbox_list_prints_json_lines,
);
