//! Email templates (Jinja syntax via minijinja). Each kind of invitation has three templates,
//! `{kind}.subject.txt`, `{kind}.txt` and `{kind}.html`; an operator overrides any of them by
//! putting a file of that name in `CBH_TEMPLATE_DIR`. HTML templates escape every value.
//!
//! The words are not in the templates but in the message catalogs (`locales/*/emails.ftl`, read
//! with `t("key", …)`): one template serves every language, in the context's `lang`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use minijinja::Environment;
use serde::Serialize;

use crate::domain::InviteKind;
use crate::i18n::Catalogs;

const BUILT_IN: &[(&str, &str)] = &[
    (
        "new_user.subject.txt",
        include_str!("../../templates/new_user.subject.txt"),
    ),
    ("new_user.txt", include_str!("../../templates/new_user.txt")),
    (
        "new_user.html",
        include_str!("../../templates/new_user.html"),
    ),
    (
        "project_access_changed.subject.txt",
        include_str!("../../templates/project_access_changed.subject.txt"),
    ),
    (
        "project_access_changed.txt",
        include_str!("../../templates/project_access_changed.txt"),
    ),
    (
        "project_access_changed.html",
        include_str!("../../templates/project_access_changed.html"),
    ),
    (
        "reminder.subject.txt",
        include_str!("../../templates/reminder.subject.txt"),
    ),
    ("reminder.txt", include_str!("../../templates/reminder.txt")),
    (
        "reminder.html",
        include_str!("../../templates/reminder.html"),
    ),
    (
        "reminder_active.subject.txt",
        include_str!("../../templates/reminder_active.subject.txt"),
    ),
    (
        "reminder_active.txt",
        include_str!("../../templates/reminder_active.txt"),
    ),
    (
        "reminder_active.html",
        include_str!("../../templates/reminder_active.html"),
    ),
    // The notice to an invitation's creator that its email bounced (`mail::bounce_notice`).
    (
        "bounced.subject.txt",
        include_str!("../../templates/bounced.subject.txt"),
    ),
    ("bounced.txt", include_str!("../../templates/bounced.txt")),
    ("bounced.html", include_str!("../../templates/bounced.html")),
    (
        "reminder_auto.subject.txt",
        include_str!("../../templates/reminder_auto.subject.txt"),
    ),
    (
        "reminder_auto.txt",
        include_str!("../../templates/reminder_auto.txt"),
    ),
    (
        "reminder_auto.html",
        include_str!("../../templates/reminder_auto.html"),
    ),
    // The notices to an invitation's creator (`mail::notices`).
    (
        "invitation_accepted.subject.txt",
        include_str!("../../templates/invitation_accepted.subject.txt"),
    ),
    (
        "invitation_accepted.txt",
        include_str!("../../templates/invitation_accepted.txt"),
    ),
    (
        "invitation_accepted.html",
        include_str!("../../templates/invitation_accepted.html"),
    ),
    (
        "invitation_declined.subject.txt",
        include_str!("../../templates/invitation_declined.subject.txt"),
    ),
    (
        "invitation_declined.txt",
        include_str!("../../templates/invitation_declined.txt"),
    ),
    (
        "invitation_declined.html",
        include_str!("../../templates/invitation_declined.html"),
    ),
    (
        "invitation_failed.subject.txt",
        include_str!("../../templates/invitation_failed.subject.txt"),
    ),
    (
        "invitation_failed.txt",
        include_str!("../../templates/invitation_failed.txt"),
    ),
    (
        "invitation_failed.html",
        include_str!("../../templates/invitation_failed.html"),
    ),
];

const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

/// The variables every template can use (documented in the README).
#[derive(Debug, Clone, Serialize)]
pub struct EmailContext {
    /// The language it is written in: one of the catalogs' (`en`, `de`, …).
    pub lang: String,
    /// "ChemBio Hub Platform".
    pub platform: String,
    pub inviter: PersonContext,
    pub invitee: PersonContext,
    pub projects: Vec<ProjectContext>,
    /// The accept link, for the kinds that carry one.
    pub accept_url: Option<String>,
    /// The decline page of the accept link, for the kinds that carry one.
    pub decline_url: Option<String>,
    /// When the accept link expires, ISO 8601 UTC.
    pub expires: Option<String>,
    pub login_url: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersonContext {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// First and last name, or the email when both are empty.
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectContext {
    pub id: i64,
    pub name: String,
    /// The role the invitation gives: `viewer`, `editor` or `owner`.
    pub role: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
    catalogs: Arc<Catalogs>,
    /// `CBH_DEFAULT_LANGUAGE`: for a reader whose language is not known.
    default_language: String,
}

impl Templates {
    /// Loads the built-in templates and the operator's overrides, and renders each once with
    /// sample values in every language, so that a broken override stops start-up instead of
    /// failing every email.
    pub fn load(
        override_dir: Option<&Path>,
        catalogs: Arc<Catalogs>,
        default_language: &str,
    ) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        catalogs.register(&mut env);
        for (name, source) in BUILT_IN {
            let source = match override_dir.map(|dir| dir.join(name)) {
                Some(path) if path.is_file() => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading template {}", path.display()))?,
                _ => (*source).to_owned(),
            };
            env.add_template_owned(*name, source)
                .with_context(|| format!("compiling template {name}"))?;
        }
        let templates = Self {
            env,
            catalogs,
            default_language: default_language.to_owned(),
        };
        for lang in templates.catalogs.languages() {
            for kind in InviteKind::ALL {
                let mut sample = EmailContext::sample();
                sample.lang.clone_from(&lang);
                templates.render(kind, &sample).with_context(|| {
                    format!("rendering the {} templates in {lang}", kind.as_str())
                })?;
            }
            super::bounce_notice::check(&templates, &lang)?;
            super::notices::check(&templates, &lang)?;
        }
        Ok(templates)
    }

    /// The catalogs the templates read their words from.
    pub fn catalogs(&self) -> &Arc<Catalogs> {
        &self.catalogs
    }

    /// The language of ours an email to a reader of `wanted` (an invitation's or a user's
    /// `language`, None when not known) is written in: the closest we have, else the default.
    pub fn language_for(&self, wanted: Option<&str>) -> String {
        let requested: Vec<&str> = wanted.into_iter().collect();
        self.catalogs.negotiate(&requested, &self.default_language)
    }

    pub fn render(
        &self,
        kind: InviteKind,
        context: &EmailContext,
    ) -> anyhow::Result<RenderedEmail> {
        self.render_named(kind.as_str(), context)
    }

    /// Renders `{base}.subject.txt`, `{base}.txt` and `{base}.html` with any context.
    pub fn render_named(
        &self,
        base: &str,
        context: &impl Serialize,
    ) -> anyhow::Result<RenderedEmail> {
        let [subject, text, html] = PARTS.map(|part| {
            let name = format!("{base}.{part}");
            self.env
                .get_template(&name)
                .and_then(|template| template.render(context))
                .with_context(|| format!("rendering template {name}"))
        });
        Ok(RenderedEmail {
            subject: one_line(&subject?),
            text: text?,
            html: html?,
        })
    }
}

/// A subject is one line: whatever a template produced, no line break reaches the header.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl EmailContext {
    pub(crate) fn sample() -> Self {
        let person = |email: &str, first: &str, last: &str| PersonContext {
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
            name: format!("{first} {last}"),
        };
        Self {
            lang: "en".into(),
            platform: "ChemBio Hub Platform".into(),
            inviter: person("ada@example.org", "Ada", "Lovelace"),
            invitee: person("bob@example.org", "Bob", "Smith"),
            projects: vec![ProjectContext {
                id: 1,
                name: "Kinase screen".into(),
                role: "viewer",
            }],
            accept_url: Some("https://hub.example.org/chembiohub/accept/sample".into()),
            decline_url: Some("https://hub.example.org/chembiohub/decline/sample".into()),
            expires: Some("2030-01-01T00:00:00.000Z".into()),
            login_url: "https://hub.example.org/chembiohub/login/".into(),
            namespace: "chembiohub".into(),
        }
    }
}

#[cfg(test)]
impl Templates {
    /// The built-in templates and catalogs, English by default (for tests).
    pub(crate) fn sample() -> Self {
        let catalogs = Arc::new(Catalogs::load(None).expect("built-in catalogs load"));
        Self::load(None, catalogs, "en").expect("built-in templates load")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let catalogs = Arc::new(Catalogs::load(dir)?);
        Templates::load(dir, catalogs, "en")
    }

    #[test]
    fn built_in_templates_render_the_original_subjects() {
        let templates = load(None).expect("built-in templates load");
        let context = EmailContext::sample();
        let subject = |kind| templates.render(kind, &context).expect("renders").subject;
        assert_eq!(
            subject(InviteKind::NewUser),
            "You have been invited to view ChemBio Hub Platform by Ada Lovelace"
        );
        assert_eq!(
            subject(InviteKind::ProjectAccessChanged),
            "Ada Lovelace has edited your project access on ChemBio Hub Platform"
        );
        assert_eq!(
            subject(InviteKind::Reminder),
            "Ada Lovelace would like to remind you to log on to ChemBio Hub Platform"
        );
        assert_eq!(
            subject(InviteKind::ReminderActive),
            "Ada Lovelace would like to remind you to log on to ChemBio Hub Platform"
        );
        assert_eq!(
            subject(InviteKind::ReminderAuto),
            "Reminder: Ada Lovelace invited you to ChemBio Hub Platform"
        );
    }

    #[test]
    fn html_escapes_names_and_text_does_not() {
        let templates = load(None).expect("built-in templates load");
        let mut context = EmailContext::sample();
        context.inviter.name = "<script>alert(1)</script>".into();
        let email = templates
            .render(InviteKind::NewUser, &context)
            .expect("renders");
        assert!(email.html.contains("&lt;script&gt;"));
        assert!(!email.html.contains("<script>"));
        assert!(email.text.contains("<script>alert(1)</script>"));
    }

    #[test]
    fn an_override_replaces_only_its_own_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("new_user.subject.txt"),
            "Join us, {{ invitee.first_name }}\n",
        )
        .expect("write");
        let templates = load(Some(dir.path())).expect("loads");
        let email = templates
            .render(InviteKind::NewUser, &EmailContext::sample())
            .expect("renders");
        assert_eq!(email.subject, "Join us, Bob");
        assert!(email.text.contains("has invited you"));
    }

    #[test]
    fn a_broken_override_is_refused_at_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("reminder.html"), "{% if %}").expect("write");
        let error = load(Some(dir.path())).err().expect("refused");
        assert!(format!("{error:#}").contains("reminder.html"));
    }
}
