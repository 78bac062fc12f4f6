use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Bytes of entropy in every secret we hand out: 256 bits, well above the 128 required.
const SECRET_BYTES: usize = 32;
/// Length of the URL-safe base64 text of `SECRET_BYTES` bytes.
const SECRET_TEXT_LEN: usize = 43;

/// A secret given to a client once (accept-link token, session id, CSRF token, API key).
///
/// Only its SHA-256 hash is stored: the secrets are random and long, so a fast hash is enough
/// (a slow password hash protects low-entropy input, which these are not).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// The stored form of a `Token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub Vec<u8>);

impl Token {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        // The OS random source failing leaves nothing safe to do: no secret may be weak.
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parse a secret presented by a client. Anything that is not the shape we issue is refused
    /// before it reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == SECRET_TEXT_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).to_vec())
    }

    /// The token of an accept link's one-click unsubscribe link (`List-Unsubscribe`, RFC 8058).
    /// Headers are shown, logged and followed by mail providers more freely than a body's
    /// links, so they carry this one-way derivative rather than the secret that accepts: it can
    /// only decline and unsubscribe, and cannot be turned back into the accept token.
    pub fn unsubscribe_token(&self) -> Token {
        let mut digest = Sha256::new();
        digest.update(b"cbh-invite one-click unsubscribe\0");
        digest.update(self.0.as_bytes());
        Self(URL_SAFE_NO_PAD.encode(digest.finalize()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Random bytes as lowercase hex, for identifiers that are not secrets (request ids, Message-IDs).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_differ() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(Token::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.hash().0.len(), 32);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert!(Token::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_unsubscribe_token_is_a_token_of_its_own() {
        let accept = Token::generate();
        let unsubscribe = accept.unsubscribe_token();
        assert_eq!(
            Token::parse(unsubscribe.expose()),
            Some(unsubscribe.clone())
        );
        assert_ne!(unsubscribe, accept);
        assert_eq!(unsubscribe, accept.unsubscribe_token());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let token = Token::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
    }
}

/// Properties of `Token::parse` over every input.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn well_formed(raw: &str) -> bool {
        raw.len() == SECRET_TEXT_LEN
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    fn check(raw: &str) -> Result<(), TestCaseError> {
        let parsed = Token::parse(raw);
        prop_assert_eq!(parsed.is_some(), well_formed(raw), "{:?}", raw);
        if let Some(token) = parsed {
            prop_assert_eq!(token.expose(), raw);
            prop_assert_eq!(Token::parse(token.expose()), Some(token.clone()));
            prop_assert_eq!(token.hash(), token.hash());
            prop_assert_eq!(token.hash().0.len(), 32);
            let shown = format!("{token:?}");
            prop_assert!(!shown.contains(raw));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_string_is_a_well_formed_token_or_nothing(raw in any::<String>()) {
            check(&raw)?;
        }

        #[test]
        fn strings_near_the_token_shape(raw in "[A-Za-z0-9_=+/. \n-]{41,45}|[A-Za-z0-9_-]{40,46}|[A-Za-z0-9_é-]{42,43}") {
            check(&raw)?;
        }

        #[test]
        fn tokens_differ_by_their_hash(a in "[A-Za-z0-9_-]{43}", b in "[A-Za-z0-9_-]{43}") {
            let (a, b) = (Token::parse(&a).expect("valid"), Token::parse(&b).expect("valid"));
            prop_assert_eq!(a == b, a.hash() == b.hash());
        }
    }
}
