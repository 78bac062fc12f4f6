//! The JSON shapes of the API (Tastypie's resources), and the schema document generated from
//! the same field list. A unit test keeps the serialised invitation and the field list equal.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

pub use crate::store::resource::{
    DeliveryResource, InvitationResource, InvitationState, ProjectRef, UserResource, invitation_uri,
};

/// Tastypie's paging block of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListMeta {
    pub limit: i64,
    pub offset: i64,
    /// The next page's URI, null on the last page.
    #[schema(required = true)]
    pub next: Option<String>,
    /// The previous page's URI, null on the first page.
    #[schema(required = true)]
    pub previous: Option<String>,
    pub total_count: i64,
}

/// A page of invitations, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub meta: ListMeta,
    pub objects: Vec<InvitationResource>,
}

/// One field of a resource, as Tastypie's schema describes it.
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: &'static str,
    pub nullable: bool,
    pub blank: bool,
    pub readonly: bool,
    pub unique: bool,
    pub help_text: &'static str,
    pub default: Option<&'static str>,
}

const fn field(name: &'static str, kind: &'static str, help_text: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        nullable: false,
        blank: false,
        readonly: true,
        unique: false,
        help_text,
        default: None,
    }
}

/// Tastypie's ALL_WITH_RELATIONS: every lookup (`email`, `email__iexact`).
const ALL_WITH_RELATIONS: u8 = 2;

pub const INVITATION_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        unique: true,
        ..field("id", "integer", "Integer data. Ex: 2673")
    },
    field("resource_uri", "string", "The URI of this invitation."),
    FieldSpec {
        readonly: false,
        ..field(
            "email",
            "string",
            "Email address of the person invited (at most 254 characters); unique per namespace, case-insensitively.",
        )
    },
    FieldSpec {
        readonly: false,
        blank: true,
        default: Some(""),
        ..field(
            "first_name",
            "string",
            "First name of the person invited (at most 150 characters). Also accepted as firstName.",
        )
    },
    FieldSpec {
        readonly: false,
        blank: true,
        default: Some(""),
        ..field(
            "last_name",
            "string",
            "Last name of the person invited (at most 150 characters). Also accepted as lastName.",
        )
    },
    field("created_by", "related", "The user who sent the invitation."),
    FieldSpec {
        readonly: false,
        blank: true,
        default: Some("[]"),
        ..field(
            "projects_selected",
            "list",
            "Projects ([{id, name, role}]) to grant the invitee, each with its role: viewer (the default), editor or owner; the inviter must be editor or owner of each and may give at most their own role. A whole project object with a resource_uri (as the web client sends it) means viewer.",
        )
    },
    field(
        "created",
        "datetime",
        "When the invitation was created (ISO 8601, UTC).",
    ),
    field(
        "modified",
        "datetime",
        "When the invitation last changed (ISO 8601, UTC).",
    ),
    field(
        "status",
        "string",
        "pending, accepted, expired, revoked or declined.",
    ),
    FieldSpec {
        nullable: true,
        ..field(
            "expires",
            "datetime",
            "When the accept link expires; null when the email carries no link.",
        )
    },
    FieldSpec {
        nullable: true,
        ..field(
            "delivery",
            "dict",
            "Delivery of the email: {status: queued|sent|failed|bounced, attempts, last_error, sent_at}; \
             null when the invitation was created without its email (send_email: false) and not \
             resent since. It describes the invitation's last email (an automatic reminder too).",
        )
    },
    field(
        "reminders_sent",
        "integer",
        "How many automatic reminders (CBH_REMINDERS) were sent for this invitation.",
    ),
    field(
        "message",
        "string",
        "What happened, worded for the person who sent the invitation.",
    ),
    FieldSpec {
        nullable: true,
        blank: true,
        readonly: false,
        ..field(
            "language",
            "string",
            "The language of the invitee's emails, a BCP 47 tag such as de or pt-BR; absent, CBH_DEFAULT_LANGUAGE. A tag without a catalog is kept as given, its emails written in the closest language there is. Null for invitations from before languages.",
        )
    },
];

/// Request-only fields: part of the schema, not of the stored object.
pub const INVITATION_WRITE_ONLY_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        readonly: false,
        blank: true,
        default: Some("false"),
        ..field(
            "remind",
            "boolean",
            "When the invitee already has every selected project: send a reminder instead of answering 409.",
        )
    },
    FieldSpec {
        readonly: false,
        blank: true,
        nullable: true,
        ..field(
            "expires_in",
            "string",
            "How long the accept link works, e.g. 12h or 14d: from 1h to CBH_INVITE_TTL_MAX (default 30d); absent, CBH_INVITE_TTL. The invitation's expires shows the result; a resend gives the same lifetime again.",
        )
    },
    FieldSpec {
        readonly: false,
        blank: true,
        default: Some("false"),
        ..field(
            "return_link",
            "boolean",
            "Return the accept link once, as accept_url in the answer to this request (where CBH_LINK_SHARING allows it).",
        )
    },
    FieldSpec {
        readonly: false,
        blank: true,
        default: Some("true"),
        ..field(
            "send_email",
            "boolean",
            "false: create the invitation without its email; delivery is then null (where CBH_LINK_SHARING allows it).",
        )
    },
];

/// Filters of the list, each with its Tastypie filtering value.
pub const INVITATION_FILTERING: &[(&str, u8)] = &[("email", ALL_WITH_RELATIONS), ("status", 1)];

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 1000;

pub fn invitation_schema() -> Value {
    let fields: serde_json::Map<String, Value> = INVITATION_FIELDS
        .iter()
        .chain(INVITATION_WRITE_ONLY_FIELDS)
        .map(|f| {
            let default = match f.default {
                Some(literal) => serde_json::from_str(literal).unwrap_or(json!(literal)),
                None => json!("No default provided."),
            };
            (
                f.name.to_owned(),
                json!({
                    "type": f.kind,
                    "nullable": f.nullable,
                    "blank": f.blank,
                    "readonly": f.readonly,
                    "unique": f.unique,
                    "help_text": f.help_text,
                    "default": default,
                }),
            )
        })
        .collect();
    let filtering: serde_json::Map<String, Value> = INVITATION_FILTERING
        .iter()
        .map(|(name, level)| ((*name).to_owned(), json!(level)))
        .collect();
    json!({
        "fields": fields,
        "allowed_list_http_methods": ["get", "post"],
        "allowed_detail_http_methods": ["get"],
        "default_format": "application/json",
        "default_limit": DEFAULT_LIMIT,
        "filtering": filtering,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        EmailAddress, InvitationId, InviteKind, PersonName, Project, ProjectId, Timestamp, User,
        UserId,
    };
    use crate::store::InvitationRecord;

    #[test]
    fn schema_fields_are_exactly_the_serialised_fields() {
        let record = InvitationRecord {
            id: InvitationId(1),
            email: "bob@x.org".into(),
            first_name: String::new(),
            last_name: String::new(),
            created_by: User {
                id: UserId(1),
                email: EmailAddress::parse("ann@x.org").expect("valid"),
                first_name: PersonName::default(),
                last_name: PersonName::default(),
                is_superuser: false,
                is_active: true,
            },
            projects: vec![Project {
                id: ProjectId(1),
                name: "P".into(),
            }],
            roles: Default::default(),
            kind: InviteKind::NewUser,
            message: String::new(),
            stored_status: "pending".into(),
            expires: None,
            created: Timestamp(0),
            modified: Timestamp(0),
            delivery: None,
            reminders_sent: 0,
            language: Some("de".into()),
            creator_language: None,
        };
        let value = serde_json::to_value(InvitationResource::new("ns", &record, Timestamp(0)))
            .expect("serialises");
        let mut serialised: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut described: Vec<&str> = INVITATION_FIELDS.iter().map(|f| f.name).collect();
        serialised.sort_unstable();
        described.sort_unstable();
        assert_eq!(serialised, described);
    }
}
