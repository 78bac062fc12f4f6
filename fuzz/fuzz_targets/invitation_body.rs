//! The body of `POST /{ns}/api/invitations/`: any bytes are a valid request or a 400 that says
//! why, never a panic, and an accepted request keeps every rule.
#![no_main]

use cbh_invite::domain::EmailAddress;
use cbh_invite::http::invitations::validate_body;
use libfuzzer_sys::fuzz_target;

/// Only the email field: an ignored field may hold a lone surrogate escape, which is valid
/// JSON that a `serde_json::Value` cannot hold.
#[derive(serde::Deserialize)]
struct EmailOnly {
    email: String,
}

fuzz_target!(|body: &[u8]| {
    match validate_body(body) {
        Ok(request) => {
            assert!(
                std::str::from_utf8(body).is_ok(),
                "accepted bytes that are not UTF-8"
            );
            let sent: EmailOnly =
                serde_json::from_slice(body).expect("an accepted body has an email");
            assert_eq!(
                EmailAddress::parse(&sent.email).as_ref(),
                Ok(request.email())
            );
            for name in [request.first_name(), request.last_name()] {
                assert!(!name.as_str().chars().any(char::is_control), "{name:?}");
                assert!(name.as_str().chars().count() <= 150, "{name:?}");
            }
            let ids = request.projects();
            assert!(ids.iter().all(|id| id.0 > 0), "{ids:?}");
            assert!(ids.windows(2).all(|w| w[0].0 < w[1].0), "{ids:?}");
        }
        Err(error) => {
            assert_eq!(error.status().as_u16(), 400, "{error}");
            let message = error.to_string();
            assert!(!message.is_empty());
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
    }
});
