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
        if raw.chars().any(is_forbidden) {
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

/// The characters no name may contain, as inclusive ranges. Category Cc (`char::is_control`)
/// covers CR, LF, TAB, NUL, ESC, DEL and the C1 range. The Unicode line and paragraph separators
/// (U+2028, U+2029) end a line for some readers, and the bidirectional embeddings, overrides and
/// isolates (U+202A..U+202E, U+2066..U+2069) can make an inviter's name in a subject line read as
/// something else ("Trojan Source"); the marks U+200E/U+200F, which right-to-left names may
/// need, stay allowed. The OpenAPI document's pattern for names is built from this list.
pub const FORBIDDEN_CHARS: [(char, char); 4] = [
    ('\u{0}', '\u{1F}'),
    ('\u{7F}', '\u{9F}'),
    ('\u{2028}', '\u{202E}'),
    ('\u{2066}', '\u{2069}'),
];

fn is_forbidden(c: char) -> bool {
    FORBIDDEN_CHARS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
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

    #[test]
    fn the_forbidden_ranges_are_the_control_characters_and_the_listed_others() {
        let others = [
            '\u{2028}', '\u{2029}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
        ];
        let isolates = ['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'];
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let expected = c.is_control() || others.contains(&c) || isolates.contains(&c);
            assert_eq!(is_forbidden(c), expected, "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn rejects_line_separators_and_bidirectional_overrides() {
        for bad in [
            "a\u{2028}b",
            "a\u{2029}b",
            "Ada\u{202E}lave",
            "a\u{2066}b\u{2069}",
        ] {
            assert_eq!(
                PersonName::parse(bad, "last_name"),
                Err(NameError::ControlCharacter { field: "last_name" }),
                "{bad:?}"
            );
        }
        assert!(PersonName::parse("\u{200F}שרה", "first_name").is_ok());
    }
}

/// Properties that must hold for every input, not only the examples above.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Names near the length limit, with spaces at either end and, now and then, a character
    /// that must be refused.
    fn name_like() -> impl Strategy<Value = String> {
        let body = prop::collection::vec(
            prop_oneof![
                8 => any::<char>().prop_filter("printable", |c| !is_forbidden(*c)),
                1 => prop::sample::select(vec![
                    '\r', '\n', '\t', '\0', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{202E}',
                ]),
                2 => Just(' '),
            ],
            0..170,
        );
        ("[ \u{3000}]{0,3}", body, "[ \u{a0}]{0,3}").prop_map(|(lead, body, trail)| {
            format!("{lead}{}{trail}", body.into_iter().collect::<String>())
        })
    }

    /// The whole rule, written out plainly: what `parse` must answer for `raw`.
    fn expected(raw: &str) -> Result<String, NameError> {
        let field = "first_name";
        if raw.chars().any(is_forbidden) {
            Err(NameError::ControlCharacter { field })
        } else if raw.trim().chars().count() > MAX_NAME_CHARS {
            Err(NameError::TooLong { field })
        } else {
            Ok(raw.trim().to_owned())
        }
    }

    fn check(raw: &str) -> Result<(), TestCaseError> {
        let parsed = PersonName::parse(raw, "first_name");
        let want = expected(raw);
        prop_assert_eq!(parsed.as_ref().map(PersonName::as_str), want.as_deref());
        if let Ok(name) = parsed {
            prop_assert!(!name.as_str().chars().any(char::is_control));
            prop_assert!(name.as_str().chars().count() <= MAX_NAME_CHARS);
            prop_assert_eq!(
                PersonName::parse(name.as_str(), "first_name"),
                Ok(name.clone())
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_string_is_a_clean_name_or_an_error(raw in any::<String>()) {
            check(&raw)?;
        }

        #[test]
        fn names_near_the_limits_follow_the_rule(raw in name_like()) {
            check(&raw)?;
        }
    }
}
