//! How long records are kept, and how often the janitor deletes the older ones.

use std::time::Duration;

use super::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Audit records older than this are deleted (`None`: kept forever).
    pub audit: Option<Duration>,
    /// Outbox rows of messages sent longer ago than this are deleted (`None`: kept forever);
    /// the invitation keeps the delivery's status and time.
    pub outbox: Option<Duration>,
    /// How often the janitor in `serve` runs (and once at start).
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            audit: Some(Duration::from_secs(365 * 86_400)),
            outbox: Some(Duration::from_secs(30 * 86_400)),
            interval: Duration::from_secs(600),
        }
    }
}

/// A duration, or `off` (kept forever).
pub fn parse_retention(raw: &str) -> Result<Option<Duration>, String> {
    if raw.trim() == "off" {
        return Ok(None);
    }
    parse_duration(raw)
        .map(Some)
        .map_err(|e| format!("{e}, or off"))
}
