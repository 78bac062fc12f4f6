//! `/{ns}/api/invitations/`: create, list, read, the schema, accepting or declining a link,
//! resending and revoking. One job per file: `request.rs` reads and validates what a client
//! sends (`selection.rs` its projects and roles), `actions.rs` does it (the web pages call the
//! same functions, so a form and a JSON request follow one set of rules), `handlers.rs` holds
//! the HTTP handlers and their OpenAPI descriptions, `bulk.rs` the bulk POST, `decline.rs`
//! declining. The representation is `crate::http::resources`.

use axum::Router;
use axum::routing::{get, post};

use crate::http::AppState;
use handlers::{accept, create, detail, list, resend_handler, revoke_handler, schema};

mod actions;
pub(super) mod bulk;
pub(super) mod decline;
pub(super) mod handlers;
mod request;
mod selection;

pub(super) use actions::{
    accepted, invite, invite_settings, inviter, limit_error, manageable_invitation, resend,
    resent_message, revoke, revoked_message,
};
pub(super) use decline::{NotDeclined, decline_by_token, unsubscribe_by_token};
pub use request::{InvitationRequest, ValidInvitation, validate_body};
pub use selection::ProjectSelection;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/invitations/", get(list).post(create))
        .route("/{ns}/api/invitations", get(list).post(create))
        .route("/{ns}/api/invitations/schema/", get(schema))
        .route("/{ns}/api/invitations/schema", get(schema))
        .route("/{ns}/api/invitations/bulk/", post(bulk::create_bulk))
        .route("/{ns}/api/invitations/bulk", post(bulk::create_bulk))
        .route("/{ns}/api/invitations/accept/", post(accept))
        .route("/{ns}/api/invitations/accept", post(accept))
        .route("/{ns}/api/invitations/decline/", post(decline::decline))
        .route("/{ns}/api/invitations/decline", post(decline::decline))
        .route("/{ns}/api/invitations/{id}/", get(detail))
        .route("/{ns}/api/invitations/{id}", get(detail))
        .route("/{ns}/api/invitations/{id}/resend/", post(resend_handler))
        .route("/{ns}/api/invitations/{id}/resend", post(resend_handler))
        .route("/{ns}/api/invitations/{id}/revoke/", post(revoke_handler))
        .route("/{ns}/api/invitations/{id}/revoke", post(revoke_handler))
}
