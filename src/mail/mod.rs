//! Outgoing email: templates render a message, a transport delivers it, and the outbox worker
//! moves queued messages from the database to the transport in the background.

pub mod bounce;
pub mod bounce_notice;
pub mod content_language;
pub mod dkim;
pub mod notices;
pub mod outbox;
pub mod pacing;
pub mod reminders;
pub mod templates;
pub mod transport;
pub mod unsubscribe;
mod worker;

pub use content_language::ContentLanguage;
pub use dkim::{AutoSubmitted, Signer};
pub use outbox::{DeliveryReport, Outbox};
pub use reminders::Reminders;

/// An invitation's accept link, as the email carries it and as the API hands it out
/// (`CBH_LINK_SHARING`): one format, so both always point at the same page. `public_url` is
/// `CBH_PUBLIC_URL` without its trailing slash, never a request's host.
pub fn accept_url(public_url: &str, namespace: &str, token: &str) -> String {
    format!("{public_url}/{namespace}/accept/{token}")
}
pub use templates::{EmailContext, RenderedEmail, Templates};
pub use transport::{SendError, Transport};

#[cfg(test)]
mod language_tests;
