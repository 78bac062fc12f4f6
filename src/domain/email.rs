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
        let invalid = || EmailError::Invalid(printable(raw.trim()));
        // Refused anywhere, even where trimming would drop it: `"a@x.org\r\n"` is a header
        // injection attempt, not an address with stray whitespace.
        if raw.chars().any(char::is_control) {
            return Err(invalid());
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
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

    /// The part after the `@`, lower-cased ASCII.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// The case-insensitive identity of the address.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The mailbox the sending limits count for, whatever namespace and `+tag`: the key
    /// without the local part's `+tag` (`bob+1@x.org` is `bob@x.org`), so tags cannot
    /// multiply what one inbox receives. Only for counting: addresses are stored as given.
    /// `migrations/*/0004_sending_limits.sql` computes the same in SQL for older rows.
    pub fn recipient_key(&self) -> String {
        let key = self.key();
        match key.rsplit_once('@') {
            Some((local, domain)) => match local.find('+') {
                // A local part that starts with `+` has nothing before its tag to keep.
                Some(tag) if tag > 0 => format!("{}@{domain}", &local[..tag]),
                _ => key,
            },
            None => key,
        }
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
    fn recipient_key_drops_the_tag_and_case() {
        let key = |raw: &str| EmailAddress::parse(raw).expect("valid").recipient_key();
        assert_eq!(key("Bob+Lab.1@Example.org"), "bob@example.org");
        assert_eq!(key("bob@example.org"), "bob@example.org");
        assert_eq!(key("+x@example.org"), "+x@example.org");
        assert_eq!(key("a+b+c@example.org"), "a@example.org");
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
            "a@x.org\r\n",
            "\ta@x.org",
            "a@x.org\u{85}",
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

/// Properties that must hold for every input, not only the examples above.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Strings close to addresses: the characters that matter (specials, dots, `@`, case,
    /// whitespace, CR/LF, NUL, non-ASCII) around one `@`, and lengths near the limits.
    fn address_like() -> impl Strategy<Value = String> {
        let part = "[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\\-@\"\\\\ \t\r\n\u{0}\u{85}éÅ€]{0,70}";
        let domain = "([A-Za-z0-9-]{1,64}\\.){0,5}[A-Za-z0-9-]{0,64}";
        (
            "[ \t\n]{0,2}",
            part,
            prop::option::of(domain),
            "[ \t\r\n]{0,2}",
        )
            .prop_map(|(lead, local, domain, trail)| match domain {
                Some(domain) => format!("{lead}{local}@{domain}{trail}"),
                None => format!("{lead}{local}{trail}"),
            })
    }

    /// Addresses our rule accepts, generated from the rule itself.
    fn valid_address() -> impl Strategy<Value = (String, String)> {
        let atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}";
        let local = prop::collection::vec(atom, 1..4).prop_map(|atoms| atoms.join("."));
        let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?";
        let domain = (
            prop::collection::vec(label, 1..4),
            "[A-Za-z][A-Za-z0-9]{0,8}",
        )
            .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")));
        (local, domain).prop_filter("within the local-part limit", |(local, _)| {
            local.len() <= MAX_LOCAL_LEN
        })
    }

    fn check(raw: &str) -> Result<(), TestCaseError> {
        match EmailAddress::parse(raw) {
            Ok(email) => {
                let text = email.as_str();
                prop_assert!(text.is_ascii(), "{text:?}");
                prop_assert!(
                    !text.chars().any(|c| c.is_control() || c.is_whitespace()),
                    "{text:?}"
                );
                prop_assert!(text.len() <= MAX_EMAIL_LEN);
                prop_assert_eq!(text.matches('@').count(), 1);
                let (local, domain) = text.split_once('@').expect("one @");
                prop_assert_eq!(domain, domain.to_ascii_lowercase());
                prop_assert!(raw.contains(local), "the local part keeps its spelling");
                prop_assert_eq!(email.key(), text.to_lowercase());
                // Normalising twice changes nothing, and the key is an address of its own.
                prop_assert_eq!(EmailAddress::parse(text), Ok(email.clone()));
                let key = EmailAddress::parse(&email.key()).map(|k| k.key());
                prop_assert_eq!(key, Ok(email.key()));
                prop_assert!(!raw.chars().any(char::is_control));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(!message.is_empty());
                prop_assert!(!message.chars().any(char::is_control), "{message:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_string_is_a_normalised_address_or_an_error(raw in any::<String>()) {
            check(&raw)?;
        }

        #[test]
        fn address_like_strings_are_normalised_addresses_or_errors(raw in address_like()) {
            check(&raw)?;
        }

        #[test]
        fn addresses_of_the_rule_are_accepted_whatever_their_case(
            (local, domain) in valid_address(),
            pad in "[ ]{0,3}",
        ) {
            let raw = format!("{pad}{local}@{domain}{pad}");
            let email = EmailAddress::parse(&raw);
            let normalised = format!("{local}@{}", domain.to_ascii_lowercase());
            prop_assert_eq!(email.as_ref().map(EmailAddress::as_str), Ok(normalised.as_str()));
            let shouted = EmailAddress::parse(&raw.to_uppercase()).map(|e| e.key());
            prop_assert_eq!(shouted, email.map(|e| e.key()));
        }

        #[test]
        fn a_control_character_anywhere_is_refused(
            (local, domain) in valid_address(),
            control in prop::sample::select(vec!['\r', '\n', '\t', '\0', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}']),
            at in any::<prop::sample::Index>(),
        ) {
            let mut raw: Vec<char> = format!("{local}@{domain}").chars().collect();
            raw.insert(at.index(raw.len() + 1), control);
            let raw: String = raw.into_iter().collect();
            prop_assert!(EmailAddress::parse(&raw).is_err(), "{raw:?}");
        }
    }
}
