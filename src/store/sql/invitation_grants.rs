//! Taking back what an invitation gave (revoke; anything else that withdraws an invitation
//! calls the same function): a project it added is removed, a role it raised goes back to
//! the one it found, by the rule of `domain::grant::after_revoke`.

use std::collections::BTreeMap;

use sqlx::QueryBuilder;

use super::backend::{Conn, Db};
use super::rows::{db_error, parse_role};
use crate::domain::grant::{self, GrantChange};
use crate::domain::{InvitationId, ProjectId, Role, UserId};
use crate::store::StoreResult;

/// A grant that taking an invitation back changed: from `old` to `new` (`None`: removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UndoneGrant {
    pub(super) project: ProjectId,
    pub(super) old: Role,
    pub(super) new: Option<Role>,
}

/// Undoes the grants the invitation `id` gave its invitee, where nothing changed them since;
/// call it once the invitation no longer counts (revoked or declined), so that it is not one of the "other
/// invitations" whose roles are kept. Only a pending invitee is touched: an active one
/// accepted its grants.
pub(super) async fn undo_invitation_grants(
    conn: &mut Conn,
    id: InvitationId,
    invitee: UserId,
) -> StoreResult<Vec<UndoneGrant>> {
    let active: Option<bool> = sqlx::query_scalar("SELECT is_active FROM users WHERE id = $1")
        .bind(invitee.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error("reading the invitee"))?;
    if active != Some(false) {
        return Ok(Vec::new());
    }
    let given: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT project_id, role, previous_role FROM invitation_projects \
         WHERE invitation_id = $1 AND gave ORDER BY project_id",
    )
    .bind(id.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error("reading what the invitation gave"))?;
    if given.is_empty() {
        return Ok(Vec::new());
    }
    let current = roles_by_project(
        conn,
        "SELECT project_id, role FROM grants WHERE user_id = ",
        invitee,
        None,
    )
    .await?;
    // What the invitee's other invitations (not revoked or declined) still offer; two on one project count
    // as the higher.
    let still_offered = roles_by_project(
        conn,
        "SELECT ip.project_id, ip.role FROM invitation_projects ip \
         JOIN invitations other ON other.id = ip.invitation_id \
         WHERE other.status NOT IN ('revoked', 'declined') AND other.invitee_id = ",
        invitee,
        Some(id),
    )
    .await?;
    let mut undone = Vec::new();
    for (project, role, previous) in given {
        let project = ProjectId(project);
        let change = GrantChange {
            project,
            role: parse_role(&role)?,
            previous: previous.as_deref().map(parse_role).transpose()?,
        };
        let held = current.get(&project).copied();
        let offered = still_offered.get(&project).copied();
        let (Some(old), Some(target)) = (held, grant::after_revoke(change, held, offered)) else {
            hand_down(conn, id, invitee, change).await?;
            continue;
        };
        set_grant(conn, invitee, project, target).await?;
        undone.push(UndoneGrant {
            project,
            old,
            new: target,
        });
    }
    Ok(undone)
}

/// A later invitation that raised the role this one set found it as its `previous_role`; with
/// this one revoked, that role was never really held, so the later invitation now puts back
/// what this one found (and counts as adding the project if this one added it). Revoking the
/// two in either order then ends where they started.
async fn hand_down(
    conn: &mut Conn,
    id: InvitationId,
    invitee: UserId,
    change: GrantChange,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE invitation_projects SET previous_role = $1 \
         WHERE project_id = $2 AND gave AND previous_role = $3 AND invitation_id IN \
           (SELECT id FROM invitations WHERE invitee_id = $4 AND id > $5 \
            AND status NOT IN ('revoked', 'declined'))",
    )
    .bind(change.previous.map(Role::as_str))
    .bind(change.project.0)
    .bind(change.role.as_str())
    .bind(invitee.0)
    .bind(id.0)
    .execute(&mut *conn)
    .await
    .map_err(db_error(
        "handing a revoked invitation's start to a later one",
    ))?;
    Ok(())
}

/// `(project_id, role)` rows of `sql` (which ends with the invitee's placeholder), without the
/// invitation `except`; the highest role per project.
async fn roles_by_project(
    conn: &mut Conn,
    sql: &str,
    invitee: UserId,
    except: Option<InvitationId>,
) -> StoreResult<BTreeMap<ProjectId, Role>> {
    let mut query = QueryBuilder::<Db>::new(sql);
    query.push_bind(invitee.0);
    if let Some(except) = except {
        query.push(" AND other.id <> ").push_bind(except.0);
    }
    let rows: Vec<(i64, String)> = query
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("reading roles"))?;
    let mut roles: BTreeMap<ProjectId, Role> = BTreeMap::new();
    for (project, role) in rows {
        let role = parse_role(&role)?;
        let entry = roles.entry(ProjectId(project)).or_insert(role);
        *entry = (*entry).max(role);
    }
    Ok(roles)
}

async fn set_grant(
    conn: &mut Conn,
    user: UserId,
    project: ProjectId,
    role: Option<Role>,
) -> StoreResult<()> {
    let query = match role {
        Some(role) => {
            sqlx::query("UPDATE grants SET role = $3 WHERE user_id = $1 AND project_id = $2")
                .bind(user.0)
                .bind(project.0)
                .bind(role.as_str())
        }
        None => sqlx::query("DELETE FROM grants WHERE user_id = $1 AND project_id = $2")
            .bind(user.0)
            .bind(project.0),
    };
    query
        .execute(&mut *conn)
        .await
        .map_err(db_error("taking back a grant"))?;
    Ok(())
}
