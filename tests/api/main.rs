//! Black-box tests of cbh-invite: the real application on a real socket, a fresh SQLite
//! database per test, and a real SMTP server on loopback. One test binary keeps build time low.

mod accept;
mod browser;
mod cli;
mod email;
mod errors;
mod helpers;
mod invitations;
mod listing;
mod outbox;
mod page_security;
mod pages;
mod revoke;
mod session;
mod smtp;
