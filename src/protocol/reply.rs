//! The texts a classic server sends: the welcome listing and status lines.

use super::text::escape;

/// The welcome sent to a client beyond the connection limit.
pub const BUSY: &str = "error: server busy, try again later";

/// [`BUSY`]'s reason, for [`error`].
pub const BUSY_REASON: &str = "server busy, try again later";

/// The status sent before closing on an over-long command.
pub const COMMAND_TOO_LONG: &str = "error: command too long";

/// The status sent before closing an idle connection.
pub const IDLE_TIMEOUT: &str = "error: idle timeout, closing the connection";

/// The listing sent after the token: `Current Directory: DIR:`, then `\n|`,
/// then `\n-- NAME` for each directory and then each file, each group sorted
/// by the bytes of the name. Unprintable characters in names are escaped so
/// that a name can never forge a line.
pub fn welcome(directory: &str, mut directories: Vec<String>, mut files: Vec<String>) -> String {
    directories.sort_unstable();
    files.sort_unstable();
    let mut text = format!("Current Directory: {}:\n|", escape(directory));
    for name in directories.iter().chain(&files) {
        text.push_str("\n-- ");
        text.push_str(&escape(name));
    }
    text
}

/// An error status: `error: REASON`, always one line.
pub fn error(reason: impl std::fmt::Display) -> String {
    let line = format!("error: {reason}");
    line.replace(['\n', '\r'], " ")
}

/// A welcome as the client sees it: where it is and what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The directory named on the first line.
    pub directory: String,
    /// The listed names in order (directories first, then files).
    pub entries: Vec<String>,
}

impl Welcome {
    /// Reads a welcome, ours or the original's (which names a real absolute
    /// path and prints an empty `-- ` line for an empty group).
    pub fn parse(text: &str) -> Option<Welcome> {
        let rest = text.strip_prefix("Current Directory: ")?;
        let (first, body) = rest.split_once('\n').unwrap_or((rest, ""));
        let directory = first.strip_suffix(':').unwrap_or(first).to_owned();
        let body = body.strip_prefix('|').unwrap_or(body);
        let entries = body
            .split('\n')
            .filter_map(|line| line.strip_prefix("-- ").or_else(|| line.strip_prefix("--")))
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Welcome { directory, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_lists_directories_then_files_sorted_by_bytes() {
        let text = welcome(
            "/",
            vec!["b".into(), "B".into(), ".hidden".into()],
            vec!["z.txt".into(), "a.txt".into()],
        );
        assert_eq!(
            text,
            "Current Directory: /:\n|\n-- .hidden\n-- B\n-- b\n-- a.txt\n-- z.txt"
        );
    }

    #[test]
    fn empty_welcome_has_no_entry_lines() {
        assert_eq!(welcome("/", vec![], vec![]), "Current Directory: /:\n|");
    }

    #[test]
    fn names_cannot_forge_lines() {
        let text = welcome("/", vec![], vec!["evil\n-- fake".into()]);
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn parses_ours_and_the_originals() {
        let ours = Welcome::parse("Current Directory: /:\n|\n-- dir\n-- f.txt").unwrap();
        assert_eq!(ours.directory, "/");
        assert_eq!(ours.entries, ["dir", "f.txt"]);
        let original = Welcome::parse("Current Directory: /srv/x:\n|\n-- \n-- f.txt").unwrap();
        assert_eq!(original.directory, "/srv/x");
        assert_eq!(original.entries, ["f.txt"]);
        assert_eq!(Welcome::parse("hello"), None);
    }

    #[test]
    fn error_status_is_one_line() {
        assert_eq!(
            error("no such file or directory: a"),
            "error: no such file or directory: a"
        );
        assert_eq!(error("x\ny"), "error: x y");
    }
}
