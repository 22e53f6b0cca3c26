//! The shell's line syntax, pure: words as in a POSIX shell, commands
//! separated by `;` or new lines, `#` comments.
//!
//! - white space separates words; `'...'` keeps everything literally;
//! - `"..."` keeps everything but `\"` and `\\`, which stand for `"` and `\`;
//! - outside quotes, a backslash makes the next character ordinary
//!   (`my\ file`), which is also how tab completion escapes names;
//! - `;` and a new line end a command; `#` at the start of a word starts a
//!   comment that runs to the end of the line;
//! - a word with an unquoted `*`, `?` or `[` is also a glob pattern, in
//!   which quoted or escaped pattern characters stand for themselves
//!   (`'*'.txt` names the file `*.txt`).

use std::fmt;

/// One command of a script: its words and the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// The words, quotes and escapes removed.
    pub words: Vec<Word>,
    /// The command's source text, trimmed, for messages.
    pub text: String,
}

/// A word, and the glob pattern it is if it has unquoted pattern characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    /// The word, quotes and escapes removed.
    pub text: String,
    /// The word as a glob pattern (quoted pattern characters escaped as
    /// `[*]`), when it has unquoted ones.
    pub pattern: Option<String>,
}

#[cfg(test)]
impl Word {
    /// A word that is not a pattern.
    pub fn plain(text: &str) -> Word {
        Word {
            text: text.to_owned(),
            pattern: None,
        }
    }
}

/// A word being read.
#[derive(Debug, Default)]
struct WordBuilder {
    text: String,
    pattern: String,
    /// Whether an unquoted pattern character was seen.
    glob: bool,
}

impl WordBuilder {
    /// Adds a character typed without quotes.
    fn push_unquoted(&mut self, c: char) {
        self.text.push(c);
        self.pattern.push(c);
        self.glob |= matches!(c, '*' | '?' | '[');
    }

    /// Adds a quoted or escaped character: itself, even in a pattern.
    fn push_literal(&mut self, c: char) {
        self.text.push(c);
        match c {
            '*' | '?' | '[' | ']' => {
                self.pattern.push('[');
                self.pattern.push(c);
                self.pattern.push(']');
            }
            c => self.pattern.push(c),
        }
    }

    fn finish(self) -> Word {
        Word {
            text: self.text,
            pattern: self.glob.then_some(self.pattern),
        }
    }
}

/// A line that cannot be split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// What is wrong.
    pub reason: &'static str,
    /// The offending line, trimmed.
    pub text: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.text, self.reason)
    }
}

/// Splits a script into its commands, in order. A line with a syntax error
/// becomes one `Err` in its place, so that the rest can still run.
pub fn parse_script(script: &str) -> Vec<Result<Words, LineError>> {
    let mut commands = Vec::new();
    for line in script.lines() {
        match lex(line) {
            Ok(lexed) => commands.extend(lexed.commands),
            Err(reason) => commands.push(Err(LineError {
                reason,
                text: line.trim().to_owned(),
            })),
        }
    }
    commands
}

/// What the lexer makes of (part of) a line.
#[derive(Debug, Default)]
struct Lexed {
    commands: Vec<Result<Words, LineError>>,
    /// Words of the command still open at the end (for completion).
    open: Vec<Word>,
    /// Whether the text ends inside a word (rather than after a separator).
    in_word: bool,
    /// Whether the text ends inside an unclosed quote.
    in_quote: bool,
}

/// Where the cursor stands for tab completion: the words of the command
/// being typed before it, and the index of the word under the cursor.
pub fn words_before_cursor(before: &str) -> (Vec<String>, usize) {
    let lexed = lex_lenient(before);
    let index = match lexed.in_word {
        true => lexed.open.len().saturating_sub(1),
        false => lexed.open.len(),
    };
    (
        lexed.open.into_iter().map(|word| word.text).collect(),
        index,
    )
}

fn lex(line: &str) -> Result<Lexed, &'static str> {
    let lexed = lex_lenient(line);
    match lexed.in_quote {
        true => Err("unclosed quote"),
        false => Ok(lexed),
    }
}

fn lex_lenient(line: &str) -> Lexed {
    let mut lexed = Lexed::default();
    let mut word: Option<WordBuilder> = None;
    // Where the current command's text starts, and where the line's
    // meaningful text ends (at a comment).
    let mut start = 0;
    let mut end = line.len();
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\r' => lexed.open.extend(word.take().map(WordBuilder::finish)),
            ';' => {
                lexed.open.extend(word.take().map(WordBuilder::finish));
                lexed.close_command(&line[start..at]);
                start = at + 1;
            }
            '#' if word.is_none() => {
                end = at;
                break;
            }
            '\\' => {
                let word = word.get_or_insert_default();
                word.push_literal(chars.next().map_or('\\', |(_, next)| next));
            }
            '\'' => {
                let word = word.get_or_insert_default();
                lexed.in_quote = true;
                for (_, c) in chars.by_ref() {
                    if c == '\'' {
                        lexed.in_quote = false;
                        break;
                    }
                    word.push_literal(c);
                }
            }
            '"' => {
                let word = word.get_or_insert_default();
                lexed.in_quote = true;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => {
                            lexed.in_quote = false;
                            break;
                        }
                        '\\' if matches!(chars.peek(), Some((_, '"' | '\\'))) => {
                            if let Some((_, c)) = chars.next() {
                                word.push_literal(c);
                            }
                        }
                        c => word.push_literal(c),
                    }
                }
            }
            c => word.get_or_insert_default().push_unquoted(c),
        }
    }
    lexed.in_word = word.is_some();
    lexed.open.extend(word.map(WordBuilder::finish));
    // The last command stays open (for completion) and is also complete.
    if !lexed.open.is_empty() {
        lexed.commands.push(Ok(Words {
            words: lexed.open.clone(),
            text: line[start..end].trim().to_owned(),
        }));
    }
    lexed
}

impl Lexed {
    fn close_command(&mut self, text: &str) {
        let words = std::mem::take(&mut self.open);
        if !words.is_empty() {
            self.commands.push(Ok(Words {
                words,
                text: text.trim().to_owned(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &str) -> Vec<Vec<String>> {
        parse_script(script)
            .into_iter()
            .map(|command| {
                let words = command.expect("parses").words;
                words.into_iter().map(|word| word.text).collect()
            })
            .collect()
    }

    fn patterns(line: &str) -> Vec<Option<String>> {
        let command = parse_script(line).remove(0).unwrap();
        command.words.into_iter().map(|word| word.pattern).collect()
    }

    #[test]
    fn splits_words_like_a_shell() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("cd photos", &[&["cd", "photos"]]),
            ("  cd \t photos  ", &[&["cd", "photos"]]),
            ("ul 'my file.jpg'", &[&["ul", "my file.jpg"]]),
            (r#"ul "my file.jpg" x"#, &[&["ul", "my file.jpg", "x"]]),
            (r"ul my\ file.jpg", &[&["ul", "my file.jpg"]]),
            (r#"ul "say \"hi\"""#, &[&["ul", r#"say "hi""#]]),
            (
                r#"ul "back\\slash" "a\b""#,
                &[&["ul", r"back\slash", r"a\b"]],
            ),
            (r"ul 'it\s' literal", &[&["ul", r"it\s", "literal"]]),
            (r#"mv a"b c"d 'e'"f""#, &[&["mv", "ab cd", "ef"]]),
            (r#"rm """#, &[&["rm", ""]]),
            ("ul 📷.jpg", &[&["ul", "📷.jpg"]]),
            (r"cd trailing\", &[&["cd", r"trailing\"]]),
        ];
        for (line, expected) in cases {
            assert_eq!(words(line), *expected, "{line}");
        }
    }

    #[test]
    fn separates_commands_and_skips_comments_and_blanks() {
        let script =
            "mkdir x; cd x ;; ul a.jpg\n\n  # a comment\ninfo a.jpg # size\nrm 'a;b' \"c#d\" e#f";
        assert_eq!(
            words(script),
            [
                vec!["mkdir", "x"],
                vec!["cd", "x"],
                vec!["ul", "a.jpg"],
                vec!["info", "a.jpg"],
                vec!["rm", "a;b", "c#d", "e#f"],
            ]
        );
    }

    #[test]
    fn keeps_each_commands_text_for_messages() {
        let texts: Vec<String> = parse_script("mkdir x;  cd 'my dir'  ; dl a # c")
            .into_iter()
            .map(|command| command.unwrap().text)
            .collect();
        assert_eq!(texts, ["mkdir x", "cd 'my dir'", "dl a"]);
    }

    #[test]
    fn an_unclosed_quote_fails_its_line_only() {
        let commands = parse_script("cd a\nul \"open\nrm b");
        assert_eq!(commands.len(), 3);
        assert_eq!(
            commands[0].as_ref().unwrap().words,
            [Word::plain("cd"), Word::plain("a")]
        );
        assert_eq!(
            commands[1],
            Err(LineError {
                reason: "unclosed quote",
                text: "ul \"open".into()
            })
        );
        assert_eq!(
            commands[2].as_ref().unwrap().words,
            [Word::plain("rm"), Word::plain("b")]
        );
        assert!(parse_script("cd 'x").first().unwrap().is_err());
    }

    #[test]
    fn unquoted_pattern_characters_make_a_pattern() {
        let some = |pattern: &str| Some(pattern.to_owned());
        let cases: &[(&str, &[Option<String>])] = &[
            ("ul *.jpg", &[None, some("*.jpg")]),
            ("dl logs/x?.txt", &[None, some("logs/x?.txt")]),
            ("ul [ab].txt", &[None, some("[ab].txt")]),
            ("ul '*.jpg' plain", &[None, None, None]),
            (r"ul \*.jpg", &[None, None]),
            ("ul '*'*.txt", &[None, some("[*]*.txt")]),
            (r#"ul "a[1]"?"#, &[None, some("a[[]1[]]?")]),
        ];
        for (line, expected) in cases {
            assert_eq!(patterns(line), *expected, "{line}");
        }
        assert_eq!(words("ul '*'*.txt"), [["ul", "**.txt"]]);
    }

    #[test]
    fn an_empty_script_has_no_commands() {
        assert!(parse_script("").is_empty());
        assert!(parse_script(" ; ;\n# only a comment\n").is_empty());
    }

    #[test]
    fn finds_the_word_under_the_cursor() {
        let cases: &[(&str, &[&str], usize)] = &[
            ("", &[], 0),
            ("u", &["u"], 0),
            ("ul ", &["ul"], 1),
            ("ul my\\ fi", &["ul", "my fi"], 1),
            ("ul \"my fi", &["ul", "my fi"], 1),
            ("cd x; dl a ", &["dl", "a"], 2),
            ("cd x;", &[], 0),
        ];
        for (before, words, index) in cases {
            let (found, at) = words_before_cursor(before);
            assert_eq!(
                (found, at),
                (words.iter().map(|w| w.to_string()).collect(), *index),
                "{before:?}"
            );
        }
    }
}
