//! The notices an invitation's creator receives about it: accepted, declined, or its email
//! failed for good.

/// What a notice announces; also the base name of its templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    Accepted,
    Declined,
    /// The invitation's email failed for good (the relay refused it, or every attempt failed).
    Failed,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 3] = [
        NoticeKind::Accepted,
        NoticeKind::Declined,
        NoticeKind::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Accepted => "invitation_accepted",
            NoticeKind::Declined => "invitation_declined",
            NoticeKind::Failed => "invitation_failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// Whether the creator's `notify_outcomes` setting turns it off. The failure notice is not
    /// an outcome: it asks for something to be done (check the address, resend), so it goes
    /// whatever the setting says.
    pub fn is_outcome(self) -> bool {
        matches!(self, NoticeKind::Accepted | NoticeKind::Declined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_and_only_outcomes_can_be_turned_off() {
        for kind in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(NoticeKind::parse("bounced"), None);
        assert!(NoticeKind::Accepted.is_outcome());
        assert!(NoticeKind::Declined.is_outcome());
        assert!(!NoticeKind::Failed.is_outcome());
    }
}
