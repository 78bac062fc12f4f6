//! A roster: the list of people to invite at once, as pasted on the invite page or read from a
//! CSV file by the page's upload or `cbh-invite invite --csv`. Parsing is pure: bytes in, rows
//! out, each row with the line it came from and, when it cannot be sent, why.
//!
//! Accepted: one address per line; or `email, first name, last name` per line; or a CSV file
//! with an optional header row that names the email column (`email`, `e-mail`, `email address`)
//! and, optionally, `first name`, `last name` and `language` (a BCP 47 tag: the language of
//! that person's emails) in any order. UTF-8 only (a leading BOM is
//! dropped); the delimiter is `;` or `,`, whichever the first line uses more.
//!
//! A row that cannot be sent keeps its place with an error (invalid address or name, too many
//! fields, the same address as an earlier row): the person fixes the file once, not row by row.
//! Input that is not a roster at all (not UTF-8, more than `MAX_ROWS` rows, no row) is an error
//! for the whole of it, before any work.

use std::collections::HashMap;
use std::fmt;

use super::{EmailAddress, Language, PersonName};

/// The most rows one roster may hold: the bulk API's limit.
pub const MAX_ROWS: usize = 1000;

/// One person to invite, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterRow {
    /// The line of the input where the row begins (1-based).
    pub line: usize,
    /// The fields as typed, trimmed.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The `language` column (empty: none, the default applies).
    pub language: String,
    /// Why this row cannot be sent; `None` for a valid row.
    pub error: Option<String>,
}

impl RosterRow {
    pub fn is_valid(&self) -> bool {
        self.error.is_none()
    }
}

/// Why the input as a whole is not a roster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("the file is not UTF-8 text (line {line}); save it as \"CSV UTF-8\" and try again")]
    NotUtf8 { line: usize },
    #[error("there are more than {MAX_ROWS} rows; split the list and send each part")]
    TooManyRows,
    #[error("there is no address to invite")]
    Empty,
    #[error("the CSV could not be read: {0}")]
    Unreadable(String),
}

/// The columns of a row: where each field is, and how many fields a row may have.
#[derive(Debug, Clone, Copy)]
struct Columns {
    email: usize,
    first_name: Option<usize>,
    last_name: Option<usize>,
    language: Option<usize>,
    /// Without a header, the three positional fields; with one, the header's width.
    width: usize,
}

const POSITIONAL: Columns = Columns {
    email: 0,
    first_name: Some(1),
    last_name: Some(2),
    language: None,
    width: 3,
};

/// Parses raw bytes (an uploaded file): UTF-8 with or without a BOM.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<RosterRow>, RosterError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_text(text),
        Err(error) => {
            let before = &bytes[..error.valid_up_to()];
            let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
            Err(RosterError::NotUtf8 { line })
        }
    }
}

/// Parses text (pasted, or a file already decoded).
pub fn parse_text(text: &str) -> Result<Vec<RosterRow>, RosterError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(detect_delimiter(text))
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut columns: Option<Columns> = None;
    let mut rows: Vec<RosterRow> = Vec::new();
    // The key of each valid address seen, with its line, to mark repeats.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| RosterError::Unreadable(e.to_string()))?;
        // The csv crate's own line count lags behind blank lines and CRLF ends: count the
        // lines before the record's first byte instead.
        let line = record
            .position()
            .map_or(rows.len() + 1, |p| line_of(text, p.byte() as usize));
        let fields: Vec<&str> = record.iter().collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        let columns = match columns {
            Some(columns) => columns,
            None => {
                let found = header_columns(&fields);
                columns = Some(found.unwrap_or(POSITIONAL));
                if found.is_some() {
                    continue;
                }
                POSITIONAL
            }
        };
        if rows.len() == MAX_ROWS {
            return Err(RosterError::TooManyRows);
        }
        rows.push(read_row(line, &fields, columns, &mut seen));
    }
    if rows.is_empty() {
        return Err(RosterError::Empty);
    }
    Ok(rows)
}

fn read_row(
    line: usize,
    fields: &[&str],
    columns: Columns,
    seen: &mut HashMap<String, usize>,
) -> RosterRow {
    let field = |at: Option<usize>| {
        at.and_then(|i| fields.get(i))
            .copied()
            .unwrap_or("")
            .to_owned()
    };
    let mut row = RosterRow {
        line,
        email: field(Some(columns.email)),
        first_name: field(columns.first_name),
        last_name: field(columns.last_name),
        language: field(columns.language),
        error: None,
    };
    // Empty trailing fields (`bob@x.org,,,`, as spreadsheets write) are not extra data.
    let used = fields
        .iter()
        .rposition(|f| !f.is_empty())
        .map_or(0, |i| i + 1);
    row.error = if used > columns.width {
        Some(format!(
            "too many fields: {used}, at most {} (email, first name, last name)",
            columns.width
        ))
    } else {
        check_row(&row, seen).err()
    };
    row
}

fn check_row(row: &RosterRow, seen: &mut HashMap<String, usize>) -> Result<(), String> {
    let email = EmailAddress::parse(&row.email).map_err(|e| e.to_string())?;
    PersonName::parse(&row.first_name, "first name").map_err(|e| e.to_string())?;
    PersonName::parse(&row.last_name, "last name").map_err(|e| e.to_string())?;
    if !row.language.is_empty() {
        Language::parse(&row.language, "language").map_err(|e| e.to_string())?;
    }
    if let Some(first) = seen.get(&email.key()) {
        return Err(format!("the same address as line {first}"));
    }
    seen.insert(email.key(), row.line);
    Ok(())
}

/// The line (1-based) of the record that begins at or after `offset`, past any line ends.
fn line_of(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let mut start = offset.min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count()
}

/// `;` when the first line has more of them than of `,` (a spreadsheet in a locale where the
/// comma is the decimal sign writes those), else `,`.
fn detect_delimiter(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let count = |c: char| first.chars().filter(|&x| x == c).count();
    if count(';') > count(',') { b';' } else { b',' }
}

/// The columns named by a header row, when `fields` is one: a field names the email column and
/// none is an address.
fn header_columns(fields: &[&str]) -> Option<Columns> {
    let name = |f: &str| -> String {
        f.to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect()
    };
    let names: Vec<String> = fields.iter().map(|f| name(f)).collect();
    let find = |options: &[&str]| names.iter().position(|n| options.contains(&n.as_str()));
    let email = find(&["email", "emailaddress", "mail", "address"])?;
    if fields.iter().any(|f| f.contains('@')) {
        return None;
    }
    Some(Columns {
        email,
        first_name: find(&["firstname", "givenname", "forename", "first"]),
        last_name: find(&["lastname", "surname", "familyname", "last"]),
        language: find(&["language", "lang", "locale"]),
        width: fields.len().max(3),
    })
}

/// One row's outcome, as the results table and its CSV show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowResult {
    /// The line of the input the row came from.
    pub line: usize,
    pub email: String,
    /// The HTTP status the row would have had alone: 201, 400, 403, 409 or 429.
    pub status: u16,
    /// What happened: the success message or the error.
    pub outcome: String,
}

impl RowResult {
    /// Whether the row was invited (or, in a dry run, would be).
    pub fn invited(&self) -> bool {
        self.status == 201
    }
}

/// The rows the parser refused, as results (400 with the reason); valid rows give none.
pub fn refused_rows(rows: &[RosterRow]) -> Vec<RowResult> {
    rows.iter()
        .filter_map(|row| {
            row.error.as_ref().map(|error| RowResult {
                line: row.line,
                email: row.email.clone(),
                status: 400,
                outcome: error.clone(),
            })
        })
        .collect()
}

/// The results as CSV (`line,email,status,outcome`, a header row, CRLF line ends as RFC 4180),
/// for the page's download and the CLI's `--out`.
pub fn results_csv(results: &[RowResult]) -> String {
    let mut out = String::from("line,email,status,outcome\r\n");
    for result in results {
        let fields = [
            result.line.to_string(),
            csv_field(&result.email),
            result.status.to_string(),
            csv_field(&result.outcome),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One field, quoted when it must be. A field a spreadsheet would run as a formula (`=`, `+`,
/// `-`, `@` first) gets a leading `'`: the file is opened by people, and its values come from
/// the roster, which anyone could have written.
fn csv_field(value: &str) -> String {
    let value = printable_field(value);
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value
    };
    if value.contains([',', '"', '\r', '\n', ';']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// A value as it may be written to a terminal or a file: control characters (escape sequences,
/// line breaks) replaced, nothing cut.
pub fn printable_field(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// Invited, refused and total, for the summary line and the results page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub invited: usize,
    pub refused: usize,
    pub total: usize,
}

impl Summary {
    pub fn of(results: &[RowResult]) -> Self {
        let invited = results.iter().filter(|r| r.invited()).count();
        Self {
            invited,
            refused: results.len() - invited,
            total: results.len(),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} invited, {} refused, {} in all",
            self.invited, self.refused, self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(rows: &[RosterRow]) -> Vec<(usize, Option<&str>)> {
        rows.iter().map(|r| (r.line, r.error.as_deref())).collect()
    }

    #[test]
    fn one_address_per_line_with_blank_lines_skipped() {
        let rows = parse_text("ada@lab.example\n\n  bob@lab.example  \r\n\r\n\r\ncarl@lab.example")
            .expect("roster");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].email, "ada@lab.example");
        assert_eq!(rows[1].email, "bob@lab.example");
        let lines: Vec<usize> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 3, 6]);
        assert!(rows.iter().all(RosterRow::is_valid));
    }

    #[test]
    fn names_follow_the_address() {
        let rows =
            parse_text("ada@lab.example, Ada, Lovelace\nbob@lab.example,Bob").expect("roster");
        assert_eq!(
            (rows[0].first_name.as_str(), rows[0].last_name.as_str()),
            ("Ada", "Lovelace")
        );
        assert_eq!(
            (rows[1].first_name.as_str(), rows[1].last_name.as_str()),
            ("Bob", "")
        );
    }

    #[test]
    fn a_header_names_the_columns_in_any_order() {
        let csv = "Last name;E-mail;First Name\nLovelace;ada@lab.example;Ada\n";
        let rows = parse_bytes(csv.as_bytes()).expect("roster");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].email, "ada@lab.example");
        assert_eq!(rows[0].first_name, "Ada");
        assert_eq!(rows[0].last_name, "Lovelace");
        assert_eq!(rows[0].line, 2);
    }

    #[test]
    fn a_header_may_name_a_language_column() {
        let csv = "email,language,first name\nada@lab.example,de-at,Ada\nbob@lab.example,,Bob\ncarl@lab.example,de_DE,Carl\n";
        let rows = parse_text(csv).expect("roster");
        assert_eq!(rows[0].language, "de-at");
        assert!(rows[0].is_valid());
        assert_eq!(rows[1].language, "");
        assert!(rows[1].is_valid());
        assert!(
            rows[2]
                .error
                .as_deref()
                .expect("error")
                .starts_with("language: 'de_DE' is not a BCP 47 language tag"),
            "{:?}",
            rows[2].error
        );
    }

    #[test]
    fn a_bom_is_dropped_and_quoted_fields_keep_their_commas() {
        let csv = "\u{FEFF}email,first_name,last_name\r\n\"bob@lab.example\",\"Smith, Jr\",Bob\r\n";
        let rows = parse_bytes(csv.as_bytes()).expect("roster");
        assert_eq!(rows[0].email, "bob@lab.example");
        assert_eq!(rows[0].first_name, "Smith, Jr");
        assert_eq!(rows[0].line, 2);
        assert!(rows[0].is_valid());
    }

    #[test]
    fn bad_rows_keep_their_place_with_the_reason() {
        let text = "ada@lab.example\nnot an address\nbob@lab.example,B,S,extra\nADA@lab.example\ncarl@lab.example,,,\n";
        let rows = parse_text(text).expect("roster");
        let found = errors(&rows);
        assert_eq!(found[0], (1, None));
        assert_eq!(found[1].0, 2);
        assert!(
            found[1]
                .1
                .expect("error")
                .contains("not a valid email address")
        );
        assert!(found[2].1.expect("error").starts_with("too many fields"));
        assert_eq!(found[3], (4, Some("the same address as line 1")));
        assert_eq!(found[4], (5, None), "empty trailing fields are not extra");
    }

    #[test]
    fn a_name_with_a_control_character_is_refused() {
        let rows = parse_text("ada@lab.example,\"A\u{7}da\"").expect("roster");
        assert!(rows[0].error.as_deref().expect("error").contains("control"));
    }

    #[test]
    fn input_that_is_no_roster_is_refused_whole() {
        assert_eq!(
            parse_bytes(b"ada@lab.example\nb\xFFb@lab.example\n"),
            Err(RosterError::NotUtf8 { line: 2 })
        );
        assert_eq!(parse_text(" \n\n"), Err(RosterError::Empty));
        assert_eq!(parse_text("email,first name\n"), Err(RosterError::Empty));
        let many: String = (0..=MAX_ROWS)
            .map(|i| format!("u{i}@lab.example\n"))
            .collect();
        assert_eq!(parse_text(&many), Err(RosterError::TooManyRows));
        let enough: String = (0..MAX_ROWS)
            .map(|i| format!("u{i}@lab.example\n"))
            .collect();
        assert_eq!(parse_text(&enough).expect("roster").len(), MAX_ROWS);
    }

    #[test]
    fn results_are_csv_with_formulas_defused() {
        let results = vec![
            RowResult {
                line: 2,
                email: "ada@lab.example".into(),
                status: 201,
                outcome: "Invitation sent".into(),
            },
            RowResult {
                line: 3,
                email: "=HYPERLINK(\"x\")".into(),
                status: 400,
                outcome: "'x' is not valid, really".into(),
            },
        ];
        assert_eq!(
            results_csv(&results),
            "line,email,status,outcome\r\n2,ada@lab.example,201,Invitation sent\r\n\
             3,\"'=HYPERLINK(\"\"x\"\")\",400,\"'x' is not valid, really\"\r\n"
        );
        assert_eq!(
            Summary::of(&results).to_string(),
            "1 invited, 1 refused, 2 in all"
        );
    }
}
