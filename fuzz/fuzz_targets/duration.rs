//! `parse_duration` (the `CBH_*` durations): any text is a duration from 1 s to 365 days or an
//! error, never a panic.
#![no_main]

use cbh_invite::config::parse_duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Ok(duration) = parse_duration(raw) {
        assert!((1..=365 * 86_400).contains(&duration.as_secs()), "{raw:?}");
        let again = parse_duration(&format!("{}s", duration.as_secs()));
        assert_eq!(again, Ok(duration));
    }
});
