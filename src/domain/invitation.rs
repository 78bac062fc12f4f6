use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::grant::{self, GrantChange, ProjectRoles};
use super::{EmailAddress, ProjectId, Role, Timestamp, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvitationId(pub i64);

impl fmt::Display for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an invitation does, decided by `plan_invitation`. Each kind has its own email template
/// and response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteKind {
    /// The address belonged to no user: a pending user was created.
    NewUser,
    /// An existing user was granted projects it did not have.
    ProjectAccessChanged,
    /// A still-pending user was sent a fresh sign-up link.
    Reminder,
    /// An active user was reminded to log on and look at projects it already has.
    ReminderActive,
    /// An automatic reminder of a pending invitation (`CBH_REMINDERS`), with a fresh link.
    /// Never planned by `plan_invitation`: only the reminder scan queues it.
    ReminderAuto,
}

impl InviteKind {
    pub const ALL: [InviteKind; 5] = [
        InviteKind::NewUser,
        InviteKind::ProjectAccessChanged,
        InviteKind::Reminder,
        InviteKind::ReminderActive,
        InviteKind::ReminderAuto,
    ];

    /// Also the name of the email template.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteKind::NewUser => "new_user",
            InviteKind::ProjectAccessChanged => "project_access_changed",
            InviteKind::Reminder => "reminder",
            InviteKind::ReminderActive => "reminder_active",
            InviteKind::ReminderAuto => "reminder_auto",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The `message` of the 201 response, worded as the original platform did.
    pub fn message(self, email: &EmailAddress) -> String {
        match self {
            InviteKind::NewUser => {
                format!(
                    "Invite sent successfully to {email}, would you like to invite anyone else?"
                )
            }
            InviteKind::ProjectAccessChanged => format!(
                "Existing user {email} invited to new projects, would you like to invite anyone else?"
            ),
            InviteKind::Reminder | InviteKind::ReminderAuto => {
                format!("Sign-up reminder sent to {email}, would you like to invite anyone else?")
            }
            InviteKind::ReminderActive => format!(
                "User {email} reminded to look at these projects, would you like to invite anyone else?"
            ),
        }
    }
}

/// The invitee as the store found it, with the projects it can already see and its role on
/// each.
#[derive(Debug, Clone)]
pub struct ExistingInvitee {
    pub user: User,
    pub roles: BTreeMap<ProjectId, Role>,
}

/// What creating an invitation will write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitePlan {
    pub kind: InviteKind,
    /// Grants to add or raise, in project order: only where the invitee does not hold the
    /// offered role or a higher one yet.
    pub new_grants: Vec<GrantChange>,
    /// Whether the email carries a fresh accept link (voiding the invitee's older links).
    pub issues_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("User already exists, do you wish to invite again?")]
pub struct AlreadyInvited;

/// Decide what an invitation does, from the invitee's current state.
///
/// A pending user who is granted new projects also gets a fresh accept link: the "project
/// access changed" email would otherwise invite someone to log on who has no password yet.
/// A role that would rise is new; one the invitee holds already, or a higher one, is not.
pub fn plan_invitation(
    existing: Option<&ExistingInvitee>,
    selected: &[ProjectId],
    roles: &ProjectRoles,
    remind: bool,
) -> Result<InvitePlan, AlreadyInvited> {
    let selected: BTreeSet<ProjectId> = selected.iter().copied().collect();
    let held = |project: &ProjectId| existing.and_then(|e| e.roles.get(project).copied());
    let new_grants: Vec<GrantChange> = selected
        .iter()
        .filter_map(|project| grant::change(*project, held(project), roles.role(*project)))
        .collect();
    let Some(existing) = existing else {
        return Ok(InvitePlan {
            kind: InviteKind::NewUser,
            new_grants,
            issues_token: true,
        });
    };
    let pending = !existing.user.is_active;
    let kind = match (new_grants.is_empty(), remind, pending) {
        (false, _, _) => InviteKind::ProjectAccessChanged,
        (true, false, _) => return Err(AlreadyInvited),
        (true, true, true) => InviteKind::Reminder,
        (true, true, false) => InviteKind::ReminderActive,
    };
    Ok(InvitePlan {
        kind,
        new_grants,
        issues_token: pending,
    })
}

/// The state of an invitation as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Expired,
    Revoked,
    /// The invitee said no (the decline page or API, or a one-click unsubscribe).
    Declined,
}

impl InvitationStatus {
    pub const ALL: [InvitationStatus; 5] = [
        InvitationStatus::Pending,
        InvitationStatus::Accepted,
        InvitationStatus::Expired,
        InvitationStatus::Revoked,
        InvitationStatus::Declined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Expired => "expired",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A pending invitation past its expiry is expired, whether or not the expiry sweep has
    /// stored that yet (`expired`): the sweep never changes what a client sees.
    pub fn effective(stored: &str, expires: Option<Timestamp>, now: Timestamp) -> Self {
        match Self::parse(stored) {
            Some(InvitationStatus::Pending) if expires.is_some_and(|e| e <= now) => {
                InvitationStatus::Expired
            }
            Some(status) => status,
            None => InvitationStatus::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PersonName, UserId};

    fn invitee(active: bool, projects: &[i64]) -> ExistingInvitee {
        ExistingInvitee {
            user: User {
                id: UserId(7),
                email: EmailAddress::parse("bob@x.org").expect("valid"),
                first_name: PersonName::default(),
                last_name: PersonName::default(),
                is_superuser: false,
                is_active: active,
            },
            roles: projects
                .iter()
                .map(|&id| (ProjectId(id), Role::Viewer))
                .collect(),
        }
    }

    fn ids(ids: &[i64]) -> Vec<ProjectId> {
        ids.iter().copied().map(ProjectId).collect()
    }

    /// Every project as viewer.
    fn viewer() -> ProjectRoles {
        ProjectRoles::default()
    }

    /// The projects of new grants.
    fn granted(plan: &InvitePlan) -> Vec<ProjectId> {
        plan.new_grants.iter().map(|g| g.project).collect()
    }

    #[test]
    fn unknown_address_becomes_a_new_user_with_every_project() {
        let plan = plan_invitation(None, &ids(&[2, 1, 2]), &viewer(), false).expect("plan");
        assert_eq!(plan.kind, InviteKind::NewUser);
        assert_eq!(granted(&plan), ids(&[1, 2]));
        assert!(plan.issues_token);
    }

    #[test]
    fn existing_user_gets_only_the_new_projects() {
        let plan = plan_invitation(Some(&invitee(true, &[1])), &ids(&[1, 2]), &viewer(), false)
            .expect("plan");
        assert_eq!(plan.kind, InviteKind::ProjectAccessChanged);
        assert_eq!(granted(&plan), ids(&[2]));
        assert!(!plan.issues_token);
    }

    #[test]
    fn pending_user_with_new_projects_gets_a_fresh_link() {
        let plan = plan_invitation(Some(&invitee(false, &[1])), &ids(&[2]), &viewer(), false)
            .expect("plan");
        assert_eq!(plan.kind, InviteKind::ProjectAccessChanged);
        assert!(plan.issues_token);
    }

    #[test]
    fn nothing_new_without_remind_is_a_conflict() {
        assert_eq!(
            plan_invitation(Some(&invitee(true, &[1])), &ids(&[1]), &viewer(), false),
            Err(AlreadyInvited)
        );
        assert_eq!(
            plan_invitation(Some(&invitee(false, &[])), &[], &viewer(), false),
            Err(AlreadyInvited)
        );
    }

    #[test]
    fn remind_depends_on_whether_the_user_is_pending() {
        let pending = plan_invitation(Some(&invitee(false, &[1])), &ids(&[1]), &viewer(), true)
            .expect("plan");
        assert_eq!(pending.kind, InviteKind::Reminder);
        assert!(pending.issues_token);
        let active =
            plan_invitation(Some(&invitee(true, &[1])), &ids(&[1]), &viewer(), true).expect("plan");
        assert_eq!(active.kind, InviteKind::ReminderActive);
        assert!(!active.issues_token);
        assert!(active.new_grants.is_empty());
    }

    #[test]
    fn a_higher_role_is_new_and_raises_the_grant() {
        let mut roles = ProjectRoles::default();
        roles.offer(ProjectId(1), Role::Editor);
        let plan =
            plan_invitation(Some(&invitee(true, &[1])), &ids(&[1]), &roles, false).expect("plan");
        assert_eq!(plan.kind, InviteKind::ProjectAccessChanged);
        assert_eq!(
            plan.new_grants,
            [GrantChange {
                project: ProjectId(1),
                role: Role::Editor,
                previous: Some(Role::Viewer)
            }]
        );
    }

    #[test]
    fn an_equal_or_lower_role_is_not_new() {
        let mut editor = invitee(true, &[1]);
        editor.roles.insert(ProjectId(1), Role::Editor);
        for offered in [Role::Viewer, Role::Editor] {
            let mut roles = ProjectRoles::default();
            roles.offer(ProjectId(1), offered);
            assert_eq!(
                plan_invitation(Some(&editor), &ids(&[1]), &roles, false),
                Err(AlreadyInvited)
            );
        }
    }

    #[test]
    fn pending_invitation_past_expiry_is_expired() {
        let now = Timestamp(1_000);
        assert_eq!(
            InvitationStatus::effective("pending", Some(Timestamp(1_000)), now),
            InvitationStatus::Expired
        );
        assert_eq!(
            InvitationStatus::effective("pending", Some(Timestamp(1_001)), now),
            InvitationStatus::Pending
        );
        assert_eq!(
            InvitationStatus::effective("revoked", Some(Timestamp(1)), now),
            InvitationStatus::Revoked
        );
        assert_eq!(
            InvitationStatus::effective("expired", Some(Timestamp(1)), now),
            InvitationStatus::Expired
        );
    }
}
