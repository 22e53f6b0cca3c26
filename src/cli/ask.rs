//! Questions on the terminal (`[y/N]`, `[yes/no]`): a line read with
//! rustyline, so that Ctrl-C and Ctrl-D cancel the question instead of
//! being lost to a signal handler while the next line typed becomes the
//! answer.

use std::io::{BufRead, IsTerminal, Write};

use rustyline::DefaultEditor;
use rustyline::config::{Behavior, Config};
use rustyline::error::ReadlineError;

/// Asks `prompt` and returns the line typed, trimmed; `None` when the
/// question was cancelled (Ctrl-C, Ctrl-D) or cannot be asked.
pub fn line(prompt: &str) -> Option<String> {
    if !std::io::stdin().is_terminal() {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        return match std::io::stdin().lock().read_line(&mut answer) {
            Ok(1..) => Some(answer.trim().to_owned()),
            _ => None,
        };
    }
    // On the terminal itself, even when standard output is redirected.
    let config = Config::builder().behavior(Behavior::PreferTerm).build();
    let mut editor = DefaultEditor::with_config(config).ok()?;
    match editor.readline(prompt) {
        Ok(answer) => Some(answer.trim().to_owned()),
        Err(ReadlineError::Interrupted | ReadlineError::Eof) => None,
        Err(_) => None,
    }
}

/// Asks a `[y/N]` question: `true` only for yes.
pub fn yes(prompt: &str) -> bool {
    line(prompt).is_some_and(|answer| is_yes(&answer))
}

/// Whether an answer means yes.
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for answer in ["y", "Y", "yes", "Yes", "YES"] {
            assert!(is_yes(answer), "{answer}");
        }
        for answer in ["", "n", "no", "yeah", "ye s"] {
            assert!(!is_yes(answer), "{answer}");
        }
    }
}
