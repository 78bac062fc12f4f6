//! cbh-invite: invite a colleague to a research data platform by email.
//!
//! The crate is laid out by layer: `http` speaks the ChemBio Hub / Tastypie wire format,
//! `domain` holds the types and rules (no I/O), `invite` is the use case of inviting people
//! (between the callers and the store), `store` persists them behind a trait,
//! `mail` renders and delivers the outbox in the background, `deliver` sends webhooks the same
//! way, `maintenance` deletes what is kept no longer, and `cli` is the command line.
#![deny(clippy::unwrap_used)]

pub mod checks;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod domain;
pub mod http;
pub mod i18n;
pub mod invite;
pub mod mail;
pub mod maintenance;
pub mod startup;
pub mod store;
pub mod telemetry;
