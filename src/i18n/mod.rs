//! Message catalogs: the words of the emails and pages in each language we speak.
//!
//! Project Fluent (`fluent-bundle`), not gettext: a Fluent message is a key with a whole
//! sentence, and the translator (not the code) decides its grammar: plural rules per language
//! (CLDR's, built into `intl_pluralrules`), variants selected on an argument (French writes the
//! first of the month "1er"), word order around the placeables. gettext's msgid-is-English keys
//! would tie every catalog to today's English wording, whose subjects we must keep byte for
//! byte. The crates are Mozilla's (the Firefox localisation stack), small and pure Rust.
//!
//! Catalogs are `locales/{lang}/*.ftl` in the repository, built into the binary (`build.rs`
//! lists them). An operator overrides or adds a language with files in
//! `CBH_TEMPLATE_DIR/locales/{lang}/*.ftl`: a message there replaces the built-in one of the same
//! key, and a new directory adds a language. A key missing from a language falls back to
//! English, and one missing everywhere shows the key itself (logged once).
//!
//! Files: `catalog` loads and parses the files, `negotiate` picks a language from what a reader
//! asks for, `dates` writes dates in a language, `templates` plugs all of it into minijinja.

mod catalog;
mod dates;
mod negotiate;
mod templates;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

pub use fluent_bundle::FluentValue;
use fluent_bundle::{FluentArgs, FluentError};

pub use dates::DateStyle;
pub use negotiate::{is_well_formed, normalize_tag, parse_accept_language};

/// The language every other one falls back to, key by key.
pub const FALLBACK: &str = "en";

/// Every catalog, by language (`en`, `de`, `fr`, and what an operator adds). Read-only once
/// loaded: share it in an `Arc`.
pub struct Catalogs {
    bundles: BTreeMap<String, catalog::Bundle>,
    /// The keys each language defines, built in and overridden together.
    keys: BTreeMap<String, BTreeSet<String>>,
    /// (language, key) pairs that fell back already: each is logged once, not per email.
    misses: Mutex<BTreeSet<(String, String)>>,
}

impl Catalogs {
    /// The built-in catalogs, then `override_dir/locales/{lang}/*.ftl` over them. A file that
    /// does not parse is an error naming the file and the line.
    pub fn load(override_dir: Option<&Path>) -> anyhow::Result<Self> {
        let loaded = catalog::load(override_dir)?;
        Ok(Self {
            bundles: loaded.bundles,
            keys: loaded.keys,
            misses: Mutex::default(),
        })
    }

    /// The languages with a catalog, sorted (`["de", "en", "fr"]` as shipped).
    pub fn languages(&self) -> Vec<String> {
        self.bundles.keys().cloned().collect()
    }

    /// The keys `lang` defines itself (without the English it falls back to).
    pub fn keys(&self, lang: &str) -> BTreeSet<String> {
        self.keys.get(lang).cloned().unwrap_or_default()
    }

    /// The best language we have for `requested` (BCP 47 tags, best first): `de-AT` is answered
    /// with `de`. `default` when none matches (and English when `default` is not one of ours).
    pub fn negotiate(&self, requested: &[&str], default: &str) -> String {
        negotiate::negotiate(&self.languages(), requested, default)
    }

    /// `Accept-Language` as a list of tags, best first (q-ordered, `q=0` and `*` left out).
    pub fn parse_accept_language(header: &str) -> Vec<String> {
        parse_accept_language(header)
    }

    /// The message `key` in `lang` (any tag: `de-AT` reads the German catalog). A key `lang`
    /// lacks is read in English; one English lacks too is the key itself.
    pub fn text(&self, lang: &str, key: &str, args: &[(&str, FluentValue)]) -> String {
        let lang = self.resolve(lang);
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        for candidate in [lang.as_str(), FALLBACK] {
            if let Some(text) = self.format(candidate, key, &fluent_args) {
                if candidate != lang {
                    self.missed(&lang, key);
                }
                return text;
            }
        }
        self.missed(&lang, key);
        key.to_owned()
    }

    /// Whether `lang` (exactly one of ours) defines `key` itself.
    pub fn has(&self, lang: &str, key: &str) -> bool {
        self.bundles.get(lang).is_some_and(|b| b.has_message(key))
    }

    /// The (language, key) pairs that fell back since start-up, for tests and diagnostics.
    pub fn fallbacks(&self) -> Vec<(String, String)> {
        self.misses
            .lock()
            .map(|misses| misses.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A date (`DateStyle::Date`: "30 November 2026") or date and time in UTC in `lang`.
    pub fn format_date(&self, lang: &str, at: time::OffsetDateTime, style: DateStyle) -> String {
        dates::format(self, lang, at, style)
    }

    /// The language of ours that `lang` is read in.
    pub fn resolve(&self, lang: &str) -> String {
        if self.bundles.contains_key(lang) {
            return lang.to_owned();
        }
        self.negotiate(&[lang], FALLBACK)
    }

    fn format(&self, lang: &str, key: &str, args: &FluentArgs) -> Option<String> {
        let bundle = self.bundles.get(lang)?;
        let pattern = bundle.get_message(key)?.value()?;
        let mut errors: Vec<FluentError> = Vec::new();
        let text = bundle.format_pattern(pattern, Some(args), &mut errors);
        if !errors.is_empty() {
            // A missing argument shows as `{$name}`: a bug of the template or the catalog,
            // not a reason to withhold the email.
            tracing::warn!(lang, key, errors = ?errors, "message formatted with errors");
        }
        Some(text.into_owned())
    }

    fn missed(&self, lang: &str, key: &str) {
        let Ok(mut misses) = self.misses.lock() else {
            return;
        };
        if misses.insert((lang.to_owned(), key.to_owned())) {
            if self.has(FALLBACK, key) {
                tracing::warn!(lang, key, "message missing from the catalog, English used");
            } else {
                tracing::error!(
                    lang,
                    key,
                    "message missing from every catalog, its key shown"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
