//! The one-click unsubscribe headers of RFC 8058, on every message with an accept link:
//! `List-Unsubscribe: <https://…/{ns}/unsubscribe/{token}>` and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`. The token is the accept token's
//! one-way derivative (`Token::unsubscribe_token`): it can decline and unsubscribe, never
//! accept.

use lettre::message::header::{Header, HeaderName, HeaderValue};

use crate::domain::Token;

/// The one-click unsubscribe link of an accept token (`None` for a token we never issue).
pub fn unsubscribe_url(public_url: &str, namespace: &str, accept_token: &str) -> Option<String> {
    let token = Token::parse(accept_token)?.unsubscribe_token();
    Some(format!(
        "{public_url}/{namespace}/unsubscribe/{}",
        token.expose()
    ))
}

/// The decline page of an accept link, for the email's body.
pub fn decline_url(public_url: &str, namespace: &str, accept_token: &str) -> String {
    format!("{public_url}/{namespace}/decline/{accept_token}")
}

/// `List-Unsubscribe: <url>` (RFC 2369).
#[derive(Debug, Clone)]
pub struct ListUnsubscribe(pub String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(raw: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let url = raw.trim().trim_start_matches('<').trim_end_matches('>');
        Ok(Self(url.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone, Copy)]
pub struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}
