//! `projects_selected` of an invitation's body: which projects, and the role offered on each.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::grant::ProjectRoles;
use crate::domain::{ProjectId, Role};
use crate::http::ApiError;
use crate::http::extract::printable;

/// A project to invite to: `{"id": 12, "role": "editor"}`, or the whole project object as the
/// web client sends it (its other fields are ignored).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ProjectSelection {
    /// The project's id, as a number or a string of digits.
    #[schema(schema_with = project_id_schema)]
    pub id: Value,
    /// The role to give: `viewer` (the default), `editor` or `owner`. Ignored in an object
    /// that has a `resource_uri`: that is a project as `GET …/cbh_projects/` shows it, whose
    /// `role` is the reader's own, and which the web client sends back whole to mean viewer.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(viewer|editor|owner)$", example = "editor")]
    pub role: Option<Value>,
    /// Present in project objects read from the API; see `role`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub resource_uri: Option<Value>,
}

impl ProjectSelection {
    fn project_id(&self) -> Result<ProjectId, ApiError> {
        match &self.id {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .filter(|id| *id > 0)
        .map(ProjectId)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "projects_selected: '{}' is not a project id",
                printable(&self.id.to_string())
            ))
        })
    }

    fn role(&self) -> Result<Role, ApiError> {
        let whole_project = self.resource_uri.as_ref().is_some_and(|v| !v.is_null());
        match &self.role {
            _ if whole_project => Some(Role::Viewer),
            None | Some(Value::Null) => Some(Role::Viewer),
            Some(Value::String(role)) => role.parse().ok(),
            Some(_) => None,
        }
        .ok_or_else(|| {
            let shown = match &self.role {
                Some(Value::String(role)) => role.clone(),
                other => other.as_ref().map(Value::to_string).unwrap_or_default(),
            };
            ApiError::BadRequest(format!(
                "projects_selected: '{}' is not a role (viewer, editor or owner)",
                printable(&shown)
            ))
        })
    }
}

/// The distinct projects in ascending order, and the role offered on each. A project named
/// twice with different roles keeps the higher one (`ProjectRoles::offer`).
pub(super) fn parse_selections(
    selections: Vec<ProjectSelection>,
) -> Result<(Vec<ProjectId>, ProjectRoles), ApiError> {
    let mut projects = BTreeSet::new();
    let mut roles = ProjectRoles::default();
    for selection in &selections {
        let id = selection.project_id()?;
        roles.offer(id, selection.role()?);
        projects.insert(id);
    }
    Ok((projects.into_iter().collect(), roles))
}

fn project_id_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        )
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<(Vec<ProjectId>, ProjectRoles), ApiError> {
        parse_selections(serde_json::from_value(value).expect("selections"))
    }

    #[test]
    fn role_defaults_to_viewer_and_a_project_twice_keeps_the_higher() {
        let (projects, roles) = parse(json!([
            {"id": 3},
            {"id": "5", "role": "editor"},
            {"id": 5, "role": "viewer"},
            {"id": 7, "role": "owner", "name": "Assay"},
            {"id": 9, "role": null},
        ]))
        .expect("valid");
        assert_eq!(projects, [3, 5, 7, 9].map(ProjectId));
        assert_eq!(roles.role(ProjectId(3)), Role::Viewer);
        assert_eq!(roles.role(ProjectId(5)), Role::Editor);
        assert_eq!(roles.role(ProjectId(7)), Role::Owner);
        assert_eq!(roles.role(ProjectId(9)), Role::Viewer);
    }

    #[test]
    fn a_whole_project_object_means_viewer_whatever_its_role() {
        // As `GET …/cbh_projects/` shows it to an owner, sent back by the web client.
        let (_, roles) = parse(json!([{
            "id": 4, "name": "Kinase", "role": "owner", "editor": true, "owner": true,
            "resource_uri": "/ns/api/cbh_projects/4/",
        }]))
        .expect("valid");
        assert_eq!(roles.role(ProjectId(4)), Role::Viewer);
    }

    #[test]
    fn a_bad_role_is_400_naming_it() {
        for (role, shown) in [
            (json!("admin"), "'admin'"),
            (json!("Editor"), "'Editor'"),
            (json!(2), "'2'"),
            (json!(["owner"]), "'[\"owner\"]'"),
            (json!("a\u{7}b"), "'a"),
        ] {
            let error = parse(json!([{"id": 1, "role": role}])).expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            let message = error.to_string();
            assert!(message.contains(shown), "{message}");
            assert!(message.contains("is not a role"), "{message}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
    }
}
