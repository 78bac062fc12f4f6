//! How webhooks are delivered (retries, attempts and leases are the email outbox's).

use std::time::Duration;

/// `CBH_WEBHOOK_*`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Bounds each delivery: connecting, sending and the receiver's answer.
    pub timeout: Duration,
    /// Whether endpoints may be loopback, private or link-local addresses.
    pub allow_private: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            allow_private: false,
        }
    }
}

/// A boolean setting: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`/empty.
pub fn parse_flag(var: &str, flag: &str, raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(format!("{var} ({flag}): '{other}' is not true or false")),
    }
}

/// `CBH_WEBHOOK_ALLOW_PRIVATE` as the CLI reads it (outside `serve`): unset is false.
pub fn allow_private_from_env() -> Result<bool, String> {
    match std::env::var("CBH_WEBHOOK_ALLOW_PRIVATE") {
        Ok(raw) => parse_flag("CBH_WEBHOOK_ALLOW_PRIVATE", "--webhook-allow-private", &raw),
        Err(_) => Ok(false),
    }
}
