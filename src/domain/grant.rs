//! The rules of the roles an invitation gives: who may give which role, what an invitation
//! changes on a project the invitee may already have, and what revoking it puts back.

use std::collections::BTreeMap;

use super::{ProjectId, Role};

/// The role an invitation offers on each of its projects; a project it does not name here is
/// offered as viewer (what every invitation gave before roles existed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectRoles(BTreeMap<ProjectId, Role>);

impl ProjectRoles {
    pub fn role(&self, project: ProjectId) -> Role {
        self.0.get(&project).copied().unwrap_or(Role::Viewer)
    }

    /// Offers `role` on `project`. Named twice, a project keeps the higher role: asking for
    /// editor includes asking for viewer, so the two do not contradict each other.
    pub fn offer(&mut self, project: ProjectId, role: Role) {
        let entry = self.0.entry(project).or_insert(role);
        *entry = (*entry).max(role);
    }

    /// The projects offered more than viewer, in id order.
    pub fn above_viewer(&self) -> impl Iterator<Item = (ProjectId, Role)> + '_ {
        self.0
            .iter()
            .filter(|(_, role)| **role > Role::Viewer)
            .map(|(project, role)| (*project, *role))
    }
}

/// Whether an inviter may offer `offered` on a project on which they hold `own`: a superuser
/// any role; anyone else at most their own, and only as an editor or owner (a viewer may not
/// invite at all).
pub fn may_give(own: Option<Role>, superuser: bool, offered: Role) -> bool {
    superuser || own.is_some_and(|own| own.can_invite() && offered <= own)
}

/// What an invitation does to the invitee's grant on one project: add it, or raise it from
/// `previous`. Never lowers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantChange {
    pub project: ProjectId,
    pub role: Role,
    /// The role held before; `None`: the project is added.
    pub previous: Option<Role>,
}

/// The change offering `offered` makes to a grant of `current`: none when the invitee already
/// holds that role or a higher one (an invitation never lowers a role).
pub fn change(project: ProjectId, current: Option<Role>, offered: Role) -> Option<GrantChange> {
    match current {
        Some(held) if held >= offered => None,
        previous => Some(GrantChange {
            project,
            role: offered,
            previous,
        }),
    }
}

/// What revoking an invitation does to its grant on one project. `given` is the change the
/// invitation made, `current` the role the invitee holds now, `still_offered` the highest role
/// other invitations to the same person that are not revoked offer on the project.
///
/// - If the role is no longer the one the invitation set, someone changed it since (an owner
///   through the members API, or another invitation raised it further): revoking leaves it, so
///   it never undoes (or lowers below) a role given later by another path.
/// - Otherwise it goes back to the role the invitation found (`None`: removed), but not below
///   what another invitation still offers, since that one's grant would otherwise be lost.
///
/// Returns `None` to leave the grant as it is, or `Some(role)` to set (`Some(None)`: remove
/// the grant).
pub fn after_revoke(
    given: GrantChange,
    current: Option<Role>,
    still_offered: Option<Role>,
) -> Option<Option<Role>> {
    if current != Some(given.role) {
        return None;
    }
    let target = given.previous.max(still_offered);
    (target != current).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ProjectId = ProjectId(12);

    #[test]
    fn an_inviter_gives_at_most_their_own_role() {
        use Role::*;
        assert!(may_give(Some(Editor), false, Viewer));
        assert!(may_give(Some(Editor), false, Editor));
        assert!(!may_give(Some(Editor), false, Owner));
        assert!(may_give(Some(Owner), false, Owner));
        assert!(!may_give(Some(Viewer), false, Viewer));
        assert!(!may_give(None, false, Viewer));
        assert!(may_give(None, true, Owner));
    }

    #[test]
    fn an_invitation_adds_or_raises_but_never_lowers() {
        use Role::*;
        assert_eq!(
            change(P, None, Editor),
            Some(GrantChange {
                project: P,
                role: Editor,
                previous: None
            })
        );
        assert_eq!(
            change(P, Some(Viewer), Owner),
            Some(GrantChange {
                project: P,
                role: Owner,
                previous: Some(Viewer)
            })
        );
        assert_eq!(change(P, Some(Editor), Editor), None);
        assert_eq!(change(P, Some(Owner), Viewer), None);
    }

    #[test]
    fn a_project_named_twice_keeps_the_higher_role() {
        let mut roles = ProjectRoles::default();
        roles.offer(P, Role::Editor);
        roles.offer(P, Role::Viewer);
        assert_eq!(roles.role(P), Role::Editor);
        assert_eq!(roles.role(ProjectId(99)), Role::Viewer);
        assert_eq!(
            roles.above_viewer().collect::<Vec<_>>(),
            [(P, Role::Editor)]
        );
    }

    #[test]
    fn revoking_puts_back_what_the_invitation_found() {
        use Role::*;
        let raised = change(P, Some(Viewer), Editor).expect("a rise");
        assert_eq!(after_revoke(raised, Some(Editor), None), Some(Some(Viewer)));
        let added = change(P, None, Editor).expect("an addition");
        assert_eq!(after_revoke(added, Some(Editor), None), Some(None));
    }

    #[test]
    fn revoking_leaves_a_role_changed_since() {
        use Role::*;
        let raised = change(P, Some(Viewer), Editor).expect("a rise");
        // An owner made the invitee owner after the invitation: revoking does not lower it.
        assert_eq!(after_revoke(raised, Some(Owner), None), None);
        // Or took the project away: revoking does not give it back.
        assert_eq!(after_revoke(raised, None, None), None);
    }

    #[test]
    fn revoking_keeps_what_another_invitation_still_offers() {
        use Role::*;
        let added = change(P, None, Editor).expect("an addition");
        assert_eq!(
            after_revoke(added, Some(Editor), Some(Viewer)),
            Some(Some(Viewer))
        );
        assert_eq!(after_revoke(added, Some(Editor), Some(Editor)), None);
    }
}
