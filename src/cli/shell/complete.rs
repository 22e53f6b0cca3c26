//! Tab completion at the prompt: command names, and local paths where a
//! command takes one. (Remote names need a listing, which comes with the
//! extended protocol.)

use rustyline::completion::{Completer, FilenameCompleter, Pair, extract_word};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Result};

use super::command::COMMANDS;
use super::line::words_before_cursor;

/// The shell's rustyline helper.
pub struct ShellHelper {
    files: FilenameCompleter,
}

impl ShellHelper {
    pub fn new() -> ShellHelper {
        ShellHelper {
            files: FilenameCompleter::new(),
        }
    }
}

/// Which word of which commands is a local path.
fn takes_local_path(command: &str, index: usize) -> bool {
    matches!((command, index), ("ul" | "lcd" | "lls", 1) | ("dl", 2))
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
        if takes_local_path(command, index) {
            return self.files.complete_path(line, pos);
        }
        Ok((pos, Vec::new()))
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

    fn complete(line: &str) -> (usize, Vec<String>) {
        let history = DefaultHistory::new();
        let context = Context::new(&history);
        let (start, pairs) = ShellHelper::new()
            .complete(line, line.len(), &context)
            .unwrap();
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn completes_command_names() {
        assert_eq!(complete("mk"), (0, vec!["mkdir ".to_owned()]));
        assert_eq!(complete("l").1, ["lcd ", "lpwd ", "lls "]);
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
