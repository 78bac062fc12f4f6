//! How database errors and rows become the store's types, and the invitation reads that
//! several concerns share.

use std::collections::HashMap;

use sqlx::{FromRow, QueryBuilder};

use super::backend::{Conn, Db};
use crate::domain::grant::ProjectRoles;
use crate::domain::{
    EmailAddress, InvitationId, InviteKind, PersonName, Project, ProjectId, Role, Timestamp, User,
    UserId,
};
use crate::store::{DeliveryRecord, InvitationRecord, StoreError, StoreResult};

/// Sorts a database error into what the layers above act on.
pub(crate) fn db_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(anyhow::Error::new(error).context(context))
        }
        // PostgreSQL shutting down or restarting (57P*), a lost connection (08*), a
        // statement timeout (57014); SQLite busy or locked (5, 6).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|code| {
                code.starts_with("57") || code.starts_with("08") || code == "5" || code == "6"
            }) =>
        {
            StoreError::Unavailable(anyhow::Error::new(error).context(context))
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{context}: already exists"))
        }
        _ => StoreError::Other(anyhow::Error::new(error).context(context)),
    }
}

#[derive(FromRow)]
pub(super) struct UserRow {
    id: i64,
    email: String,
    first_name: String,
    last_name: String,
    is_superuser: bool,
    is_active: bool,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: UserId(row.id),
            email: EmailAddress::from_trusted(row.email),
            first_name: PersonName::from_trusted(row.first_name),
            last_name: PersonName::from_trusted(row.last_name),
            is_superuser: row.is_superuser,
            is_active: row.is_active,
        }
    }
}

impl UserRow {
    /// The row of a read on the calling thread (`backend::read_direct`), in the order of
    /// `USER_COLUMNS`.
    pub(super) fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            email: row.get(1)?,
            first_name: row.get(2)?,
            last_name: row.get(3)?,
            is_superuser: row.get(4)?,
            is_active: row.get(5)?,
        })
    }
}

pub(super) const USER_COLUMNS: &str =
    "u.id, u.email, u.first_name, u.last_name, u.is_superuser, u.is_active";

#[derive(FromRow)]
pub(super) struct InvitationRow {
    id: i64,
    email: String,
    first_name: String,
    last_name: String,
    kind: String,
    message: String,
    status: String,
    expires: Option<i64>,
    created: i64,
    modified: i64,
    creator_id: i64,
    creator_email: String,
    creator_first_name: String,
    creator_last_name: String,
    creator_is_superuser: bool,
    creator_is_active: bool,
    delivery_status: Option<String>,
    delivery_attempts: Option<i64>,
    delivery_last_error: Option<String>,
    delivery_sent_at: Option<i64>,
    reminders_sent: i64,
    language: Option<String>,
    creator_language: Option<String>,
}

/// `invitations.delivery_status` of an invitation created without its email
/// (`send_email: false`): no outbox row, no `delivery`, not counted by the sending limits. A
/// resend queues an outbox row, whose status then wins (`INVITATION_SELECT`).
pub(super) const NO_EMAIL: &str = "none";

pub(super) const INVITATION_SELECT: &str = "SELECT i.id, i.email, i.first_name, i.last_name, i.kind, \
     i.message, i.status, i.expires, i.created, i.modified, \
     u.id AS creator_id, u.email AS creator_email, u.first_name AS creator_first_name, \
     u.last_name AS creator_last_name, u.is_superuser AS creator_is_superuser, \
     u.is_active AS creator_is_active, \
     CASE WHEN o.bounced_at IS NOT NULL THEN 'bounced' \
       ELSE COALESCE(o.status, i.delivery_status) END AS delivery_status, \
     CASE WHEN o.id IS NULL THEN i.delivery_attempts ELSE o.attempts END AS delivery_attempts, \
     CASE WHEN o.id IS NULL THEN i.delivery_last_error ELSE o.last_error END AS delivery_last_error, \
     CASE WHEN o.id IS NULL THEN i.delivery_sent_at ELSE o.sent_at END AS delivery_sent_at, \
     i.reminders_sent, i.language, u.language AS creator_language \
     FROM invitations i JOIN users u ON u.id = i.created_by \
     LEFT JOIN outbox o ON o.invitation_id = i.id";

impl InvitationRow {
    fn into_record(self, projects: Vec<Project>, roles: ProjectRoles) -> InvitationRecord {
        let created_by = UserRow {
            id: self.creator_id,
            email: self.creator_email,
            first_name: self.creator_first_name,
            last_name: self.creator_last_name,
            is_superuser: self.creator_is_superuser,
            is_active: self.creator_is_active,
        }
        .into();
        InvitationRecord {
            id: InvitationId(self.id),
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            created_by,
            projects,
            roles,
            kind: InviteKind::parse(&self.kind).unwrap_or(InviteKind::NewUser),
            message: self.message,
            stored_status: self.status,
            expires: self.expires.map(Timestamp),
            created: Timestamp(self.created),
            modified: Timestamp(self.modified),
            delivery: match self.delivery_status {
                // Created without its email (`send_email: false`) and not resent since.
                Some(status) if status == NO_EMAIL => None,
                Some(status) => Some(DeliveryRecord {
                    status,
                    attempts: self.delivery_attempts.unwrap_or(0),
                    last_error: self.delivery_last_error,
                    sent_at: self.delivery_sent_at.map(Timestamp),
                }),
                // Every other invitation queued its email with it.
                None => Some(DeliveryRecord {
                    status: "queued".to_owned(),
                    attempts: 0,
                    last_error: None,
                    sent_at: None,
                }),
            },
            reminders_sent: self.reminders_sent,
            language: self.language,
            creator_language: self.creator_language,
        }
    }
}

/// A role as stored (the column's CHECK allows only the three).
pub(super) fn parse_role(stored: &str) -> StoreResult<Role> {
    stored
        .parse()
        .map_err(|e: String| StoreError::Other(anyhow::anyhow!("a stored role: {e}")))
}

/// Attaches the selected projects to invitation rows, with one query for all of them.
pub(super) async fn with_projects(
    conn: &mut Conn,
    rows: Vec<InvitationRow>,
) -> StoreResult<Vec<InvitationRecord>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = QueryBuilder::<Db>::new(
        "SELECT ip.invitation_id, p.id, p.name, ip.role FROM invitation_projects ip \
         JOIN projects p ON p.id = ip.project_id WHERE ip.invitation_id IN (",
    );
    let mut ids = query.separated(", ");
    for row in &rows {
        ids.push_bind(row.id);
    }
    query.push(") ORDER BY p.id");
    let found: Vec<(i64, i64, String, String)> = query
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("loading invitation projects"))?;
    let mut by_invitation: HashMap<i64, (Vec<Project>, ProjectRoles)> = HashMap::new();
    for (invitation, id, name, role) in found {
        let (projects, roles) = by_invitation.entry(invitation).or_default();
        projects.push(Project {
            id: ProjectId(id),
            name,
        });
        roles.offer(ProjectId(id), parse_role(&role)?);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let (projects, roles) = by_invitation.remove(&row.id).unwrap_or_default();
            row.into_record(projects, roles)
        })
        .collect())
}

pub(super) async fn load_invitation(
    conn: &mut Conn,
    namespace: &str,
    id: InvitationId,
) -> StoreResult<Option<InvitationRecord>> {
    let row: Option<InvitationRow> = sqlx::query_as(&format!(
        "{INVITATION_SELECT} WHERE i.namespace = $1 AND i.id = $2"
    ))
    .bind(namespace)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("loading invitation"))?;
    Ok(with_projects(conn, row.into_iter().collect()).await?.pop())
}
