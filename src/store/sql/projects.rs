//! Projects and the roles users hold on them (grants).

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::backend::{self, Backend, Db};
use super::events;
use super::rows::{USER_COLUMNS, UserRow, db_error};
use crate::domain::{EventType, Project, ProjectId, Role, Timestamp, UserId};
use crate::store::{Membership, ProjectStore, StoreResult};

#[async_trait]
impl ProjectStore for Backend {
    async fn create_project(
        &self,
        namespace: &str,
        name: &str,
        now: Timestamp,
    ) -> StoreResult<Project> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO projects (namespace, name, created) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(namespace)
        .bind(name)
        .bind(now.millis())
        .fetch_one(self.writer())
        .await
        .map_err(db_error("creating project"))?;
        Ok(Project {
            id: ProjectId(id),
            name: name.to_owned(),
        })
    }

    async fn projects(&self, namespace: &str) -> StoreResult<Vec<Project>> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM projects WHERE namespace = $1 ORDER BY id")
                .bind(namespace)
                .fetch_all(&mut *self.read().await?)
                .await
                .map_err(db_error("listing projects"))?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| Project {
                id: ProjectId(id),
                name,
            })
            .collect())
    }

    async fn projects_by_ids(
        &self,
        namespace: &str,
        ids: &[ProjectId],
    ) -> StoreResult<Vec<Project>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Db>::new("SELECT id, name FROM projects WHERE namespace = ");
        query.push_bind(namespace).push(" AND id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        query.push(") ORDER BY id");
        let rows: Vec<(i64, String)> = query
            .build_query_as()
            .fetch_all(&mut *self.read().await?)
            .await
            .map_err(db_error("finding projects"))?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| Project {
                id: ProjectId(id),
                name,
            })
            .collect())
    }

    async fn projects_with_role(
        &self,
        namespace: &str,
        user: UserId,
        ids: &[ProjectId],
    ) -> StoreResult<Vec<(Project, Option<Role>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Every invitation's second read: on the calling thread where the backend can
        // (`read_direct`), else through its readers, with the same statement.
        let sql = projects_with_role_sql(ids.len());
        let direct = backend::read_direct(self, "finding projects and roles", |conn| {
            let mut values: Vec<rusqlite::types::Value> =
                vec![user.0.into(), namespace.to_owned().into()];
            values.extend(ids.iter().map(|id| rusqlite::types::Value::from(id.0)));
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        });
        let rows: Vec<(i64, String, Option<String>)> = match direct {
            Some(rows) => rows?,
            None => {
                let mut query = sqlx::query_as(&sql).bind(user.0).bind(namespace);
                for id in ids {
                    query = query.bind(id.0);
                }
                query
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(db_error("finding projects and roles"))?
            }
        };
        rows.into_iter()
            .map(|(id, name, role)| {
                let role = role
                    .map(|role| Role::from_str(&role).map_err(|e| anyhow::anyhow!(e)))
                    .transpose()?;
                Ok((
                    Project {
                        id: ProjectId(id),
                        name,
                    },
                    role,
                ))
            })
            .collect()
    }

    async fn grant(&self, user: UserId, project: ProjectId, role: Role) -> StoreResult<()> {
        let mut tx = self
            .writer()
            .begin_with(super::backend::BEGIN)
            .await
            .map_err(db_error("starting grant"))?;
        // The role before, for `membership.changed`; locked, so two grants announce in turn.
        let before: Option<(String, String, Option<String>)> = sqlx::query_as(&format!(
            "SELECT p.namespace, p.name, g.role FROM projects p \
             LEFT JOIN grants g ON g.project_id = p.id AND g.user_id = $1 WHERE p.id = $2{}",
            // The project's row: PostgreSQL locks no row of an outer join's nullable side.
            if backend::FOR_UPDATE.is_empty() {
                ""
            } else {
                " FOR UPDATE OF p"
            }
        ))
        .bind(user.0)
        .bind(project.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("reading the role before"))?;
        sqlx::query(
            "INSERT INTO grants (user_id, project_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user.0)
        .bind(project.0)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error("granting role"))?;
        if let Some((namespace, name, old)) = before {
            let old = old
                .map(|r| Role::from_str(&r).map_err(|e| anyhow::anyhow!(e)))
                .transpose()?;
            if old != Some(role) && events::has_endpoints(&mut tx, &namespace).await? {
                let member: UserRow = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
                ))
                .bind(user.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error("reading the member"))?;
                let project = Project { id: project, name };
                let data = events::membership_data(&project, &member.into(), old, Some(role));
                let now = Timestamp::now();
                events::emit(
                    &mut tx,
                    &namespace,
                    EventType::MembershipChanged,
                    &data,
                    now,
                )
                .await?;
            }
        }
        tx.commit().await.map_err(db_error("committing grant"))?;
        Ok(())
    }

    async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT p.id, p.name, g.role FROM grants g JOIN projects p ON p.id = g.project_id \
             WHERE g.user_id = $1 ORDER BY p.id",
        )
        .bind(user.0)
        .fetch_all(&mut *self.read().await?)
        .await
        .map_err(db_error("loading memberships"))?;
        rows.into_iter()
            .map(|(id, name, role)| {
                let role = Role::from_str(&role).map_err(|e| anyhow::anyhow!(e))?;
                Ok(Membership {
                    project: Project {
                        id: ProjectId(id),
                        name,
                    },
                    role,
                })
            })
            .collect()
    }
}

/// `projects_with_role`'s statement for `count` projects: `$1` the user, `$2` the namespace,
/// `$3`… the projects' ids.
fn projects_with_role_sql(count: usize) -> String {
    let ids: Vec<String> = (3..count + 3).map(|n| format!("${n}")).collect();
    format!(
        "SELECT p.id, p.name, g.role FROM projects p \
         LEFT JOIN grants g ON g.project_id = p.id AND g.user_id = $1 \
         WHERE p.namespace = $2 AND p.id IN ({}) ORDER BY p.id",
        ids.join(", ")
    )
}
