//! What an invitation request does once it is read, shared by the JSON API and the web pages so
//! that a form and a JSON request follow one set of rules: who may invite, resend, revoke or see
//! an invitation, the store calls, and the messages and 429s people read.

use std::time::Duration;

use super::request::ValidInvitation;
use crate::config::{Limits, LinkSharing, MIN_INVITE_TTL};
use crate::domain::domain_rules;
use crate::domain::token::random_hex;
use crate::domain::{
    EmailAddress, InvitationId, InvitationStatus, Project, ProjectId, Role, Timestamp, Token, User,
};
use crate::http::extract::Caller;
use crate::http::metrics::Metrics;
use crate::http::{ApiError, AppState, audit, record};
use crate::store::{
    AuditEvent, CreateOutcome, IdempotencyClaim, InvitationRecord, LimitKind, NewInvitation,
    ResendInvitation, ResendOutcome, RevokeOutcome, SUPPRESSED_MESSAGE, SendLimits,
};

/// The 429 for a sending limit, saying which one and when to try again.
pub(in crate::http) fn limit_error(
    limits: Limits,
    kind: LimitKind,
    retry_after: Duration,
) -> ApiError {
    let wait = human_duration(retry_after);
    let message = match (
        kind,
        limits.invitations_per_inviter,
        limits.emails_per_recipient,
    ) {
        (LimitKind::PerInviter, Some(limit), _) => format!(
            "Invitation limit reached: you may send {} invitations or resends per {}; try again in {wait}",
            limit.max,
            human_duration(limit.window)
        ),
        (LimitKind::PerRecipient, _, Some(limit)) => format!(
            "Email limit reached for this address: it may receive {} emails per {}; try again in {wait}",
            limit.max,
            human_duration(limit.window)
        ),
        _ => format!("A sending limit was reached; try again in {wait}"),
    };
    ApiError::TooManyRequests(message, retry_after)
}

/// "3 h", "12 min", "40 s": for messages to people.
fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs().max(1);
    if secs >= 3_600 && secs.is_multiple_of(3_600) || secs >= 2 * 3_600 {
        format!("{} h", secs.div_ceil(3_600))
    } else if secs >= 60 {
        format!("{} min", secs.div_ceil(60))
    } else {
        format!("{secs} s")
    }
}

/// The 403 for an address the domain rules (`CBH_ALLOWED_DOMAINS`, `CBH_DENIED_DOMAINS`) do not
/// permit in the caller's namespace. Matched in memory: no database work.
pub(in crate::http) fn check_domain(
    state: &AppState,
    caller: &Caller,
    email: &EmailAddress,
) -> Result<(), ApiError> {
    // Addresses are stored with their domain lower-cased; a lower-case copy only for a row
    // that somehow is not.
    let domain = email.domain();
    let lower;
    let domain = if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = domain.to_ascii_lowercase();
        lower.as_str()
    } else {
        domain
    };
    if state
        .config
        .invite_rules
        .domains
        .permits(&caller.namespace, domain)
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(domain_rules::refusal(domain)))
    }
}

/// The lifetime of a new invitation: `expires_in` within 1h and `CBH_INVITE_TTL_MAX` (else
/// 400), or the default.
fn invitation_ttl(state: &AppState, expires_in: Option<Duration>) -> Result<Duration, ApiError> {
    let Some(ttl) = expires_in else {
        return Ok(state.config.invite_ttl);
    };
    let max = state.config.invite_rules.ttl_max;
    if (MIN_INVITE_TTL..=max).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(ApiError::BadRequest(format!(
            "expires_in must be from {} to {}",
            duration_spelling(MIN_INVITE_TTL),
            duration_spelling(max)
        )))
    }
}

/// A duration as the settings spell it, in its largest whole unit: `30d`, `36h`, `90s`.
fn duration_spelling(duration: Duration) -> String {
    let secs = duration.as_secs();
    [(86_400, "d"), (3_600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| secs.is_multiple_of(*unit) && secs > 0)
        .map_or_else(
            || format!("{secs}s"),
            |(unit, name)| format!("{}{name}", secs / unit),
        )
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
    let ttl = invitation_ttl(state, request.expires_in)?;
    check_domain(state, caller, &request.email)?;
    check_link_sharing(state, caller, &request)?;
    let projects = authorize_projects(state, caller, &request.projects).await?;
    let outcome = state
        .store
        .create_invitation(NewInvitation {
            namespace: caller.namespace.clone(),
            inviter: caller.user.clone(),
            email: request.email,
            first_name: request.first_name,
            last_name: request.last_name,
            projects,
            remind: request.remind,
            token,
            message_id: format!("<{}@{}>", random_hex(16), state.config.mail_domain()),
            now: Timestamp::now(),
            ttl,
            expires_in: request.expires_in,
            idempotency,
            limits: SendLimits {
                per_inviter: state.config.limits.invitations_per_inviter,
                per_recipient: state.config.limits.emails_per_recipient,
            },
            client_ip: caller.client_ip.clone(),
            send_email: request.send_email,
            return_link: request.return_link,
        })
        .await?;
    if let CreateOutcome::Created(_) = &outcome {
        state.outbox_wakeup.notify_one();
        Metrics::count(&state.metrics.invitations_created);
    }
    Ok(outcome)
}

/// `CBH_LINK_SHARING`: whether the caller may have the accept link returned (`return_link`)
/// or create the invitation without its email (`send_email: false`, allowed only where the link
/// can be returned, or nobody would get it). Under `editors`, being allowed to invite to the
/// selected projects is enough, which `authorize_projects` checks next.
fn check_link_sharing(
    state: &AppState,
    caller: &Caller,
    request: &ValidInvitation,
) -> Result<(), ApiError> {
    let sharing = state.config.link_sharing;
    if !request.shares_link() || sharing.allows(caller.user.is_superuser, true) {
        return Ok(());
    }
    let why = match sharing {
        LinkSharing::Superusers => "CBH_LINK_SHARING allows it to superusers only",
        _ => "CBH_LINK_SHARING is off",
    };
    Err(ApiError::Forbidden(format!(
        "return_link and send_email: false are not allowed here: {why}"
    )))
}

/// Every selected project must exist in the namespace (else 400) and the inviter must be
/// editor or owner of each (else 403); a superuser may invite to any. Returns the projects, in
/// id order.
async fn authorize_projects(
    state: &AppState,
    caller: &Caller,
    ids: &[ProjectId],
) -> Result<Vec<Project>, ApiError> {
    if ids.is_empty() {
        // Inviting to the platform alone still needs a role somewhere: otherwise anyone with an
        // account could learn which addresses have one (409 rather than 201).
        if !caller.user.is_superuser && !may_invite_somewhere(state, caller).await? {
            return Err(ApiError::Forbidden(
                "you must be an editor or owner of a project to invite people".into(),
            ));
        }
        return Ok(Vec::new());
    }
    let found = state
        .store
        .projects_with_role(&caller.namespace, caller.user.id, ids)
        .await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !found.iter().any(|(p, _)| p.id == **id))
    {
        return Err(ApiError::BadRequest(format!(
            "projects_selected: there is no project with id {}",
            missing.0
        )));
    }
    if !caller.user.is_superuser
        && let Some((project, _)) = found
            .iter()
            .find(|(_, role)| !role.is_some_and(Role::can_invite))
    {
        return Err(ApiError::Forbidden(format!(
            "you must be an editor or owner of project '{}' to invite people to it",
            project.name
        )));
    }
    Ok(found.into_iter().map(|(project, _)| project).collect())
}

/// Whether the caller is editor or owner of at least one project.
async fn may_invite_somewhere(state: &AppState, caller: &Caller) -> Result<bool, ApiError> {
    let memberships = state.store.memberships(caller.user.id).await?;
    Ok(memberships.iter().any(|m| m.role.can_invite()))
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
            limits: SendLimits {
                per_inviter: state.config.limits.invitations_per_inviter,
                per_recipient: state.config.limits.emails_per_recipient,
            },
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
