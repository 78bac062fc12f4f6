//! `EmailAddress::parse`: any text is a normalised address or an error, never a panic.
#![no_main]

use cbh_invite::domain::EmailAddress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    let Ok(email) = EmailAddress::parse(raw) else {
        return;
    };
    let text = email.as_str();
    assert!(text.is_ascii() && !text.chars().any(|c| c.is_control() || c.is_whitespace()));
    assert!(text.len() <= 254);
    let (local, domain) = text.split_once('@').expect("one @");
    assert!(!domain.contains('@'));
    assert_eq!(domain, domain.to_ascii_lowercase());
    assert!(raw.contains(local), "the local part keeps its spelling");
    assert_eq!(email.key(), text.to_lowercase());
    assert_eq!(EmailAddress::parse(text).as_ref(), Ok(&email), "idempotent");
    assert_eq!(
        EmailAddress::parse(&email.key()).map(|k| k.key()),
        Ok(email.key())
    );
});
