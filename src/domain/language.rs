use std::fmt;

use unic_langid::LanguageIdentifier;

/// RFC 5646 advises room for 35 characters; a longer tag is refused rather than stored.
const MAX_TAG_LEN: usize = 35;

/// A BCP 47 language tag (`de`, `pt-BR`, `zh-Hant-TW`) in its canonical case. Extensions and
/// private use (`-u-…`, `-x-…`) are dropped: they never change which catalog is read. Whether
/// we have a catalog for it is not this type's business: a tag without one is kept as given and
/// read in the closest language we have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Language(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: '{value}' is not a BCP 47 language tag such as en, de or pt-BR")]
pub struct LanguageError {
    pub field: &'static str,
    /// The input, cut to a printable length.
    pub value: String,
}

impl Language {
    /// `field` names the input in the error message (`language`).
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, LanguageError> {
        Self::normalize(raw.trim())
            .map(Self)
            .ok_or_else(|| LanguageError {
                field,
                value: raw.chars().filter(|c| !c.is_control()).take(40).collect(),
            })
    }

    /// For values read back from the store, which were checked when written.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn normalize(tag: &str) -> Option<String> {
        if tag.is_empty()
            || tag.len() > MAX_TAG_LEN
            || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
        let subtags: Vec<&str> = tag.split('-').collect();
        if subtags.iter().any(|s| s.is_empty() || s.len() > 8) {
            return None;
        }
        // The language, script, region and variants end at the first singleton (`u`, `x`, …),
        // whose subtags (checked above) are not kept.
        let head = subtags
            .iter()
            .position(|s| s.len() == 1)
            .unwrap_or(subtags.len());
        // A singleton must introduce at least one subtag (`de-x` is not a tag).
        if head == 0 || head + 1 == subtags.len() {
            return None;
        }
        let id: LanguageIdentifier = subtags[..head].join("-").parse().ok()?;
        Some(id.to_string())
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked_and_put_in_canonical_case() {
        let parse = |raw| Language::parse(raw, "language").map(|l| l.to_string());
        assert_eq!(parse("de-at").as_deref(), Ok("de-AT"));
        assert_eq!(parse(" FR ").as_deref(), Ok("fr"));
        assert_eq!(parse("zh-hant-tw").as_deref(), Ok("zh-Hant-TW"));
        assert_eq!(parse("de-DE-u-co-phonebk").as_deref(), Ok("de-DE"));
        assert_eq!(parse("es-419").as_deref(), Ok("es-419"));
        for bad in [
            "",
            "x",
            "de_AT",
            "de--AT",
            "-de",
            "en-",
            "fr FR",
            "123",
            "de-x",
            "en_GB",
            "a-very-long-but-otherwise-fine-tag-indeed",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        let error = Language::parse("de_AT", "language").expect_err("refused");
        assert_eq!(
            error.to_string(),
            "language: 'de_AT' is not a BCP 47 language tag such as en, de or pt-BR"
        );
    }
}
