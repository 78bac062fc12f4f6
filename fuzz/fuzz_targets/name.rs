//! `PersonName::parse`: any text is a clean, trimmed name of at most 150 characters or an
//! error, never a panic; and nothing else is refused.
#![no_main]

use cbh_invite::domain::PersonName;
use cbh_invite::domain::name::{FORBIDDEN_CHARS, MAX_NAME_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    let forbidden = |c: char| FORBIDDEN_CHARS.iter().any(|&(a, b)| (a..=b).contains(&c));
    let Ok(name) = PersonName::parse(raw, "first_name") else {
        assert!(
            raw.chars().any(forbidden) || raw.trim().chars().count() > MAX_NAME_CHARS,
            "{raw:?} was refused"
        );
        return;
    };
    let text = name.as_str();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(!raw.chars().any(forbidden), "{raw:?} was accepted");
    assert!(text.chars().count() <= MAX_NAME_CHARS);
    assert_eq!(text, text.trim());
    assert_eq!(PersonName::parse(text, "first_name").as_ref(), Ok(&name));
});
