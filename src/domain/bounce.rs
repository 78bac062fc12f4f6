//! Delivery status codes (RFC 3463, `5.1.1`) of the reports that come back when a message
//! bounces, and what they mean in words.

/// An enhanced mail system status code (RFC 3463): class.subject.detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl StatusCode {
    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.trim().splitn(3, '.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail_raw = parts.next()?;
        let digits: String = detail_raw
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !matches!(class, 2 | 4 | 5) || digits.is_empty() || digits.len() > 3 {
            return None;
        }
        Some(Self {
            class,
            subject,
            detail: digits.parse().ok()?,
        })
    }

    /// `5.x.x`: the message will never be delivered.
    pub fn is_permanent(self) -> bool {
        self.class == 5
    }

    /// `4.x.x`: the server is still trying (or gave up on a delay it reported as temporary).
    pub fn is_temporary(self) -> bool {
        self.class == 4
    }

    /// What the creator of the invitation is told, in words.
    pub fn reason(self) -> BounceReason {
        match (self.subject, self.detail) {
            (1, _) => BounceReason::NoSuchAddress,
            (2, 2) => BounceReason::MailboxFull,
            _ => BounceReason::Refused,
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Why a message bounced, from its status code: 5.1.x (the address), 5.2.2 (the mailbox is
/// full), or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceReason {
    NoSuchAddress,
    MailboxFull,
    Refused,
    /// Every attempt failed for a reason that was not final (no answer, "try again later"):
    /// the outbox gave up.
    GaveUp,
}

impl BounceReason {
    pub fn words(self) -> &'static str {
        match self {
            BounceReason::NoSuchAddress => "the address does not exist",
            BounceReason::MailboxFull => "the mailbox is full",
            BounceReason::Refused => "the receiving mail server refused the message",
            BounceReason::GaveUp => {
                "the mail server could not take the message, after several tries"
            }
        }
    }

    /// Why our relay (or the server behind it) would not take a message, from the error the
    /// outbox kept: an enhanced status code when the reply has one (`550 5.1.1 …`), else the
    /// reply code (`552`), else the outbox gave up on a failure that was never final.
    pub fn of_relay_error(error: &str) -> Self {
        let words = || {
            error
                .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ':' | ',' | ';'))
                .filter(|w| !w.is_empty())
        };
        if let Some(code) = words()
            .filter(|w| w.contains('.'))
            .find_map(StatusCode::parse)
        {
            return if code.is_permanent() {
                code.reason()
            } else {
                BounceReason::GaveUp
            };
        }
        match words().find(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit())) {
            Some("552") => BounceReason::MailboxFull,
            Some("551" | "553") => BounceReason::NoSuchAddress,
            Some(code) if code.starts_with('5') => BounceReason::Refused,
            _ => BounceReason::GaveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_read_and_worded() {
        let code = StatusCode::parse("5.1.1").expect("code");
        assert!(code.is_permanent());
        assert_eq!(code.reason(), BounceReason::NoSuchAddress);
        assert_eq!(
            StatusCode::parse("5.2.2 (mailbox full)").map(StatusCode::reason),
            Some(BounceReason::MailboxFull)
        );
        assert_eq!(
            StatusCode::parse("5.7.1").map(StatusCode::reason),
            Some(BounceReason::Refused)
        );
        assert!(StatusCode::parse("4.4.7").expect("code").is_temporary());
        assert_eq!(StatusCode::parse("9.1.1"), None);
        assert_eq!(StatusCode::parse("5.1"), None);
    }

    #[test]
    fn relay_errors_are_worded() {
        let of = BounceReason::of_relay_error;
        assert_eq!(
            of("permanent error (550): 5.1.1 <bob@example.org>: no such user"),
            BounceReason::NoSuchAddress
        );
        assert_eq!(
            of("permanent error (552): quota"),
            BounceReason::MailboxFull
        );
        assert_eq!(of("550 5.7.1 spam"), BounceReason::Refused);
        assert_eq!(of("permanent error (554): go away"), BounceReason::Refused);
        assert_eq!(
            of("transient error (421): 4.3.2 shutting down"),
            BounceReason::GaveUp
        );
        assert_eq!(of("connection refused"), BounceReason::GaveUp);
        assert_eq!(of("connecting to 127.0.0.1:25"), BounceReason::GaveUp);
    }
}
