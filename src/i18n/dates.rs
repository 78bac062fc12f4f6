//! Dates as a reader of each language writes them: "30 November 2026", "30. November 2026",
//! "30 novembre 2026".
//!
//! The month names and the order of day, month and year are messages of the catalogs
//! (`dates.ftl`: `month-1` … `month-12`, `date-long`, `datetime-long`), not ICU data: we write
//! one long form in UTC, which twelve names and a pattern per language cover, and an operator
//! who adds a language adds its dates in the same file. ICU4X's date formatting with its CLDR
//! data would add megabytes and several minutes of build for that one form.

use time::OffsetDateTime;

use super::{Catalogs, FluentValue};

/// How much of a timestamp to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateStyle {
    /// "30 November 2026"
    Date,
    /// "30 November 2026 at 14:05" (UTC)
    DateTime,
}

pub(super) fn format(
    catalogs: &Catalogs,
    lang: &str,
    at: OffsetDateTime,
    style: DateStyle,
) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let month = catalogs.text(lang, &format!("month-{}", u8::from(at.month())), &[]);
    let date = catalogs.text(
        lang,
        "date-long",
        &[
            ("day", FluentValue::from(at.day())),
            ("month", FluentValue::from(month)),
            // A string: a number would be written with the language's digit grouping.
            ("year", FluentValue::from(at.year().to_string())),
        ],
    );
    match style {
        DateStyle::Date => date,
        DateStyle::DateTime => catalogs.text(
            lang,
            "datetime-long",
            &[
                ("date", FluentValue::from(date)),
                (
                    "time",
                    FluentValue::from(format!("{:02}:{:02}", at.hour(), at.minute())),
                ),
                // For languages that write the time otherwise ("14 h 05").
                ("hour", FluentValue::from(format!("{:02}", at.hour()))),
                ("minute", FluentValue::from(format!("{:02}", at.minute()))),
            ],
        ),
    }
}

/// A timestamp as templates hand it over: ISO 8601 / RFC 3339 text (`2026-11-30T14:05:00.000Z`)
/// or milliseconds since the epoch.
pub(super) fn parse_timestamp(value: &minijinja::Value) -> Option<OffsetDateTime> {
    if let Some(text) = value.as_str() {
        return OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok();
    }
    let millis = i64::try_from(value.clone()).ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
}
