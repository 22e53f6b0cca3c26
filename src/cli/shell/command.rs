//! The shell's commands: their names, usage and help, and the parse from
//! words into a [`Command`]. Pure; adding a command is a row in
//! [`COMMANDS`], a variant here and an arm in the shell's `execute`.

/// A command typed at the prompt or found in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `cd PATH`
    ChangeDirectory(String),
    /// `mkdir PATH`
    MakeDirectory(String),
    /// `rm PATH`
    Remove(String),
    /// `mv SRC DEST`
    Rename(String, String),
    /// `info PATH`
    Size(String),
    /// `ul LOCAL [REMOTE]`
    Upload {
        /// The local file.
        local: String,
        /// The remote name; `None`: the local file's name.
        remote: Option<String>,
    },
    /// `dl REMOTE [LOCAL]`
    Download {
        /// The remote file.
        remote: String,
        /// The local path; `None`: the remote name in the local directory.
        local: Option<String>,
    },
    /// `lcd [DIR]`
    LocalChangeDirectory(Option<String>),
    /// `lpwd`
    LocalDirectory,
    /// `lls [DIR]`
    LocalList(Option<String>),
    /// `help [COMMAND]`
    Help(Option<String>),
    /// `exit`, `quit`
    Exit,
}

/// A command's documentation.
pub struct CommandHelp {
    /// The name typed.
    pub name: &'static str,
    /// Its arguments, as in `cd PATH`.
    pub usage: &'static str,
    /// One line.
    pub summary: &'static str,
    /// More, for `help NAME`.
    pub details: &'static str,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "cd",
        usage: "cd PATH",
        summary: "change the remote directory",
        details: "PATH is relative to the remote directory unless it starts with /; .. goes up.",
    },
    CommandHelp {
        name: "mkdir",
        usage: "mkdir PATH",
        summary: "create a remote directory",
        details: "Its parent must exist; an existing PATH is an error.",
    },
    CommandHelp {
        name: "rm",
        usage: "rm PATH",
        summary: "remove a remote file or empty directory",
        details: "A directory must be empty.",
    },
    CommandHelp {
        name: "mv",
        usage: "mv SRC DEST",
        summary: "rename or move a remote entry",
        details: "If DEST is an existing directory, SRC moves into it under its own name.\n\
                  An existing entry is never replaced.",
    },
    CommandHelp {
        name: "info",
        usage: "info PATH",
        summary: "show the size of a remote file",
        details: "Prints `PATH: N bytes`.",
    },
    CommandHelp {
        name: "ul",
        usage: "ul LOCAL [REMOTE]",
        summary: "upload a local file",
        details: "REMOTE defaults to LOCAL's file name in the remote directory; an existing\n\
                  remote file is replaced once the upload is complete. Ctrl-C cancels it.",
    },
    CommandHelp {
        name: "dl",
        usage: "dl REMOTE [LOCAL]",
        summary: "download a remote file",
        details: "LOCAL defaults to REMOTE's file name in the local directory; if LOCAL is a\n\
                  directory the file goes into it. The file appears under its name only when\n\
                  complete. Ctrl-C cancels it.",
    },
    CommandHelp {
        name: "lcd",
        usage: "lcd [DIR]",
        summary: "change the local directory",
        details: "Without DIR, goes to your home directory.",
    },
    CommandHelp {
        name: "lpwd",
        usage: "lpwd",
        summary: "show the local directory",
        details: "",
    },
    CommandHelp {
        name: "lls",
        usage: "lls [DIR]",
        summary: "list a local directory",
        details: "Directories are shown with a trailing /.",
    },
    CommandHelp {
        name: "help",
        usage: "help [COMMAND]",
        summary: "list the commands, or explain one",
        details: "",
    },
    CommandHelp {
        name: "exit",
        usage: "exit",
        summary: "leave (also quit, or Ctrl-D)",
        details: "",
    },
    CommandHelp {
        name: "quit",
        usage: "quit",
        summary: "leave (also exit, or Ctrl-D)",
        details: "",
    },
];

/// The help of a command by name.
pub fn help_for(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|command| command.name == name)
}

impl Command {
    /// Reads a command from its words (at least one).
    pub fn parse(words: &[String]) -> Result<Command, String> {
        let Some((name, args)) = words.split_first() else {
            return Err("empty command".to_owned());
        };
        let Some(help) = help_for(name) else {
            return Err(format!("unknown command: {name} (type help for a list)"));
        };
        let usage = || format!("usage: {}", help.usage);
        let owned = |i: usize| args.get(i).cloned();
        let command = match (help.name, args.len()) {
            ("cd", 1) => Command::ChangeDirectory(args[0].clone()),
            ("mkdir", 1) => Command::MakeDirectory(args[0].clone()),
            ("rm", 1) => Command::Remove(args[0].clone()),
            ("mv", 2) => Command::Rename(args[0].clone(), args[1].clone()),
            ("info", 1) => Command::Size(args[0].clone()),
            ("ul", 1 | 2) => Command::Upload {
                local: args[0].clone(),
                remote: owned(1),
            },
            ("dl", 1 | 2) => Command::Download {
                remote: args[0].clone(),
                local: owned(1),
            },
            ("lcd", 0 | 1) => Command::LocalChangeDirectory(owned(0)),
            ("lpwd", 0) => Command::LocalDirectory,
            ("lls", 0 | 1) => Command::LocalList(owned(0)),
            ("help", 0 | 1) => Command::Help(owned(0)),
            ("exit" | "quit", 0) => Command::Exit,
            _ => return Err(usage()),
        };
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Command, String> {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Command::parse(&words)
    }

    #[test]
    fn parses_every_command() {
        let s = |text: &str| text.to_owned();
        let cases = [
            (&["cd", "a b"][..], Command::ChangeDirectory(s("a b"))),
            (&["mkdir", "x"], Command::MakeDirectory(s("x"))),
            (&["rm", "x"], Command::Remove(s("x"))),
            (&["mv", "a", "b"], Command::Rename(s("a"), s("b"))),
            (&["info", "x"], Command::Size(s("x"))),
            (
                &["ul", "a.jpg"],
                Command::Upload {
                    local: s("a.jpg"),
                    remote: None,
                },
            ),
            (
                &["ul", "a.jpg", "b.jpg"],
                Command::Upload {
                    local: s("a.jpg"),
                    remote: Some(s("b.jpg")),
                },
            ),
            (
                &["dl", "a.jpg"],
                Command::Download {
                    remote: s("a.jpg"),
                    local: None,
                },
            ),
            (&["lcd"], Command::LocalChangeDirectory(None)),
            (
                &["lcd", "/tmp"],
                Command::LocalChangeDirectory(Some(s("/tmp"))),
            ),
            (&["lpwd"], Command::LocalDirectory),
            (&["lls"], Command::LocalList(None)),
            (&["help", "ul"], Command::Help(Some(s("ul")))),
            (&["exit"], Command::Exit),
            (&["quit"], Command::Exit),
        ];
        for (words, expected) in cases {
            assert_eq!(parse(words), Ok(expected), "{words:?}");
        }
    }

    #[test]
    fn wrong_arguments_show_the_usage() {
        assert_eq!(parse(&["cd"]), Err("usage: cd PATH".into()));
        assert_eq!(parse(&["mv", "a"]), Err("usage: mv SRC DEST".into()));
        assert_eq!(
            parse(&["ul", "a", "b", "c"]),
            Err("usage: ul LOCAL [REMOTE]".into())
        );
        assert_eq!(parse(&["exit", "now"]), Err("usage: exit".into()));
        assert!(
            parse(&["ls"])
                .unwrap_err()
                .starts_with("unknown command: ls")
        );
        assert!(parse(&["CD", "x"]).is_err());
    }

    #[test]
    fn every_listed_command_has_help() {
        for command in COMMANDS {
            assert!(command.usage.starts_with(command.name));
            assert!(!command.summary.is_empty());
        }
    }
}
