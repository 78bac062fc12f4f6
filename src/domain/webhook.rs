//! Webhook endpoints' rules: which URLs may receive events, their secrets, and the signature of
//! the Standard Webhooks specification (`webhook-signature: v1,<base64 HMAC-SHA256>`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::{Host, Url};

use super::EventType;

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// An endpoint's signing secret, `whsec_` + base64 of 32 random bytes. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        // As for tokens: no secret may be weak, so a failing random source stops here.
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(format!("whsec_{}", STANDARD.encode(bytes)))
    }

    /// A secret as stored.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the bytes the base64 part stands for.
    pub fn key(&self) -> Option<Vec<u8>> {
        let encoded = self.0.strip_prefix("whsec_")?;
        STANDARD.decode(encoded).ok()
    }

    /// The `webhook-signature` header of a message: `v1,` + base64(HMAC-SHA256(key,
    /// `{id}.{timestamp}.{body}`)).
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &str) -> Option<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key()?).ok()?;
        mac.update(format!("{webhook_id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        Some(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The events an endpoint receives: every one, or those listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(Vec<EventType>),
}

impl EventFilter {
    /// `a,b` (names of `EventType`), or empty/`*` for every event.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw == "*" {
            return Ok(EventFilter::All);
        }
        let mut events = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let event: EventType = name.parse()?;
            if !events.contains(&event) {
                events.push(event);
            }
        }
        Ok(EventFilter::Only(events))
    }

    pub fn from_list(events: Vec<EventType>) -> Self {
        if events.is_empty() {
            EventFilter::All
        } else {
            let mut unique = Vec::new();
            for event in events {
                if !unique.contains(&event) {
                    unique.push(event);
                }
            }
            EventFilter::Only(unique)
        }
    }

    /// As stored: `*`, or `,a,b,` (so that `LIKE '%,a,%'` finds one event).
    pub fn stored(&self) -> String {
        match self {
            EventFilter::All => "*".into(),
            EventFilter::Only(events) => {
                let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
                format!(",{},", names.join(","))
            }
        }
    }

    pub fn from_stored(raw: &str) -> Self {
        if raw == "*" {
            return EventFilter::All;
        }
        EventFilter::Only(
            raw.split(',')
                .filter_map(|name| name.parse().ok())
                .collect(),
        )
    }

    /// The event names, for display (`*` for every event).
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            EventFilter::All => vec!["*"],
            EventFilter::Only(events) => events.iter().map(|e| e.as_str()).collect(),
        }
    }
}

/// Parses an endpoint URL: `http` or `https`, a host, no credentials, not too long. Where it
/// points is checked apart (`refused_host`, and again after DNS when connecting).
pub fn parse_url(raw: &str) -> Result<Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the URL must start with http:// or https://".into());
    }
    if url.host().is_none() {
        return Err("the URL names no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must carry no credentials (the signature authenticates us)".into());
    }
    Ok(url)
}

/// Why the URL's host (as written, before DNS) may not receive events, if it may not.
pub fn refused_host(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Ipv4(ip) => refused_address(IpAddr::V4(ip)).map(|why| format!("{ip} is {why}")),
        Host::Ipv6(ip) => refused_address(IpAddr::V6(ip)).map(|why| format!("{ip} is {why}")),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let internal = name == "localhost"
                || name.ends_with(".localhost")
                || name == "metadata.google.internal"
                || name.ends_with(".internal");
            internal.then(|| format!("{name} is a local or internal name"))
        }
    }
}

/// Why an address may not receive events: loopback, private, link-local (the cloud metadata
/// service is 169.254.169.254), unique-local (fd00::/8), multicast, reserved, unspecified.
/// IPv4 addresses inside IPv6 (mapped, NAT64, 6to4) are judged as IPv4.
pub fn refused_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b {
                return refused_v4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
            }
            if s[0] == 0x2002 {
                return refused_v4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
            }
            refused_v6(v6)
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local or metadata address")
    } else if a == 0
        || ip.is_broadcast()
        || ip.is_multicast()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        Some("a reserved address")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Some("a reserved address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a unique-local (private) address")
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Some("a link-local address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert!(refused_address(ip).is_some(), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(refused_address(ip), None, "{ip} should be allowed");
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(parse_url("https://hooks.example.org/in").is_ok());
        assert!(parse_url("ftp://hooks.example.org/").is_err());
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("https://user:pw@hooks.example.org/").is_err());
        assert!(parse_url("not a url").is_err());
        assert!(parse_url(&format!("https://x.org/{}", "a".repeat(MAX_URL_LEN))).is_err());
        let local = parse_url("http://LOCALHOST./x").expect("parses");
        assert!(refused_host(&local).is_some());
        let literal = parse_url("http://[::1]:8080/").expect("parses");
        assert!(refused_host(&literal).is_some());
        let public = parse_url("https://hooks.example.org/").expect("parses");
        assert_eq!(refused_host(&public), None);
    }

    #[test]
    fn secrets_are_whsec_and_32_bytes_and_sign_like_the_specification() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.key().map(|k| k.len()), Some(32));
        // The example of the Standard Webhooks specification.
        let example = WebhookSecret::from_trusted("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        assert_eq!(
            example
                .sign(
                    "msg_p5jXN8AQM9LWM0D4loKWxJek",
                    1614265330,
                    r#"{"test": 2432232314}"#
                )
                .as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn event_filters_round_trip() {
        let filter = EventFilter::parse("invitation.created, email.failed").expect("parses");
        assert_eq!(EventFilter::from_stored(&filter.stored()), filter);
        assert_eq!(EventFilter::parse("").expect("parses"), EventFilter::All);
        assert!(EventFilter::parse("invitation.eaten").is_err());
    }
}
