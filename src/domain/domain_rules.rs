//! Which email domains may be invited (`CBH_ALLOWED_DOMAINS`, `CBH_DENIED_DOMAINS`): parsing the
//! entries and matching an address's domain against them, in memory.
//!
//! An entry is a domain (`example.org`: that domain only) or `*.` and a domain (`*.ox.ac.uk`:
//! the domain itself and every subdomain, but not `notox.ac.uk`), optionally prefixed with a
//! namespace and a colon (`chembiohub:*.ox.ac.uk`: in that namespace only). Domains compare as
//! lower-cased ASCII: an internationalised entry is turned into its `xn--` form, which is how
//! addresses spell their domain (`EmailAddress` takes ASCII domains only).
//!
//! A denied entry that matches wins over any allowed one. The allowed entries that apply to a
//! namespace (those without a namespace and those of that namespace), when there is at least
//! one, are the only domains it may invite; a namespace to which none applies is not limited by
//! them.

use std::fmt;

/// The parsed rules; the default has none and permits every domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainRules {
    allowed: Vec<DomainRule>,
    denied: Vec<DomainRule>,
}

/// One entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    /// `None`: every namespace.
    namespace: Option<String>,
    /// Lower-cased ASCII, without a trailing dot.
    domain: String,
    /// `*.`: the domain and its subdomains.
    subdomains: bool,
}

impl DomainRule {
    /// One entry, trimmed: `[namespace:][*.]domain`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let entry = raw.trim();
        let (namespace, pattern) = match entry.split_once(':') {
            Some((ns, pattern)) => (Some(ns.trim()), pattern.trim()),
            None => (None, entry),
        };
        let bad = || {
            format!(
                "'{}' is not a domain such as example.org or *.example.org, optionally after \
                 a namespace and a colon",
                crate::domain::email::printable(entry)
            )
        };
        if namespace.is_some_and(str::is_empty) {
            return Err(bad());
        }
        let (subdomains, domain) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let domain = ascii_domain(domain).ok_or_else(bad)?;
        Ok(Self {
            namespace: namespace.map(str::to_owned),
            domain,
            subdomains,
        })
    }

    /// The namespace the entry is limited to, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn applies_to(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// `domain` must be lower-cased ASCII, as `EmailAddress` stores it.
    fn matches(&self, domain: &str) -> bool {
        if domain == self.domain {
            return true;
        }
        self.subdomains
            && domain.len() > self.domain.len()
            && domain.ends_with(self.domain.as_str())
            && domain.as_bytes()[domain.len() - self.domain.len() - 1] == b'.'
    }
}

impl fmt::Display for DomainRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}:")?;
        }
        if self.subdomains {
            f.write_str("*.")?;
        }
        f.write_str(&self.domain)
    }
}

/// The lower-cased ASCII (punycode) form of a host name, or `None` when it is not one with at
/// least two labels of letters, digits and hyphens.
fn ascii_domain(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.contains(['/', '@', ':', '*', ' ', '[', ']']) {
        return None;
    }
    let ascii = match url::Host::parse(raw).ok()? {
        url::Host::Domain(domain) => domain.to_ascii_lowercase(),
        _ => return None,
    };
    let labels: Vec<&str> = ascii.split('.').collect();
    let valid = labels.len() >= 2
        && ascii.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then_some(ascii)
}

/// A comma-separated list of entries; empty entries (and an empty list) are ignored.
pub fn parse_list(raw: &str) -> Result<Vec<DomainRule>, String> {
    raw.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(DomainRule::parse)
        .collect()
}

impl DomainRules {
    pub fn new(allowed: Vec<DomainRule>, denied: Vec<DomainRule>) -> Self {
        Self { allowed, denied }
    }

    /// Whether an address at `domain` (lower-cased ASCII, as `EmailAddress::domain` gives it)
    /// may be invited in `namespace`.
    pub fn permits(&self, namespace: &str, domain: &str) -> bool {
        let applicable = |rule: &&DomainRule| rule.applies_to(namespace);
        if self
            .denied
            .iter()
            .filter(applicable)
            .any(|rule| rule.matches(domain))
        {
            return false;
        }
        let mut allowed = self.allowed.iter().filter(applicable).peekable();
        allowed.peek().is_none() || allowed.any(|rule| rule.matches(domain))
    }

    /// Every entry that names a namespace, so that the configuration can check them.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.allowed
            .iter()
            .chain(&self.denied)
            .filter_map(DomainRule::namespace)
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty() && self.denied.is_empty()
    }
}

/// The message of the 403 for an address outside the rules.
pub fn refusal(domain: &str) -> String {
    format!("Invitations to addresses at {domain} are not allowed here")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allowed: &str, denied: &str) -> DomainRules {
        DomainRules::new(
            parse_list(allowed).expect("allowed"),
            parse_list(denied).expect("denied"),
        )
    }

    #[test]
    fn no_rules_permit_everything() {
        let none = DomainRules::default();
        assert!(none.permits("chembiohub", "example.org"));
        assert!(rules("", " , ").is_empty());
    }

    #[test]
    fn an_exact_entry_matches_that_domain_only() {
        let allowed = rules("example.org", "");
        assert!(allowed.permits("chembiohub", "example.org"));
        assert!(!allowed.permits("chembiohub", "lab.example.org"));
        assert!(!allowed.permits("chembiohub", "example.com"));
        assert!(!allowed.permits("chembiohub", "myexample.org"));
    }

    #[test]
    fn a_wildcard_matches_the_domain_and_its_subdomains_only() {
        let allowed = rules("*.ox.ac.uk", "");
        assert!(allowed.permits("chembiohub", "ox.ac.uk"));
        assert!(allowed.permits("chembiohub", "chem.ox.ac.uk"));
        assert!(allowed.permits("chembiohub", "a.b.ox.ac.uk"));
        assert!(!allowed.permits("chembiohub", "notox.ac.uk"));
        assert!(!allowed.permits("chembiohub", "ac.uk"));
        assert!(!allowed.permits("chembiohub", "ox.ac.uk.evil.org"));
    }

    #[test]
    fn denied_wins_over_allowed() {
        let both = rules("*.ox.ac.uk", "spam.ox.ac.uk");
        assert!(both.permits("chembiohub", "chem.ox.ac.uk"));
        assert!(!both.permits("chembiohub", "spam.ox.ac.uk"));
        let denied = rules("", "*.example.com");
        assert!(!denied.permits("chembiohub", "example.com"));
        assert!(!denied.permits("chembiohub", "x.example.com"));
        assert!(denied.permits("chembiohub", "example.org"));
    }

    #[test]
    fn namespace_entries_apply_in_their_namespace_only() {
        let scoped = rules("chembiohub:*.ox.ac.uk", "other:example.org");
        assert!(scoped.permits("chembiohub", "chem.ox.ac.uk"));
        assert!(!scoped.permits("chembiohub", "cam.ac.uk"));
        // No allowed entry applies to `other`: only its denied one limits it.
        assert!(scoped.permits("other", "cam.ac.uk"));
        assert!(!scoped.permits("other", "example.org"));
        assert!(scoped.permits("chembiohub", "chem.ox.ac.uk"));
        let mixed = rules("example.org, other:*.cam.ac.uk", "");
        assert!(mixed.permits("other", "cam.ac.uk"));
        assert!(mixed.permits("other", "example.org"));
        assert!(!mixed.permits("chembiohub", "cam.ac.uk"));
        assert_eq!(
            scoped.namespaces().collect::<Vec<_>>(),
            ["chembiohub", "other"]
        );
    }

    #[test]
    fn entries_compare_as_lower_case_ascii() {
        let upper = rules(" *.OX.AC.UK. ", "Example.ORG");
        assert!(upper.permits("chembiohub", "chem.ox.ac.uk"));
        assert!(!upper.permits("chembiohub", "example.org"));
        let idn = rules("", "*.münchen.de");
        assert!(!idn.permits("chembiohub", "xn--mnchen-3ya.de"));
        assert!(!idn.permits("chembiohub", "uni.xn--mnchen-3ya.de"));
        assert!(idn.permits("chembiohub", "munchen.de"));
        assert_eq!(
            DomainRule::parse("ns:*.MÜNCHEN.de").map(|r| r.to_string()),
            Ok("ns:*.xn--mnchen-3ya.de".into())
        );
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "*",
            "*.",
            "org",
            ".example.org",
            "a..b",
            "exa mple.org",
            "bob@example.org",
            ":example.org",
            "ns:",
            "a:b:example.org",
            "example.org/x",
            "*.*.example.org",
            "-a.org",
            "127.0.0.1",
            "[::1]",
        ] {
            assert!(DomainRule::parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse_list("example.org,,*.ox.ac.uk").is_ok());
    }

    #[test]
    fn the_refusal_names_the_domain() {
        assert_eq!(
            refusal("example.com"),
            "Invitations to addresses at example.com are not allowed here"
        );
    }
}
