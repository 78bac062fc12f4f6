//! Language tags and choosing among our languages: `Accept-Language`, an invitation's
//! `language`, and the best catalog for them (fluent-langneg: `de-AT` finds `de`, `fr` finds
//! `fr-CA` when only that is shipped).

use fluent_langneg::{NegotiationStrategy, negotiate_languages};
use unic_langid::LanguageIdentifier;

use crate::domain::Language;

/// An `Accept-Language` header names a few languages; more are ignored.
const MAX_ACCEPTED: usize = 32;

/// A BCP 47 tag in its canonical case (`de-at` → `de-AT`), or None when it is not well formed
/// (`domain::Language`, whose rule this is).
pub fn normalize_tag(tag: &str) -> Option<String> {
    Language::parse(tag, "language").ok().map(|l| l.to_string())
}

/// Whether `tag` is a well-formed BCP 47 language tag.
pub fn is_well_formed(tag: &str) -> bool {
    normalize_tag(tag).is_some()
}

/// The tags of an `Accept-Language` header, highest quality first (the header's order among
/// equals); `*`, `q=0` and malformed entries are left out.
pub fn parse_accept_language(header: &str) -> Vec<String> {
    let mut weighted: Vec<(u16, usize, String)> = Vec::new();
    for (position, item) in header.split(',').take(MAX_ACCEPTED).enumerate() {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let mut quality = 1000;
        for param in parts {
            let param = param.trim();
            if let Some(q) = param
                .strip_prefix("q=")
                .or_else(|| param.strip_prefix("Q="))
            {
                quality = parse_quality(q).unwrap_or(0);
            }
        }
        if quality == 0 || tag == "*" {
            continue;
        }
        if let Some(tag) = normalize_tag(tag) {
            weighted.push((quality, position, tag));
        }
    }
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut tags: Vec<String> = Vec::new();
    for (_, _, tag) in weighted {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

/// `q` in thousandths: "0.8" → 800, "1" → 1000; None when it is not a quality value.
fn parse_quality(q: &str) -> Option<u16> {
    let value: f32 = q.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// The best of `available` for `requested` (best first), else `default` when it is available,
/// else English.
pub(super) fn negotiate(available: &[String], requested: &[&str], default: &str) -> String {
    let available_ids: Vec<LanguageIdentifier> =
        available.iter().filter_map(|a| a.parse().ok()).collect();
    let requested_ids: Vec<LanguageIdentifier> = requested
        .iter()
        .filter_map(|tag| normalize_tag(tag))
        .filter_map(|tag| tag.parse().ok())
        .collect();
    let default_id: LanguageIdentifier = if available.iter().any(|a| a == default) {
        default.parse().unwrap_or_default()
    } else {
        super::FALLBACK.parse().unwrap_or_default()
    };
    negotiate_languages(
        &requested_ids,
        &available_ids,
        Some(&default_id),
        NegotiationStrategy::Lookup,
    )
    .first()
    .map_or_else(|| default_id.to_string(), |id| id.to_string())
}
