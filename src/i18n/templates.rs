//! The catalogs in minijinja templates: `{{ t("key", name=value) }}` and the filters
//! `{{ when|date }}` and `{{ when|datetime }}`, in the language of the template's `lang`.
//!
//! In an HTML template (auto-escaping on), `t()` escapes each argument that is not already safe
//! and returns the message as safe HTML: so a message may carry markup of the catalog's own
//! (trusted, like a template) around values that cannot inject any, and a template may hand in
//! markup it built itself (`{% set link %}<a …>…</a>{% endset %}`, safe by construction). In a
//! text template nothing is escaped.

use std::sync::Arc;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State};

use super::dates::{self, DateStyle};
use super::{Catalogs, FluentValue};

impl Catalogs {
    /// Adds `t()`, `date` and `datetime` to `env`. Each reads the variable `lang` of the
    /// template's context: a template without it is an error, not silently English.
    pub fn register(self: &Arc<Self>, env: &mut Environment<'static>) {
        let catalogs = self.clone();
        env.add_function(
            "t",
            move |state: &State, key: &str, kwargs: Kwargs| -> Result<Value, Error> {
                let lang = lang_of(state)?;
                let html = matches!(state.auto_escape(), AutoEscape::Html);
                let mut args: Vec<(String, FluentValue<'static>)> = Vec::new();
                for name in kwargs.args() {
                    let value: Value = kwargs.get(name)?;
                    if let Some(value) = fluent_value(&value, html) {
                        args.push((name.to_owned(), value));
                    }
                }
                kwargs.assert_all_used()?;
                let args: Vec<(&str, FluentValue)> = args
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.clone()))
                    .collect();
                let text = catalogs.text(&lang, key, &args);
                Ok(if html {
                    Value::from_safe_string(text)
                } else {
                    Value::from(text)
                })
            },
        );
        for (name, style) in [("date", DateStyle::Date), ("datetime", DateStyle::DateTime)] {
            let catalogs = self.clone();
            env.add_filter(
                name,
                move |state: &State, value: Value| -> Result<String, Error> {
                    // No date (an invitation without expiry) writes nothing, as printing it would.
                    if value.is_none() || value.is_undefined() {
                        return Ok(String::new());
                    }
                    let lang = lang_of(state)?;
                    let at = dates::parse_timestamp(&value).ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidOperation,
                            format!("{name}: {value} is not a timestamp"),
                        )
                    })?;
                    Ok(catalogs.format_date(&lang, at, style))
                },
            );
        }
    }
}

fn lang_of(state: &State) -> Result<String, Error> {
    state
        .lookup("lang")
        .and_then(|lang| lang.as_str().map(str::to_owned))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::UndefinedError,
                "the template's context has no `lang` for t(), date or datetime",
            )
        })
}

/// A template value as a Fluent argument; None for none and undefined (the message then shows
/// the missing argument, and the log says so).
fn fluent_value(value: &Value, html: bool) -> Option<FluentValue<'static>> {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => None,
        ValueKind::Number => {
            if let Ok(n) = i64::try_from(value.clone()) {
                Some(FluentValue::from(n))
            } else {
                f64::try_from(value.clone()).ok().map(FluentValue::from)
            }
        }
        _ => {
            let text = value.to_string();
            Some(FluentValue::from(if html && !value.is_safe() {
                escape_html(&text)
            } else {
                text
            }))
        }
    }
}

/// The same escaping as minijinja's HTML auto-escape, so that a value reads the same whether a
/// template prints it or hands it to `t()`.
fn escape_html(text: &str) -> String {
    minijinja::HtmlEscape(text).to_string()
}
