use std::fmt;

/// An email address that passed validation.
///
/// The local part keeps the spelling it was first given (some mail servers treat it as case
/// sensitive); the domain is lower-cased. `key()` is the case-insensitive identity used for
/// uniqueness, so `Bob@X.org` and `bob@x.org` are one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

pub const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is required")]
    Empty,
    #[error("email is longer than {MAX_EMAIL_LEN} characters")]
    TooLong,
    #[error("'{0}' is not a valid email address")]
    Invalid(String),
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        let invalid = || EmailError::Invalid(printable(trimmed));
        let (local, domain) = trimmed.rsplit_once('@').ok_or_else(invalid)?;
        if !valid_local_part(local) || !valid_domain(domain) {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// For values read back from the store, which were validated when written.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of the address.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The dot-atom form of RFC 5322 (no quoted strings or comments): everything a real invitee's
/// address uses, and nothing that could smuggle header syntax into a message.
fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()))
}

/// Echo user input in an error message: at most 80 characters, control characters replaced.
pub fn printable(raw: &str) -> String {
    raw.chars()
        .take(80)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lower_cased_and_local_part_kept() {
        let email = EmailAddress::parse("Bob.Smith@Example.ORG").expect("valid");
        assert_eq!(email.as_str(), "Bob.Smith@example.org");
        assert_eq!(email.key(), "bob.smith@example.org");
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        let email = EmailAddress::parse("  ann@x.org ").expect("valid");
        assert_eq!(email.as_str(), "ann@x.org");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@x.org",
            "a@",
            "a@x",
            "a@@x.org",
            "a b@x.org",
            "a@x..org",
            ".a@x.org",
            "a.@x.org",
            "a@-x.org",
            "a@x.org\r\nBcc: evil@y.org",
            "a\n@x.org",
            "\"quoted\"@x.org",
            "a@x.123",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rejects_overlong_addresses() {
        let long = format!("{}@{}.org", "a".repeat(60), "b".repeat(200));
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::TooLong));
    }
}
