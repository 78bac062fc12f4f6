//! Text that came from outside, made safe to print on one line of a terminal or a log: a
//! control character (a newline that would forge a record, an escape sequence that would drive
//! the terminal) or a bidirectional override (that would reorder what is shown) is written as
//! `\u{…}` instead.

/// `raw` with every control and bidirectional-override character escaped as `\u{hex}`.
pub fn escape_controls(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("ada@lab.example"), "ada@lab.example");
        assert_eq!(escape_controls("Zoë Ω"), "Zoë Ω");
        assert_eq!(escape_controls("a\nb\r\tc"), "a\\u{a}b\\u{d}\\u{9}c");
        assert_eq!(escape_controls("\u{1b}[2J\u{9b}"), "\\u{1b}[2J\\u{9b}");
        assert_eq!(escape_controls("x\u{202e}y\u{7f}"), "x\\u{202e}y\\u{7f}");
    }
}
