//! What happened, as the platform is told it (webhook events).

use std::fmt;
use std::str::FromStr;

/// The kinds of event a webhook endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    InvitationCreated,
    InvitationResent,
    InvitationRevoked,
    InvitationAccepted,
    /// The invitee declined (page, API or one-click unsubscribe).
    InvitationDeclined,
    /// An automatic reminder (`CBH_REMINDERS`) was queued.
    InvitationReminded,
    /// A pending invitation passed its expiry and the sweep marked it `expired`.
    InvitationExpired,
    /// A message failed for good.
    EmailFailed,
    /// A message the relay accepted came back: a permanent failure (`cbh-invite bounce`).
    EmailBounced,
    UserActivated,
    UserDeactivated,
    /// A role on a project was given, changed or removed.
    MembershipChanged,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::InvitationCreated,
        EventType::InvitationResent,
        EventType::InvitationRevoked,
        EventType::InvitationAccepted,
        EventType::InvitationDeclined,
        EventType::InvitationReminded,
        EventType::InvitationExpired,
        EventType::EmailFailed,
        EventType::EmailBounced,
        EventType::UserActivated,
        EventType::UserDeactivated,
        EventType::MembershipChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::InvitationCreated => "invitation.created",
            EventType::InvitationResent => "invitation.resent",
            EventType::InvitationRevoked => "invitation.revoked",
            EventType::InvitationAccepted => "invitation.accepted",
            EventType::InvitationDeclined => "invitation.declined",
            EventType::InvitationReminded => "invitation.reminded",
            EventType::InvitationExpired => "invitation.expired",
            EventType::EmailFailed => "email.failed",
            EventType::EmailBounced => "email.bounced",
            EventType::UserActivated => "user.activated",
            EventType::UserDeactivated => "user.deactivated",
            EventType::MembershipChanged => "membership.changed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == raw)
            .ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                format!("'{raw}' is not an event (one of {})", known.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for event in EventType::ALL {
            assert_eq!(event.as_str().parse::<EventType>(), Ok(event));
        }
        assert!("invitation.eaten".parse::<EventType>().is_err());
    }
}
