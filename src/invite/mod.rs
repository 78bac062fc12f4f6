//! Inviting people: the application's use case, between its callers (the JSON API, the web
//! pages, the command line) and the store. It applies the rules an invitation must pass before
//! the store decides the rest (`rules`), and invites several people at once (`bulk`). No HTTP
//! here: the command line calls it as the API does.

mod bulk;
mod row;
mod rules;

pub use bulk::{BulkRow, MAX_ROWS, RowResult, RowStatus, invite_rows};
pub use row::ValidInvitation;
pub use rules::{
    InviteSettings, Inviter, Refusal, authorize_projects, check_domain, check_request,
    invitation_ttl, limit_message, new_invitation, send_limits,
};
