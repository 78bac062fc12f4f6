//! Outgoing email: templates render a message, a transport delivers it, and the outbox worker
//! moves queued messages from the database to the transport in the background.

pub mod dkim;
pub mod outbox;
pub mod templates;
pub mod transport;

pub use dkim::{AutoSubmitted, Signer};
pub use outbox::{DeliveryReport, Outbox};
pub use templates::{EmailContext, RenderedEmail, Templates};
pub use transport::{SendError, Transport};
