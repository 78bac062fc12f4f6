//! Parsers of single values (durations, namespaces, URLs), each error naming its variable.

use std::time::Duration;

use url::Url;

/// A duration of one number and one unit: `90s`, `30m`, `12h`, `7d`, from 1 s to 365 d.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let err = || format!("'{raw}' is not a duration such as 90s, 30m, 12h or 7d (1s to 365d)");
    let raw_trimmed = raw.trim();
    let unit_at = raw_trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(err)?;
    let (number, unit) = raw_trimmed.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| err())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    let secs = number.checked_mul(unit_secs).ok_or_else(err)?;
    if !(1..=365 * 86_400).contains(&secs) {
        return Err(err());
    }
    Ok(Duration::from_secs(secs))
}

/// `CBH_REMINDERS`: `off`, or durations separated by commas, each later than the one before.
pub fn parse_reminders(raw: &str) -> Result<Vec<Duration>, String> {
    if raw.trim().eq_ignore_ascii_case("off") {
        return Ok(Vec::new());
    }
    let times = raw
        .split(',')
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if times.len() > 10 {
        return Err(format!("'{raw}' has more than 10 reminders"));
    }
    if times.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(format!(
            "'{raw}' is not in increasing order (such as 2d,5d), nor off"
        ));
    }
    Ok(times)
}

pub fn parse_namespaces(raw: &str) -> Result<Vec<String>, String> {
    let namespaces: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if namespaces.is_empty() {
        return Err("CBH_NAMESPACES (--namespaces): no namespace given".into());
    }
    for ns in &namespaces {
        validate_namespace(ns).map_err(|e| format!("CBH_NAMESPACES (--namespaces): {e}"))?;
    }
    Ok(namespaces)
}

pub fn validate_namespace(ns: &str) -> Result<(), String> {
    let ok = !ns.is_empty()
        && ns.len() <= 64
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{ns}' is not a namespace (lower-case letters, digits, '-' and '_', at most 64)"
        ))
    }
}

pub(super) fn parse_public_url(raw: &str) -> Result<String, String> {
    let bad = |why: &str| format!("CBH_PUBLIC_URL (--public-url): '{raw}' {why}");
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An absolute http(s) URL, kept as given: the accept page redirects there, so it must never be
/// something a browser would run (`javascript:`) or resolve against this service.
pub(super) fn parse_app_url(raw: &str) -> Result<String, String> {
    let bad = |why: &str| format!("CBH_APP_URL (--app-url): '{raw}' {why}");
    let url = Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    Ok(url.to_string())
}
