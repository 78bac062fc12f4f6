//! Reading an invitation request at the boundary: the body of `POST /{ns}/api/invitations/`
//! (decoded, then validated into a `ValidInvitation`), its `Idempotency-Key`, the list's query
//! string, the id in the path and the body of the accept endpoint. Past this file, only valid
//! values exist.

use axum::extract::RawPathParams;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::selection::{ProjectSelection, parse_selections};
use crate::config::parse_duration;
use crate::domain::{EmailAddress, InvitationId, Language, PersonName};
use crate::http::ApiError;
use crate::http::extract::{decode_json, path_param, printable};
use crate::http::resources::{DEFAULT_LIMIT, INVITATION_FILTERING, MAX_LIMIT};
pub use crate::invite::ValidInvitation;

/// The body of `POST /{ns}/api/invitations/`; unknown fields are ignored, as Tastypie does.
/// `firstName` and `lastName` are accepted for `first_name` and `last_name`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "email": "bob@example.org",
    "first_name": "Bob",
    "last_name": "Smith",
    "projects_selected": [{"id": 1, "name": "Kinase screen"}],
}))]
pub struct InvitationRequest {
    /// The invitee's address: at most 254 characters, no control characters, a dot-atom
    /// local part (no quoted strings) and a domain name whose last label has a letter;
    /// surrounding spaces are ignored.
    // The pattern leaves out the length limits and the letter of the last label: it must accept
    // every address the rule accepts, or a client would be told a valid address is invalid.
    #[schema(
        required = true,
        value_type = String,
        pattern = r"^\s*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+\s*$"
    )]
    pub email: Option<String>,
    /// At most 150 characters once surrounding spaces are trimmed; no control characters,
    /// line separators or bidirectional overrides.
    #[serde(default, alias = "firstName")]
    #[schema(schema_with = name_schema)]
    pub first_name: Option<String>,
    /// As `first_name`.
    #[serde(default, alias = "lastName")]
    #[schema(schema_with = name_schema)]
    pub last_name: Option<String>,
    /// Projects to grant the invitee, each with the role offered on it (`viewer` unless
    /// `role` says otherwise); the inviter must be editor or owner of each, and may offer at
    /// most their own role. Empty or absent invites to the platform alone.
    #[serde(default)]
    pub projects_selected: Option<Vec<ProjectSelection>>,
    /// When the invitee already has every selected project: send a reminder instead of 409.
    #[serde(default)]
    pub remind: Option<bool>,
    /// How long the accept link works: one number and a unit (`s`, `m`, `h`, `d`), from `1h` to
    /// `CBH_INVITE_TTL_MAX` (default `30d`); absent or null, `CBH_INVITE_TTL`. A resend gives
    /// the same lifetime again.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^\\s*[0-9]+[smhd]\\s*$", example = "14d")]
    pub expires_in: Option<Value>,
    /// Hand the accept link back in this answer, once, as `accept_url` (where
    /// `CBH_LINK_SHARING` allows it; otherwise 403). Absent when the invitation issues no link.
    #[serde(default)]
    pub return_link: Option<bool>,
    /// `false`: send no email (`delivery` is null; a later resend sends one). Only where
    /// `CBH_LINK_SHARING` allows it (otherwise 403), since the link must then reach the invitee
    /// some other way.
    #[serde(default)]
    pub send_email: Option<bool>,
    /// The language of the invitee's emails, a BCP 47 tag (`de`, `fr-CH`, `pt-BR`); absent or
    /// null, `CBH_DEFAULT_LANGUAGE`. A tag we have no catalog for is kept as given and its
    /// emails are written in the closest language we have (`de-AT` in German, else the default).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$", example = "de")]
    pub language: Option<Value>,
}

/// A name: a string (or null) without the characters `PersonName` refuses, whose pattern is
/// built from the same list so that the document cannot drift from the rule.
fn name_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let ranges: String = crate::domain::name::FORBIDDEN_CHARS
        .iter()
        .map(|&(first, last)| format!("\\u{:04x}-\\u{:04x}", u32::from(first), u32::from(last)))
        .collect();
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(format!("^[^{ranges}]*$")))
        .description(Some(
            "At most 150 characters once surrounding spaces are trimmed; no control characters, \
             line separators or bidirectional overrides.",
        ))
        .build()
        .into()
}

/// Decodes and validates the body of `POST /{ns}/api/invitations/` (what the handler does
/// after the content type and size checks): a 400 that says what is wrong, or a valid request.
/// Public so that the fuzz targets can call it without HTTP.
pub fn validate_body(body: &[u8]) -> Result<ValidInvitation, ApiError> {
    decode_json::<InvitationRequest>(body)?.validate()
}

impl InvitationRequest {
    pub fn validate(self) -> Result<ValidInvitation, ApiError> {
        let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(e.to_string());
        let email =
            EmailAddress::parse(self.email.as_deref().unwrap_or("")).map_err(|e| bad(&e))?;
        let first_name = PersonName::parse(self.first_name.as_deref().unwrap_or(""), "first_name")
            .map_err(|e| bad(&e))?;
        let last_name = PersonName::parse(self.last_name.as_deref().unwrap_or(""), "last_name")
            .map_err(|e| bad(&e))?;
        let (projects, roles) = parse_selections(self.projects_selected.unwrap_or_default())?;
        let expires_in = match &self.expires_in {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(parse_duration(raw).map_err(|_| {
                ApiError::BadRequest(format!(
                    "expires_in: '{}' is not a duration such as 12h or 14d",
                    printable(raw)
                ))
            })?),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "expires_in: '{}' is not a duration such as 12h or 14d",
                    printable(&other.to_string())
                )));
            }
        };
        let language = match &self.language {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(
                Language::parse(raw, "language")
                    .map_err(|e| ApiError::BadRequest(printable(&e.to_string())))?,
            ),
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "language: must be a BCP 47 language tag (a string) such as en, de or pt-BR"
                        .into(),
                ));
            }
        };
        Ok(ValidInvitation {
            language,
            expires_in,
            email,
            first_name,
            last_name,
            projects,
            roles,
            remind: self.remind.unwrap_or(false),
            return_link: self.return_link.unwrap_or(false),
            send_email: self.send_email.unwrap_or(true),
        })
    }
}

impl ValidInvitation {
    /// What makes two requests "the same body" for `Idempotency-Key`: the meaning, not the bytes.
    pub(super) fn fingerprint(&self) -> Vec<u8> {
        let ids: Vec<String> = self.projects.iter().map(|p| p.0.to_string()).collect();
        // Names cannot contain control characters, so '\n' separates unambiguously.
        // `expires_in` as the seconds it means (`24h` and `1d` are one request); absent is empty.
        let expires_in = self
            .expires_in
            .map(|ttl| ttl.as_secs().to_string())
            .unwrap_or_default();
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}\n{expires_in}",
            self.email.key(),
            self.first_name,
            self.last_name,
            ids.join(","),
            self.remind
        );
        // Only when set, so that the keys of requests without them keep their fingerprint.
        let canonical = if self.shares_link() {
            format!("{canonical}\n{}\n{}", self.return_link, self.send_email)
        } else {
            canonical
        };
        // Likewise the language: only when the request names one.
        let canonical = match &self.language {
            Some(language) => format!("{canonical}\nlanguage {language}"),
            None => canonical,
        };
        // Likewise roles: only those above viewer (the default) count.
        let raised: Vec<String> = self
            .roles
            .above_viewer()
            .map(|(project, role)| format!("{}={role}", project.0))
            .collect();
        let canonical = if raised.is_empty() {
            canonical
        } else {
            format!("{canonical}\nroles {}", raised.join(","))
        };
        Sha256::digest(canonical.as_bytes()).to_vec()
    }
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        })
}

/// The query string of the list: paging and filters.
pub(super) struct ListQuery {
    pub(super) limit: i64,
    pub(super) offset: i64,
    pub(super) filters: Vec<(String, String)>,
}

pub(super) fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery {
        limit: DEFAULT_LIMIT,
        offset: 0,
        filters: Vec::new(),
    };
    let number = |name: &str, value: &str| {
        value
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be a whole number of at least 0, not '{}'",
                    printable(value)
                ))
            })
    };
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            // Tastypie: limit=0 means "as many as allowed".
            "limit" => {
                query.limit = Some(number("limit", &value)?)
                    .filter(|n| *n > 0)
                    .map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT))
            }
            "offset" => query.offset = number("offset", &value)?,
            other if is_filter(other) => {
                query.filters.push((name.into_owned(), value.into_owned()));
            }
            // Other parameters (format=json, cache busters) are ignored, as Tastypie does.
            _ => {}
        }
    }
    Ok(query)
}

/// Whether a query parameter names a filterable field (`email`, `email__iexact`, …).
fn is_filter(name: &str) -> bool {
    let field = name.split("__").next().unwrap_or(name);
    INVITATION_FILTERING.iter().any(|(f, _)| *f == field)
}

/// The id in an invitation's path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes a path parameter; `invitation_id` reads it.
pub struct InvitationIdParam {
    /// The invitation's id; one that is not a number answers 404.
    id: i64,
}

pub(super) fn invitation_id(params: &RawPathParams) -> Result<InvitationId, ApiError> {
    path_param(params, "id")
        .and_then(|id| id.parse::<i64>().ok())
        .map(InvitationId)
        .ok_or_else(ApiError::not_found)
}

/// The body of `POST /{ns}/api/invitations/accept/`.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct AcceptRequest {
    /// The token of the email's link.
    // Any JSON value, so that a missing or non-string token gets a 400 naming the field
    // rather than serde's message.
    #[schema(required = true, value_type = String)]
    pub(super) token: Option<Value>,
    /// The new password: at least 10 characters.
    #[schema(required = true, value_type = String)]
    pub(super) password: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_body_that_is_not_an_object_is_400() {
        // serde would otherwise read an array as the struct's fields in order.
        for body in [
            &br#"["a@x.org", "Bob", "Smith", [], true]"#[..],
            b"[null, null]",
            b"\"a@x.org\"",
            b"",
            b"  ",
            b"null",
        ] {
            let error = validate_body(body).expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{body:?}");
        }
        assert!(validate_body(b" \r\n\t{\"email\": \"a@x.org\"}").is_ok());
    }

    #[test]
    fn a_body_that_is_not_utf8_is_400_even_in_an_ignored_field() {
        // Found by the invitation_body fuzz target: serde skips an ignored field's bytes
        // without decoding them, so this body used to be accepted.
        let body = b"{\"email\": \"Bob.Smith@Example.ORG\", \"first_name\": \"Bob\", \
            \"last_name\": \"Smith\", \"projects_selected\": [{\"id\": 1, \
            \"name\": \"Kinase sc\x8e\x9een\"}, {\"id\": \"2\"}], \"remine\": true}\n";
        let error = validate_body(body).expect_err("refused");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("not UTF-8"), "{error}");
    }

    #[test]
    fn expires_in_is_a_duration_and_part_of_the_fingerprint() {
        let valid = |extra: &str| {
            validate_body(format!("{{\"email\": \"a@x.org\"{extra}}}").as_bytes()).expect("valid")
        };
        assert_eq!(valid("").expires_in(), None);
        assert_eq!(valid(", \"expires_in\": null").expires_in(), None);
        assert_eq!(
            valid(", \"expires_in\": \"14d\"").expires_in(),
            Some(Duration::from_secs(14 * 86_400))
        );
        for bad in ["\"soon\"", "3600", "\"1h30m\"", "[]", "\"\""] {
            let body = format!("{{\"email\": \"a@x.org\", \"expires_in\": {bad}}}");
            let error = validate_body(body.as_bytes()).expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert!(error.to_string().starts_with("expires_in: "), "{error}");
        }
        let print = |extra: &str| valid(extra).fingerprint();
        assert_eq!(
            print(", \"expires_in\": \"1d\""),
            print(", \"expires_in\": \"24h\"")
        );
        assert_ne!(
            print(", \"expires_in\": \"1d\""),
            print(", \"expires_in\": \"2d\"")
        );
        assert_ne!(print(", \"expires_in\": \"7d\""), print(""));
        assert_eq!(print(", \"expires_in\": null"), print(""));
    }

    #[test]
    fn link_sharing_fields_change_the_fingerprint_only_when_set() {
        let fingerprint = |body: &str| validate_body(body.as_bytes()).expect("valid").fingerprint();
        let plain = fingerprint(r#"{"email": "a@x.org"}"#);
        // Keys stored before these fields existed still match their retries.
        assert_eq!(
            plain,
            fingerprint(r#"{"email": "a@x.org", "return_link": false, "send_email": true}"#)
        );
        let link = fingerprint(r#"{"email": "a@x.org", "return_link": true}"#);
        let quiet = fingerprint(r#"{"email": "a@x.org", "send_email": false}"#);
        assert_ne!(plain, link);
        assert_ne!(plain, quiet);
        assert_ne!(link, quiet);
        for bad in [
            r#"{"email": "a@x.org", "return_link": "yes"}"#,
            r#"{"email": "a@x.org", "send_email": 0}"#,
        ] {
            let error = validate_body(bad.as_bytes()).expect_err("refused");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn roles_above_viewer_change_the_fingerprint() {
        let fingerprint = |body: &str| validate_body(body.as_bytes()).expect("valid").fingerprint();
        let plain = fingerprint(r#"{"email": "a@x.org", "projects_selected": [{"id": 1}]}"#);
        // Keys stored before roles existed still match their retries.
        assert_eq!(
            plain,
            fingerprint(
                r#"{"email": "a@x.org", "projects_selected": [{"id": 1, "role": "viewer"}]}"#
            )
        );
        let editor = fingerprint(
            r#"{"email": "a@x.org", "projects_selected": [{"id": 1, "role": "editor"}]}"#,
        );
        let owner = fingerprint(
            r#"{"email": "a@x.org", "projects_selected": [{"id": 1, "role": "owner"}]}"#,
        );
        assert_ne!(plain, editor);
        assert_ne!(editor, owner);
    }

    #[test]
    fn limit_is_bounded_and_zero_means_maximum() {
        assert_eq!(parse_list_query(None).map(|q| q.limit).ok(), Some(20));
        assert_eq!(
            parse_list_query(Some("limit=5000")).map(|q| q.limit).ok(),
            Some(1000)
        );
        assert_eq!(
            parse_list_query(Some("limit=0")).map(|q| q.limit).ok(),
            Some(1000)
        );
        assert!(parse_list_query(Some("limit=-1")).is_err());
        assert!(parse_list_query(Some("offset=x")).is_err());
    }
}

/// Properties of decoding and validating an invitation's body, over any JSON and any bytes.
#[cfg(test)]
mod properties {
    use axum::http::StatusCode;
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;

    /// Any JSON value: scalars (with strings that matter here) nested a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[0-9]{1,20}".prop_map(Value::from),
            "[ a-zA-Z.@\r\n-]{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects shaped like an invitation: its field names (and aliases, and others) with values
    /// that are sometimes right, sometimes of the wrong type, sometimes hostile.
    fn invitation_like() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            "[a-z]{1,8}@[a-z]{1,8}\\.(org|COM|x1)".prop_map(Value::from),
            "[ A-Za-z.@\r\n\t\u{0}\u{85}\u{2028}é-]{0,40}".prop_map(Value::from),
            ".{140,160}".prop_map(Value::from),
            any_json(),
        ];
        let id = prop_oneof![
            any::<i64>().prop_map(Value::from),
            (0i64..5).prop_map(Value::from),
            "-?[0-9]{0,20}".prop_map(Value::from),
            any_json(),
        ];
        let selection = prop_oneof![
            4 => (id, any_json()).prop_map(|(id, name)| json!({"id": id, "name": name})),
            1 => any_json(),
        ];
        let projects = prop_oneof![
            3 => prop::collection::vec(selection, 0..5).prop_map(Value::from),
            1 => any_json(),
        ];
        let field = prop::sample::select(vec![
            "email",
            "first_name",
            "firstName",
            "last_name",
            "lastName",
            "remind",
            "expires_in",
            "return_link",
            "send_email",
            "other",
        ]);
        (
            prop::collection::vec((field, text), 0..6),
            prop::option::of(projects),
            prop::option::of(prop_oneof![any::<bool>().prop_map(Value::from), any_json()]),
        )
            .prop_map(|(fields, projects, remind)| {
                let mut object: Map<String, Value> = fields
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect();
                if let Some(projects) = projects {
                    object.insert("projects_selected".into(), projects);
                }
                if let Some(remind) = remind {
                    object.insert("remind".into(), remind);
                }
                Value::Object(object)
            })
    }

    /// What any body must give: a request that keeps every rule, or a 400 that says why
    /// without echoing a control character.
    fn check(body: &[u8]) -> Result<(), TestCaseError> {
        match validate_body(body) {
            Ok(valid) => {
                // Only the field itself: an ignored one may hold a lone surrogate escape,
                // which is valid JSON that `Value` cannot hold.
                #[derive(Deserialize)]
                struct EmailOnly {
                    email: String,
                }
                let email: EmailOnly = serde_json::from_slice(body).expect("an email");
                let parsed = EmailAddress::parse(&email.email);
                prop_assert_eq!(Ok(valid.email()), parsed.as_ref());
                for name in [valid.first_name(), valid.last_name()] {
                    prop_assert!(!name.as_str().chars().any(char::is_control));
                    prop_assert!(
                        name.as_str().chars().count() <= crate::domain::name::MAX_NAME_CHARS
                    );
                }
                prop_assert!(valid.projects().iter().all(|p| p.0 > 0));
                prop_assert!(valid.projects().windows(2).all(|w| w[0].0 < w[1].0));
                let _ = valid.remind();
                let _ = valid.shares_link();
            }
            Err(error) => {
                prop_assert_eq!(error.status(), StatusCode::BAD_REQUEST);
                let message = error.to_string();
                prop_assert!(!message.is_empty());
                prop_assert!(!message.chars().any(char::is_control), "{message:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_json_value_is_a_valid_request_or_a_400(value in any_json()) {
            check(&serde_json::to_vec(&value).expect("serialises"))?;
        }

        #[test]
        fn invitation_like_objects_are_valid_requests_or_400s(value in invitation_like()) {
            check(&serde_json::to_vec(&value).expect("serialises"))?;
        }

        #[test]
        fn any_bytes_are_a_valid_request_or_a_400(body in prop::collection::vec(any::<u8>(), 0..200)) {
            check(&body)?;
        }
    }
}
