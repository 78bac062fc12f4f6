//! The SMTP relay and how the outbox worker retries.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::Limit;

/// How the outbox worker retries.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    /// How long a claimed message is reserved for the worker that claimed it.
    pub lease: Duration,
    /// How long SIGTERM waits for sends in flight.
    pub shutdown_grace: Duration,
    /// Bounds connecting to the relay and each SMTP command.
    pub smtp_timeout: Duration,
    /// How long the worker sleeps when nothing wakes it (new messages wake it at once).
    pub poll_interval: Duration,
    /// `CBH_BOUNCE_ADDRESS`: the envelope sender, with each message's id added (VERP); `None`:
    /// the From address.
    pub bounce_address: Option<lettre::Address>,
    /// `CBH_SMTP_CONNECTIONS`: SMTP sessions open to the relay at once, each reused for many
    /// messages; also how many messages are in flight.
    pub smtp_connections: usize,
    /// `CBH_SMTP_RATE`: at most this many messages per period across the node's connections;
    /// `None`: as fast as the relay takes them.
    pub smtp_rate: Option<Limit>,
}

/// `CBH_SMTP_CONNECTIONS` accepts 1 to this: a relay takes few sessions per client, and each
/// holds a socket and a task.
pub const MAX_SMTP_CONNECTIONS: usize = 1024;

/// `CBH_SMTP_CONNECTIONS`: a whole number from 1 to `MAX_SMTP_CONNECTIONS`.
pub fn parse_smtp_connections(raw: &str) -> Result<usize, String> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_SMTP_CONNECTIONS).contains(n))
        .ok_or_else(|| {
            format!(
                "CBH_SMTP_CONNECTIONS (--smtp-connections): '{raw}' is not a number from 1 to \
                 {MAX_SMTP_CONNECTIONS}"
            )
        })
}

/// `CBH_SMTP_RATE`: unset or `off`, unlimited; otherwise `N/DURATION` such as `14/1s`.
pub fn parse_smtp_rate(raw: Option<&str>) -> Result<Option<Limit>, String> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    Limit::parse(raw).map_err(|_| {
        format!(
            "CBH_SMTP_RATE (--smtp-rate): '{raw}' is not a rate such as 14/1s or 1000/1h \
             (messages per period, a whole number above 0 and a duration from 1s to 365d), \
             nor off"
        )
    })
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            max_attempts: 10,
            lease: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            smtp_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            bounce_address: None,
            smtp_connections: 32,
            smtp_rate: None,
        }
    }
}

/// An SMTP relay. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
    /// `CBH_SMTP_CA_FILE`: PEM certificates trusted for this relay, besides the built-in roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP, for a relay on the same machine or network.
    None,
    /// STARTTLS, required (never silently downgraded).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl SmtpSettings {
    /// `smtp://[user:pass@]host:port[?tls=starttls]` or `smtps://[user:pass@]host:port`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // The URL may carry a password: never echo it back.
        let bad = |why: &str| format!("CBH_SMTP_URL (--smtp-url): {why}");
        let url = Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls_query = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls = match (url.scheme(), tls_query.as_deref()) {
            ("smtps", None | Some("implicit")) => SmtpTls::Implicit,
            ("smtp", None | Some("none")) => SmtpTls::None,
            ("smtp", Some("starttls")) => SmtpTls::StartTls,
            ("smtp" | "smtps", Some(other)) => {
                return Err(bad(&format!(
                    "tls={other} is not one of none, starttls (smtp://) or implicit (smtps://)"
                )));
            }
            (scheme, _) => {
                return Err(bad(&format!(
                    "scheme '{scheme}' is not smtp:// or smtps://"
                )));
            }
        };
        let port = url.port().unwrap_or(match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
        });
        let credentials = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s)
                    .ok_or_else(|| bad("user or password is not valid percent-encoding"))
            };
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or_default())?,
            ))
        };
        Ok(Self {
            host,
            port,
            tls,
            credentials,
            ca_file: None,
        })
    }

    /// One line for the start-up log: where, how, as whom; never the password.
    pub fn describe(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut line = format!("SMTP relay {host}:{}", self.port);
        line.push_str(match self.tls {
            SmtpTls::None => ", no TLS",
            SmtpTls::StartTls => ", STARTTLS required",
            SmtpTls::Implicit => ", TLS (smtps)",
        });
        if let Some((user, _)) = &self.credentials {
            line.push_str(&format!(", as {user}"));
        }
        if let Some(ca) = &self.ca_file {
            line.push_str(&format!(", trusting the CA in {}", ca.display()));
        }
        line
    }
}

/// `CBH_SMTP_CA_FILE`: only with a relay spoken to over TLS, and a readable file of PEM
/// certificates (checked here, so that a wrong file is a start-up error like any bad setting).
pub(super) fn attach_ca_file(smtp: &mut Option<SmtpSettings>, path: &Path) -> Result<(), String> {
    let bad = |why: String| format!("CBH_SMTP_CA_FILE (--smtp-ca-file): {why}");
    let relay = match smtp {
        Some(relay) if relay.tls != SmtpTls::None => relay,
        Some(_) => {
            return Err(bad(
                "CBH_SMTP_URL uses no TLS (smtp:// without tls=starttls), so \
                 no CA is needed"
                    .into(),
            ));
        }
        None => return Err(bad("set without CBH_SMTP_URL".into())),
    };
    let pem =
        std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad(format!("{} holds no PEM certificate", path.display())));
    }
    relay.ca_file = Some(path.to_owned());
    Ok(())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `CBH_BOUNCE_ADDRESS`: a plain address whose local part has no `+` (the `+` starts the
/// message's id, and a mail server splits the address at the first one).
pub fn parse_bounce_address(raw: &str) -> Result<lettre::Address, String> {
    let error = |why: &str| format!("CBH_BOUNCE_ADDRESS (--bounce-address): '{raw}' {why}");
    let address: lettre::Address = raw
        .trim()
        .parse()
        .map_err(|e| error(&format!("is not an address ({e})")))?;
    if address.user().contains('+') {
        return Err(error(
            "has a '+' in its local part, where each message's id goes (bounces+ID@domain)",
        ));
    }
    Ok(address)
}

#[cfg(test)]
mod bounce_address_tests {
    use super::parse_bounce_address;

    #[test]
    fn the_bounce_address_is_a_plain_address_without_a_plus() {
        let address = parse_bounce_address("bounces@lab.example").expect("valid");
        assert_eq!(address.to_string(), "bounces@lab.example");
        for bad in [
            "bounces",
            "Bounces <bounces@lab.example>",
            "bounces+x@lab.example",
        ] {
            let error = parse_bounce_address(bad).expect_err(bad);
            assert!(
                error.starts_with("CBH_BOUNCE_ADDRESS (--bounce-address)"),
                "{error}"
            );
        }
    }
}
