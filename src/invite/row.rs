//! One invitation as asked for, after validation: what the JSON API's body
//! (`http::invitations::validate_body`), a bulk request's row and a CSV line all become before
//! anything is decided. Past this type, only valid values exist.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::domain::grant::ProjectRoles;
use crate::domain::{EmailAddress, Language, PersonName, ProjectId, Role};

#[derive(Debug, Clone)]
pub struct ValidInvitation {
    pub(crate) email: EmailAddress,
    pub(crate) first_name: PersonName,
    pub(crate) last_name: PersonName,
    /// Distinct, positive and in ascending order.
    pub(crate) projects: Vec<ProjectId>,
    /// The role offered on each of `projects` (viewer unless the request asked for more).
    pub(crate) roles: ProjectRoles,
    pub(crate) remind: bool,
    /// `expires_in`, its syntax checked; its bounds depend on the settings
    /// (`invite::invitation_ttl`).
    pub(crate) expires_in: Option<Duration>,
    pub(crate) return_link: bool,
    pub(crate) send_email: bool,
    /// The language of the invitee's emails; `None`: `CBH_DEFAULT_LANGUAGE`.
    pub(crate) language: Option<Language>,
}

impl ValidInvitation {
    /// An invitation to these projects (in any order, repeats ignored), without `remind`,
    /// `expires_in` or link sharing: what a CSV line of the command line asks for.
    pub fn new(
        email: EmailAddress,
        first_name: PersonName,
        last_name: PersonName,
        projects: impl IntoIterator<Item = ProjectId>,
    ) -> Self {
        let projects: BTreeSet<ProjectId> = projects.into_iter().collect();
        Self {
            email,
            first_name,
            last_name,
            projects: projects.into_iter().collect(),
            roles: ProjectRoles::default(),
            remind: false,
            expires_in: None,
            return_link: false,
            send_email: true,
            language: None,
        }
    }

    /// The language of the invitee's emails (a CSV line's `language`, `--language`).
    pub fn with_language(mut self, language: Option<Language>) -> Self {
        self.language = language;
        self
    }

    /// `role` offered on every project (a CSV import's `--role`).
    pub fn with_role(mut self, role: Role) -> Self {
        for project in &self.projects {
            self.roles.offer(*project, role);
        }
        self
    }

    /// `remind: true`: a reminder instead of the 409 when the invitee has every project.
    pub fn with_remind(mut self, remind: bool) -> Self {
        self.remind = remind;
        self
    }

    pub fn email(&self) -> &EmailAddress {
        &self.email
    }

    pub fn first_name(&self) -> &PersonName {
        &self.first_name
    }

    pub fn last_name(&self) -> &PersonName {
        &self.last_name
    }

    /// Distinct, positive and in ascending order.
    pub fn projects(&self) -> &[ProjectId] {
        &self.projects
    }

    /// The role offered on each project (viewer unless the request asked for more).
    pub fn roles(&self) -> &ProjectRoles {
        &self.roles
    }

    pub fn remind(&self) -> bool {
        self.remind
    }

    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    pub fn return_link(&self) -> bool {
        self.return_link
    }

    pub fn send_email(&self) -> bool {
        self.send_email
    }

    pub fn language(&self) -> Option<&Language> {
        self.language.as_ref()
    }

    /// Whether the request shares the accept link some other way than the email
    /// (`return_link`, `send_email: false`), which `CBH_LINK_SHARING` decides.
    pub fn shares_link(&self) -> bool {
        self.return_link || !self.send_email
    }
}
