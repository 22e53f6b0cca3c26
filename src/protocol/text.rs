//! Text shown to people that came from a client (names in errors, in
//! listings, in logs): escaped, so that it stays on one visible line, and
//! bounded, so that it costs what a line costs.

/// Escapes anything unprintable (as `\n`, `\u{2028}`...) so that echoed
/// text stays on one visible line.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut escaped, c);
    }
    escaped
}

/// The most bytes of a client's text that an error or a log line echoes.
pub const MAX_EXCERPT: usize = 1024;

/// `text` [escaped](escape), and past [`MAX_EXCERPT`] bytes shortened to
/// its start and its end around `…`: what a reply or a log line may echo of
/// something a client sent, however long and however odd. Never builds the
/// whole escaped text.
pub fn excerpt(text: &str) -> String {
    const HEAD: usize = MAX_EXCERPT * 2 / 3;
    let mut shown = String::new();
    let mut rest = "";
    for (index, c) in text.char_indices() {
        if shown.len() >= HEAD {
            rest = &text[index..];
            break;
        }
        push_escaped(&mut shown, c);
    }
    let budget = MAX_EXCERPT.saturating_sub(shown.len());
    let mut tail_len = 0;
    let mut cut = rest.len();
    for (index, c) in rest.char_indices().rev() {
        tail_len += escaped_len(c);
        if tail_len > budget {
            break;
        }
        cut = index;
    }
    if cut > 0 {
        shown.push('…');
        // The mark takes three bytes of the budget: the tail gives them back.
        let mut trimmed = 0;
        for c in rest[cut..].chars() {
            if trimmed >= '…'.len_utf8() {
                break;
            }
            trimmed += escaped_len(c);
            cut += c.len_utf8();
        }
    }
    for c in rest[cut..].chars() {
        push_escaped(&mut shown, c);
    }
    shown
}

fn push_escaped(escaped: &mut String, c: char) {
    match is_unprintable(c) {
        true => escaped.extend(c.escape_default()),
        false => escaped.push(c),
    }
}

fn escaped_len(c: char) -> usize {
    match is_unprintable(c) {
        true => c.escape_default().count(),
        false => c.len_utf8(),
    }
}

/// Control characters, every white space but the plain space (line and
/// paragraph separators, odd spaces), invisible format characters and
/// private-use characters: what Python's `str.isprintable` refuses, short
/// of unassigned code points.
fn is_unprintable(c: char) -> bool {
    let format = matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    );
    let private_use = matches!(
        c,
        '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{ffffd}' | '\u{100000}'..='\u{10fffd}'
    );
    c.is_control() || (c.is_whitespace() && c != ' ') || format || private_use
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_excerpt_of_short_text_is_the_text_escaped() {
        assert_eq!(excerpt("a b\nc"), "a b\\nc");
        let long = "x".repeat(MAX_EXCERPT);
        assert_eq!(excerpt(&long), long, "exactly the limit is kept whole");
    }

    #[test]
    fn an_excerpt_of_a_megabyte_keeps_its_start_and_end_within_the_limit() {
        let mut text = String::from("start/");
        text.push_str(&"\u{7f}".repeat(1 << 20));
        text.push_str("/end.txt");
        let shown = excerpt(&text);
        assert!(shown.len() <= MAX_EXCERPT, "{} bytes", shown.len());
        assert!(shown.starts_with("start/\\u{7f}"), "{shown}");
        assert!(shown.ends_with("/end.txt"), "{shown}");
        assert!(shown.contains('…'));
    }

    proptest! {
        #[test]
        fn excerpts_are_bounded_and_whole_when_short(text in "\\PC{0,600}|[\\x00-\\x1f\\u{7f}é日]{0,2000}") {
            let shown = excerpt(&text);
            prop_assert!(shown.len() <= MAX_EXCERPT);
            prop_assert!(!shown.chars().any(is_unprintable));
            let escaped = escape(&text);
            if escaped.len() <= MAX_EXCERPT {
                prop_assert_eq!(shown, escaped);
            }
        }
    }

    #[test]
    fn escape_keeps_one_line() {
        assert_eq!(escape("a\nb\tc\u{7f}"), r"a\nb\tc\u{7f}");
        assert_eq!(escape("plain 📷 ünï"), "plain 📷 ünï");
        assert_eq!(
            escape("line\u{2028}para\u{2029}nel\u{85}"),
            r"line\u{2028}para\u{2029}nel\u{85}"
        );
        assert_eq!(
            escape("rtl\u{202e}zw\u{200b}bom\u{feff}nb\u{a0}"),
            r"rtl\u{202e}zw\u{200b}bom\u{feff}nb\u{a0}"
        );
    }
}
