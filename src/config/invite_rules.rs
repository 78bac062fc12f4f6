//! The rules on what an invitation may be: its lifetime (`CBH_INVITE_TTL_MAX`, bounding both
//! `CBH_INVITE_TTL` and a request's `expires_in`) and the domains it may go to
//! (`CBH_ALLOWED_DOMAINS`, `CBH_DENIED_DOMAINS`).

use std::time::Duration;

use super::parse::{parse_duration, validate_namespace};
use crate::domain::DomainRules;
use crate::domain::domain_rules::parse_list;

/// The shortest lifetime a request's `expires_in` may ask for.
pub const MIN_INVITE_TTL: Duration = Duration::from_secs(3_600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRules {
    /// The longest lifetime an invitation may have (`expires_in` above it is a 400).
    pub ttl_max: Duration,
    pub domains: DomainRules,
}

impl Default for InviteRules {
    fn default() -> Self {
        Self {
            ttl_max: Duration::from_secs(30 * 86_400),
            domains: DomainRules::default(),
        }
    }
}

impl InviteRules {
    /// Validates the flags: `ttl` is the already parsed `CBH_INVITE_TTL`, which must lie within
    /// the bounds; namespace-scoped entries must name a served namespace.
    pub fn parse(
        ttl: Duration,
        ttl_max: &str,
        allowed: Option<&str>,
        denied: Option<&str>,
        namespaces: &[String],
    ) -> Result<Self, String> {
        let ttl_max = parse_duration(ttl_max)
            .map_err(|e| format!("CBH_INVITE_TTL_MAX (--invite-ttl-max): {e}"))?;
        if ttl_max < MIN_INVITE_TTL {
            return Err(format!(
                "CBH_INVITE_TTL_MAX (--invite-ttl-max): {} s is shorter than the minimum of 1h",
                ttl_max.as_secs()
            ));
        }
        if ttl > ttl_max {
            return Err(format!(
                "CBH_INVITE_TTL (--invite-ttl): {} s is longer than CBH_INVITE_TTL_MAX ({} s)",
                ttl.as_secs(),
                ttl_max.as_secs()
            ));
        }
        let list = |var: &str, flag: &str, raw: Option<&str>| {
            let rules =
                parse_list(raw.unwrap_or("")).map_err(|e| format!("{var} ({flag}): {e}"))?;
            for ns in rules.iter().filter_map(|rule| rule.namespace()) {
                validate_namespace(ns).map_err(|e| format!("{var} ({flag}): {e}"))?;
                if !namespaces.iter().any(|served| served == ns) {
                    return Err(format!(
                        "{var} ({flag}): '{ns}' is not one of CBH_NAMESPACES"
                    ));
                }
            }
            Ok::<_, String>(rules)
        };
        let allowed = list("CBH_ALLOWED_DOMAINS", "--allowed-domains", allowed)?;
        let denied = list("CBH_DENIED_DOMAINS", "--denied-domains", denied)?;
        Ok(Self {
            ttl_max,
            domains: DomainRules::new(allowed, denied),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn served() -> Vec<String> {
        vec!["chembiohub".into(), "other".into()]
    }

    #[test]
    fn defaults_are_thirty_days_and_no_domain_rules() {
        let rules = InviteRules::parse(7 * DAY, "30d", None, None, &served()).expect("valid");
        assert_eq!(rules, InviteRules::default());
        assert!(rules.domains.permits("chembiohub", "example.com"));
    }

    #[test]
    fn errors_name_their_variable() {
        let error = |ttl, max: &str, allowed: Option<&str>, denied: Option<&str>| {
            InviteRules::parse(ttl, max, allowed, denied, &served()).expect_err("refused")
        };
        assert!(error(7 * DAY, "a month", None, None).starts_with("CBH_INVITE_TTL_MAX"));
        assert!(error(DAY, "30m", None, None).starts_with("CBH_INVITE_TTL_MAX"));
        assert!(error(31 * DAY, "30d", None, None).starts_with("CBH_INVITE_TTL "));
        assert!(
            error(DAY, "30d", Some("example.org, bob@x.org"), None)
                .starts_with("CBH_ALLOWED_DOMAINS (--allowed-domains): 'bob@x.org'")
        );
        assert!(error(DAY, "30d", None, Some("*")).starts_with("CBH_DENIED_DOMAINS"));
        let unknown = error(DAY, "30d", None, Some("nowhere:example.org"));
        assert!(
            unknown.starts_with("CBH_DENIED_DOMAINS") && unknown.contains("'nowhere'"),
            "{unknown}"
        );
        assert!(error(DAY, "30d", Some("Bad NS:example.org"), None).contains("not a namespace"));
    }

    #[test]
    fn the_flags_reach_the_settings_and_a_default_ttl_above_the_maximum_stops_start_up() {
        use clap::Parser;

        use crate::config::{ServeArgs, Settings};
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let settings = |flags: &[&str]| {
            let args = Cli::parse_from(std::iter::once("x").chain(flags.iter().copied())).serve;
            Settings::from_args("sqlite://x.db", &args)
        };
        let error = settings(&["--invite-ttl", "60d"]).expect_err("refused");
        assert!(
            error.starts_with("CBH_INVITE_TTL (--invite-ttl)"),
            "{error}"
        );
        let valid = settings(&[
            "--invite-ttl",
            "60d",
            "--invite-ttl-max",
            "90d",
            "--denied-domains",
            "chembiohub:example.com",
        ])
        .expect("valid");
        assert_eq!(valid.invite_rules.ttl_max, 90 * DAY);
        assert!(
            !valid
                .invite_rules
                .domains
                .permits("chembiohub", "example.com")
        );
        let error = settings(&["--allowed-domains", "*"]).expect_err("refused");
        assert!(error.starts_with("CBH_ALLOWED_DOMAINS"), "{error}");
    }

    #[test]
    fn the_lists_are_parsed_into_rules() {
        let rules = InviteRules::parse(
            DAY,
            "90d",
            Some("chembiohub:*.ox.ac.uk"),
            Some("spam.ox.ac.uk"),
            &served(),
        )
        .expect("valid");
        assert_eq!(rules.ttl_max, 90 * DAY);
        assert!(rules.domains.permits("chembiohub", "chem.ox.ac.uk"));
        assert!(!rules.domains.permits("chembiohub", "spam.ox.ac.uk"));
        assert!(!rules.domains.permits("chembiohub", "cam.ac.uk"));
        assert!(rules.domains.permits("other", "cam.ac.uk"));
    }
}
