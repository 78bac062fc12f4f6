//! What an invitation request does once it is read, shared by the JSON API and the web pages so
//! that a form and a JSON request follow one set of rules: who may invite, resend, revoke or see
//! an invitation, the store calls, and the messages and 429s people read. The rules of creating
//! an invitation are `crate::invite`'s, which the command line follows too.

use std::time::Duration;

use crate::config::Limits;
use crate::domain::token::random_hex;
use crate::domain::{EmailAddress, InvitationId, InvitationStatus, Role, Timestamp, Token, User};
use crate::http::extract::Caller;
use crate::http::metrics::Metrics;
use crate::http::{ApiError, AppState, audit, record};
use crate::invite::{self, InviteSettings, Inviter, Refusal, ValidInvitation, limit_message};
use crate::store::{
    AuditEvent, CreateOutcome, IdempotencyClaim, InvitationRecord, LimitKind, ResendInvitation,
    ResendOutcome, RevokeOutcome, SUPPRESSED_MESSAGE,
};

/// The 429 for a sending limit, saying which one and when to try again.
pub(in crate::http) fn limit_error(
    limits: Limits,
    kind: LimitKind,
    retry_after: Duration,
) -> ApiError {
    ApiError::TooManyRequests(limit_message(limits, kind, retry_after), retry_after)
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(message) => ApiError::BadRequest(message),
            Refusal::Forbidden(message) => ApiError::Forbidden(message),
            Refusal::Store(error) => error.into(),
        }
    }
}

/// The settings an invitation depends on (`crate::invite`).
pub(in crate::http) fn invite_settings(state: &AppState) -> InviteSettings<'_> {
    InviteSettings {
        invite_ttl: state.config.invite_ttl,
        rules: &state.config.invite_rules,
        link_sharing: state.config.link_sharing,
        limits: state.config.limits,
        mail_domain: &state.config.mail_domain,
        default_language: &state.config.default_language,
    }
}

/// The caller as the one who invites.
pub(in crate::http) fn inviter(caller: &Caller) -> Inviter<'_> {
    Inviter {
        namespace: &caller.namespace,
        user: &caller.user,
        client_ip: caller.client_ip.as_deref(),
    }
}

/// The 403 for an address the domain rules do not permit in the caller's namespace.
pub(in crate::http) fn check_domain(
    state: &AppState,
    caller: &Caller,
    email: &EmailAddress,
) -> Result<(), ApiError> {
    Ok(invite::check_domain(
        &invite_settings(state),
        &caller.namespace,
        email,
    )?)
}

/// Checks the address against the domain rules (before anything that reads the database: a
/// refusal depends on the request alone, and costs nothing), then the inviter's rights on the
/// projects, then creates the invitation (and wakes the
/// outbox worker when an email was queued).
pub(in crate::http) async fn invite(
    state: &AppState,
    caller: &Caller,
    request: ValidInvitation,
    idempotency: Option<IdempotencyClaim>,
) -> Result<CreateOutcome, ApiError> {
    invite_with_token(state, caller, request, idempotency, Token::generate()).await
}

/// `invite` with the accept link's token chosen by the caller, which can then hand the link
/// out (`return_link`): the store keeps only its hash, and its plain value in the outbox row.
pub(in crate::http) async fn invite_with_token(
    state: &AppState,
    caller: &Caller,
    request: ValidInvitation,
    idempotency: Option<IdempotencyClaim>,
    token: Token,
) -> Result<CreateOutcome, ApiError> {
    let settings = invite_settings(state);
    let inviter = inviter(caller);
    let ttl = invite::check_request(&settings, &inviter, &request)?;
    let projects = invite::authorize_projects(
        state.store.as_ref(),
        &inviter,
        &request.projects,
        &request.roles,
    )
    .await?;
    let new = invite::new_invitation(
        &settings,
        &inviter,
        request,
        ttl,
        projects,
        token,
        idempotency,
    );
    let outcome = state.store.create_invitation(new).await?;
    if let CreateOutcome::Created(_) = &outcome {
        state.outbox_wakeup.notify_one();
        Metrics::count(&state.metrics.invitations_created);
    }
    Ok(outcome)
}

/// An invitation the caller may see, resend or revoke: its creator, a superuser, or an owner of
/// every one of its projects. To anyone else it is as invisible as a missing one. Every project,
/// not one: revoking removes grants on all of them, and the answer names them all. An invitation
/// without projects has no owner but its creator (owning "every one" of none proves nothing).
pub(in crate::http) async fn manageable_invitation(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ApiError> {
    let record = state
        .store
        .invitation(&caller.namespace, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if caller.user.is_superuser || record.created_by.id == caller.user.id {
        return Ok(record);
    }
    if record.projects.is_empty() {
        return Err(ApiError::not_found());
    }
    let memberships = state.store.memberships(caller.user.id).await?;
    let owns_every_project = record.projects.iter().all(|project| {
        memberships
            .iter()
            .any(|m| m.project.id == project.id && m.role == Role::Owner)
    });
    if owns_every_project {
        Ok(record)
    } else {
        Err(ApiError::not_found())
    }
}

/// A fresh link and a new email for a pending or expired invitation; the old link stops working.
pub(in crate::http) async fn resend(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ApiError> {
    let record = manageable_invitation(state, caller, id).await?;
    // An address that the rules have come to refuse gets no new link either.
    check_domain(
        state,
        caller,
        &EmailAddress::from_trusted(record.email.clone()),
    )?;
    let outcome = state
        .store
        .resend_invitation(ResendInvitation {
            namespace: caller.namespace.clone(),
            id,
            sender: caller.user.id,
            limits: invite::send_limits(state.config.limits),
            token: Token::generate(),
            message_id: format!("<{}@{}>", random_hex(16), state.config.mail_domain()),
            now: Timestamp::now(),
            ttl: state.config.invite_ttl,
        })
        .await?;
    match outcome {
        ResendOutcome::Resent(record) => {
            state.outbox_wakeup.notify_one();
            audit(state, caller, "invitation_resent", Some(id.to_string())).await;
            Ok(*record)
        }
        ResendOutcome::NotPending(InvitationStatus::Revoked) => Err(ApiError::Conflict(
            "This invitation was revoked: invite the person again instead.".into(),
        )),
        ResendOutcome::NotPending(InvitationStatus::Declined) => Err(ApiError::Conflict(
            "This invitation was declined: there is no link to send again.".into(),
        )),
        ResendOutcome::Suppressed => Err(ApiError::Conflict(SUPPRESSED_MESSAGE.into())),
        ResendOutcome::NotPending(_) => Err(ApiError::Conflict(
            "This invitation was already accepted: there is no link to send again.".into(),
        )),
        ResendOutcome::NotFound => Err(ApiError::not_found()),
        ResendOutcome::Limited { limit, retry_after } => {
            Err(limit_error(state.config.limits, limit, retry_after))
        }
    }
}

/// Revokes a pending or expired invitation (see `Store::revoke_invitation`).
pub(in crate::http) async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ApiError> {
    manageable_invitation(state, caller, id).await?;
    match state
        .store
        .revoke_invitation(&caller.namespace, id, Timestamp::now())
        .await?
    {
        RevokeOutcome::Revoked(record) => {
            Metrics::count(&state.metrics.invitations_revoked);
            audit(state, caller, "invitation_revoked", Some(id.to_string())).await;
            Ok(*record)
        }
        RevokeOutcome::NotPending(InvitationStatus::Revoked) => Err(ApiError::Conflict(
            "This invitation was already revoked.".into(),
        )),
        RevokeOutcome::NotPending(InvitationStatus::Declined) => Err(ApiError::Conflict(
            "This invitation was declined: there is nothing left to revoke.".into(),
        )),
        RevokeOutcome::NotPending(_) => Err(ApiError::Conflict(
            "This invitation was already accepted: it can no longer be revoked.".into(),
        )),
        RevokeOutcome::NotFound => Err(ApiError::not_found()),
    }
}

pub(in crate::http) fn resent_message(record: &InvitationRecord) -> String {
    format!(
        "Invitation sent again to {}; the earlier link no longer works.",
        record.email
    )
}

pub(in crate::http) fn revoked_message(record: &InvitationRecord) -> String {
    format!(
        "Invitation to {} revoked; its link no longer works.",
        record.email
    )
}

/// The audit record of an accepted invitation (from the API or the accept page).
pub(in crate::http) async fn accepted(
    state: &AppState,
    ns: &str,
    user: &User,
    client_ip: Option<String>,
) {
    Metrics::count(&state.metrics.invitations_accepted);
    // The creators' notices were queued with the accept.
    state.outbox_wakeup.notify_one();
    record(
        state,
        AuditEvent {
            namespace: ns.to_owned(),
            at: Timestamp::now(),
            event: "invitation_accepted",
            actor: Some(user.id),
            subject: Some(user.email.key()),
            client_ip,
            detail: None,
        },
    )
    .await;
}
