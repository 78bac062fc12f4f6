//! What administration changes: projects and their members, and users' accounts (deactivate,
//! activate). Each change is one transaction with its audit record and its webhook event.

use async_trait::async_trait;

use super::{NewUser, StoreResult};
use crate::domain::{Project, ProjectId, Role, Timestamp, User, UserId};

/// Who made a change, for its audit record.
#[derive(Debug, Clone, Default)]
pub struct ChangedBy {
    /// The user who acted (`None`: the command line).
    pub user: Option<UserId>,
    pub client_ip: Option<String>,
}

/// A user as the administration shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    /// Deactivated by a superuser: no way of logging in works.
    pub deactivated: bool,
    pub created: Timestamp,
}

impl Account {
    /// Whether the user can log in: it has accepted (or was created with a password) and is
    /// not deactivated. This is `is_active` in `GET /{ns}/api/users/` and in webhook events.
    pub fn can_log_in(&self) -> bool {
        self.user.is_active && !self.deactivated
    }
}

/// A user's role on a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub account: Account,
    pub role: Role,
}

/// A change of one user's role on one project; `role: None` removes the grant.
#[derive(Debug, Clone)]
pub struct RoleChange {
    pub namespace: String,
    pub project: ProjectId,
    pub user: UserId,
    pub role: Option<Role>,
    /// When set, the change is made only if this user is an owner of the project at that
    /// moment (checked under the project's lock, so a role taken away meanwhile counts).
    pub acting_owner: Option<UserId>,
    pub by: ChangedBy,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleOutcome {
    /// Done (or nothing to do: `old == new`, which records and announces nothing).
    Changed {
        project: Project,
        account: Account,
        old: Option<Role>,
        new: Option<Role>,
    },
    NoProject,
    NoUser,
    /// `acting_owner` is not (or no longer) an owner of the project.
    NotAllowed,
    /// The change would leave the project, which has an owner, without one: refused.
    LastOwner,
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// This address, ignoring case.
    pub email: Option<String>,
    /// `Some(true)`: only users who can log in; `Some(false)`: only those who cannot
    /// (pending or deactivated).
    pub can_log_in: Option<bool>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone)]
pub struct UserPage {
    pub total_count: i64,
    pub objects: Vec<Account>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountOutcome {
    /// The account as it is now; `changed` is false when it already was so (nothing recorded).
    Done {
        account: Account,
        changed: bool,
    },
    NotFound,
}

/// Projects as administration creates and renames them, and their members.
#[async_trait]
pub trait MemberStore: Send + Sync {
    /// Creates a project whose owner is `owner` (`None`: no owner yet, as the command line
    /// may create one), recording `project_created` and the owner's `membership_changed`.
    async fn create_owned_project(
        &self,
        namespace: &str,
        name: &str,
        owner: Option<UserId>,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<Project>;
    /// `None` when the namespace has no such project.
    async fn rename_project(
        &self,
        namespace: &str,
        project: ProjectId,
        name: &str,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<Option<Project>>;
    /// The project and its members (owners first, then by email); `None` when the namespace
    /// has no such project.
    async fn members(
        &self,
        namespace: &str,
        project: ProjectId,
    ) -> StoreResult<Option<(Project, Vec<Member>)>>;
    /// Gives, changes or removes a role, keeping at least one owner on a project that has one.
    async fn set_role(&self, change: RoleChange) -> StoreResult<RoleOutcome>;
}

/// Users' accounts, for superusers.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn account(&self, namespace: &str, user: UserId) -> StoreResult<Option<Account>>;
    /// Users of the namespace by email, with the total count.
    async fn list_accounts(&self, namespace: &str, filter: &UserFilter) -> StoreResult<UserPage>;
    /// Creates a user, recording `user_created`; a user created with a password is active at
    /// once, which is announced as `user.activated`.
    async fn add_account(
        &self,
        namespace: &str,
        user: NewUser,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<User>;
    /// Deactivates (ending the user's sessions and voiding its accept links) or activates
    /// again.
    async fn set_deactivated(
        &self,
        namespace: &str,
        user: UserId,
        deactivated: bool,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<AccountOutcome>;
}
