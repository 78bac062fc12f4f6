//! `CBH_LINK_SHARING`: who may have an invitation's accept link handed back in the API answer
//! (`"return_link": true`) and create an invitation without its email (`"send_email": false`).

/// Who may take an invitation's accept link from the API instead of (or besides) the email.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkSharing {
    /// Nobody: every accept link goes only by email.
    #[default]
    Off,
    /// Superusers only.
    Superusers,
    /// Anyone allowed to invite to the selected projects (editors, owners) and superusers.
    Editors,
}

impl LinkSharing {
    /// Parsed here rather than by clap so that a bad value stops start-up with one line
    /// naming the variable, as every other setting does.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(LinkSharing::Off),
            "superusers" => Ok(LinkSharing::Superusers),
            "editors" => Ok(LinkSharing::Editors),
            _ => Err(format!(
                "CBH_LINK_SHARING (--link-sharing): '{}' is not off, superusers or editors",
                raw.escape_debug()
            )),
        }
    }

    /// Whether a caller may share links: `may_invite` is whether they passed the rights
    /// check of the invitation itself (editor or owner of each selected project).
    pub fn allows(self, is_superuser: bool, may_invite: bool) -> bool {
        match self {
            LinkSharing::Off => false,
            LinkSharing::Superusers => is_superuser,
            LinkSharing::Editors => is_superuser || may_invite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LinkSharing;

    #[test]
    fn parses_the_three_values_and_names_the_variable_otherwise() {
        assert_eq!(LinkSharing::parse("off"), Ok(LinkSharing::Off));
        assert_eq!(
            LinkSharing::parse("Superusers"),
            Ok(LinkSharing::Superusers)
        );
        assert_eq!(LinkSharing::parse("editors"), Ok(LinkSharing::Editors));
        let error = LinkSharing::parse("everyone").expect_err("refused");
        assert!(error.starts_with("CBH_LINK_SHARING"), "{error}");
    }

    #[test]
    fn each_setting_allows_whom_it_names() {
        assert!(!LinkSharing::Off.allows(true, true));
        assert!(LinkSharing::Superusers.allows(true, false));
        assert!(!LinkSharing::Superusers.allows(false, true));
        assert!(LinkSharing::Editors.allows(false, true));
        assert!(LinkSharing::Editors.allows(true, false));
        assert!(!LinkSharing::Editors.allows(false, false));
    }
}
