//! The HTTP client of webhook deliveries, and where it may connect.
//!
//! A webhook URL is chosen by an administrator, but where its name points is chosen by whoever
//! runs its DNS. So the check runs twice: when the endpoint is added (the URL as written, and
//! what its name resolves to then), and at every connection, by the client's own resolver,
//! which hands the connector only addresses it has checked: a name that resolves to a public
//! address when added and to 127.0.0.1 or the metadata service later (DNS rebinding) is refused.
//! URLs that name an address are checked before sending (the resolver never sees them).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::domain::webhook::{parse_url, refused_address, refused_host};

/// How long the check at creation waits for DNS (an unresolvable name is checked again at
/// each connection).
const CREATION_DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection the resolver refused: the delivery fails for good with this text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

const ALLOW_HINT: &str = "(CBH_WEBHOOK_ALLOW_PRIVATE=true allows it, for development)";

/// Checks an endpoint URL when it is added: `http(s)`, and unless `allow_private`, neither
/// written as nor resolving to a loopback, private, link-local or metadata address.
pub async fn check_endpoint_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = parse_url(raw)?;
    if allow_private {
        return Ok(url);
    }
    if let Some(why) = refused_host(&url) {
        return Err(format!("refused: {why} {ALLOW_HINT}"));
    }
    if let Some(Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        if let Ok(Ok(addresses)) =
            tokio::time::timeout(CREATION_DNS_TIMEOUT, tokio::net::lookup_host((name, port))).await
        {
            for address in addresses {
                if let Some(why) = refused_address(address.ip()) {
                    return Err(format!(
                        "refused: {name} resolves to {}, {why} {ALLOW_HINT}",
                        address.ip()
                    ));
                }
            }
        }
    }
    Ok(url)
}

/// Why a URL that names an address may not be connected to (the resolver, which checks the
/// addresses of names, never sees it).
pub fn refused_before_connecting(url: &Url, allow_private: bool) -> Option<String> {
    let ip: IpAddr = match url.host()? {
        Host::Ipv4(ip) => ip.into(),
        Host::Ipv6(ip) => ip.into(),
        Host::Domain(_) => return None,
    };
    if allow_private {
        return None;
    }
    refused_address(ip).map(|why| format!("refused: {ip} is {why} {ALLOW_HINT}"))
}

/// The client: rustls (ring), no proxy, no redirects (a 3xx is an answer that is not 2xx,
/// retried), every request bounded by `timeout`, names resolved by `GuardedResolver`.
pub fn build_client(timeout: Duration, allow_private: bool) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("cbh-invite-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .build()
        .context("building the webhook HTTP client")
}

/// Resolves with the system resolver, then keeps only the addresses events may go to.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow_private {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|address| refused_address(address.ip()).is_none());
            if allowed.is_empty() {
                let why = refused
                    .first()
                    .and_then(|a| refused_address(a.ip()).map(|why| format!("{}, {why}", a.ip())))
                    .unwrap_or_else(|| "no address".into());
                return Err(Box::new(Refused(format!(
                    "refused: {host} resolves to {why} {ALLOW_HINT}"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The refusal in an error's chain, if the resolver refused the connection.
pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        current = error.source();
    }
    None
}

/// An error and its causes on one line (reqwest's own text says little: "error sending
/// request").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        current = cause.source();
    }
    text
}
