//! Classic command messages: `VERB [ARG ...]`, parsed and encoded.
//!
//! This is the only place that knows the wire words (`cd`, `ul`, `mv`...).
//! Parsing is pure, so both the server and the client (which encodes) share
//! each command's contract.

use std::fmt;

/// A client request in the classic protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `cd PATH`
    ChangeDirectory {
        /// The path as the client wrote it.
        path: String,
    },
    /// `mkdir PATH`
    MakeDirectory {
        /// The path as the client wrote it.
        path: String,
    },
    /// `rm PATH`
    Remove {
        /// The path as the client wrote it.
        path: String,
    },
    /// `ul PATH`, followed by an upload payload message.
    Upload {
        /// The path as the client wrote it.
        path: String,
    },
    /// `dl PATH`, answered by a download payload message.
    Download {
        /// The path as the client wrote it.
        path: String,
    },
    /// `info PATH`, answered by a payload holding the size in decimal.
    Size {
        /// The path as the client wrote it.
        path: String,
    },
    /// `mv SRC DEST`
    Rename {
        /// What to move.
        from: String,
        /// Where to: a new name, or an existing directory to move into.
        to: String,
    },
    /// `exit`: the server closes without a status.
    Exit,
}

/// Which payload message travels with a command, decided by its verb alone
/// so that client and server stay in step even when the command is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadShape {
    /// No payload.
    None,
    /// The client sends one message after the command (`ul`).
    FromClient,
    /// The server sends one message before the status (`dl`, `info`).
    FromServer,
}

impl PayloadShape {
    /// The shape for a raw command message, valid or not. The verb is read
    /// as [`Request::parse`] reads it (so a quoted `"ul"` is `ul` here too),
    /// falling back to the raw first word when the line cannot be split.
    pub fn of_command(raw: &[u8]) -> PayloadShape {
        let words = std::str::from_utf8(raw)
            .ok()
            .and_then(|text| split_arguments(text).ok());
        let verb = match words.as_ref().and_then(|words| words.first()) {
            Some(verb) => verb.as_bytes(),
            None => raw
                .split(|b| *b == b' ' || *b == b'\t')
                .find(|word| !word.is_empty())
                .unwrap_or_default(),
        };
        match verb {
            b"ul" => PayloadShape::FromClient,
            b"dl" | b"info" => PayloadShape::FromServer,
            _ => PayloadShape::None,
        }
    }
}

/// Why a command message is not a valid request. The `Display` text is what
/// follows `error: ` in the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The message was empty or only white space.
    #[error("empty command")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("command is not valid UTF-8")]
    NotUtf8,
    /// A double quote was opened and never closed.
    #[error("unclosed quote")]
    UnclosedQuote,
    /// The verb is not one we know.
    #[error("unknown command: {0}")]
    UnknownVerb(String),
    /// Too few or too many arguments for the verb.
    #[error("usage: {0}")]
    Usage(&'static str),
}

impl Request {
    /// Parses one command message (without its token).
    pub fn parse(raw: &[u8]) -> Result<Request, ParseError> {
        let text = std::str::from_utf8(raw).map_err(|_| ParseError::NotUtf8)?;
        let words = split_arguments(text)?;
        let Some((verb, args)) = words.split_first() else {
            return Err(ParseError::Empty);
        };
        let one = |usage: &'static str| match args {
            [path] => Ok(path.clone()),
            _ => Err(ParseError::Usage(usage)),
        };
        match verb.as_str() {
            "cd" => Ok(Request::ChangeDirectory {
                path: one("cd PATH")?,
            }),
            "mkdir" => Ok(Request::MakeDirectory {
                path: one("mkdir PATH")?,
            }),
            "rm" => Ok(Request::Remove {
                path: one("rm PATH")?,
            }),
            "ul" => Ok(Request::Upload {
                path: one("ul PATH")?,
            }),
            "dl" => Ok(Request::Download {
                path: one("dl PATH")?,
            }),
            "info" => Ok(Request::Size {
                path: one("info PATH")?,
            }),
            "mv" => match args {
                [from, to] => Ok(Request::Rename {
                    from: from.clone(),
                    to: to.clone(),
                }),
                _ => Err(ParseError::Usage("mv SRC DEST")),
            },
            "exit" if args.is_empty() => Ok(Request::Exit),
            "exit" => Err(ParseError::Usage("exit")),
            other => Err(ParseError::UnknownVerb(excerpt(other))),
        }
    }

    /// The wire verb of this request.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::ChangeDirectory { .. } => "cd",
            Request::MakeDirectory { .. } => "mkdir",
            Request::Remove { .. } => "rm",
            Request::Upload { .. } => "ul",
            Request::Download { .. } => "dl",
            Request::Size { .. } => "info",
            Request::Rename { .. } => "mv",
            Request::Exit => "exit",
        }
    }

    /// The command message's text, quoting arguments where needed.
    pub fn encode(&self) -> String {
        let mut line = String::from(self.verb());
        let args: &[&String] = match self {
            Request::ChangeDirectory { path }
            | Request::MakeDirectory { path }
            | Request::Remove { path }
            | Request::Upload { path }
            | Request::Download { path }
            | Request::Size { path } => &[path],
            Request::Rename { from, to } => &[from, to],
            Request::Exit => &[],
        };
        for arg in args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        line
    }
}

impl From<Request> for crate::operation::Operation {
    fn from(request: Request) -> crate::operation::Operation {
        use crate::operation::Operation;
        match request {
            Request::ChangeDirectory { path } => Operation::ChangeDirectory { path },
            Request::MakeDirectory { path } => Operation::MakeDirectory {
                path,
                parents: false,
            },
            Request::Remove { path } => Operation::Remove {
                path,
                recursive: false,
            },
            Request::Upload { path } => Operation::Upload {
                path,
                size: None,
                resume: false,
            },
            Request::Download { path } => Operation::Download { path, offset: 0 },
            Request::Size { path } => Operation::Size { path },
            Request::Rename { from, to } => Operation::Rename { from, to },
            Request::Exit => Operation::Exit,
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// Splits a command line into arguments: runs of spaces or tabs separate
/// them; double quotes group, with `\"` and `\\` as escapes inside quotes;
/// outside quotes a backslash is ordinary.
pub fn split_arguments(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '\t') {
            if c != '"' {
                word.push(c);
                continue;
            }
            loop {
                match chars.next() {
                    None => return Err(ParseError::UnclosedQuote),
                    Some('"') => break,
                    Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => {
                        word.extend(chars.next());
                    }
                    Some(c) => word.push(c),
                }
            }
        }
        words.push(word);
    }
}

/// Quotes `arg` if the classic argument syntax needs it.
pub fn quote(arg: &str) -> String {
    let plain = !arg.is_empty() && !arg.contains([' ', '\t', '"', '\\']);
    if plain {
        return arg.to_owned();
    }
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('"');
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

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

    fn path(p: &str) -> String {
        p.to_owned()
    }

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
    fn parses_every_verb() {
        let cases = [
            (
                "cd photos",
                Request::ChangeDirectory {
                    path: path("photos"),
                },
            ),
            ("mkdir a", Request::MakeDirectory { path: path("a") }),
            ("rm a", Request::Remove { path: path("a") }),
            (
                "ul a.jpg",
                Request::Upload {
                    path: path("a.jpg"),
                },
            ),
            (
                "dl a.jpg",
                Request::Download {
                    path: path("a.jpg"),
                },
            ),
            (
                "info a.jpg",
                Request::Size {
                    path: path("a.jpg"),
                },
            ),
            (
                "mv a b",
                Request::Rename {
                    from: path("a"),
                    to: path("b"),
                },
            ),
            ("exit", Request::Exit),
        ];
        for (line, expected) in cases {
            assert_eq!(Request::parse(line.as_bytes()), Ok(expected), "{line}");
        }
    }

    #[test]
    fn white_space_and_quotes() {
        let cases: &[(&str, &[&str])] = &[
            ("  cd \t  a  ", &["cd", "a"]),
            (r#"ul "my file.txt""#, &["ul", "my file.txt"]),
            (r#"ul "say \"hi\"""#, &["ul", r#"say "hi""#]),
            (r#"ul "back\\slash""#, &["ul", r"back\slash"]),
            (r"ul back\slash", &["ul", r"back\slash"]),
            (r#"ul "a\b""#, &["ul", r"a\b"]),
            (r#"mv "" b"#, &["mv", "", "b"]),
            (r#"ul a"b c"d"#, &["ul", "ab cd"]),
            ("ul 📷 photo.jpg", &["ul", "📷", "photo.jpg"]),
        ];
        for (line, expected) in cases {
            assert_eq!(split_arguments(line).unwrap(), *expected, "{line}");
        }
    }

    #[test]
    fn errors() {
        let cases = [
            ("", ParseError::Empty),
            ("   \t ", ParseError::Empty),
            ("CD a", ParseError::UnknownVerb("CD".into())),
            ("ls", ParseError::UnknownVerb("ls".into())),
            ("cd", ParseError::Usage("cd PATH")),
            ("cd a b", ParseError::Usage("cd PATH")),
            ("mv a", ParseError::Usage("mv SRC DEST")),
            ("mv a b c", ParseError::Usage("mv SRC DEST")),
            ("exit now", ParseError::Usage("exit")),
            (r#"cd "unclosed"#, ParseError::UnclosedQuote),
            (
                "nul\u{1}verb",
                ParseError::UnknownVerb(r"nul\u{1}verb".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(Request::parse(line.as_bytes()), Err(expected), "{line:?}");
        }
        assert_eq!(Request::parse(b"cd \xff"), Err(ParseError::NotUtf8));
    }

    #[test]
    fn payload_shape_follows_the_verb_even_when_invalid() {
        assert_eq!(PayloadShape::of_command(b"ul"), PayloadShape::FromClient);
        assert_eq!(
            PayloadShape::of_command(b"  ul \"x"),
            PayloadShape::FromClient
        );
        assert_eq!(
            PayloadShape::of_command(b"ul a b \xff"),
            PayloadShape::FromClient
        );
        assert_eq!(PayloadShape::of_command(b"dl"), PayloadShape::FromServer);
        assert_eq!(
            PayloadShape::of_command(b"info a b"),
            PayloadShape::FromServer
        );
        assert_eq!(PayloadShape::of_command(b"UL a"), PayloadShape::None);
        assert_eq!(PayloadShape::of_command(b"ulx a"), PayloadShape::None);
        assert_eq!(PayloadShape::of_command(b""), PayloadShape::None);
        // The verb as the parser sees it: quotes around it do not hide it.
        assert_eq!(
            PayloadShape::of_command(br#""ul" a b"#),
            PayloadShape::FromClient
        );
        assert_eq!(
            PayloadShape::of_command(br#""dl" a b"#),
            PayloadShape::FromServer
        );
        assert_eq!(
            Request::parse(br#""ul" a"#),
            Ok(Request::Upload { path: "a".into() })
        );
    }

    #[test]
    fn encode_round_trips() {
        for name in [
            "plain",
            "with space",
            r#"q"uote"#,
            r"back\slash",
            "",
            "tab\there",
            "ünï 📷",
        ] {
            let request = Request::Rename {
                from: name.to_owned(),
                to: format!("{name}2"),
            };
            assert_eq!(Request::parse(request.encode().as_bytes()), Ok(request));
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
