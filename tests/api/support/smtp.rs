//! The SMTP server the tests talk to lives in the `smtp-sink` workspace crate, shared with the
//! benchmark.

pub use smtp_sink::{ReceivedMail, SmtpServer};
