//! The rules an invitation is checked against before the store decides the rest, in the order
//! the single POST has always applied them: its lifetime (400), the domain rules (403), link
//! sharing (403), then the inviter's rights on the projects (400 unknown project, 403). Moved
//! here from the HTTP layer so that the command line follows the very same rules.

use std::time::Duration;

use crate::config::{InviteRules, Limits, LinkSharing, MIN_INVITE_TTL};
use crate::domain::domain_rules;
use crate::domain::grant::{self, ProjectRoles};
use crate::domain::token::random_hex;
use crate::domain::{EmailAddress, Project, ProjectId, Timestamp, Token, User};
use crate::store::{IdempotencyClaim, LimitKind, NewInvitation, SendLimits, Store, StoreError};

use super::ValidInvitation;

/// The settings an invitation depends on, borrowed from wherever they are kept (`HttpConfig`
/// for the API, `config::Settings` for the command line).
#[derive(Debug, Clone, Copy)]
pub struct InviteSettings<'a> {
    /// `CBH_INVITE_TTL`: the lifetime of a link without `expires_in`.
    pub invite_ttl: Duration,
    /// `CBH_INVITE_TTL_MAX` and the domain rules.
    pub rules: &'a InviteRules,
    pub link_sharing: LinkSharing,
    /// The sending limits (`CBH_INVITE_RATE`, `CBH_RECIPIENT_RATE`).
    pub limits: Limits,
    /// The domain part of the Message-IDs (as DKIM and DMARC align on it).
    pub mail_domain: &'a str,
    /// `CBH_DEFAULT_LANGUAGE`: the language of an invitation that names none.
    pub default_language: &'a str,
}

/// Who invites, and where.
#[derive(Debug, Clone, Copy)]
pub struct Inviter<'a> {
    pub namespace: &'a str,
    /// As authenticated: the new invitations' `created_by`.
    pub user: &'a User,
    /// For the `invitation_created` audit record; `None` from the command line.
    pub client_ip: Option<&'a str>,
}

/// Why an invitation was refused before reaching the store, or the store's failure.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request itself is wrong (400).
    #[error("{0}")]
    Invalid(String),
    /// Not allowed: the domain rules, link sharing or the inviter's rights (403).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lifetime of a new invitation: `expires_in` within 1h and `CBH_INVITE_TTL_MAX` (else
/// 400), or the default.
pub fn invitation_ttl(
    settings: &InviteSettings<'_>,
    expires_in: Option<Duration>,
) -> Result<Duration, Refusal> {
    let Some(ttl) = expires_in else {
        return Ok(settings.invite_ttl);
    };
    let max = settings.rules.ttl_max;
    if (MIN_INVITE_TTL..=max).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(Refusal::Invalid(format!(
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

/// The 403 for an address the domain rules (`CBH_ALLOWED_DOMAINS`, `CBH_DENIED_DOMAINS`) do not
/// permit in the namespace. Matched in memory: no database work.
pub fn check_domain(
    settings: &InviteSettings<'_>,
    namespace: &str,
    email: &EmailAddress,
) -> Result<(), Refusal> {
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
    if settings.rules.domains.permits(namespace, domain) {
        Ok(())
    } else {
        Err(Refusal::Forbidden(domain_rules::refusal(domain)))
    }
}

/// `CBH_LINK_SHARING`: whether the caller may have the accept link returned (`return_link`)
/// or create the invitation without its email (`send_email: false`, allowed only where the link
/// can be returned, or nobody would get it). Under `editors`, being allowed to invite to the
/// selected projects is enough, which `authorize_projects` checks next.
fn check_link_sharing(
    settings: &InviteSettings<'_>,
    inviter: &Inviter<'_>,
    request: &ValidInvitation,
) -> Result<(), Refusal> {
    let sharing = settings.link_sharing;
    if !request.shares_link() || sharing.allows(inviter.user.is_superuser, true) {
        return Ok(());
    }
    let why = match sharing {
        LinkSharing::Superusers => "CBH_LINK_SHARING allows it to superusers only",
        _ => "CBH_LINK_SHARING is off",
    };
    Err(Refusal::Forbidden(format!(
        "return_link and send_email: false are not allowed here: {why}"
    )))
}

/// What depends on the request and the settings alone, in the single POST's order: the
/// lifetime (400), the domain rules (403), link sharing (403). Returns the lifetime.
pub fn check_request(
    settings: &InviteSettings<'_>,
    inviter: &Inviter<'_>,
    request: &ValidInvitation,
) -> Result<Duration, Refusal> {
    let ttl = invitation_ttl(settings, request.expires_in)?;
    check_domain(settings, inviter.namespace, &request.email)?;
    check_link_sharing(settings, inviter, request)?;
    Ok(ttl)
}

/// Every selected project must exist in the namespace (else 400) and the inviter must be
/// editor or owner of each, offering at most their own role on it (else 403 naming the
/// project, `grant::may_give`); a superuser may invite to any with any role. Returns the
/// projects, in id order.
pub async fn authorize_projects(
    store: &dyn Store,
    inviter: &Inviter<'_>,
    ids: &[ProjectId],
    roles: &ProjectRoles,
) -> Result<Vec<Project>, Refusal> {
    if ids.is_empty() {
        // Inviting to the platform alone still needs a role somewhere: otherwise anyone with an
        // account could learn which addresses have one (409 rather than 201).
        if !inviter.user.is_superuser && !may_invite_somewhere(store, inviter).await? {
            return Err(Refusal::Forbidden(
                "you must be an editor or owner of a project to invite people".into(),
            ));
        }
        return Ok(Vec::new());
    }
    let found = store
        .projects_with_role(inviter.namespace, inviter.user.id, ids)
        .await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !found.iter().any(|(p, _)| p.id == **id))
    {
        return Err(Refusal::Invalid(format!(
            "projects_selected: there is no project with id {}",
            missing.0
        )));
    }
    let superuser = inviter.user.is_superuser;
    for (project, own) in &found {
        let offered = roles.role(project.id);
        if grant::may_give(*own, superuser, offered) {
            continue;
        }
        return Err(Refusal::Forbidden(match own {
            Some(own) if own.can_invite() => format!(
                "you may give at most your own role ({own}) on project '{}', not {offered}",
                project.name
            ),
            _ => format!(
                "you must be an editor or owner of project '{}' to invite people to it",
                project.name
            ),
        }));
    }
    Ok(found.into_iter().map(|(project, _)| project).collect())
}

/// Whether the inviter is editor or owner of at least one project.
async fn may_invite_somewhere(store: &dyn Store, inviter: &Inviter<'_>) -> Result<bool, Refusal> {
    let memberships = store.memberships(inviter.user.id).await?;
    Ok(memberships.iter().any(|m| m.role.can_invite()))
}

/// What the store is asked to create, once the request has passed `check_request` (which gave
/// `ttl`) and `authorize_projects` (which gave `projects`).
pub fn new_invitation(
    settings: &InviteSettings<'_>,
    inviter: &Inviter<'_>,
    request: ValidInvitation,
    ttl: Duration,
    projects: Vec<Project>,
    token: Token,
    idempotency: Option<IdempotencyClaim>,
) -> NewInvitation {
    NewInvitation {
        namespace: inviter.namespace.to_owned(),
        inviter: inviter.user.clone(),
        email: request.email,
        first_name: request.first_name,
        last_name: request.last_name,
        projects,
        roles: request.roles,
        remind: request.remind,
        token,
        message_id: format!("<{}@{}>", random_hex(16), settings.mail_domain),
        now: Timestamp::now(),
        ttl,
        expires_in: request.expires_in,
        language: request
            .language
            .map_or_else(|| settings.default_language.to_owned(), |l| l.to_string()),
        idempotency,
        limits: send_limits(settings.limits),
        client_ip: inviter.client_ip.map(str::to_owned),
        send_email: request.send_email,
        return_link: request.return_link,
    }
}

/// The sending limits of invitations and resends.
pub fn send_limits(limits: Limits) -> SendLimits {
    SendLimits {
        per_inviter: limits.invitations_per_inviter,
        per_recipient: limits.emails_per_recipient,
    }
}

/// The message of a 429 for a sending limit, saying which one and when to try again.
pub fn limit_message(limits: Limits, kind: LimitKind, retry_after: Duration) -> String {
    let wait = human_duration(retry_after);
    match (
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
    }
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
