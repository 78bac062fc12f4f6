//! Projects as administration creates and renames them, and the roles of their members.
//!
//! A change of role locks the project's row first, so that two owners demoting each other at
//! once cannot leave the project without an owner (on SQLite the single writer already
//! serialises them).

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::FromRow;

use super::accounts::{ACCOUNT_COLUMNS, AccountRow, audit_in, event_user, load_account};
use super::backend::{self, Backend, Conn};
use super::events;
use super::rows::db_error;
use crate::domain::{EventType, Project, ProjectId, Role, Timestamp, UserId};
use crate::store::{
    Account, ChangedBy, Member, MemberStore, RoleChange, RoleOutcome, StoreError, StoreResult,
};

fn parse_role(raw: &str) -> StoreResult<Role> {
    Role::from_str(raw).map_err(|e| StoreError::Other(anyhow::anyhow!(e)))
}

async fn load_project(
    conn: &mut Conn,
    namespace: &str,
    id: ProjectId,
    lock: bool,
) -> StoreResult<Option<Project>> {
    let row: Option<(i64, String)> = sqlx::query_as(&format!(
        "SELECT id, name FROM projects WHERE namespace = $1 AND id = $2{}",
        if lock { backend::FOR_UPDATE } else { "" }
    ))
    .bind(namespace)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("finding project"))?;
    Ok(row.map(|(id, name)| Project {
        id: ProjectId(id),
        name,
    }))
}

async fn role_on(conn: &mut Conn, user: UserId, project: ProjectId) -> StoreResult<Option<Role>> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM grants WHERE user_id = $1 AND project_id = $2")
            .bind(user.0)
            .bind(project.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("reading the role"))?;
    role.as_deref().map(parse_role).transpose()
}

/// Records and announces a change of role, in the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn record_role_change(
    conn: &mut Conn,
    namespace: &str,
    project: &Project,
    account: &Account,
    old: Option<Role>,
    new: Option<Role>,
    by: &ChangedBy,
    now: Timestamp,
) -> StoreResult<()> {
    let name = |role: Option<Role>| role.map_or("none", Role::as_str);
    audit_in(
        conn,
        namespace,
        now,
        "membership_changed",
        by,
        account.user.email.key(),
        Some(format!(
            "project {}: {} -> {}",
            project.id.0,
            name(old),
            name(new)
        )),
    )
    .await?;
    let data = events::membership_data(project, &event_user(account), old, new);
    events::emit(conn, namespace, EventType::MembershipChanged, &data, now).await
}

#[async_trait]
impl MemberStore for Backend {
    async fn create_owned_project(
        &self,
        namespace: &str,
        name: &str,
        owner: Option<UserId>,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<Project> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting to create a project"))?;
        let account = match owner {
            Some(owner) => Some(
                load_account(&mut tx, namespace, owner, false)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Other(anyhow::anyhow!("the project's owner is gone"))
                    })?,
            ),
            None => None,
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO projects (namespace, name, created) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(namespace)
        .bind(name)
        .bind(now.millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("creating project"))?;
        let project = Project {
            id: ProjectId(id),
            name: name.to_owned(),
        };
        audit_in(
            &mut tx,
            namespace,
            now,
            "project_created",
            &by,
            id.to_string(),
            Some(name.to_owned()),
        )
        .await?;
        if let Some(account) = account {
            sqlx::query("INSERT INTO grants (user_id, project_id, role) VALUES ($1, $2, 'owner')")
                .bind(account.user.id.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_error("making the creator owner"))?;
            record_role_change(
                &mut tx,
                namespace,
                &project,
                &account,
                None,
                Some(Role::Owner),
                &by,
                now,
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(db_error("committing the new project"))?;
        Ok(project)
    }

    async fn rename_project(
        &self,
        namespace: &str,
        project: ProjectId,
        name: &str,
        by: ChangedBy,
        now: Timestamp,
    ) -> StoreResult<Option<Project>> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting to rename a project"))?;
        let Some(old) = load_project(&mut tx, namespace, project, true).await? else {
            return Ok(None);
        };
        sqlx::query("UPDATE projects SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(project.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error("renaming project"))?;
        audit_in(
            &mut tx,
            namespace,
            now,
            "project_renamed",
            &by,
            project.0.to_string(),
            Some(format!("{} -> {name}", old.name)),
        )
        .await?;
        tx.commit()
            .await
            .map_err(db_error("committing the project's name"))?;
        Ok(Some(Project {
            id: project,
            name: name.to_owned(),
        }))
    }

    async fn members(
        &self,
        namespace: &str,
        project: ProjectId,
    ) -> StoreResult<Option<(Project, Vec<Member>)>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            account: AccountRow,
            role: String,
        }
        let mut conn = self.read().await?;
        let Some(found) = load_project(&mut conn, namespace, project, false).await? else {
            return Ok(None);
        };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS}, g.role FROM grants g JOIN users u ON u.id = g.user_id \
             WHERE g.project_id = $1 AND u.namespace = $2 \
             ORDER BY CASE g.role WHEN 'owner' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END, \
             u.email_key, u.id"
        ))
        .bind(project.0)
        .bind(namespace)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error("listing members"))?;
        let members = rows
            .into_iter()
            .map(|row| {
                Ok(Member {
                    role: parse_role(&row.role)?,
                    account: row.account.into(),
                })
            })
            .collect::<StoreResult<Vec<Member>>>()?;
        Ok(Some((found, members)))
    }

    async fn set_role(&self, change: RoleChange) -> StoreResult<RoleOutcome> {
        let RoleChange {
            namespace,
            project,
            user,
            role: new,
            acting_owner,
            by,
            now,
        } = change;
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting a change of role"))?;
        let Some(project) = load_project(&mut tx, &namespace, project, true).await? else {
            return Ok(RoleOutcome::NoProject);
        };
        let Some(account) = load_account(&mut tx, &namespace, user, false).await? else {
            return Ok(RoleOutcome::NoUser);
        };
        if let Some(actor) = acting_owner
            && role_on(&mut tx, actor, project.id).await? != Some(Role::Owner)
        {
            return Ok(RoleOutcome::NotAllowed);
        }
        let old = role_on(&mut tx, user, project.id).await?;
        if old == new {
            return Ok(RoleOutcome::Changed {
                project,
                account,
                old,
                new,
            });
        }
        if old == Some(Role::Owner) {
            let owners: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM grants WHERE project_id = $1 AND role = 'owner'",
            )
            .bind(project.id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error("counting owners"))?;
            if owners <= 1 {
                return Ok(RoleOutcome::LastOwner);
            }
        }
        match new {
            Some(role) => sqlx::query(
                "INSERT INTO grants (user_id, project_id, role) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
            )
            .bind(user.0)
            .bind(project.id.0)
            .bind(role.as_str()),
            None => sqlx::query("DELETE FROM grants WHERE user_id = $1 AND project_id = $2")
                .bind(user.0)
                .bind(project.id.0),
        }
        .execute(&mut *tx)
        .await
        .map_err(db_error("changing the role"))?;
        record_role_change(&mut tx, &namespace, &project, &account, old, new, &by, now).await?;
        tx.commit()
            .await
            .map_err(db_error("committing the change of role"))?;
        Ok(RoleOutcome::Changed {
            project,
            account,
            old,
            new,
        })
    }
}
