//! `Content-Language` (RFC 3282): the language a message is written in, on every message, so
//! that a mail client can offer to translate it or pick a voice to read it aloud.

use lettre::message::header::{Header, HeaderName, HeaderValue};

/// `Content-Language: de`: a BCP 47 tag of one of our catalogs (plain ASCII, never folded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentLanguage(pub String);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim().to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}
