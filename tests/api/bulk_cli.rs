//! `cbh-invite invite --csv`, the real binary on a real CSV file, on both backends: a mix of
//! good and bad rows (exit 1, the results CSV, the rows in the database, the plain output when
//! standard output is not a terminal), every row invited (exit 0), `--dry-run` writing nothing,
//! and input that cannot be used (exit 2, nothing written).

use std::path::{Path, PathBuf};
use std::process::Output;

use cbh_invite::config::{DatabaseUrl, PoolSettings};
use cbh_invite::domain::Timestamp;
use cbh_invite::store::{self, InvitationFilter};

use crate::support::binary::{CommandDatabase, run, stdout_of};
use crate::support::{Backend, NS};

struct Cli {
    db: CommandDatabase,
}

impl Cli {
    async fn new(backend: Backend) -> Self {
        Self {
            db: CommandDatabase::new(backend).await,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        run(
            self.db.dir(),
            &[("CBH_DATABASE_URL", self.db.url.clone())],
            args,
            Some("a long enough password\n"),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_of(&self.run(args))
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.db.dir().join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// Ada, editor of one project; its id.
    fn editor_with_project(&self) -> String {
        self.ok(&[
            "user",
            "add",
            "--email",
            "ada@lab.example",
            "--first-name",
            "Ada",
            "--password-stdin",
        ]);
        let project = self.ok(&["project", "add", "--name", "Kinase screen"]);
        self.ok(&[
            "grant",
            "--email",
            "ada@lab.example",
            "--project",
            &project,
            "--role",
            "editor",
        ]);
        project
    }

    /// The invitations of the namespace, oldest first: (email, projects).
    async fn invitations(&self) -> Vec<(String, Vec<String>)> {
        let database = DatabaseUrl::parse(&self.db.url).expect("database url");
        let store = store::connect(&database, &PoolSettings::default())
            .await
            .expect("store");
        let filter = InvitationFilter {
            limit: 100,
            ..InvitationFilter::default()
        };
        let mut found: Vec<(String, Vec<String>)> = store
            .list_invitations(NS, &filter, Timestamp::now())
            .await
            .expect("invitations")
            .objects
            .into_iter()
            .map(|i| (i.email, i.projects.into_iter().map(|p| p.name).collect()))
            .collect();
        found.sort();
        found
    }

    fn outbox_recipients(&self) -> Vec<String> {
        let listed = self.ok(&["outbox", "list", "--json"]);
        let mut recipients: Vec<String> = listed
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
                row["recipient"].as_str().expect("recipient").to_owned()
            })
            .collect();
        recipients.sort();
        recipients
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A semicolon CSV with a header, a BOM, and rows of every kind.
const MIXED: &str = "\u{FEFF}E-mail;First name;Last name\r\n\
    bob@lab.example;Bob;Smith\r\n\
    not an address;X;Y\r\n\
    carl@lab.example;Carl;\r\n\
    BOB@lab.example;Bob;Again\r\n\
    ada@lab.example;Ada;\r\n";

async fn invite_csv_reports_each_row_and_exits_1_when_some_are_refused(backend: Backend) {
    let cli = Cli::new(backend).await;
    let project = cli.editor_with_project();
    let roster = cli.file("team.csv", MIXED.as_bytes());
    let results = cli.db.dir().join("results.csv");

    // A dry run first: the same outcomes, nothing written.
    let dry = cli.run(&[
        "invite",
        "--csv",
        path(&roster),
        "--inviter",
        "ada@lab.example",
        "--project",
        &project,
        "--dry-run",
    ]);
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).ends_with("dry run, nothing written: 2 invited, 3 refused, 5 in all\n"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(cli.invitations().await, vec![]);
    assert_eq!(cli.outbox_recipients(), Vec::<String>::new());

    let output = cli.run(&[
        "invite",
        "--csv",
        path(&roster),
        "--inviter",
        "ada@lab.example",
        "--project",
        &project,
        "--out",
        path(&results),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let welcome =
        "Invite sent successfully to bob@lab.example, would you like to invite anyone else?";
    // Not a terminal: one plain line per row, then the summary.
    assert_eq!(
        text(&output.stdout),
        format!(
            "line 2: bob@lab.example: 201 {welcome}\n\
             line 3: not an address: 400 'not an address' is not a valid email address\n\
             line 4: carl@lab.example: 201 {}\n\
             line 5: BOB@lab.example: 400 the same address as line 2\n\
             line 6: ada@lab.example: 409 User already exists, do you wish to invite again?\n\
             2 invited, 3 refused, 5 in all\n",
            welcome.replace("bob@", "carl@")
        )
    );
    assert!(
        text(&output.stderr).contains("3 of 5 rows were not invited"),
        "{}",
        text(&output.stderr)
    );
    let csv = std::fs::read_to_string(&results).expect("results file");
    assert_eq!(
        csv,
        format!(
            "line,email,status,outcome\r\n\
             2,bob@lab.example,201,\"{welcome}\"\r\n\
             3,not an address,400,'not an address' is not a valid email address\r\n\
             4,carl@lab.example,201,\"{}\"\r\n\
             5,BOB@lab.example,400,the same address as line 2\r\n\
             6,ada@lab.example,409,\"User already exists, do you wish to invite again?\"\r\n",
            welcome.replace("bob@", "carl@")
        )
    );
    let kinase = vec!["Kinase screen".to_owned()];
    assert_eq!(
        cli.invitations().await,
        vec![
            ("bob@lab.example".to_owned(), kinase.clone()),
            ("carl@lab.example".to_owned(), kinase),
        ]
    );
    // Queued for the running service's worker.
    assert_eq!(
        cli.outbox_recipients(),
        vec!["bob@lab.example", "carl@lab.example"]
    );
}

async fn invite_csv_exits_0_when_every_row_is_invited(backend: Backend) {
    let cli = Cli::new(backend).await;
    cli.editor_with_project();
    let roster = cli.file(
        "list.txt",
        b"dan@lab.example\n\neve@lab.example, Eve, Noether\n",
    );
    let output = cli.run(&[
        "invite",
        "--csv",
        path(&roster),
        "--inviter",
        "ada@lab.example",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).ends_with("\n2 invited, 0 refused, 2 in all\n"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(
        cli.invitations().await,
        vec![
            ("dan@lab.example".to_owned(), vec![]),
            ("eve@lab.example".to_owned(), vec![]),
        ]
    );
}

async fn invite_csv_refuses_unusable_input_with_exit_2_and_writes_nothing(backend: Backend) {
    let cli = Cli::new(backend).await;
    let project = cli.editor_with_project();
    let latin1 = cli.file("latin1.csv", b"bob@lab.example;Bj\xF6rn\n");
    let many: String = (0..1001).map(|i| format!("u{i}@lab.example\n")).collect();
    let too_many = cli.file("many.csv", many.as_bytes());
    let good = cli.file("good.csv", b"bob@lab.example\n");
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["--csv", path(&latin1), "--inviter", "ada@lab.example"],
            "not UTF-8 text (line 1)",
        ),
        (
            vec!["--csv", path(&too_many), "--inviter", "ada@lab.example"],
            "more than 1000 rows",
        ),
        (
            vec!["--csv", "missing.csv", "--inviter", "ada@lab.example"],
            "--csv: missing.csv",
        ),
        (
            vec!["--csv", path(&good), "--inviter", "nobody@lab.example"],
            "there is no user nobody@lab.example",
        ),
        (
            vec![
                "--csv",
                path(&good),
                "--inviter",
                "ada@lab.example",
                "--project",
                &project,
                "--role",
                "admin",
            ],
            "invalid value 'admin' for '--role <ROLE>'",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["invite"];
        all.extend(args);
        let output = cli.run(&all);
        assert_eq!(output.status.code(), Some(2), "{all:?}");
        assert!(
            text(&output.stderr).contains(expected),
            "{all:?}: {}",
            text(&output.stderr)
        );
    }
    assert_eq!(cli.invitations().await, vec![]);
}

backend_tests!(
    invite_csv_reports_each_row_and_exits_1_when_some_are_refused,
    invite_csv_exits_0_when_every_row_is_invited,
    invite_csv_refuses_unusable_input_with_exit_2_and_writes_nothing,
    invite_csv_gives_the_role_asked_within_the_inviters_own,
    on_a_terminal_invite_csv_shows_only_the_refused_rows_above_its_bar,
);

/// On a terminal (a pseudo-terminal that util-linux's `script` gives the command), the rows that
/// went through are the bar's to count, not lines: only the refused ones are printed, above it,
/// then the summary; the exit status is the same as elsewhere. A terminal without `TERM`, where
/// no bar is drawn, gets the plain lines, refused rows included.
async fn on_a_terminal_invite_csv_shows_only_the_refused_rows_above_its_bar(backend: Backend) {
    let cli = Cli::new(backend).await;
    let project = cli.editor_with_project();
    let roster = cli.file("team.csv", MIXED.as_bytes());
    let on_a_terminal = |term: Option<&str>, dry_run: bool| {
        let command = format!(
            "{} invite --csv {} --inviter ada@lab.example --project {project}{}",
            crate::support::binary::BIN,
            path(&roster),
            if dry_run { " --dry-run" } else { "" }
        );
        let mut script = std::process::Command::new("script");
        script
            .args(["--quiet", "--return", "--command", &command, "/dev/null"])
            .current_dir(cli.db.dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CBH_DATABASE_URL", &cli.db.url)
            .stdin(std::process::Stdio::null());
        if let Some(term) = term {
            script.env("TERM", term);
        }
        let output = script.output().expect("script (util-linux) runs");
        let shown = text(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{shown}");
        for refused in [
            "line 3: not an address: 400",
            "line 5: BOB@lab.example: 400 the same address as line 2",
            "line 6: ada@lab.example: 409",
            "2 invited, 3 refused, 5 in all",
        ] {
            assert!(shown.contains(refused), "{refused} in {shown}");
        }
        shown
    };
    let plain = on_a_terminal(None, true);
    assert!(plain.contains("line 2: bob@lab.example: 201"), "{plain}");
    let drawn = on_a_terminal(Some("xterm"), false);
    assert!(drawn.contains(" 5/5 rows"), "the bar was drawn: {drawn}");
    assert!(
        !drawn.contains("line 2: bob@lab.example"),
        "an invited row is counted by the bar, not printed: {drawn}"
    );
    assert_eq!(cli.invitations().await.len(), 2);
}

/// `--role` is offered on every `--project`, by the API's rule: an editor gives editor, and a
/// row asking for owner is refused (403, exit 1) with nothing written for it.
async fn invite_csv_gives_the_role_asked_within_the_inviters_own(backend: Backend) {
    let cli = Cli::new(backend).await;
    let project = cli.editor_with_project();
    let invite = |roster: &Path, role: &str| {
        cli.run(&[
            "invite",
            "--csv",
            path(roster),
            "--inviter",
            "ada@lab.example",
            "--project",
            &project,
            "--role",
            role,
        ])
    };
    let dan = cli.file("dan.csv", b"dan@lab.example, Dan, Day\n");
    let output = invite(&dan, "editor");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let database = DatabaseUrl::parse(&cli.db.url).expect("database url");
    let store = store::connect(&database, &PoolSettings::default())
        .await
        .expect("store");
    let filter = InvitationFilter {
        limit: 100,
        ..InvitationFilter::default()
    };
    let invited = store
        .list_invitations(NS, &filter, Timestamp::now())
        .await
        .expect("invitations")
        .objects;
    assert_eq!(invited.len(), 1);
    let id = cbh_invite::domain::ProjectId(project.parse().expect("project id"));
    assert_eq!(invited[0].roles.role(id), cbh_invite::domain::Role::Editor);

    let eve = cli.file("eve.csv", b"eve@lab.example\n");
    let output = invite(&eve, "owner");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(
            "eve@lab.example: 403 you may give at most your own role (editor) on project 'Kinase screen', not owner"
        ),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(cli.invitations().await.len(), 1, "nothing written for eve");
}
