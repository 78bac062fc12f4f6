//! Limits that protect the service and the people it mails: sending and login limits, and
//! the HTTP server's defences against slow and numerous clients.

use std::time::Duration;

use super::parse_duration;

/// At most `max` events within `window` (a sliding window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    /// `N/DURATION` such as `200/1h`, or `off`.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        if raw.trim() == "off" {
            return Ok(None);
        }
        let err = || format!("'{raw}' is not a limit such as 200/1h or 5/24h (or off)");
        let (max, window) = raw.trim().split_once('/').ok_or_else(err)?;
        let max: u32 = max.parse().ok().filter(|n| *n > 0).ok_or_else(err)?;
        let window = parse_duration(window).map_err(|_| err())?;
        Ok(Some(Self { max, window }))
    }
}

/// Limits that keep the service from being used to flood inboxes or guess passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub invitations_per_inviter: Option<Limit>,
    pub emails_per_recipient: Option<Limit>,
    /// Failed logins per account *from one client address* (`CBH_LOGIN_ACCOUNT_RATE`): a
    /// burst from one address does not lock the owner out elsewhere.
    pub login_failures_per_account: Option<Limit>,
    /// Failed logins per account from all addresses together, against distributed guessing.
    pub login_account_ceiling: Option<Limit>,
    pub login_failures_per_client: Option<Limit>,
}

impl Default for Limits {
    fn default() -> Self {
        let limit = |max, secs| {
            Some(Limit {
                max,
                window: Duration::from_secs(secs),
            })
        };
        Self {
            invitations_per_inviter: limit(200, 3_600),
            emails_per_recipient: limit(5, 86_400),
            login_failures_per_account: limit(5, 900),
            login_account_ceiling: limit(100, 900),
            login_failures_per_client: limit(20, 900),
        }
    }
}

/// How the HTTP server protects itself from slow and numerous clients (slowloris).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpServerSettings {
    /// A client that has not sent a whole request head this long after its first byte is
    /// disconnected.
    pub header_timeout: Duration,
    /// A request body not received this long after its head is answered 408.
    pub body_timeout: Duration,
    /// A connection with no request in progress and no traffic this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests handled at once; further ones are answered 503 at once.
    pub max_in_flight: usize,
}

impl Default for HttpServerSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_in_flight: 1024,
        }
    }
}
