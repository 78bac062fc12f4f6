//! Black-box tests of cbh-invite: the real application on a real socket, a fresh database per
//! test, and a real SMTP server on loopback. One test binary keeps build time low. What the
//! tests stand on lives in `support/`.

/// Runs each named `async fn name(backend: Backend)` as two tests, `name::sqlite` and
/// `name::postgres`: the same test on both storage backends.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let test = super::$name(crate::support::Backend::Sqlite);
                    crate::support::wait::test_within_deadline(test).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let test = concat!(module_path!(), "::postgres");
                    if crate::support::postgres::postgres_available(test) {
                        let test = super::$name(crate::support::Backend::Postgres);
                        crate::support::wait::test_within_deadline(test).await;
                    }
                }
            }
        )*
    };
}

mod accept;
mod admin;
mod admin_cli;
mod admin_pages;
mod authorization;
mod bounces;
mod bounces_postfix;
mod bulk;
mod bulk_cli;
mod bulk_page;
mod cli;
mod cli_options;
mod crash;
mod decline;
mod deploy;
mod dkim;
mod email;
mod errors;
mod expiry;
mod forward_auth;
mod hardening;
mod invitations;
mod invite_rules;
mod languages;
mod listing;
mod login_throttle;
mod notices;
mod openapi;
mod operations;
mod outbox;
mod page_languages;
mod page_security;
mod pages;
mod promises;
mod reminders;
mod retention;
mod revoke;
mod roles;
mod scaling;
mod secret_files;
mod sending_limits;
mod session;
mod shared_links;
mod smtp_delivery;
mod sqlite_writers;
mod support;
mod suppression;
mod timeouts;
mod tls_postgres;
mod tls_smtp;
mod web_client;
mod webhook_crash;
mod webhooks;
