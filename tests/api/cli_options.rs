//! The real binary's options for operators: `--namespace` (its default, `CBH_NAMESPACE`, and the
//! refusal of a namespace nobody serves), `--json` on the outbox list, `--version` with the
//! commit, and the completions and man page generated from the command tree.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::binary::{on_database, run, stdout_of};
use crate::support::{Backend, json_with_status, spawn_app};

const WAIT: Duration = Duration::from_secs(30);

/// A command on the SQLite file `ns.db` in `dir` with `CBH_NAMESPACES=alpha,beta` plus `env`.
fn in_alpha_beta(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut vars = vec![("CBH_NAMESPACES", "alpha,beta".to_owned())];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    run(dir, &vars, args, None)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn namespace_defaults_to_the_first_served_then_follows_cbh_namespace_and_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();

    // No namespace named: the first of CBH_NAMESPACES.
    stdout_of(&in_alpha_beta(
        d,
        &[],
        &["user", "add", "--email", "a@lab.example"],
    ));
    stdout_of(&in_alpha_beta(
        d,
        &[],
        &[
            "apikey",
            "create",
            "--email",
            "a@lab.example",
            "--namespace",
            "alpha",
        ],
    ));
    let not_in_beta = in_alpha_beta(
        d,
        &[],
        &[
            "apikey",
            "create",
            "--email",
            "a@lab.example",
            "--namespace",
            "beta",
        ],
    );
    assert_eq!(
        not_in_beta.status.code(),
        Some(2),
        "{}",
        stderr(&not_in_beta)
    );
    assert!(
        stderr(&not_in_beta).contains("no user a@lab.example in namespace beta"),
        "{}",
        stderr(&not_in_beta)
    );

    // CBH_NAMESPACE picks another served namespace; the flag beats it.
    let beta = [("CBH_NAMESPACE", "beta")];
    stdout_of(&in_alpha_beta(
        d,
        &beta,
        &["user", "add", "--email", "b@lab.example"],
    ));
    stdout_of(&in_alpha_beta(
        d,
        &[],
        &[
            "apikey",
            "create",
            "--email",
            "b@lab.example",
            "--namespace",
            "beta",
        ],
    ));
    let flag_wins = in_alpha_beta(
        d,
        &beta,
        &[
            "apikey",
            "create",
            "--email",
            "b@lab.example",
            "--namespace",
            "alpha",
        ],
    );
    assert!(
        stderr(&flag_wins).contains("no user b@lab.example in namespace alpha"),
        "{}",
        stderr(&flag_wins)
    );

    // Without CBH_NAMESPACES the one namespace served by default.
    stdout_of(&run(
        d,
        &[],
        &["user", "add", "--email", "c@lab.example"],
        None,
    ));
    stdout_of(&run(
        d,
        &[],
        &[
            "apikey",
            "create",
            "--email",
            "c@lab.example",
            "--namespace",
            "chembiohub",
        ],
        None,
    ));
}

#[test]
fn a_namespace_nobody_serves_is_refused_naming_it_and_the_served_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    for (env, args) in [
        (
            vec![],
            vec![
                "user",
                "add",
                "--email",
                "a@lab.example",
                "--namespace",
                "gamma",
            ],
        ),
        (
            vec![("CBH_NAMESPACE", "gamma")],
            vec!["user", "add", "--email", "a@lab.example"],
        ),
        (
            vec![],
            vec!["project", "add", "--name", "P", "--namespace", "gamma"],
        ),
    ] {
        let refused = in_alpha_beta(d, &env, &args);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&refused)
        );
        let message = stderr(&refused);
        assert!(
            message.contains("'gamma'") && message.contains("alpha,beta"),
            "{args:?}: the message names both: {message}"
        );
    }
    // Nothing was made in gamma, nor anywhere else: the address is still free in alpha.
    stdout_of(&in_alpha_beta(
        d,
        &[],
        &["user", "add", "--email", "a@lab.example"],
    ));
}

async fn outbox_list_prints_one_json_object_per_message(backend: Backend) {
    let app = spawn_app(backend).await;
    app.smtp
        .set_data_reply(Some("550 5.1.1 mailbox unavailable"));
    let (editor, _) = app.editor_with_project().await;
    let created = json_with_status(
        editor.invite(json!({"email": "bob@example.org"})).await,
        201,
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    app.wait_for_invitation(&editor, id, WAIT, |inv| {
        inv["delivery"]["status"] == "failed"
    })
    .await;

    let listed = on_database(&app.settings.database, &["outbox", "list", "--json"]);
    let rows: Vec<Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(rows.len(), 1, "{listed}");
    let row = &rows[0];
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["recipient"], "bob@example.org", "{row}");
    assert_eq!(row["namespace"], "chembiohub", "{row}");
    assert_eq!(row["invitation_id"], id, "{row}");
    assert_eq!(row["attempts"], 1, "{row}");
    assert!(row["id"].is_i64(), "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("550")),
        "{row}"
    );
    for time in ["created", "next_attempt_at"] {
        assert!(
            row[time].as_str().is_some_and(|t| t.ends_with('Z')),
            "{time}: {row}"
        );
    }

    // The filter applies to the JSON form too.
    let queued = on_database(
        &app.settings.database,
        &["outbox", "list", "--json", "--status", "queued"],
    );
    assert_eq!(queued, "", "no queued message: {queued}");
}

backend_tests!(outbox_list_prints_one_json_object_per_message);

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let dir = tempfile::tempdir().expect("temp dir");
    let version = stdout_of(&run(dir.path(), &[], &["--version"], None));
    let expected = format!("cbh-invite {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = version
        .strip_prefix(&expected)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`{version}` is not `{expected}<commit>)`"));
    // The tests run in the git checkout, so the build knew its commit.
    assert!(
        commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "a short commit hash: {version}"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_tree() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A bad database URL does not matter: these touch no database.
    let bad_db = [("CBH_DATABASE_URL", "mysql://nowhere".to_owned())];
    let print = |args: &[&str]| stdout_of(&run(dir.path(), &bad_db, args, None));

    let bash = print(&["completions", "bash"]);
    assert!(bash.contains("complete -F _cbh__invite"), "{bash}");
    assert!(
        bash.contains("outbox") && bash.contains("--namespace") && bash.contains("completions"),
        "bash completes the commands and flags"
    );
    let zsh = print(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef cbh-invite"), "{zsh}");
    let fish = print(&["completions", "fish"]);
    assert!(fish.contains("complete -c cbh-invite"), "{fish}");

    let man = print(&["man"]);
    assert!(man.contains(".TH cbh-invite 1"), "{man}");
    for command in ["serve", "migrate", "outbox", "audit", "completions"] {
        assert!(man.contains(command), "the man page lists {command}");
    }
    assert!(man.contains(env!("CARGO_PKG_VERSION")), "and the version");

    let unknown = run(dir.path(), &[], &["completions", "tcsh"], None);
    assert_eq!(unknown.status.code(), Some(2));
}

/// The top-level commands with a `--namespace` option somewhere below them.
fn commands_with_a_namespace() -> Vec<String> {
    fn takes_namespace(command: &clap::Command) -> bool {
        command.get_arguments().any(|a| a.get_id() == "namespace")
            || command.get_subcommands().any(takes_namespace)
    }
    let tree = <cbh_invite::cli::Cli as clap::CommandFactory>::command();
    tree.get_subcommands()
        .filter(|c| takes_namespace(c))
        .map(|c| c.get_name().to_owned())
        .collect()
}

/// The README's `CBH_NAMESPACE` row names every command that takes `--namespace`, and the
/// example environment file of the package (`/etc/cbh-invite/env`) lists, commented out, every
/// setting of the README's configuration table.
#[test]
fn the_readme_and_the_example_environment_file_name_every_command_and_setting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `CBH_NAMESPACE` "))
        .expect("the CBH_NAMESPACE row");
    let commands = commands_with_a_namespace();
    assert!(commands.len() >= 7, "{commands:?}");
    for command in &commands {
        assert!(
            row.contains(&format!(" {command}")),
            "{command} missing in: {row}"
        );
    }

    let env = std::fs::read_to_string(root.join("debian/env")).expect("debian/env");
    let table = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the Configuration section");
    let mut variables: Vec<String> = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for name in first.split('`').skip(1).step_by(2) {
            let name = name.split('=').next().unwrap_or_default();
            // `CBH_SMTP_RETRY_BASE` / `_MAX`: the second is CBH_SMTP_RETRY_MAX.
            let name = match name {
                "_MAX" => "CBH_SMTP_RETRY_MAX".to_owned(),
                other => other.to_owned(),
            };
            if name.starts_with("CBH_") || name == "RUST_LOG" {
                variables.push(name);
            }
        }
    }
    assert!(variables.len() > 40, "{variables:?}");
    for name in &variables {
        assert!(
            env.lines().any(|l| l.starts_with(&format!("#{name}="))),
            "debian/env does not list {name}"
        );
    }
}
