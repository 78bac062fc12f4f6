//! The administration commands that the pages and the API also offer: listing users and
//! projects, deactivating and activating users, and changing or removing a role. Each change is
//! recorded in the audit log (as done by the command line) and announces its webhook event.

use anyhow::bail;
use serde_json::json;

use crate::config::DatabaseUrl;
use crate::domain::printable::escape_controls;
use crate::domain::{ProjectId, Role, Timestamp};
use crate::store::{
    Account, AccountOutcome, ChangedBy, RoleChange, RoleOutcome, StoreResult, UserFilter,
};

use super::{UsageError, find_user, open_store};

/// `pending`, `deactivated` or `active`.
fn status(account: &Account) -> &'static str {
    if account.deactivated {
        "deactivated"
    } else if account.user.is_active {
        "active"
    } else {
        "pending"
    }
}

/// Every user of the namespace, by email: one tab-separated line each (id, email, name,
/// status, `superuser`), or one JSON object per line.
pub async fn list_users(database: &DatabaseUrl, namespace: &str, json: bool) -> anyhow::Result<()> {
    let store = open_store(database).await?;
    let mut filter = UserFilter {
        limit: 1000,
        ..UserFilter::default()
    };
    loop {
        let page = store.list_accounts(namespace, &filter).await?;
        for account in &page.objects {
            let user = &account.user;
            if json {
                let line = json!({
                    "id": user.id.0,
                    "email": user.email.as_str(),
                    "first_name": user.first_name.as_str(),
                    "last_name": user.last_name.as_str(),
                    "is_superuser": user.is_superuser,
                    "is_active": account.can_log_in(),
                    "is_pending": !user.is_active,
                    "is_deactivated": account.deactivated,
                    "date_joined": account.created.to_iso8601(),
                });
                println!("{line}");
            } else {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    user.id.0,
                    escape_controls(user.email.as_str()),
                    escape_controls(&format!("{} {}", user.first_name, user.last_name)),
                    status(account),
                    if user.is_superuser { "superuser" } else { "" },
                );
            }
        }
        filter.offset += filter.limit;
        if filter.offset >= page.total_count {
            return Ok(());
        }
    }
}

/// Every project of the namespace: id, name and its members with their roles (`email:role`,
/// owners first), tab-separated, or one JSON object per line.
pub async fn list_projects(
    database: &DatabaseUrl,
    namespace: &str,
    json: bool,
) -> anyhow::Result<()> {
    let store = open_store(database).await?;
    for project in store.projects(namespace).await? {
        let Some((project, members)) = store.members(namespace, project.id).await? else {
            // Deleted meanwhile.
            continue;
        };
        if json {
            let members: Vec<_> = members
                .iter()
                .map(|m| json!({"id": m.account.user.id.0, "email": m.account.user.email.as_str(), "role": m.role.as_str()}))
                .collect();
            println!(
                "{}",
                json!({"id": project.id.0, "name": project.name, "members": members})
            );
        } else {
            let members: Vec<String> = members
                .iter()
                .map(|m| format!("{}:{}", m.account.user.email, m.role))
                .collect();
            println!(
                "{}\t{}\t{}",
                project.id.0,
                escape_controls(&project.name),
                escape_controls(&members.join(" "))
            );
        }
    }
    Ok(())
}

/// Deactivates (`true`) or activates a user.
pub async fn set_deactivated(
    database: &DatabaseUrl,
    namespace: &str,
    email: &str,
    deactivated: bool,
) -> anyhow::Result<()> {
    let store = open_store(database).await?;
    let user = find_user(store.as_ref(), namespace, email).await?;
    let outcome = store
        .set_deactivated(
            namespace,
            user.id,
            deactivated,
            ChangedBy::default(),
            Timestamp::now(),
        )
        .await?;
    let done = if deactivated { "deactivated" } else { "active" };
    match outcome {
        AccountOutcome::Done { changed: true, .. } => eprintln!("{} is now {done}", user.email),
        AccountOutcome::Done { changed: false, .. } => {
            eprintln!("{} was {done} already: nothing changed", user.email)
        }
        AccountOutcome::NotFound => bail!(UsageError(format!(
            "there is no user {email} in namespace {namespace}"
        ))),
    }
    Ok(())
}

/// Sets (`Some`) or removes a role. Removing or demoting a project's last owner is refused,
/// as in the API: the operator grants another owner first.
pub async fn set_role(
    database: &DatabaseUrl,
    namespace: &str,
    email: &str,
    project: i64,
    role: Option<Role>,
) -> anyhow::Result<()> {
    let store = open_store(database).await?;
    let user = find_user(store.as_ref(), namespace, email).await?;
    let outcome: StoreResult<RoleOutcome> = store
        .set_role(RoleChange {
            namespace: namespace.to_owned(),
            project: ProjectId(project),
            user: user.id,
            role,
            acting_owner: None,
            by: ChangedBy::default(),
            now: Timestamp::now(),
        })
        .await;
    match outcome? {
        RoleOutcome::Changed { old, new, .. } => match (old, new) {
            (None, None) => eprintln!("{} had no role on project {project}", user.email),
            (_, Some(role)) => eprintln!("{} is now {role} of project {project}", user.email),
            (Some(_), None) => eprintln!("{} has no role on project {project} now", user.email),
        },
        RoleOutcome::NoProject => bail!(UsageError(format!(
            "there is no project {project} in namespace {namespace}"
        ))),
        RoleOutcome::NoUser => bail!(UsageError(format!(
            "there is no user {email} in namespace {namespace}"
        ))),
        // The command line names no acting owner: it acts as the operator.
        RoleOutcome::NotAllowed => bail!("the change of role was refused"),
        RoleOutcome::LastOwner => bail!(UsageError(format!(
            "{} is the last owner of project {project}: grant another owner first",
            user.email
        ))),
    }
    Ok(())
}
