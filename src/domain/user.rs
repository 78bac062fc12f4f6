use super::{EmailAddress, PersonName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// A user of one namespace. A user created by an invitation is pending (`is_active == false`):
/// it has no password and cannot log in until it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub is_superuser: bool,
    pub is_active: bool,
}

impl User {
    /// First and last name joined by one space; the email when both are empty.
    pub fn display_name(&self) -> String {
        let full = format!("{} {}", self.first_name, self.last_name);
        let full = full.trim();
        if full.is_empty() {
            self.email.to_string()
        } else {
            full.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(first: &str, last: &str) -> User {
        User {
            id: UserId(1),
            email: EmailAddress::parse("ann@x.org").expect("valid"),
            first_name: PersonName::from_trusted(first.into()),
            last_name: PersonName::from_trusted(last.into()),
            is_superuser: false,
            is_active: true,
        }
    }

    #[test]
    fn display_name_falls_back_to_email() {
        assert_eq!(user("Ann", "Lee").display_name(), "Ann Lee");
        assert_eq!(user("Ann", "").display_name(), "Ann");
        assert_eq!(user("", "").display_name(), "ann@x.org");
    }
}
