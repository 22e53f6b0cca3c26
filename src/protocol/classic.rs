//! The classic encoding of operations: command messages `VERB [ARG ...]`,
//! parsed and encoded.
//!
//! This is the only place that knows the wire words (`cd`, `ul`, `mv`...).
//! Parsing is pure, so both the server and the client (which encodes) share
//! each command's contract.

use super::text::excerpt;
use crate::operation::Operation;

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
    /// as [`parse`] reads it (so a quoted `"ul"` is `ul` here too),
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

/// Parses one command message (without its token) into the operation it
/// asks for.
pub fn parse(raw: &[u8]) -> Result<Operation, ParseError> {
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
        "cd" => Ok(Operation::ChangeDirectory {
            path: one("cd PATH")?,
        }),
        "mkdir" => Ok(Operation::MakeDirectory {
            path: one("mkdir PATH")?,
            parents: false,
        }),
        "rm" => Ok(Operation::Remove {
            path: one("rm PATH")?,
            recursive: false,
        }),
        "ul" => Ok(Operation::Upload {
            path: one("ul PATH")?,
            size: None,
            resume: false,
        }),
        "dl" => Ok(Operation::Download {
            path: one("dl PATH")?,
            offset: 0,
        }),
        "info" => Ok(Operation::Size {
            path: one("info PATH")?,
        }),
        "mv" => match args {
            [from, to] => Ok(Operation::Rename {
                from: from.clone(),
                to: to.clone(),
            }),
            _ => Err(ParseError::Usage("mv SRC DEST")),
        },
        "exit" if args.is_empty() => Ok(Operation::Exit),
        "exit" => Err(ParseError::Usage("exit")),
        other => Err(ParseError::UnknownVerb(excerpt(other))),
    }
}

/// What the classic protocol cannot say: the operation as the shell names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} needs the extended protocol")]
pub struct Unsupported(pub &'static str);

/// The command message that asks for `operation`, quoting arguments where
/// needed; or what the classic protocol lacks to say it. (An upload's size
/// and a wish to resume are not said: a classic upload is a whole payload.)
pub fn encode(operation: &Operation) -> Result<String, Unsupported> {
    let (verb, args): (&str, &[&String]) = match operation {
        Operation::ChangeDirectory { path } => ("cd", &[path]),
        Operation::MakeDirectory {
            path,
            parents: false,
        } => ("mkdir", &[path]),
        Operation::MakeDirectory { parents: true, .. } => return Err(Unsupported("mkdir -p")),
        Operation::Remove {
            path,
            recursive: false,
        } => ("rm", &[path]),
        Operation::Remove {
            recursive: true, ..
        } => return Err(Unsupported("rm -r")),
        Operation::Rename { from, to } => ("mv", &[from, to]),
        Operation::Upload { path, .. } => ("ul", &[path]),
        Operation::Download { path, offset: 0 } => ("dl", &[path]),
        Operation::Download { .. } => return Err(Unsupported("resuming a download")),
        Operation::Size { path } => ("info", &[path]),
        Operation::Exit => ("exit", &[]),
        Operation::Stat { .. } => return Err(Unsupported("stat")),
        Operation::List { .. } => return Err(Unsupported("ls")),
        Operation::Login { .. } => return Err(Unsupported("logging in")),
    };
    let mut line = String::from(verb);
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    Ok(line)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> String {
        p.to_owned()
    }

    #[test]
    fn parses_every_verb() {
        let cases = [
            (
                "cd photos",
                Operation::ChangeDirectory {
                    path: path("photos"),
                },
            ),
            (
                "mkdir a",
                Operation::MakeDirectory {
                    path: path("a"),
                    parents: false,
                },
            ),
            (
                "rm a",
                Operation::Remove {
                    path: path("a"),
                    recursive: false,
                },
            ),
            (
                "ul a.jpg",
                Operation::Upload {
                    path: path("a.jpg"),
                    size: None,
                    resume: false,
                },
            ),
            (
                "dl a.jpg",
                Operation::Download {
                    path: path("a.jpg"),
                    offset: 0,
                },
            ),
            (
                "info a.jpg",
                Operation::Size {
                    path: path("a.jpg"),
                },
            ),
            (
                "mv a b",
                Operation::Rename {
                    from: path("a"),
                    to: path("b"),
                },
            ),
            ("exit", Operation::Exit),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line.as_bytes()), Ok(expected.clone()), "{line}");
            assert_eq!(encode(&expected).as_deref(), Ok(line), "{line}");
        }
    }

    #[test]
    fn what_the_classic_protocol_cannot_say_is_named() {
        let cases = [
            (
                Operation::MakeDirectory {
                    path: path("a"),
                    parents: true,
                },
                "mkdir -p",
            ),
            (
                Operation::Remove {
                    path: path("a"),
                    recursive: true,
                },
                "rm -r",
            ),
            (Operation::Stat { path: path("a") }, "stat"),
            (Operation::List { path: path("a") }, "ls"),
            (
                Operation::Download {
                    path: path("a"),
                    offset: 3,
                },
                "resuming a download",
            ),
        ];
        for (operation, named) in cases {
            assert_eq!(encode(&operation), Err(Unsupported(named)));
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
            assert_eq!(parse(line.as_bytes()), Err(expected), "{line:?}");
        }
        assert_eq!(parse(b"cd \xff"), Err(ParseError::NotUtf8));
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
            parse(br#""ul" a"#),
            Ok(Operation::Upload {
                path: "a".into(),
                size: None,
                resume: false
            })
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
            let rename = Operation::Rename {
                from: name.to_owned(),
                to: format!("{name}2"),
            };
            assert_eq!(parse(encode(&rename).unwrap().as_bytes()), Ok(rename));
        }
    }
}
