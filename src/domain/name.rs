use std::fmt;

pub const MAX_NAME_CHARS: usize = 150;

/// A first or last name: at most 150 Unicode characters and no control characters, so that
/// a name can never break an email header. Empty is allowed (names are optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{field} is longer than {MAX_NAME_CHARS} characters")]
    TooLong { field: &'static str },
    #[error("{field} contains a control character")]
    ControlCharacter { field: &'static str },
}

impl PersonName {
    /// `field` names the input in the error message (`first_name`, `last_name`).
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, NameError> {
        // Category Cc covers CR, LF, TAB, NUL, ESC, DEL and the C1 range (U+0080..U+009F).
        if raw.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter { field });
        }
        let trimmed = raw.trim();
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong { field });
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// For values read back from the store, which were validated when written.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unicode_names_up_to_the_limit() {
        let name = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(
            PersonName::parse(&name, "first_name")
                .expect("valid")
                .as_str(),
            name
        );
    }

    #[test]
    fn rejects_names_over_the_limit() {
        let name = "a".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            PersonName::parse(&name, "last_name"),
            Err(NameError::TooLong { field: "last_name" })
        );
    }

    #[test]
    fn rejects_every_control_character() {
        for bad in [
            "a\rb", "a\nb", "a\tb", "a\0b", "a\u{1b}b", "a\u{7f}b", "a\u{85}b",
        ] {
            assert!(PersonName::parse(bad, "first_name").is_err(), "{bad:?}");
        }
    }
}
