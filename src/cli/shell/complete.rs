//! Tab completion at the prompt: command names, local paths where a
//! command takes one, and remote names where a command takes a remote path
//! (listed on the server: extended protocol only). Completed names are
//! escaped with backslashes, as the shell's line syntax reads them.

use miniftp::client::Entry;
use rustyline::completion::{Completer, FilenameCompleter, Pair, extract_word};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Result};

use super::command::{Argument, COMMANDS, help_for};
use super::line::words_before_cursor;

/// The most candidates offered (rustyline lists at most `u16::MAX`).
const MAX_CANDIDATES: usize = u16::MAX as usize;

/// Lists a remote directory for completion (nothing if it cannot).
pub type RemoteLister = Box<dyn Fn(&str) -> Vec<Entry>>;

/// The shell's rustyline helper.
pub struct ShellHelper {
    files: FilenameCompleter,
    remote: RemoteLister,
}

impl ShellHelper {
    pub fn new(remote: RemoteLister) -> ShellHelper {
        ShellHelper {
            files: FilenameCompleter::new(),
            remote,
        }
    }

    /// Remote names that complete the word before `pos`.
    fn complete_remote(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let (start, raw) = extract_word(line, pos, Some('\\'), |c| " \t;".contains(c));
        let word = unescape(raw);
        let (directory, prefix) = match word.rfind('/') {
            Some(at) => word.split_at(at + 1),
            None => ("", word.as_str()),
        };
        let listed = match directory {
            "" => ".",
            directory => directory,
        };
        let pairs = (self.remote)(listed)
            .into_iter()
            .filter(|entry| entry.name.starts_with(prefix))
            // Hidden names only when asked for.
            .filter(|entry| prefix.starts_with('.') || !entry.name.starts_with('.'))
            // rustyline counts candidates in a u16 when it lists them.
            .take(MAX_CANDIDATES)
            .map(|entry| {
                // Shown escaped: a name never reaches the terminal raw.
                let shown = miniftp::protocol::text::escape(&entry.name);
                let (display, end) = match entry.is_directory() {
                    true => (format!("{shown}/"), "/"),
                    false => (shown, " "),
                };
                let replacement = format!("{}{end}", escape(&format!("{directory}{}", entry.name)));
                Pair {
                    display,
                    replacement,
                }
            })
            .collect();
        (start, pairs)
    }
}

/// What argument `argument` (counting from 1, flags not counted) of
/// `command` names, as the command table says; an unknown command's, or
/// one past its arguments, names nothing to complete.
fn path_kind(command: &str, argument: usize) -> Argument {
    help_for(command)
        .and_then(|command| command.arguments.get(argument.checked_sub(1)?).copied())
        .unwrap_or(Argument::Other)
}

/// Backslash escapes as the line syntax reads them, removed.
fn unescape(raw: &str) -> String {
    let mut word = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c => word.push(c),
        }
    }
    word
}

/// A name escaped so that the line syntax reads it back as it is (and not
/// as a pattern).
fn escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for c in name.chars() {
        if " \t;'\"\\#*?[]".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> Result<(usize, Vec<Pair>)> {
        let (words, index) = words_before_cursor(&line[..pos]);
        let command = words.first().map(String::as_str).unwrap_or_default();
        if index == 0 || (command == "help" && index == 1) {
            let (start, prefix) = extract_word(line, pos, None, |c| " \t;".contains(c));
            let names = COMMANDS
                .iter()
                .filter(|candidate| candidate.name.starts_with(prefix))
                .map(|candidate| Pair {
                    display: candidate.name.to_owned(),
                    replacement: format!("{} ", candidate.name),
                })
                .collect();
            return Ok((start, names));
        }
        // The argument under the cursor, flags (-r, -l) not counted.
        if words.get(index).is_some_and(|word| word.starts_with('-')) {
            return Ok((pos, Vec::new()));
        }
        let argument = 1 + words[1..index.min(words.len())]
            .iter()
            .filter(|word| !word.starts_with('-'))
            .count();
        match path_kind(command, argument) {
            Argument::Local => {
                let (start, mut pairs) = self.files.complete_path(line, pos)?;
                for pair in &mut pairs {
                    pair.display = miniftp::protocol::text::escape(&pair.display);
                }
                Ok((start, pairs))
            }
            Argument::Remote => Ok(self.complete_remote(line, pos)),
            Argument::Other => Ok((pos, Vec::new())),
        }
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl rustyline::Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;
    use rustyline::history::DefaultHistory;

    fn entry(name: &str, is_directory: bool) -> Entry {
        Entry {
            name: name.to_owned(),
            kind: match is_directory {
                true => miniftp::client::EntryKind::Directory,
                false => miniftp::client::EntryKind::File,
            },
            size: 0,
            modified: None,
        }
    }

    /// A remote side with `photos/` (holding `jan 2024/` and `a*b.jpg`),
    /// `.hidden` and `notes.txt`.
    fn remote(directory: &str) -> Vec<Entry> {
        match directory {
            "." => vec![
                entry("photos", true),
                entry(".hidden", false),
                entry("notes.txt", false),
            ],
            "photos/" => vec![entry("jan 2024", true), entry("a*b.jpg", false)],
            _ => Vec::new(),
        }
    }

    fn complete(line: &str) -> (usize, Vec<String>) {
        let history = DefaultHistory::new();
        let context = Context::new(&history);
        let (start, pairs) = ShellHelper::new(Box::new(remote))
            .complete(line, line.len(), &context)
            .unwrap();
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn completes_remote_names_where_a_command_takes_a_remote_path() {
        assert_eq!(complete("cd ph"), (3, vec!["photos/".to_owned()]));
        assert_eq!(complete("dl -r p").1, ["photos/"]);
        assert_eq!(complete("stat n").1, ["notes.txt "]);
        assert_eq!(complete("ls ").1, ["photos/", "notes.txt "]);
        assert_eq!(complete("ls .").1, [".hidden "]);
        assert_eq!(
            complete("ul x photos/").1,
            ["photos/jan\\ 2024/", "photos/a\\*b.jpg "]
        );
        assert_eq!(
            complete("mv notes.txt photos/j"),
            (13, vec!["photos/jan\\ 2024/".to_owned()])
        );
        assert_eq!(complete("cd photos/jan\\ 2").1, ["photos/jan\\ 2024/"]);
        assert!(complete("lcd ph").1.is_empty(), "a local path");
        assert!(complete("rm -").1.is_empty(), "a flag");
    }

    #[test]
    fn completes_command_names() {
        assert_eq!(complete("mk"), (0, vec!["mkdir ".to_owned()]));
        assert_eq!(complete("l").1, ["ls ", "lcd ", "lpwd ", "lls "]);
        assert_eq!(complete("cd x; in"), (6, vec!["info ".to_owned()]));
        assert_eq!(complete("help dl"), (5, vec!["dl ".to_owned()]));
    }

    #[test]
    fn completes_local_paths_only_where_a_command_takes_one() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("my photo.jpg"), b"").unwrap();
        let prefix = format!("{}/my", dir.path().display());
        let (_, found) = complete(&format!("ul {prefix}"));
        assert_eq!(found, [format!("{}/my\\ photo.jpg", dir.path().display())]);
        assert_eq!(complete(&format!("dl remote {prefix}")).1.len(), 1);
        assert!(complete(&format!("cd {prefix}")).1.is_empty());
        assert!(complete(&format!("ul a {prefix}")).1.is_empty());
    }
}
