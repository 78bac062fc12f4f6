//! The invitation as the API shows it, kept here rather than in `http` so that webhook events
//! (written by the store, in the transaction of each change) carry exactly the same shape as
//! `GET /{ns}/api/invitations/{id}/`. The HTTP layer re-exports these types.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Project, Role, Timestamp, User};
use crate::store::InvitationRecord;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResource {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub resource_uri: String,
}

impl UserResource {
    pub fn new(namespace: &str, user: &User) -> Self {
        Self {
            id: user.id.0,
            username: user.email.to_string(),
            first_name: user.first_name.to_string(),
            last_name: user.last_name.to_string(),
            resource_uri: format!("/{namespace}/api/users/{}/", user.id.0),
        }
    }
}

/// A project of an invitation, with the role the invitation offers on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectRef {
    pub id: i64,
    pub name: String,
    /// `viewer`, `editor` or `owner`.
    #[schema(value_type = String, pattern = "^(viewer|editor|owner)$")]
    pub role: &'static str,
}

impl ProjectRef {
    pub fn new(project: &Project, role: Role) -> Self {
        Self {
            id: project.id.0,
            name: project.name.clone(),
            role: role.as_str(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResource {
    /// `queued`, `sent`, `failed`, or `bounced` (accepted by the relay, then refused by the
    /// recipient's server: `last_error` holds its words).
    #[schema(value_type = DeliveryState)]
    pub status: String,
    pub attempts: i64,
    /// The mail server's last refusal or the last connection error.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// When the mail server accepted the message; null until then. Kept by the invitation
    /// after the outbox row itself is pruned (`CBH_OUTBOX_RETENTION`).
    #[schema(format = DateTime, required = true)]
    pub sent_at: Option<String>,
}

/// An invitation (the schema document at `…/invitations/schema/` describes each field).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResource {
    pub id: i64,
    pub resource_uri: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub created_by: UserResource,
    pub projects_selected: Vec<ProjectRef>,
    #[schema(format = DateTime)]
    pub created: String,
    #[schema(format = DateTime)]
    pub modified: String,
    #[schema(value_type = InvitationState)]
    pub status: &'static str,
    /// Null when the email carries no link.
    #[schema(format = DateTime, required = true)]
    pub expires: Option<String>,
    /// Null when no email was sent: created with `send_email: false` and not resent since.
    #[schema(required = true, nullable = true)]
    pub delivery: Option<DeliveryResource>,
    /// Automatic reminders sent (`CBH_REMINDERS`); `delivery` shows the last email.
    pub reminders_sent: i64,
    pub message: String,
    /// The language of the invitee's emails (a BCP 47 tag, as asked for); null for invitations
    /// from before languages, whose emails use `CBH_DEFAULT_LANGUAGE`.
    #[schema(required = true, example = "de")]
    pub language: Option<String>,
    /// The accept link, only in the answer to the request that created it with
    /// `return_link: true` (`CBH_LINK_SHARING`); never in any later answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub accept_url: Option<String>,
}

/// The state of an invitation, as the API shows it and filters on it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only describes the wire format; `InvitationStatus` is the real type.
pub enum InvitationState {
    Pending,
    Accepted,
    Expired,
    Revoked,
    Declined,
}

/// The state of an invitation's email.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only describes the wire format.
pub enum DeliveryState {
    Queued,
    Sent,
    Failed,
    Bounced,
}

impl InvitationResource {
    pub fn new(namespace: &str, record: &InvitationRecord, now: Timestamp) -> Self {
        Self {
            id: record.id.0,
            resource_uri: invitation_uri(namespace, record.id.0),
            email: record.email.clone(),
            first_name: record.first_name.clone(),
            last_name: record.last_name.clone(),
            created_by: UserResource::new(namespace, &record.created_by),
            projects_selected: record
                .projects
                .iter()
                .map(|p| ProjectRef::new(p, record.roles.role(p.id)))
                .collect(),
            created: record.created.to_iso8601(),
            modified: record.modified.to_iso8601(),
            status: record.status(now).as_str(),
            expires: record.expires.map(Timestamp::to_iso8601),
            delivery: record.delivery.as_ref().map(|d| DeliveryResource {
                status: d.status.clone(),
                attempts: d.attempts,
                last_error: d.last_error.clone(),
                sent_at: d.sent_at.map(Timestamp::to_iso8601),
            }),
            reminders_sent: record.reminders_sent,
            language: record.language.clone(),
            accept_url: None,
            message: record.message.clone(),
        }
    }
}

pub fn invitation_uri(namespace: &str, id: i64) -> String {
    format!("/{namespace}/api/invitations/{id}/")
}
