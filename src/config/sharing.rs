//! `CBH_LINK_SHARING`: who may have an invitation's accept link handed back in the API answer
//! (`"return_link": true`) and create an invitation without its email (`"send_email": false`).

/// Who may take an invitation's accept link from the API instead of (or besides) the email.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
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
    fn each_setting_allows_whom_it_names() {
        assert!(!LinkSharing::Off.allows(true, true));
        assert!(LinkSharing::Superusers.allows(true, false));
        assert!(!LinkSharing::Superusers.allows(false, true));
        assert!(LinkSharing::Editors.allows(false, true));
        assert!(LinkSharing::Editors.allows(true, false));
        assert!(!LinkSharing::Editors.allows(false, false));
    }
}
