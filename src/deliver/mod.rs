//! Deliveries other than email: webhooks, sent by the outbox workers from the rows the changes
//! queued in their transactions (`store::sql::events`). Never inside a request.

pub mod client;
pub mod webhooks;

pub use client::check_endpoint_url;
pub use webhooks::WebhookWorker;
