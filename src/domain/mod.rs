//! Types and rules of the invitation service. Nothing here performs I/O: values are parsed at
//! the boundary into these types, and functions take `now` as a parameter so that expiry can be
//! tested without waiting.

pub mod bounce;
pub mod domain_rules;
pub mod email;
pub mod event;
pub mod grant;
pub mod invitation;
pub mod language;
pub mod name;
pub mod notice;
pub mod password;
pub mod printable;
pub mod project;
pub mod roster;
pub mod time;
pub mod token;
pub mod user;
pub mod webhook;

pub use domain_rules::DomainRules;
pub use email::EmailAddress;
pub use event::EventType;
pub use invitation::{InvitationId, InvitationStatus, InviteKind};
pub use language::Language;
pub use name::PersonName;
pub use notice::NoticeKind;
pub use project::{Project, ProjectId, Role};
pub use time::Timestamp;
pub use token::Token;
pub use user::{User, UserId};
