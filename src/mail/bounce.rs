//! Bounces that come back: the envelope sender of each message (VERP), and reading the report a
//! mail server sends to it when the message could not be delivered.
//!
//! A message's envelope sender is `CBH_BOUNCE_ADDRESS` with the message's id after a `+`
//! (`bounces+{id}@lab.example`). The id is the random part of the message's Message-ID (128
//! bits, hex): a sequential id would let anyone who can mail the bounce address mark other
//! people's invitations bounced; this one is known only to the relay path and the recipient,
//! and a resend gives the message a new one. A report is matched to its message by that id, or
//! failing that by the original Message-ID the report quotes, never by its `From`.
//!
//! Reports are parsed with mail-parser: a delivery status notification (RFC 3464,
//! `multipart/report; report-type=delivery-status`: the form Postfix, Exim, Microsoft 365 and
//! Gmail send), or a plain-text bounce whose text carries an enhanced status code (RFC 3463,
//! `5.1.1`) or an SMTP reply code.

use lettre::Address;
use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::domain::bounce::StatusCode;

/// Length of the VERP id: the 32 hex digits of a Message-ID's local part.
const ID_LEN: usize = 32;
/// A report longer than this is not read further (a bounce quoting a huge message).
pub const MAX_REPORT: usize = 10 << 20;

/// The envelope sender for the message whose Message-ID is `message_id`:
/// `local+{id}@domain`, or `None` when the Message-ID is not one of ours.
pub fn verp_address(bounce: &Address, message_id: &str) -> Option<Address> {
    let id = message_id_key(message_id)?;
    format!("{}+{id}@{}", bounce.user(), bounce.domain())
        .parse()
        .ok()
}

/// The VERP id of a Message-ID `<{32 hex}@domain>`.
pub fn message_id_key(message_id: &str) -> Option<String> {
    let inner = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let (local, _) = inner.split_once('@')?;
    is_id(local).then(|| local.to_ascii_lowercase())
}

/// The VERP id in an address `local+{id}@domain` (the last `+`), if it has one.
pub fn verp_id(address: &str) -> Option<String> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _) = address.rsplit_once('@')?;
    let (_, id) = local.rsplit_once('+')?;
    is_id(id).then(|| id.to_ascii_lowercase())
}

fn is_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A report, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The VERP id of the address the report was sent to.
    pub verp_id: Option<String>,
    /// The Message-ID of the message that bounced, as the report quotes it.
    pub original_message_id: Option<String>,
    pub status: StatusCode,
    /// The remote server's words (`Diagnostic-Code`), or the report's line with the code.
    pub diagnostic: String,
    /// The recipient the report is about (`Final-Recipient`), for the log.
    pub recipient: Option<String>,
}

/// Why a report was not understood; the one line logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unrecognised(pub String);

/// Reads a report. `recipients` are the addresses the mail system delivered it to
/// (`--recipient`), tried before the message's own `X-Original-To`, `Delivered-To` and `To`.
pub fn parse_bounce(raw: &[u8], recipients: &[String]) -> Result<Bounce, Unrecognised> {
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| Unrecognised("the input is not an email message".into()))?;
    let header_addresses = ["X-Original-To", "Delivered-To", "To"]
        .into_iter()
        .flat_map(|name| message.header_values(name))
        .flat_map(|value| match value {
            mail_parser::HeaderValue::Address(address) => address
                .iter()
                .filter_map(|a| a.address().map(str::to_owned))
                .collect::<Vec<_>>(),
            mail_parser::HeaderValue::Text(text) => vec![text.to_string()],
            _ => Vec::new(),
        })
        .collect::<Vec<_>>();
    let verp_id = recipients
        .iter()
        .chain(header_addresses.iter())
        .find_map(|address| verp_id(address));

    let mut report: Option<Report> = None;
    let mut original_message_id = None;
    for part in &message.parts {
        let Some(content_type) = part.content_type() else {
            continue;
        };
        let ctype = content_type.ctype().to_ascii_lowercase();
        let subtype = content_type
            .subtype()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") if report.is_none() => {
                report = Report::parse(&String::from_utf8_lossy(part.contents()));
            }
            ("message", "rfc822" | "global") if original_message_id.is_none() => {
                original_message_id = match &part.body {
                    PartType::Message(inner) => inner.message_id().map(str::to_owned),
                    _ => quoted_message_id(part.contents()),
                };
            }
            ("text", "rfc822-headers") | ("message", "rfc822-headers")
                if original_message_id.is_none() =>
            {
                original_message_id = quoted_message_id(part.contents());
            }
            _ => {}
        }
    }
    let report = match report {
        Some(report) => report,
        // No delivery-status part: a plain-text bounce, read from its text.
        None => {
            let text: String = message
                .text_bodies()
                .filter_map(|p| p.text_contents())
                .collect::<Vec<_>>()
                .join("\n");
            Report::from_text(&text).ok_or_else(|| {
                Unrecognised("no delivery status and no status code in the text".into())
            })?
        }
    };
    if verp_id.is_none() && original_message_id.is_none() {
        return Err(Unrecognised(format!(
            "a {} report that names neither a VERP address nor the original Message-ID",
            report.status
        )));
    }
    Ok(Bounce {
        verp_id,
        original_message_id,
        status: report.status,
        // Shown on the invite page and in the notice: one line, bounded.
        diagnostic: report
            .diagnostic
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(1000)
            .collect(),
        recipient: report.recipient,
    })
}

/// The Message-ID among quoted headers.
fn quoted_message_id(headers: &[u8]) -> Option<String> {
    MessageParser::default()
        .parse_headers(headers)
        .and_then(|m| m.message_id().map(str::to_owned))
}

/// What a report says of the recipient it is about.
struct Report {
    status: StatusCode,
    diagnostic: String,
    recipient: Option<String>,
}

impl Report {
    /// The `message/delivery-status` body: a per-message block, then one block per recipient
    /// (`Final-Recipient`, `Action`, `Status`, `Diagnostic-Code`). Ours have one recipient; of
    /// several, the most serious status wins.
    fn parse(body: &str) -> Option<Self> {
        let mut best: Option<Self> = None;
        let mut block = Vec::new();
        for line in unfold(body)
            .into_iter()
            .chain(std::iter::once(String::new()))
        {
            if !line.trim().is_empty() {
                block.push(line);
                continue;
            }
            let field = |name: &str| {
                block.iter().find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_owned())
                })
            };
            if let Some(status) = field("Status").and_then(|s| StatusCode::parse(&s)) {
                let diagnostic = field("Diagnostic-Code")
                    // `smtp; 550 5.1.1 …`: the type is not the server's words.
                    .map(|d| match d.split_once(';') {
                        Some((_, words)) => words.trim().to_owned(),
                        None => d,
                    })
                    .unwrap_or_else(|| format!("status {status}"));
                let recipient = field("Final-Recipient").map(|r| match r.split_once(';') {
                    Some((_, address)) => address.trim().to_owned(),
                    None => r,
                });
                // Exim reports `5.0.0` and leaves the detail to the remote server's words
                // (`550 5.1.1 …`): the more precise code of the same class wins.
                let status = if status.subject == 0 && status.detail == 0 {
                    enhanced_code(&diagnostic)
                        .filter(|s| s.class == status.class)
                        .unwrap_or(status)
                } else {
                    status
                };
                let candidate = Self {
                    status,
                    diagnostic,
                    recipient,
                };
                if best.as_ref().is_none_or(|b| status.class > b.status.class) {
                    best = Some(candidate);
                }
            }
            block.clear();
        }
        best
    }

    /// A bounce without a delivery-status part: the first line of its text with an enhanced
    /// status code (`5.1.1`), else with an SMTP reply code (`550`, read as `5.0.0`).
    fn from_text(text: &str) -> Option<Self> {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let enhanced = lines
            .iter()
            .find_map(|line| enhanced_code(line).map(|s| (s, *line)));
        let (status, line) = enhanced.or_else(|| {
            lines.iter().find_map(|line| {
                let code = line.get(..3)?;
                let after = line[3..].chars().next();
                let class = match code.as_bytes() {
                    [c @ (b'4' | b'5'), b'0'..=b'9', b'0'..=b'9'] => c - b'0',
                    _ => return None,
                };
                matches!(after, Some(' ' | '-')).then_some((
                    StatusCode {
                        class,
                        subject: 0,
                        detail: 0,
                    },
                    *line,
                ))
            })
        })?;
        Some(Self {
            status,
            diagnostic: line.chars().take(500).collect(),
            recipient: None,
        })
    }
}

/// The first enhanced status code (`5.1.1`, not `2.x.x`) among the words of `line`.
fn enhanced_code(line: &str) -> Option<StatusCode> {
    line.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | ',' | '-'))
        .find_map(|word| {
            // `5.1.1`, and not a version or an address such as `10.5.1.1`.
            let looks = word.len() <= 9 && word.matches('.').count() == 2;
            looks
                .then(|| StatusCode::parse(word))
                .flatten()
                .filter(|s| s.class != 2)
        })
}

/// Header-style lines with their continuation lines joined.
fn unfold(body: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) && !line.trim().is_empty() => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_verp_address_carries_the_message_ids_random_part() {
        let bounce: Address = "bounces@lab.example".parse().expect("address");
        let verp = verp_address(&bounce, &format!("<{ID}@lab.example>")).expect("verp");
        assert_eq!(verp.to_string(), format!("bounces+{ID}@lab.example"));
        assert_eq!(verp_id(verp.as_ref()).as_deref(), Some(ID));
        assert_eq!(verp_address(&bounce, "<test-x@lab.example>"), None);
        assert_eq!(verp_id("bounces+1234@lab.example"), None);
        assert_eq!(verp_id("bounces@lab.example"), None);
    }

    #[test]
    fn a_plain_text_bounce_is_read_from_its_text() {
        let raw = format!(
            "From: MAILER-DAEMON@mx.example\r\nTo: bounces+{ID}@lab.example\r\n\
             Subject: failure notice\r\n\r\nSorry, we were unable to deliver your message.\r\n\
             <bob@example.org>: 550 5.1.1 user unknown\r\n"
        );
        let bounce = parse_bounce(raw.as_bytes(), &[]).expect("read");
        assert_eq!(bounce.verp_id.as_deref(), Some(ID));
        assert_eq!(bounce.status.to_string(), "5.1.1");
        assert!(bounce.diagnostic.contains("user unknown"));
    }

    #[test]
    fn garbage_and_reports_about_nothing_of_ours_are_unrecognised() {
        assert!(parse_bounce(b"\x00\x01 not mail", &[]).is_err());
        assert!(parse_bounce(b"Subject: hi\r\n\r\nhello\r\n", &[]).is_err());
        let no_id = "To: bounces@lab.example\r\n\r\n550 5.1.1 unknown\r\n";
        assert!(parse_bounce(no_id.as_bytes(), &[]).is_err());
    }

    proptest::proptest! {
        /// Whatever a stranger mails to the bounce address, it is read or refused, never a
        /// panic (a report of our own shape with random parts, and random bytes).
        #[test]
        fn any_input_is_read_or_refused(
            status in "[0-9a-z. ]{0,12}",
            diagnostic in "\\PC{0,80}",
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let mut raw = format!(
                "To: bounces+{ID}@lab.example\r\nContent-Type: multipart/report; \
                 report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\
                 Content-Type: message/delivery-status\r\n\r\nStatus: {status}\r\n\
                 Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--b\r\n\
                 Content-Type: text/rfc822-headers\r\n\r\n"
            )
            .into_bytes();
            raw.extend_from_slice(&tail);
            if let Ok(bounce) = parse_bounce(&raw, &[]) {
                proptest::prop_assert!(bounce.diagnostic.chars().all(|c| !c.is_control()));
            }
            let _ = parse_bounce(&tail, &[]);
        }
    }
}
