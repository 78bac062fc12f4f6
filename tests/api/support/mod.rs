//! What the tests stand on, kept apart from the tests: the application in-process
//! (`spawn_app`), its callers (`Agent`), the real binary, a real browser, SMTP server and
//! PostgreSQL, and waiting with deadlines. The most used names are re-exported here.

pub mod agent;
pub mod app;
pub mod binary;
pub mod bounce_reports;
pub mod browser;
pub mod cluster;
pub mod dkim;
pub mod log;
pub mod nginx;
pub mod postfix;
pub mod postgres;
pub mod smtp;
pub mod tls;
pub mod wait;
pub mod webhooks;

pub use agent::{Agent, json_with_status};
pub use app::{Backend, NS, PASSWORD, TestApp, spawn_app, spawn_app_with};
